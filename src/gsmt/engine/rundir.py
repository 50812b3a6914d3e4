"""Run directories: what `gsmt train --out RUN` may write, replace or resume (docs/robustness.md).

- A run directory is recognised by its record (`gsmt.io.owned`, `.gsmt-outputs.json`), which the
  run's lock writes when it is released (`RunLock`): `gsmt train` replaces or deletes a file at one
  of its own names (`RUN_ENTRIES`) only when the record says gsmt train wrote it and it is unchanged.
  A run of a gsmt that kept no record is refused like a user's files.
- No input of the command (annotations, features, the config file) may lie inside the run
  directory: `--out` equal to the data folder, to a folder above it or to `data/features` is refused
  before anything is written, with or without `--overwrite`. A run directory inside the data folder
  is fine when it holds no input.
- `--overwrite` removes only a run directory's own (recorded) entries; a non-empty folder that is not
  a run directory is refused. Anything else a user put into a run directory stays.
- The run directory is locked (`gsmt.io.guard.lock_folder`) by the process that writes it; under DDP only
  rank 0 takes the lock and writes.
- `--resume` compares the run's recorded config, feature dimension, classes and training videos
  with the new request before any file is written; only `RESUME_MAY_DIFFER` may change.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np

from gsmt.config import Config, config_from_dict, read_yaml
from gsmt.errors import GsmtError
from gsmt.io.guard import LOCK_NAME, FolderLock, is_within
from gsmt.io.owned import MANIFEST, OwnedFolder

log = logging.getLogger("gsmt.train")

TRAIN = "gsmt train"  # the command named in the run directory's record
RUN_FILES = ("config.yaml", "log.jsonl", "last.pt", "best.pt")
RUN_DIRS = ("tensorboard",)
RUN_ENTRIES = RUN_FILES + RUN_DIRS
# Temporary files of `gsmt.io.write.atomic_path` for the run's own files (left by a kill mid-write).
_TEMP = re.compile(r"^\.(config|last|best|log)\..+\.tmp\.(yaml|pt|jsonl)$")

# Config keys that may differ between a run and its `--resume`: how long to train (extend a run with
# more epochs) and how to run it (device, threads, loader workers, divergence patience, the
# batch size of model-selection inference), never what is trained. `name` is a label.
RESUME_MAY_DIFFER = ("name", "train.epochs", "train.device", "train.threads", "train.num_workers",
                     "train.max_nonfinite_steps", "train.resident", "train.resident_memory_fraction",
                     "train.compile", "decode.batch_size")


def run_record(run_dir: str | Path) -> OwnedFolder:
    """The record of what `gsmt train` wrote into `run_dir` (`gsmt.io.owned`, `.gsmt-outputs.json`)."""
    return OwnedFolder(run_dir, TRAIN)


def _run_paths(run_dir: Path) -> list[Path]:
    """The run's own entries that exist now (`tensorboard/` a folder: every file below it counts)."""
    return [run_dir / name for name in RUN_ENTRIES if (run_dir / name).exists() or (run_dir / name).is_symlink()]


def is_run_dir(path: str | Path) -> bool:
    """Whether `path` is a folder a `gsmt train` wrote: its record attributes a file to gsmt train.
    (The content checks this replaces, a `config.yaml` header or a loadable checkpoint, took a copied
    or hand-made file for the run's.)"""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(entry["command"] == TRAIN and (path / key).is_file() for key, entry in run_record(path).load().items())


