"""gsmt: proposal-free temporal action localization with Global Segmentation Mask Transformers."""

from gsmt._version import __version__

__all__ = ["Localizer", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `import gsmt` (and `gsmt --help`) does not pay for importing torch.
    if name == "Localizer":
        from gsmt.api import Localizer

        return Localizer
    raise AttributeError(f"module 'gsmt' has no attribute {name!r}")
