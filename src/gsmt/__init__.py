"""gsmt: proposal-free temporal action localization with Global Segmentation Mask Transformers."""

__version__ = "0.1.0"
