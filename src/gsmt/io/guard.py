"""Guards on outputs: outputs that never replace inputs, one writer per output folder.

`refuse_overwriting_inputs(output, inputs)`: every command that writes a file calls it before any
work (same path after resolving, or same file by device and inode: hard links, symlinks).
`lock_folder(folder)`: the lock a run directory (or a demo folder) is written under.
`check_output_location(path, "file" | "folder")`: an output that cannot be written (an existing
file where a folder is needed and the reverse, a parent that is a file, a read-only folder) is
refused before any work.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import tempfile
import time
from pathlib import Path

from gsmt.errors import GsmtError

try:
    import fcntl
except ImportError:  # not POSIX: the lock falls back to O_EXCL creation and a pid check
    fcntl = None


# Outputs never replace inputs


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file `path` names, links followed; None when it cannot be stat'ed."""
    try:
        st = os.stat(path)  # follows symlinks: a link and its target are one file
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _input_files(path: Path) -> list[Path]:
    """An input file, or the files directly inside an input folder (a feature folder, a THUMOS txt folder)."""
    if path.is_dir():
        try:
            return [p for p in path.iterdir() if p.is_file()]
        except OSError:
            return []
    return [path]


def refuse_overwriting_inputs(output: str | Path | None, inputs: dict[str, object], *,
                              flag: str = "--out") -> None:
    """Raise `GsmtError(output, ...)` when writing `output` would replace one of the command's inputs.

    `inputs` maps a role (`--gt`, `--checkpoint`, ...) to a path, a list of paths, or None. A folder
    stands for the files directly inside it. Two paths are the same file when they resolve to the
    same path or share device and inode (hard links, symlinks). An output that does not exist yet
    cannot be an input (every input has been read or is about to be): nothing is compared then.
    Call it before any work, so that a refused command has changed nothing.
    """
    if output is None:
        return
    out = Path(output)
    out_id = file_id(out)
    if out_id is None:
        return
    out_real = os.path.realpath(out)
    for role, value in inputs.items():
        if value is None:
            continue
        paths = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        for given in paths:
            if given is None:
                continue
            for path in _input_files(Path(given)):
                if file_id(path) == out_id or os.path.realpath(path) == out_real:
                    same = "" if str(path) == str(out) else f" ({path})"
                    raise GsmtError(out, f"is also an input of this command ({role}{same}); "
                                         f"refusing to overwrite it: pass another {flag}")


def _probe_writable(folder: Path) -> str | None:
    """None when a file can be created in `folder`, else why not. A real attempt, not `os.access`:
    root passes every permission check, yet not a read-only mount or a pseudo file system (/proc)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".gsmt-probe.")
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return None


def check_output_location(path: str | Path | None, kind: str = "file", *, flag: str = "--out") -> None:
    """Refuse, before any work, an output that cannot be written (issue 13, item 10).

    `kind="file"`: an existing folder or a special file (a device, a FIFO) is refused, and so is
    a parent that is not a folder or not writable. `kind="folder"`: an existing file is refused, a
    missing folder must be creatable (its nearest existing parent is a writable folder), an
    existing one writable. Writability is tried with a real temporary file (removed at once).
    The one-line `GsmtError` names the output and `flag`.
    """
    if path is None:
        return
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    out = Path(path)
    if str(path) == "":
        raise GsmtError(flag, "an empty path is not an output location")
    if out.exists() or out.is_symlink():
        if kind == "folder" and not out.is_dir():
            raise GsmtError(out, f"exists and is not a folder: {flag} must be a folder")
        if kind == "file" and out.is_dir():
            raise GsmtError(out, f"is a folder: {flag} must be a file")
        if kind == "file" and out.exists() and not out.is_file():
            raise GsmtError(out, f"exists and is not a regular file (a device, a pipe...): choose another {flag}")
    existing = out if kind == "folder" else out.parent
    # The nearest part of the path that exists: what the output (or its folders) is created in.
    while not (existing.exists() or existing.is_symlink()) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing.exists() else "is a broken symbolic link"
        raise GsmtError(out, f"cannot be created: {existing} {what}, not a folder: choose another {flag}")
    why = _probe_writable(existing)
    if why is not None:
        raise GsmtError(out, f"cannot write in {existing} ({why}): choose another {flag}")


def is_within(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` is `folder` or lies inside it, after resolving symlinks and `..`."""
    p, f = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return p == f or f in p.parents


