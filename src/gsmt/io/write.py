"""Atomic writes: a reader never sees a half-written output, a killed run leaves the old file.

Write to a temporary file in the target's folder (same file system, so the rename is atomic),
flush it to disk, then `os.replace` it over the target.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from gsmt.errors import GsmtError


def _default_mode() -> int:
    # mkstemp creates 0600 files; outputs should get the permissions a plain open() would give.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _default_mode()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


_SHORT_WRITE = re.compile(r"^(\d+) requested and (\d+) written$")


def write_failure(exc: OSError) -> str:
    """The reason of a failed write in words: the OS's text, or for NumPy's short write (`ndarray.tofile`
    raises `OSError("5296 requested and 5088 written")`, no errno, on a full disk) what it means."""
    if exc.strerror:
        return exc.strerror
    match = _SHORT_WRITE.match(str(exc))
    if match:
        return f"only {match[2]} of {match[1]} bytes could be written (is the disk full?)"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on normal exit it replaces `path`, on error it is removed.

    `fsync=False` skips forcing the data to disk before the rename (still atomic for readers, not
    durable across a power cut): for many files whose completion another file marks.

    The parent folder is created when missing. The temporary name ends with `path`'s suffix, so
    any writer that takes a path works (`torch.save`, `np.save`, `h5py.File`...); close it before
    the block ends.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Keep the target's suffix last: np.save appends ".npy" to a path that lacks it.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
        os.close(fd)
    except OSError as exc:
        raise GsmtError(path, f"cannot write: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise GsmtError(path, f"cannot write: {write_failure(exc)}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (UTF-8 by default, no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


# ---------------------------------------------------------------------------------------------


# The temporary name atomic_path gives `<stem><suffix>`: "." + stem + "." + 8 characters of
# tempfile's alphabet + ".tmp" + suffix.
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>(\.[^.]*)?)$")


def temporary_of(name: str) -> str | None:
    """The output name whose `atomic_path` temporary `name` is (`.a.k1ll3dxy.tmp.json` -> `a.json`),
    or None when `name` is no such temporary."""
    match = _TEMPORARY.match(name)
    return match["stem"] + match["suffix"] if match else None


def remove_temporaries(paths) -> int:
    """Remove the temporaries of `atomic_path` that a killed writer of `paths` left beside them
    (SIGKILL and SIGTERM run no cleanup). Call it under the output folder's lock, when no process
    writes these outputs; other files, links and folders are left alone. Returns how many."""
    by_folder: dict[Path, set[str]] = {}
    for path in paths:
        path = Path(path)
        by_folder.setdefault(path.parent, set()).add(path.name)
    removed = 0
    for folder, names in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if temporary_of(entry.name) in names and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    return removed
