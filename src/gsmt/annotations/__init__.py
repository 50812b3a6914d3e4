"""Annotation files: the types, one reader per format, the packaged real timelines."""
