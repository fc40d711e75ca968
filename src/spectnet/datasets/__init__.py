"""Data sets: acquisition (download or local copy), signal stores and the beat dataset."""
