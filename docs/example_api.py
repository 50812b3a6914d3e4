"""Python API example (included in the README): run a trained GSMT on your own features.

    python docs/example_api.py [RUN_DIR] [FEATURE_FILE ...]

By default it uses what `gsmt demo` writes: the run in demo_out/run and two of its feature files.
"""

import sys
from pathlib import Path

import numpy as np

from gsmt import Localizer

run = sys.argv[1] if len(sys.argv) > 1 else "demo_out/run"
files = sys.argv[2:] or sorted(Path("demo_out/data/features").glob("*.npy"))[:2]

# A run directory (its best checkpoint, else its last) or a .pt file; the checkpoint carries the
# classes, the feature dimension, the temporal mode and the decoding settings.
loc = Localizer.from_checkpoint(run)
print(f"{len(loc.classes)} classes, feature dimension {loc.feature_dim}")

# One video: an array [T, D] (or [D, T], or a file path). Times come from the snippet grid the
# features were extracted on: 30 fps video, a snippet every 8 frames, 16 frames per snippet.
features = np.load(files[0])
for det in loc.predict(features, fps=30, feature_stride=8, feature_window=16)[:5]:
    print(f"{det.label:>12}  {det.start:7.2f} - {det.end:7.2f} s  score {det.score:.3f}")

# Several videos, batched; without a grid, the one recorded in the checkpoint is used.
for path, detections in zip(files, loc.predict_many(files)):
    print(f"{Path(path).name}: {len(detections)} detections")
