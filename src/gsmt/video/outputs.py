"""Where `gsmt extract` and `gsmt detect` may write: never over an input, never over a file gsmt did not write.

Both commands write many files into one folder, named after the videos, so the folder-level check
of `gsmt.io.guard.refuse_overwriting_inputs` (the output path itself against the inputs) is not enough:
`gsmt detect config.mp4 --out MODEL_FOLDER` would replace the backbone's own `config.json`. Here
every file a command is about to write is compared with every input file, by resolved path and by
device and inode (symlinks, hard links), through one index of the inputs, so a resume over
thousands of videos stays linear. NumPy-free, no torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gsmt.errors import GsmtError
from gsmt.io.guard import file_id as _key


class InputIndex:
    """The files a command reads, by (device, inode) and by resolved path. A folder given as an
    input stands for the files directly inside it (a backbone folder: config, weights...)."""

    def __init__(self, inputs: dict[str, object]):
        self._by_key: dict[tuple[int, int], tuple[str, Path]] = {}
        self._by_real: dict[str, tuple[str, Path]] = {}
        for role, value in inputs.items():
            paths = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
            for given in paths:
                if given is None:
                    continue
                given = Path(given)
                try:
                    files = [p for p in given.iterdir() if p.is_file()] if given.is_dir() else [given]
                except OSError:
                    files = [given]
                for path in files:
                    key = _key(path)
                    if key is not None:
                        self._by_key.setdefault(key, (role, path))
                    self._by_real.setdefault(os.path.realpath(path), (role, path))

    def find(self, output: Path) -> tuple[str, Path] | None:
        """(role, input path) when writing `output` would replace that input; None otherwise.
        An output that does not exist yet replaces nothing."""
        key = _key(output)
        if key is None:
            return None
        return self._by_key.get(key) or self._by_real.get(os.path.realpath(output))


def refuse_inputs_among(outputs: Iterable[Path], index: InputIndex, *, flag: str = "--out") -> None:
    """Raise `GsmtError(output, ...)` for the first output that is one of the inputs."""
    for output in outputs:
        hit = index.find(output)
        if hit is not None:
            role, path = hit
            same = "" if str(path) == str(output) else f" ({path})"
            raise GsmtError(output, f"is also an input of this command ({role}{same}); refusing to overwrite "
                                    f"it: pass another {flag}")
