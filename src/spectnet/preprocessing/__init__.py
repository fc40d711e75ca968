"""Signal preprocessing: DSP primitives and the per-recording heart-sound pipeline."""
