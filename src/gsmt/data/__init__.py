"""Data layer: annotations, features, the snippet grid, targets and the torch dataset."""
