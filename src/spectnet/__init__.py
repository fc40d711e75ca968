"""SpectNet: learnable gammatone-filterbank spectrogram front-end (Ansari & Hasan), reproduced."""

__version__ = "0.1.0"
