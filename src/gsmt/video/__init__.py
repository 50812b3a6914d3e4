"""From raw video files to per-snippet features and detections (`gsmt extract`, `gsmt detect`).

An optional part of gsmt: `pip install gsmt[video]` brings PyAV (decoding, FFmpeg bundled) and
Hugging Face `transformers` (the backbones). `grid` and `provenance` need neither; `decode` needs
PyAV; `backbones`, `extract` and `detect` need both and torch. Nothing here is imported by the
rest of gsmt except on the commands that use it.
"""
