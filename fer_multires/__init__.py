"""fer_multires: multi-resolution training for facial expression recognition."""

__version__ = "0.1.0"
