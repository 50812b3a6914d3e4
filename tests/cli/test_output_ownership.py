"""Issue 33, item 1: a command replaces or deletes a file in its output folder only when the folder's
record (`.gsmt-outputs.json`, `gsmt.io.owned`) says that command wrote it there, unchanged since.

One parametrized test over every command that writes into a folder (`synth --overwrite`, `train
--overwrite`, `extract`, `detect`, `analyze`, `demo`, `demo --video`): a user's file at each output
name keeps its bytes, the error is one exact line, exit 2; and a rerun over the command's own outputs
(with --overwrite; `extract`: its resume) still works. The demos' jobs are replaced by a writer of
their entries (the guard is around the job; training is not what is tested here). `visualize` and
`predict` write into no folder: only the one file their --out names (last test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RUN, single_thread

from gsmt.cli import main
from gsmt.commands import demo as demo_module
from gsmt.errors import GsmtError
from gsmt.io.owned import MANIFEST, OwnedFolder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mmaction2"
GT, PRED = FIXTURES / "eval_localization_gt.json.gz", FIXTURES / "eval_localization_result.json.gz"
GRID = ["--fps", "10", "--feature-stride", "2", "--feature-window", "4"]
SUBMISSION = b'{"version": "VERSION 1.3", "results": {"a": []}, "external_data": {}}'  # as `gsmt predict` writes


@pytest.fixture(scope="module")
def video_world(tmp_path_factory) -> dict[str, Path]:
    """A DINOv2 of a few thousand weights, one 2-s clip, a checkpoint trained one epoch on synthetic features."""
    pytest.importorskip("av")
    pytest.importorskip("transformers")
    import torch

    from gsmt.video.clips import encode_mp4, save_random_image_encoder

    root = tmp_path_factory.mktemp("owned")
    torch.manual_seed(0)
    save_random_image_encoder(root / "dino")
    (root / "videos").mkdir()
    encode_mp4(root / "videos" / "a.mp4", np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), np.uint8), 10)
    assert main(["synth", "--preset", "thumos-like", "--videos", "6", "--classes", "2", "--feature-dim", "48",
                 *GRID, "--out", str(root / "syn")]) == 0
    assert main(["train", "demo", "--data", str(root / "syn"), "--out", str(root / "run"), "--quiet",
                 "--set", "train.epochs=1", "--set", "model.hidden_dim=32", "--set", "train.threads=1",
                 "--set", "data.T=32"]) == 0
    return {"dino": root / "dino", "video": root / "videos" / "a.mp4", "run": root / "run"}


def _fake_job(entries):
    """Stands in for a demo's work: writes each of its entries (a folder gets one file)."""
    def job(*args):
        out = next(a for a in args if isinstance(a, Path))  # the demo folder
        for name in entries:
            path = out / name
            if "." in name:
                path.write_bytes(b"written by the demo " + name.encode())
            else:
                path.mkdir()
                (path / "inside.txt").write_text("written by the demo")
        return {}
    return job


# command -> (its output names, what that command is called in the error); a name without a dot is
# a folder of the command's (a user's file is put inside it)
COMMANDS = {
    "synth": (["annotations.json", "features/anet_like_00000.npy"], "gsmt synth"),
    "train": (["config.yaml", "log.jsonl", "last.pt", "best.pt", "tensorboard"], "gsmt train"),
    "extract": (["annotations.json", "extract.json", "features/a.npy", "extracted/a.json"], "gsmt extract"),
    "detect": (["a.json", "a.vtt", "a_timeline.png", "detections.json"], "gsmt detect"),
    "analyze": (["analysis.json", "fp_profile.png", "fp_pie.png", "map_bins.png"], "gsmt analyze"),
    "demo": (list(demo_module.DEMO_ENTRIES), "gsmt demo"),
    "demo --video": (list(demo_module.VIDEO_DEMO_ENTRIES), "gsmt demo --video"),
}
CASES = [(command, name) for command, (names, _) in COMMANDS.items() for name in names]


