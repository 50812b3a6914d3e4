"""Which files of an output folder gsmt wrote: the one rule for replacing or deleting a file there.

Every command that writes into a folder (`synth`, `train`, `extract`, `detect`, `analyze`, `demo`,
`demo --video`; `visualize` and `predict` write only the one file their --out names) keeps a record,
`<folder>/.gsmt-outputs.json`, of the files it wrote: relative path -> command, size and SHA-256
of the bytes it wrote. Before it replaces or deletes a file it calls `check_can_write(paths)`: a
file (or, for a folder about to be removed, any file inside it) that is not in the record under
this command, that changed since (size or digest), or that is a link or not a regular file is
refused with one line naming it:

    <path>: exists and was not written by gsmt detect: refusing to replace it; pass another --out

After writing, it calls `record(paths)`; the record is rewritten atomically (merged with what is
on disk now, so nested commands keep each other's entries; entries whose file is gone are
dropped). The record is read strictly (`gsmt.io.read.read_json`, a fixed shape): a file of that
name gsmt did not write is refused, never replaced.

Outputs of a gsmt that kept no record (no `.gsmt-outputs.json`) are refused like a user's files:
the old content checks took any file of the right shape as gsmt's (a `gsmt predict` submission
as `gsmt detect`'s), which is the data loss this replaces. A killed command may leave outputs it
had not recorded yet (the record is written after them, at most every `SAVE_EVERY_S` seconds
while a long command runs): those are refused too, never replaced. Commands that record only at
the end (`train`, `extract`: a checkpoint or a feature file is hashed once, not after every write)
hold the folder's lock while they write; a killed one leaves its lock file, whose owner record
(command, start time) says which unrecorded files it wrote: those modified since it started, at
the command's own output names. Its resume takes them as its own (`killed_run_files`, `adopt`);
any other unrecorded file is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path, PurePosixPath

from gsmt.errors import GsmtError
from gsmt.io.guard import LOCK_NAME, read_owner

MANIFEST = ".gsmt-outputs.json"
VERSION = 1
SAVE_EVERY_S = 2.0
_TEMP = re.compile(r"^\..+\.tmp\.[A-Za-z0-9]+$")  # gsmt.io.write.atomic_path's temporary files
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _skipped(name: str) -> bool:
    """Names a command leaves behind by design and never records: the lock, atomic temporaries."""
    return name == LOCK_NAME or bool(_TEMP.match(name))


class OwnedFolder:
    """The record of what `command` (e.g. `"gsmt detect"`) wrote into `folder`."""

    def __init__(self, folder: str | Path, command: str, *, flag: str = "--out"):
        self.folder = Path(folder)
        self.command = command
        self.flag = flag
        self.manifest = self.folder / MANIFEST
        self._pending: dict[str, dict] = {}
        self._last_save = 0.0

    # -------------------------------------------------------------- the record on disk

    def _refuse_record(self, why: str) -> GsmtError:
        return GsmtError(self.manifest, f"is not a gsmt output record ({why}): refusing to replace files in "
                                        f"this folder; pass another {self.flag}")

    def load(self) -> dict[str, dict]:
        """The entries of the record now on disk (none when there is none); strict."""
        from gsmt.io.read import read_json

        if not (self.manifest.exists() or self.manifest.is_symlink()):
            return {}
        if self.manifest.is_symlink() or not self.manifest.is_file():
            raise self._refuse_record("a link or not a regular file")
        try:
            doc = read_json(self.manifest)
        except GsmtError as exc:
            raise self._refuse_record(exc.problem[:120]) from None
        if not (isinstance(doc, dict) and doc.get("gsmt_outputs") == VERSION and isinstance(doc.get("files"), dict)
                and set(doc) == {"gsmt_outputs", "files"}):
            raise self._refuse_record("not the shape gsmt writes")
        for key, entry in doc["files"].items():
            parts = PurePosixPath(key).parts
            if not parts or key.startswith("/") or ".." in parts or "\\" in key:
                raise self._refuse_record(f"a path outside the folder: {key[:80]!r}")
            if not (isinstance(entry, dict) and set(entry) == {"command", "size", "sha256"}
                    and isinstance(entry["command"], str) and type(entry["size"]) is int and entry["size"] >= 0
                    and isinstance(entry["sha256"], str) and _HEX64.match(entry["sha256"])):
                raise self._refuse_record(f"a bad entry for {key[:80]!r}")
        return doc["files"]

    def _key(self, path: str | Path) -> str:
        rel = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(self.folder)))  # lexical, links kept
        if str(rel) in ("", ".") or ".." in rel.parts:
            raise ValueError(f"{path} is not inside {self.folder}")
        return rel.as_posix()

    # -------------------------------------------------------------- before writing

    def _files(self, path: Path) -> Iterable[Path]:
        """`path` itself, or every entry below it when it is a real folder (links are not followed)."""
        if path.is_dir() and not path.is_symlink():
            for entry in sorted(path.iterdir()):
                yield from self._files(entry)
        else:
            yield path

    def _regular_files(self, paths: Iterable[str | Path]) -> Iterable[tuple[Path, os.stat_result]]:
        """(path, lstat) of the regular files among `paths` (folders: below them) a command writes: not
        the record, the lock or atomic temporaries; links are never followed."""
        for given in map(Path, paths):
            if not (given.exists() or given.is_symlink()):
                continue
            for path in self._files(given):
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and path != self.manifest and not _skipped(path.name):
                    yield path, st

    def foreign(self, paths: Iterable[str | Path]) -> list[Path]:
        """The existing files among `paths` (folders: every file below them) that this command may not
        replace: not in the record under this command, changed since, a link or not a regular file."""
        entries = None
        found = []
        for given in paths:
            given = Path(given)
            if not (given.exists() or given.is_symlink()):
                continue
            for path in self._files(given):
                if _skipped(path.name):
                    continue
                if entries is None:
                    entries = self.load()
                entry = entries.get(self._key(path))
                try:
                    st = path.lstat()
                except OSError:
                    found.append(path)
                    continue
                if (entry is None or entry["command"] != self.command or not stat.S_ISREG(st.st_mode)
                        or st.st_size != entry["size"] or _digest_or_none(path) != entry["sha256"]):
                    found.append(path)
        return found

    def check_can_write(self, paths: Iterable[str | Path], *, killed: dict | None = None) -> None:
        """Raise `GsmtError` naming the first file among `paths` this command may not replace or delete
        (folders: the first file below them). A record file gsmt did not write is refused too.
        `killed`: the lock owner record of a killed run of this command (`killed_run_files`), whose
        unrecorded files are this command's too."""
        self.load()  # the record itself is about to be replaced: it must be gsmt's
        paths = list(paths)
        excused = set(self.killed_run_files(paths, killed))
        foreign = [path for path in self.foreign(paths) if path not in excused]
        if foreign:
            raise GsmtError(foreign[0], f"exists and was not written by {self.command}: refusing to replace it; "
                                        f"pass another {self.flag}")

    def lock_owner(self) -> dict:
        """The owner record of the lock file in the folder now ({} when there is none). Read before
        the lock is taken: a live owner is refused by the lock right after, so excusing its files
        in a first check changes nothing."""
        path = self.folder / LOCK_NAME
        return read_owner(path) if path.is_file() and not path.is_symlink() else {}

    def killed_run_files(self, paths: Iterable[str | Path], owner: dict | None) -> list[Path]:
        """The regular files among `paths` (folders: below them) that a killed run of this command
        wrote and could not record: `owner` is its lock's record (this command's), and the file was
        modified at or after the second it started. Its own claim had refused any unrecorded file
        there before it started, so such a file is one it wrote (or one put there while it ran)."""
        if not owner or owner.get("command") != self.command or not isinstance(owner.get("started"), str):
            return []
        try:
            started = datetime.strptime(owner["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            return []
        return [path for path, st in self._regular_files(paths) if st.st_mtime >= started]

    def adopt(self, paths: Iterable[str | Path], owner: dict | None) -> list[Path]:
        """Record the files among `paths` that a killed run of this command wrote (`killed_run_files`),
        under the folder's lock taken over from it; returns them."""
        found = self.killed_run_files(paths, owner)
        if found:
            self.record(found)
        return found

    # -------------------------------------------------------------- after writing

    def record(self, paths: Iterable[str | Path], *, defer: bool = False) -> None:
        """Note `paths` (folders: every regular file below them) as written by this command; the
        record is saved now, or with `defer=True` when `SAVE_EVERY_S` passed since the last save
        (call `save()` at the end)."""
        for path, st in self._regular_files(paths):
            self._pending[self._key(path)] = {"command": self.command, "size": st.st_size,
                                              "sha256": sha256_of(path)}
        if not defer or time.monotonic() - self._last_save >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        """Write the record: what is on disk now, this command's new entries over it, entries of
        files that are gone dropped. Atomic."""
        from gsmt.io.write import atomic_write_text

        entries = {**self.load(), **self._pending}
        kept = {key: entry for key, entry in sorted(entries.items())
                if (self.folder / key).is_file() and not (self.folder / key).is_symlink()}
        atomic_write_text(self.manifest, json.dumps({"gsmt_outputs": VERSION, "files": kept}, indent=1) + "\n")
        self._pending.clear()
        self._last_save = time.monotonic()

    def stamps(self, paths: Iterable[str | Path]) -> dict[Path, tuple[int, int]]:
        """Size and modification time of the regular files among `paths` (folders: below them)."""
        return {path: (st.st_size, st.st_mtime_ns) for path, st in self._regular_files(paths)}

    def record_written(self, paths: Iterable[str | Path], before: dict[Path, tuple[int, int]]) -> None:
        """Record the files among `paths` that are new or rewritten since `before` (`stamps` taken when
        the command claimed the folder): a command that records once at its end hashes only what it
        wrote, not every earlier output again. Nothing written: the record is left as it is."""
        written = [path for path, stamp in self.stamps(paths).items() if before.get(path) != stamp]
        if written:
            self.record(written)

    def remove_if_empty(self) -> None:
        """Remove the record when no file it lists is there any more (a failed run removed all it
        wrote), so that the folder is as empty as before and a folder the run made can go."""
        if self.manifest.is_file() and not self.manifest.is_symlink() \
                and not any((self.folder / key).is_file() for key in self.load()):
            self.manifest.unlink(missing_ok=True)


def _digest_or_none(path: Path) -> str | None:
    try:
        return sha256_of(path)
    except OSError:
        return None


def discard_outputs(paths: Iterable[str | Path], owned: OwnedFolder) -> None:
    """After a command failed part-way: remove `paths` (its outputs, which the caller checked are
    its own, `check_can_write`) and save the record without them, as far as the disk allows; the
    caller re-raises the failure, which no error here replaces."""
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            pass
    try:
        owned.save()  # drops the entries of the files that are gone
    except (GsmtError, OSError):
        pass  # a stale entry of a gone file is dropped by the next save
