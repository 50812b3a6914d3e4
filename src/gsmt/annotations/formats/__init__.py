"""One module per annotation format. Each exposes `JSON` (whether the file is a JSON document,
parsed once by `gsmt.annotations.load.load_annotations`), `detect(...)` (True when auto-detection
should pick it: the path for a file format, the video entries for a JSON one) and `read(...)`
(`read(obj, path, video_info, subset_map)` for a JSON format, `read(path, video_info, subset_map)`
otherwise), which returns the flat `_Raw` form (`formats.common`) that `load_annotations` finishes.
Only THUMOS14 txt uses `subset_map` (its file-name suffixes); `load_annotations` renames the
subsets of every format afterwards.
"""