# ---------------------------------------------------------------------------------------------
# One writer per output folder

LOCK_NAME = "gsmt.lock"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


def read_owner(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            owner = json.loads(fh.read(65536).decode("utf-8"))  # bounded: the record is one short line
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return owner if isinstance(owner, dict) else {}


class FolderLock:
    """An exclusive lock on an output folder (`<folder>/gsmt.lock`), held while a command writes it.

    POSIX: `fcntl.flock` on the lock file, which the OS releases when the owner dies however it
    dies, so a lock left by a killed process is taken over without asking; the file records the
    owner's pid, host and command for the message another process gets. Elsewhere: the file is
    created with O_CREAT | O_EXCL and a lock whose pid is not alive on this host is stale.
    A second process (or a second lock in the same process) is refused with a `GsmtError`
    naming the lock file and the owner pid.
    """

    def __init__(self, folder: str | Path, command: str = "gsmt"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None
        self.took_over: dict | None = None  # the stale owner record, when a dead owner's lock was taken

    def _refuse(self, owner: dict) -> GsmtError:
        pid = owner.get("pid", "?")
        host = owner.get("host")
        who = f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
        what = f" ({owner['command']})" if owner.get("command") else ""
        return GsmtError(self.path, f"folder is in use by {who}{what}: wait for it to end, or use "
                                    "another output folder")

    def acquire(self) -> "FolderLock":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GsmtError(self.folder, f"cannot create: {exc.strerror or exc}") from None
        if fcntl is None:
            self._acquire_exclusive_create()
        else:
            self._acquire_flock()
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        data = (json.dumps(record) + "\n").encode()
        try:
            os.ftruncate(self._fd, 0)
            if os.pwrite(self._fd, data, 0) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:  # a full disk: one line, and no lock left behind
            self.release()
            raise GsmtError(self.path, f"cannot write the lock file: {exc.strerror or exc}") from None
        return self

    def _acquire_flock(self) -> None:
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise GsmtError(self.path, f"cannot create the lock file: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse(read_owner(self.path)) from None
            except OSError:  # no flock on this file system: fall back to the pid check
                os.close(fd)
                if not read_owner(self.path):  # the empty file this open() just created
                    self.path.unlink(missing_ok=True)
                self._acquire_exclusive_create()
                return
            # The previous owner may have removed the file between our open and our flock: the
            # lock must be on the file that the path names now.
            st = os.fstat(fd)
            if file_id(self.path) != (st.st_dev, st.st_ino):
                os.close(fd)
                continue
            owner = read_owner(self.path)
            if owner.get("pid") not in (None, os.getpid()):
                self.took_over = owner  # its process ended without releasing: the OS dropped its flock
            self._fd = fd
            return
        raise GsmtError(self.path, "cannot take the lock: the lock file keeps changing")

    def _acquire_exclusive_create(self) -> None:
        for _ in range(2):
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                return
            except FileExistsError:
                owner = read_owner(self.path)
                same_host = owner.get("host") in (None, socket.gethostname())
                pid = owner.get("pid")
                if isinstance(pid, int) and same_host and not _pid_alive(pid):
                    self.took_over = owner
                    self.path.unlink(missing_ok=True)
                    continue
                raise self._refuse(owner) from None
            except OSError as exc:
                raise GsmtError(self.path, f"cannot create the lock file: {exc.strerror or exc}") from None
        raise self._refuse(read_owner(self.path))

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # removed while still held: no one can lock the old file
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> "FolderLock":
        return self if self._fd is not None else self.acquire()  # `with lock_folder(...)` holds it already

    def __exit__(self, *exc) -> None:
        self.release()


def lock_folder(folder: str | Path, command: str = "gsmt") -> FolderLock:
    """Take the lock of an output folder (created when missing); release it with `.release()`
    or use it as a context manager. Raises `GsmtError` when another process holds it."""
    return FolderLock(folder, command).acquire()