@pytest.fixture
def runner(request, monkeypatch):
    """`run(command, out)`: the command writing into `out` (exit code)."""
    def run(command: str, out: Path) -> int:
        if command == "synth":
            return main(["synth", "--preset", "anet-like", "--videos", "3", "--feature-dim", "4", "--out", str(out),
                         "--overwrite"])
        if command == "train":  # one short epoch on the session's tiny data (held-out selection: best.pt)
            data = request.getfixturevalue("tiny_data")
            sets = [a for o in (*TINY_RUN, "train.epochs=1") for a in ("--set", o)]
            with single_thread():
                return main(["train", "demo", "--data", str(data), "--out", str(out), "--overwrite", "--quiet",
                             *sets])
        if command == "extract":  # no --overwrite: a rerun resumes its own folder
            world = request.getfixturevalue("video_world")
            return main(["extract", "--videos", str(world["video"].parent), "--backbone", str(world["dino"]),
                         *GRID, "--out", str(out), "--quiet"])
        if command == "detect":
            world = request.getfixturevalue("video_world")
            return main(["detect", str(world["video"]), "--checkpoint", str(world["run"]), "--backbone",
                         str(world["dino"]), "--out", str(out), "--quiet"])
        if command == "analyze":
            return main(["analyze", "--gt", str(GT), "--pred", str(PRED), "--out", str(out)])
        if command == "demo":
            monkeypatch.setattr(demo_module, "_run_demo", _fake_job(demo_module.DEMO_ENTRIES))
            return main(["demo", "--out", str(out), "--overwrite", "--videos", "4", "--quiet"])
        pytest.importorskip("av")
        pytest.importorskip("transformers")
        monkeypatch.setattr(demo_module, "_run_video_demo", _fake_job(demo_module.VIDEO_DEMO_ENTRIES))
        return main(["demo", "--video", "--out", str(out), "--overwrite", "--videos", "4", "--quiet"])
    return run


def _plant(out: Path, name: str) -> Path:
    """A user's file at an output name (a folder output: a file of theirs inside it)."""
    path = out / name if "." in name else out / name / "mine.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SUBMISSION if name == "detections.json" else b"the user's own bytes " + name.encode())
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("gsmt: error: ") and "Traceback" not in "\n".join(err), err
    assert sum(line.startswith("gsmt: error:") for line in err) == 1, err
    return err[-1]


def _refused(path: Path, command: str) -> str:
    return f"gsmt: error: {path}: exists and was not written by {command}: refusing to replace it; pass another --out"


@pytest.mark.parametrize("command,name", CASES, ids=[f"{c}:{n}" for c, n in CASES])
def test_a_users_file_at_an_output_name_is_never_replaced(command, name, runner, tmp_path, capsys):
    out = tmp_path / "out"
    mine = _plant(out, name)
    before = mine.read_bytes()
    assert runner(command, out) == 2
    assert _error_line(capsys) == _refused(mine, COMMANDS[command][1])
    assert mine.read_bytes() == before
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == \
        sorted({mine.relative_to(out), *mine.relative_to(out).parents} - {Path(".")})  # nothing else written


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_rerun_replaces_its_own_outputs_but_not_a_later_edit(command, runner, tmp_path, capsys):
    names, who = COMMANDS[command]
    out = tmp_path / "out"
    assert runner(command, out) == 0, capsys.readouterr().err
    assert runner(command, out) == 0, capsys.readouterr().err  # its own outputs: replaced
    record = json.loads((out / MANIFEST).read_text())["files"]
    assert {entry["command"] for entry in record.values()} == {who}
    for name in names:
        if command == "train" and name == "tensorboard" and not (out / name).exists():
            continue  # tensorboard is an optional extra
        assert any(key == name or key.startswith(name + "/") for key in record), name
    capsys.readouterr()
    # The user edits one output afterwards: it is theirs now.
    edited = out / names[0] if "." in names[0] else next(p for p in sorted((out / names[0]).rglob("*"))
                                                          if p.is_file())
    edited.write_bytes(edited.read_bytes() + b" and the user's note")
    before = edited.read_bytes()
    assert runner(command, out) == 2
    assert _error_line(capsys) == _refused(edited, who)
    assert edited.read_bytes() == before


