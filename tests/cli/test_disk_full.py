"""A full disk part-way through a command (issue 33, rows h7 and h8): one line, exit 2, no half
output set, and the next run is not blocked by what the failed one left. ENOSPC is simulated by
making the write raise (`np.save`, `Figure.savefig`, `os.pwrite`), as a full file system does; a
huge video in a timelines file is refused before any memory is taken."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest

from gsmt.cli import main
from gsmt.errors import GsmtError
from gsmt.synth.generate import MAX_VIDEO_FEATURE_BYTES, generate

SYNTH = ["synth", "--preset", "thumos-like", "--videos", "4", "--feature-dim", "8"]
NO_SPACE = "No space left on device"


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gsmt: error: "), err
    return err[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fail_on_call(monkeypatch, owner, name: str, n: int, exc: OSError) -> None:
    """Make `owner.name` raise `exc` from its n-th call on (1-based)."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


# ------------------------------------------------------------------ synth: memory from a number


def _timelines(path: Path, duration: float) -> Path:
    path.write_text(json.dumps({"database": {
        "v_long": {"subset": "validation", "duration": duration, "annotations": [{"label": "a", "segment": [1, 5]}]},
        "v_ok": {"subset": "validation", "duration": 100, "annotations": [{"label": "a", "segment": [1, 5]}]}}}))
    return path


def test_a_video_of_a_million_seconds_is_refused_before_rendering(tmp_path, capsys, monkeypatch):
    """1e6 s is an allowed duration, but its features at 30 fps / stride 8 / D = 256 are 3.6 GiB at once."""
    timelines = _timelines(tmp_path / "long.json", 1e6)
    out = tmp_path / "out"
    rendered = []
    from gsmt.synth.models import prototype
    monkeypatch.setattr(prototype, "emit", lambda *a: rendered.append(1))
    assert main(["synth", "--preset", "thumos-like", "--timelines", str(timelines), "--out", str(out)]) == 2
    assert _one_error(capsys) == (
        f"gsmt: error: {timelines}: video 'long' (1000000 s) would be 3749999 snippets x 256 dims, 3.6 GiB of "
        "features; gsmt synth renders at most 524288 snippets and 512 MiB per video (a shorter video, a lower "
        "--fps, a larger --feature-stride or a smaller --feature-dim)")
    assert not out.exists() and not rendered
    # 4 dims are 57 MiB of features, but the float64 intermediates are per snippet: still refused
    assert main(["synth", "--preset", "thumos-like", "--timelines", str(timelines), "--feature-dim", "4",
                 "--out", str(out)]) == 2
    assert "would be 3749999 snippets x 4 dims, 57 MiB of features" in _one_error(capsys)
    assert not rendered
    monkeypatch.undo()
    # a grid of fewer snippets renders it (1e6 s at 30 fps, stride 4096: 7325 snippets)
    assert main(["synth", "--preset", "thumos-like", "--timelines", str(timelines), "--feature-dim", "4",
                 "--feature-stride", "4096", "--out", str(out)]) == 0
    assert np.load(out / "features" / "long.npy").shape == (7325, 4)
    assert MAX_VIDEO_FEATURE_BYTES == 512 * 2**20


def test_a_refused_timelines_file_leaves_the_previous_dataset(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*SYNTH, "--out", str(out)]) == 0
    capsys.readouterr()
    before = _files(out)
    timelines = _timelines(tmp_path / "long.json", 1e6)
    assert main(["synth", "--preset", "thumos-like", "--timelines", str(timelines), "--out", str(out),
                 "--overwrite"]) == 2
    assert "would be 3749999 snippets x 256 dims, 3.6 GiB of features" in _one_error(capsys)
    assert _files(out) == before  # checked before --overwrite removed anything


# ------------------------------------------------------------------ synth: a full disk


@pytest.mark.parametrize("exc, reason", [
    (OSError(errno.ENOSPC, NO_SPACE), NO_SPACE),
    # what ndarray.tofile raises on a real full disk (np.save into an open file): no errno
    (OSError("5296 requested and 5088 written"), "only 5088 of 5296 bytes could be written (is the disk full?)"),
])
def test_synth_on_a_full_disk_leaves_no_half_dataset(tmp_path, capsys, monkeypatch, exc, reason):
    out = tmp_path / "out"
    _fail_on_call(monkeypatch, np, "save", 3, exc)
    assert main([*SYNTH, "--out", str(out)]) == 2
    assert _one_error(capsys) == (f"gsmt: error: {out}/features/thumos_like_00002.npy: cannot write: {reason}; "
                                  "nothing of the dataset was kept")
    assert not out.exists()  # the folders it made go too
    # a folder that was there stays, empty, with the user's files
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([*SYNTH, "--out", str(out), "--overwrite"]) == 2
    capsys.readouterr()
    assert _files(out) == {"notes.txt": b"mine"} and not (out / "features").exists()
    monkeypatch.undo()
    assert main([*SYNTH, "--out", str(out), "--overwrite"]) == 0


