"""Training: the shared trainer, samplers, example sets, model files and checkpoints."""