def _entries(path: Path) -> list[str]:
    try:
        return sorted(p.name for p in path.iterdir())
    except OSError as exc:
        raise GsmtError(path, f"cannot read the folder: {exc.strerror or exc}") from None


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _check_state(run_dir: Path, *, resume: bool, overwrite: bool, killed: dict | None = None) -> bool:
    """Refuse a run directory the request may not write; True when it holds a previous run.

    Every file at a run entry's name (`config.yaml`, `last.pt`, ..., below `tensorboard/`) must be in
    the folder's record as gsmt train's and unchanged (`killed`: the lock record of a killed training,
    whose unrecorded files are the run's too); a user's `config.yaml`, a run of a gsmt that kept no
    record, an edited checkpoint are refused naming the file."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GsmtError(run_dir, "exists and is not a folder")
    if not run_dir.exists():
        return False
    names = [n for n in _entries(run_dir) if not (n in (LOCK_NAME, MANIFEST) or _TEMP.match(n))]
    # A lock or temporary file alone is what a run killed before its first write leaves.
    if not names:
        return False
    ours = _run_paths(run_dir)
    run_record(run_dir).check_can_write(ours, killed=killed)
    if ours:
        if not (resume or overwrite):
            raise GsmtError(run_dir, "run directory exists and is not empty (use --overwrite or --resume)")
        return True
    if resume:
        raise GsmtError(run_dir, f"not a gsmt run directory (no config.yaml or checkpoint of a run; holds "
                                 f"{_shown(names)}): nothing to resume, choose another --out")
    raise GsmtError(run_dir, f"folder exists, is not empty and is not a gsmt run directory (holds "
                             f"{_shown(names)}); --overwrite only replaces a previous run: choose another --out")


def check_inputs_outside(run_dir: Path, inputs: dict[str, object], *, resume: bool) -> None:
    """Refuse a run directory that holds (or is) an input of the command."""
    for role, path in inputs.items():
        if path is None:
            continue
        path = Path(path)
        # Resuming from the run's own config file (`gsmt train RUN/config.yaml --out RUN --resume`)
        # reads a file of the run, not a user's file: the resume check compares it like any config.
        if resume and role == "CONFIG" and is_within(path, run_dir / "config.yaml"):
            continue
        if is_within(path, run_dir):
            raise GsmtError(run_dir, f"holds an input of this command ({role} {path}): a run directory "
                                     "may hold none of the inputs, choose another --out")


class RunLock(FolderLock):
    """The lock of a run directory, held for the whole training; releasing it records the run's
    own files in the folder's record first (`gsmt.io.owned`), whatever way the run ended.

    Recorded once, at the end, rather than after each save: a checkpoint is hashed once per run
    instead of once per epoch (a large model's `last.pt` every epoch would cost more than a short
    epoch), and nothing of the trainer's loop changes. A training killed before its end (SIGKILL,
    out of memory) leaves its lock file: the next claim takes the files it wrote since it started
    as the run's (`OwnedFolder.adopt`), so `--resume` goes on from them."""

    claimed: dict[Path, tuple[int, int]] | None = None  # the run's files when it was claimed (size, mtime)

    def release(self) -> None:
        if self._fd is not None and self.claimed is not None:
            # Only what the run wrote (new or changed since the claim) is hashed: a best.pt an extended
            # run did not replace is not read again, and a refused resume leaves the record as it was.
            try:
                owned = run_record(self.folder)
                owned.record_written(_run_paths(self.folder), self.claimed)
                owned.remove_if_empty()  # a run that failed before its first checkpoint left nothing
            except (GsmtError, OSError) as exc:  # the run's own error, if any, is the one to show
                log.warning("%s: the run's files were not recorded: %s", self.folder, exc)
        super().release()


