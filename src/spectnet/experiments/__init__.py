"""Task glue: the experiments of the paper's tables, built from params on the shared
models, trainer and metrics."""
