"""The GSMT network: snippet embedding (transformer or CNN) and the class and mask heads."""

from gsmt.model.gsmt import GSMT, count_parameters

__all__ = ["GSMT", "count_parameters"]