def claim_run_dir(run_dir: str | Path, *, inputs: dict[str, object], resume: bool, overwrite: bool) -> FolderLock:
    """Check, lock and (with --overwrite) clear a run directory; returns the held lock, whose
    `release()` records the run's files (`RunLock`).

    Refused requests raise `GsmtError` before anything is written: inputs inside the run directory,
    a non-empty folder that is not a run directory, a file at a run entry's name that the folder's
    record does not say gsmt train wrote (or that changed since), a previous run without
    --overwrite/--resume, another process writing the run directory.
    """
    run_dir = Path(run_dir)
    check_inputs_outside(run_dir, inputs, resume=resume)
    # Before the lock file is created: a live owner's lock refuses the request right after.
    _check_state(run_dir, resume=resume, overwrite=overwrite, killed=run_record(run_dir).lock_owner())
    lock = RunLock(run_dir, TRAIN).acquire()
    try:
        # Again, now that it is ours; a training killed while it held the lock recorded nothing.
        previous = _check_state(run_dir, resume=resume, overwrite=overwrite, killed=lock.took_over)
        if lock.took_over:
            log.warning("%s: took over the lock of process %s, which is no longer running",
                        lock.path, lock.took_over.get("pid", "?"))
            run_record(run_dir).adopt(_run_paths(run_dir), lock.took_over)
        if previous and overwrite and not resume:
            clear_run_dir(run_dir)
        remove_temporaries(run_dir)
    except BaseException:
        lock.release()
        raise
    lock.claimed = run_record(run_dir).stamps(_run_paths(run_dir))
    return lock


