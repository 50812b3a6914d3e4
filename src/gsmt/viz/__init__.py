"""Pictures: prediction timelines, global-mask heatmaps and training curves (DESIGN.md section 2).

Every function takes NumPy arrays, draws on a `matplotlib.figure.Figure` with the Agg canvas (no
pyplot global state, so it is safe in threads and on headless machines) and writes the file
atomically. The `*_figure` functions return the Figure unsaved, for tests and notebooks.
"""