def test_synth_overwrite_on_a_full_disk_can_be_replaced_by_the_next_one(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main([*SYNTH, "--out", str(out)]) == 0
    _fail_on_call(monkeypatch, np, "save", 2, OSError(errno.ENOSPC, NO_SPACE))
    assert main([*SYNTH, "--out", str(out), "--overwrite", "--seed", "1"]) == 2
    assert NO_SPACE in _one_error(capsys)
    assert not (out / "annotations.json").exists() and not list(out.rglob("*.npy"))
    monkeypatch.undo()
    assert main([*SYNTH, "--out", str(out), "--seed", "1"]) == 0  # an empty folder: not even --overwrite needed
    capsys.readouterr()


def test_synth_annotations_on_a_full_disk(tmp_path, monkeypatch):
    """The last write, annotations.json, fails: the features written before it go."""
    import gsmt.annotations.write

    def full(path, text, encoding="utf-8"):
        raise GsmtError(path, f"cannot write: {NO_SPACE}")

    monkeypatch.setattr(gsmt.annotations.write, "atomic_write_text", full)
    out = tmp_path / "out"
    with pytest.raises(GsmtError) as info:
        generate(out, preset="thumos-like", videos=3, feature_dim=4)
    assert str(info.value) == f"{out / 'annotations.json'}: cannot write: {NO_SPACE}; nothing of the dataset was kept"
    assert not out.exists()


# ------------------------------------------------------------------ analyze, visualize: pictures


@pytest.fixture()
def scored(tmp_path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    assert main(["synth", "--preset", "thumos-like", "--videos", "6", "--feature-dim", "4", "--out", str(data)]) == 0
    gt = json.loads((data / "annotations.json").read_text())
    results = {vid: [{"label": a["label"], "segment": [a["segment"][0] + 1, a["segment"][1]], "score": 0.8}
                     for a in v["annotations"]] for vid, v in gt["database"].items()}
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": results}))
    return data / "annotations.json", pred


@pytest.mark.parametrize("n", [1, 2, 3])
def test_analyze_on_a_full_disk_leaves_no_half_output_set(scored, tmp_path, capsys, monkeypatch, n):
    gt, pred = scored
    out = tmp_path / "an"
    args = ["analyze", "--gt", str(gt), "--pred", str(pred), "--subset", "validation", "--out", str(out)]
    assert main(args) == 0  # an earlier analysis, replaced by a run that fails
    capsys.readouterr()
    _fail_on_call(monkeypatch, matplotlib.figure.Figure, "savefig", n, OSError(errno.ENOSPC, NO_SPACE))
    assert main(args) == 2
    picture = ["fp_profile.png", "fp_pie.png", "map_bins.png"][n - 1]
    assert _one_error(capsys) == (f"gsmt: error: {out / picture}: cannot write: {NO_SPACE}; "
                                  f"no analysis was left in {out}")
    assert sorted(p.name for p in out.iterdir()) == [".gsmt-outputs.json"]
    assert json.loads((out / ".gsmt-outputs.json").read_text())["files"] == {}
    monkeypatch.undo()
    assert main(args) == 0  # nothing left refuses the next run


def test_visualize_on_a_full_disk_is_one_line_and_no_file(scored, tmp_path, capsys, monkeypatch):
    gt, pred = scored
    video = next(iter(json.loads(gt.read_text())["database"]))
    out = tmp_path / "pic" / "t.png"
    _fail_on_call(monkeypatch, matplotlib.figure.Figure, "savefig", 1, OSError(errno.ENOSPC, NO_SPACE))
    assert main(["visualize", "--gt", str(gt), "--pred", str(pred), "--video", video, "--out", str(out)]) == 2
    assert _one_error(capsys) == f"gsmt: error: {out}: cannot write: {NO_SPACE}"
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_a_lock_file_on_a_full_disk_is_one_line(scored, tmp_path, capsys, monkeypatch):
    import gsmt.io.guard

    gt, pred = scored
    out = tmp_path / "an"
    _fail_on_call(monkeypatch, gsmt.io.guard.os, "pwrite", 1, OSError(errno.ENOSPC, NO_SPACE))
    assert main(["analyze", "--gt", str(gt), "--pred", str(pred), "--subset", "validation", "--out", str(out)]) == 2
    assert _one_error(capsys) == f"gsmt: error: {out / 'gsmt.lock'}: cannot write the lock file: {NO_SPACE}"
    assert not (out / "gsmt.lock").exists()


def test_a_full_disk_anywhere_else_is_still_one_line(tmp_path, capsys, monkeypatch):
    """The CLI's net: an OSError of a full, read-only or failing disk that no code caught."""
    import gsmt.synth.generate

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, NO_SPACE, str(tmp_path / "x.bin"))

    monkeypatch.setattr(gsmt.synth.generate, "generate", full)
    assert main([*SYNTH, "--out", str(tmp_path / "o")]) == 2
    assert _one_error(capsys) == f"gsmt: error: {tmp_path / 'x.bin'}: cannot write: {NO_SPACE}"

    def bug(*args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(gsmt.synth.generate, "generate", bug)
    with pytest.raises(OSError):  # not a disk's fault: a bug keeps its traceback
        main([*SYNTH, "--out", str(tmp_path / "o")])