def remove_temporaries(run_dir: Path) -> int:
    """Remove what killed writes of the run's own files left (`.last.<random>.tmp.pt`...): called
    under the run directory's lock, when no process of this run writes. Returns how many."""
    removed = 0
    for name in _entries(run_dir):
        path = run_dir / name
        if _TEMP.match(name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def discard_unsaved_run(run_dir: Path) -> None:
    """After a training that failed (or was interrupted) before any checkpoint existed: remove the
    run's own entries it wrote (`config.yaml`, `log.jsonl`, `tensorboard/`), so that the corrected
    rerun is neither refused as an existing run nor held to the failed run's config on --resume.
    A run directory with a checkpoint keeps everything. Anything else in the folder stays."""
    if any((run_dir / name).exists() for name in ("last.pt", "best.pt")):
        return
    try:
        clear_run_dir(run_dir)
    except GsmtError as exc:
        log.warning("%s", exc)


def trim_log(run_dir: Path, epoch: int) -> int:
    """On resume from a checkpoint of `epoch`: drop the lines of `log.jsonl` past it (a kill between
    an epoch's log line and its checkpoint logged an epoch the resumed run logs again) and lines a
    kill cut short. Returns how many were dropped; the file is rewritten atomically when any is."""
    import json

    from gsmt.io.write import atomic_write_text

    path = run_dir / "log.jsonl"
    if not path.is_file() or path.is_symlink():
        return 0
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GsmtError(path, f"cannot read the run's log: {exc}") from None
    kept, dropped = [], 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        past = isinstance(record, dict) and isinstance(record.get("epoch"), (int, float)) \
            and not isinstance(record.get("epoch"), bool) and record["epoch"] > epoch
        if not isinstance(record, dict) or past:
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return dropped


def clear_run_dir(run_dir: Path) -> None:
    """Remove a run directory's own entries (not its lock or record); anything else stays. Called
    under the lock, after `_check_state` found every one of them in the record as gsmt train's
    (--overwrite), or for the entries this very run wrote (`discard_unsaved_run`)."""
    for name in _entries(run_dir):
        if name not in RUN_ENTRIES:
            continue
        path = run_dir / name
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            raise GsmtError(path, f"cannot remove: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------
# Resume


def data_fingerprint(video_ids: list[str], feature_dim: int, classes: list[str], *, videos=None,
                     features=None) -> dict:
    """What a checkpoint records of the data it was trained on: the training videos' ids, the feature
    dimension, the classes and, given `videos` (the training `Video`s) and `features` (their
    `FeatureStore`), a digest of those videos' annotations (subset, duration, segments, labels) and
    one of their feature files (`FeatureStore.stamp`: size and both ends of each file, no whole read).
    A resume whose data differs in any of them is refused (`check_resume`)."""
    digest = hashlib.sha1("\n".join(sorted(video_ids)).encode()).hexdigest()
    record = {"train_videos": len(video_ids), "train_ids_sha1": digest, "feature_dim": int(feature_dim),
              "classes": list(classes)}
    if videos is not None:
        labels = hashlib.sha1()
        for video in sorted(videos, key=lambda v: v.id):
            labels.update(f"{video.id}\0{video.subset}\0{float(video.duration)!r}\0".encode())
            for array in (video.segments, video.labels, video.ambiguous):
                array = np.ascontiguousarray(array)
                labels.update(f"{array.dtype.str}{array.shape}".encode() + array.tobytes())
        record["annotations_sha1"] = labels.hexdigest()
    if features is not None:
        files = hashlib.sha1()
        for vid in sorted(video_ids):
            stamp = features.stamp(vid)
            files.update(len(stamp).to_bytes(8, "little") + stamp)
        record["features_sha1"] = files.hexdigest()
    return record


def _flatten(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_resume(run_dir: Path, cfg: Config, data: dict) -> dict | None:
    """Compare a resume request with what the run recorded; returns the last checkpoint's state.

    `data` is `data_fingerprint(...)` of the new request. The recorded side is `last.pt` (its
    config, classes, feature dimension, training videos) or, before the first checkpoint,
    `config.yaml`. A mismatch is one `GsmtError` naming every differing key; nothing is written.
    """
    from gsmt.engine.checkpoint import check_training_state, load_checkpoint

    last, cfg_file = run_dir / "last.pt", run_dir / "config.yaml"
    state, recorded_data = None, {}
    if last.is_file():
        state = load_checkpoint(last)
        check_training_state(state, last)
        where, recorded = last, state["meta"]["config"]
        recorded_data = dict(state.get("data") or {})
        recorded_data.setdefault("feature_dim", state["meta"].get("feature_dim"))
        recorded_data.setdefault("classes", state["meta"].get("classes"))
    elif cfg_file.is_file():
        where = cfg_file
        recorded = config_from_dict(read_yaml(cfg_file), str(cfg_file)).to_dict()
    else:
        return None
    # A key the recorded config lacks was added to gsmt after the run was saved: the run had its
    # default behaviour (new options default to the old one), so it compares as the default.
    new, old = _flatten(cfg.to_dict()), {**_flatten(Config().to_dict()), **_flatten(recorded)}
    diffs = [f"{k} {_short(old.get(k))} -> {_short(new.get(k))}" for k in sorted(set(new) | set(old))
             if k not in RESUME_MAY_DIFFER and old.get(k) != new.get(k)]
    digests = {"train_ids_sha1": "training video ids", "annotations_sha1": "annotations of the training videos",
               "features_sha1": "feature files of the training videos (size or content)"}
    for key, label in (("feature_dim", "feature dimension"), ("classes", "classes"),
                       ("train_videos", "training videos"), *digests.items()):
        # A key the checkpoint lacks was recorded by no earlier gsmt: nothing to compare.
        if key in recorded_data and recorded_data[key] != data.get(key):
            if key in digests and recorded_data.get("train_ids_sha1") != data.get("train_ids_sha1") \
                    and key != "train_ids_sha1":
                continue  # other videos: their annotations and files differ as a matter of course
            if key == "train_ids_sha1" and recorded_data.get("train_videos") != data.get("train_videos"):
                continue  # the count differs already
            shown = "differ" if key in digests else f"{_short(recorded_data[key])} -> {_short(data.get(key))}"
            diffs.append(f"{label} {shown}")
    if diffs:
        raise GsmtError(where, f"--resume asks for another run than the one recorded here: {'; '.join(diffs)} "
                               f"(only {', '.join(RESUME_MAY_DIFFER)} may change on resume; train into "
                               "another --out, or --overwrite)")
    return state


def checkpoint_inputs(checkpoint: str | Path) -> list[Path]:
    """The files a `--checkpoint` argument stands for: the checkpoint read and, for a run
    directory, the run's own files (an output there would replace a part of the run)."""
    from gsmt.engine.checkpoint import resolve_checkpoint

    path = Path(checkpoint)
    files = [resolve_checkpoint(path)]
    if path.is_dir():
        files += [path / name for name in RUN_FILES]
    return files