@pytest.mark.parametrize("command", ["analyze", "demo", "synth", "extract"])
def test_outputs_of_a_gsmt_that_kept_no_record_are_refused(command, runner, tmp_path, capsys):
    """An older gsmt wrote no `.gsmt-outputs.json`: its outputs look like a user's, and are kept."""
    out = tmp_path / "out"
    assert runner(command, out) == 0, capsys.readouterr().err
    (out / MANIFEST).unlink()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert runner(command, out) == 2
    assert "exists and was not written by" in _error_line(capsys)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_record_gsmt_did_not_write_is_refused(runner, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for text in ("not json", '{"files": {}}', '{"gsmt_outputs": 1, "files": {"../x": {}}}',
                 '{"gsmt_outputs": 1, "files": {"analysis.json": {"command": "gsmt analyze", "size": 1}}}'):
        (out / MANIFEST).write_text(text)
        assert runner("analyze", out) == 2
        line = _error_line(capsys)
        assert line.startswith(f"gsmt: error: {out / MANIFEST}: is not a gsmt output record (")
        assert line.endswith("): refusing to replace files in this folder; pass another --out")
        assert (out / MANIFEST).read_text() == text and sorted(out.iterdir()) == [out / MANIFEST]


def test_owned_folder_api(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    owned = OwnedFolder(folder, "gsmt x")
    a, link = folder / "a.txt", folder / "link.txt"
    owned.check_can_write([a])  # absent: fine
    a.write_text("ours")
    owned.record([a])
    owned.check_can_write([a])
    with pytest.raises(GsmtError, match="was not written by gsmt y"):
        OwnedFolder(folder, "gsmt y").check_can_write([a])  # another command's output
    link.symlink_to(a)
    assert owned.foreign([a, link]) == [link]  # a link is never gsmt's
    a.write_text("ours")  # rewritten with the same bytes: still gsmt's output
    assert owned.foreign([a]) == []
    a.write_text("OURS")  # same size, other bytes
    assert owned.foreign([a]) == [a]
    a.unlink()
    owned.save()
    assert json.loads((folder / MANIFEST).read_text())["files"] == {}  # gone files leave the record


@pytest.mark.parametrize("command", ["visualize", "predict"])
def test_single_file_outputs_write_only_the_file_named(command, tiny_data, tiny_run, tmp_path, capsys):
    """`visualize --out` and `predict --out` write no folder of their own: the one file the user names
    (made atomically; never an input, row 2). A user's files beside it keep their bytes, and a rerun
    replaces its own output."""
    folder = tmp_path / "mine"
    folder.mkdir()
    beside = {folder / name: b"the user's own bytes" for name in ("notes.txt", "timeline.png", "predictions.json",
                                                                     MANIFEST)}
    for path, data in beside.items():
        path.write_bytes(data)
    out = folder / ("curves.png" if command == "visualize" else "submission.json")
    argv = (["visualize", "--log", str(tiny_run), "--out", str(out)] if command == "visualize" else
            ["predict", "--checkpoint", str(tiny_run), "--data", str(tiny_data), "--out", str(out)])
    for _ in range(2):
        assert main(argv) == 0, capsys.readouterr().err
    assert sorted(folder.iterdir()) == sorted([*beside, out])
    assert all(path.read_bytes() == data for path, data in beside.items())


def _dead_owner(command: str) -> str:
    """The lock file a process killed while running `command` leaves (its owner record)."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return json.dumps({"pid": child.pid, "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def test_a_killed_training_is_resumed_from_the_files_it_could_not_record(tiny_data, tiny_run, tmp_path, capsys):
    """`train` records its files when it ends (one hash per file a run): a SIGKILL leaves them unrecorded,
    with its lock file. The files written since that training started are its own: --resume goes on."""
    import os
    import shutil

    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    (run / MANIFEST).unlink()  # killed before its end: nothing recorded
    argv = ["train", "demo", "--data", str(tiny_data), "--out", str(run), "--resume", "--quiet",
            *[a for o in TINY_RUN for a in ("--set", o)]]
    for owner in (None, "gsmt detect"):  # no lock file (a gsmt that kept no record), another command's lock
        if owner:
            (run / "gsmt.lock").write_text(_dead_owner(owner))
        with single_thread():
            assert main(argv) == 2
        assert "exists and was not written by gsmt train" in _error_line(capsys)
    (run / "gsmt.lock").write_text(_dead_owner("gsmt train"))
    for path in run.rglob("*"):
        os.utime(path)  # written while the killed training ran
    with single_thread():
        assert main(argv) == 0, capsys.readouterr().err
    record = json.loads((run / MANIFEST).read_text())["files"]
    assert {"config.yaml", "log.jsonl", "last.pt", "best.pt"} <= set(record)
    assert not (run / "gsmt.lock").exists()
