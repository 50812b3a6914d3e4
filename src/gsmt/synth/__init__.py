"""Synthetic datasets on real or generated timelines, rendered by a registry of feature models."""
