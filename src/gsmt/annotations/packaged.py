"""The real annotation files shipped inside the package (`gsmt/timelines/`, provenance in its README.md).

- Timelines, by name: `thumos14` (THUMOS14 validation + test ground truth, `Ambiguous` kept apart),
  `activitynet13` (ActivityNet-1.3 training + validation) and `multithumos` (the dense, co-occurring
  MultiTHUMOS labels of the same 413 videos as `thumos14`, subsets named `validation` / `test` as
  there; class names are the ids 1..65). `gsmt synth --timelines NAME` renders features on them;
  any other value is a path to an annotation file.
- Blocked ids, by name: `activitynet13` (the 198 validation videos the common BSN/BMN feature
  release lacks; leaving them out gives the usual 4,728-video protocol). `gsmt eval --blocked NAME`.

A name always means the packaged file; write `./thumos14` for a local file of that name.
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

from gsmt.io.read import read_json
from gsmt.errors import GsmtError

TIMELINES = {"thumos14": "thumos14.json.gz", "activitynet13": "activitynet13.json.gz",
             "multithumos": "multithumos.json.gz"}
# The evaluation tIoUs of a packaged dataset where they are not its synth preset's (`gsmt synth` records them).
TIMELINES_TIOU = {"multithumos": "multithumos"}
BLOCKED = {"activitynet13": "activitynet13_val_blocked_198.json.gz"}

_extracted = ExitStack()  # files extracted from a zipped install, removed at exit
atexit.register(_extracted.close)


def packaged_file(filename: str) -> Path:
    """Filesystem path of `gsmt/timelines/<filename>` in the installed package."""
    res = resources.files("gsmt").joinpath("timelines", filename)
    if isinstance(res, Path):
        return res
    return _extracted.enter_context(resources.as_file(res))  # e.g. a zip import: a temporary copy


def _resolve(value: str | Path, names: dict[str, str], what: str) -> Path:
    if isinstance(value, str) and value in names:
        return packaged_file(names[value])
    path = Path(value)
    if not path.exists() and isinstance(value, str) and value.lstrip()[:1] in ("[", "{", '"'):
        raise GsmtError(value[:80], f"expected a file or a packaged name ({', '.join(names)}), not JSON "
                                    "text: write the list into a file and pass its path")
    if not path.exists():
        listed = ", ".join(names)
        raise GsmtError(path, f"not found (neither a file nor the name of a packaged {what}: {listed})")
    return path


def timelines_path(value: str | Path) -> Path:
    """A name of `TIMELINES` (`thumos14`, `activitynet13`, `multithumos`) -> the packaged annotation
    file; anything else is a path."""
    return _resolve(value, TIMELINES, "timeline")


def timelines_label(value: str | Path) -> str:
    """How a dataset records its timelines: the packaged name, or the file's name."""
    return value if isinstance(value, str) and value in TIMELINES else Path(value).name


def blocked_path(value: str | Path) -> Path:
    """`activitynet13` -> the packaged list of 198 blocked validation ids; anything else is a path."""
    return _resolve(value, BLOCKED, "blocked list")


def load_blocked(value: str | Path) -> list[str]:
    """Video ids of a blocked list: a packaged name or a JSON list file (gzip allowed)."""
    if not isinstance(value, (str, Path)):
        raise GsmtError("blocked", f"expected a file or a packaged name, got {type(value).__name__}")
    path = blocked_path(value)
    ids = read_json(path)
    if not isinstance(ids, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in ids):
        raise GsmtError(path, "expected a JSON list of video ids")
    return [str(v) for v in ids]
