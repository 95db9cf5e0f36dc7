"""Imported by the converter worker's warm-up for the crashy test format (crashy_format.py)."""
