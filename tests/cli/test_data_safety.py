"""Nothing a user owns is lost, no result is silently wrong (issue 13, items 1-6 and 14; docs/robustness.md).

Every command runs in-process through `gsmt.cli.main` on the session's tiny synthetic dataset and
its one trained run (conftest.py: `tiny_data`, `tiny_run`), each test on its own copies. Refused
commands end with exit code 2 and exactly one `gsmt: error: ...` line, no traceback, and every
input file is byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_fatal, cli, TINY_RUN, TINY_SYNTH

from gsmt.cli import main
from gsmt.annotations.load import load_annotations
from gsmt.synth.generate import generate
from gsmt.engine import loop, trainer
from gsmt.engine.checkpoint import load_checkpoint
from gsmt.evaluation import evaluate_detection
from gsmt.io.guard import LOCK_NAME, lock_folder
from official_reference import reference_detection

pytestmark = pytest.mark.usefixtures("one_thread")

SETS = [a for o in TINY_RUN for a in ("--set", o)]
# Cheap settings for the few trainings that must run: one epoch, no model-selection pass.
ONE_EPOCH = [*SETS, "--set", "train.epochs=1", "--set", "data.val_fraction=0", "--set", "train.ema=0"]


# ------------------------------------------------------------------ helpers






def hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots` (a file stands for itself), by path."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def train_args(data: Path, run: Path, *extra) -> list:
    return ["train", "demo", "--data", data, "--out", run, "--quiet", *SETS, *extra]


@pytest.fixture
def data(tiny_data, tmp_path) -> Path:
    """A private copy of the tiny dataset."""
    return Path(shutil.copytree(tiny_data, tmp_path / "data"))


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    """A private copy of the trained run directory (15 epochs: a resume has nothing left to train)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


@pytest.fixture(scope="module")
def preds(tiny_data, tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("preds") / "preds.json"
    assert main(["predict", "--checkpoint", str(tiny_run), "--data", str(tiny_data), "--out", str(out)]) == 0
    return out


# ------------------------------------------------------------------ 1. --overwrite never deletes inputs


@pytest.mark.parametrize("where", ["the data folder", "a folder above it", "its features folder"])
def test_overwrite_refuses_a_run_directory_holding_the_data(capsys, data, tmp_path, where):
    out = {"the data folder": data, "a folder above it": tmp_path,
           "its features folder": data / "features"}[where]
    before = hashes(data)
    line = assert_fatal(cli(capsys, *train_args(data, out, "--overwrite")), out, problem="holds an input")
    assert "--data" in line
    assert hashes(data) == before


def test_overwrite_refuses_a_folder_that_is_not_a_run_directory(capsys, data, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "log.jsonl").write_text("not gsmt's\n")  # a run's file name alone does not make a run
    before = hashes(mine, data)
    # The folder's record (gsmt.io.owned) does not say gsmt train wrote log.jsonl: refused, naming it.
    for flag in ("--overwrite", "--resume"):
        assert_fatal(cli(capsys, *train_args(data, mine, flag)), mine / "log.jsonl",
                     problem="exists and was not written by gsmt train")
    (mine / "log.jsonl").unlink()
    before = hashes(mine, data)
    assert_fatal(cli(capsys, *train_args(data, mine, "--overwrite")), mine, problem="not a gsmt run directory")
    assert_fatal(cli(capsys, *train_args(data, mine, "--resume")), mine, problem="not a gsmt run directory")
    assert hashes(mine, data) == before
    assert not (mine / LOCK_NAME).exists()


def test_run_directory_inside_the_data_folder_is_fine(capsys, data):
    before = hashes(data)
    run = data / "runs" / "first"
    code, out, err = cli(capsys, "train", "demo", "--data", data, "--out", run, "--quiet", *ONE_EPOCH)
    assert code == 0, err
    after = hashes(data)
    assert {k: v for k, v in after.items() if k in before} == before  # inputs untouched
    assert {Path(k).name for k in after.keys() - before.keys()} >= {"config.yaml", "log.jsonl", "last.pt"}


def test_overwrite_replaces_only_a_previous_runs_own_files(capsys, data, run):
    (run / "my_notes.txt").write_text("keep me")
    old = load_checkpoint(run / "last.pt")["epoch"]
    before = hashes(data)
    code, out, err = cli(capsys, "train", "demo", "--data", data, "--out", run, "--quiet", *ONE_EPOCH, "--overwrite")
    assert code == 0, err
    assert (old, load_checkpoint(run / "last.pt")["epoch"]) == (15, 1)
    assert not (run / "best.pt").exists() or load_checkpoint(run / "best.pt")["epoch"] == 1
    assert (run / "my_notes.txt").read_text() == "keep me"
    assert hashes(data) == before
    assert not (run / LOCK_NAME).exists()  # released at the end


def test_demo_overwrite_refuses_a_folder_it_did_not_write(capsys, data, tmp_path):
    before = hashes(data)
    assert_fatal(cli(capsys, "demo", "--out", data, "--overwrite", "--videos", "4"), data,
                 problem="not a gsmt demo folder")
    # A folder holding a `data/` that is not a synthetic dataset (here: real-looking annotations).
    other = tmp_path / "other"
    shutil.copytree(data, other / "data")
    ann = json.loads((other / "data" / "annotations.json").read_text())
    del ann["gsmt"]
    (other / "data" / "annotations.json").write_text(json.dumps(ann))
    before_other = hashes(other)
    assert_fatal(cli(capsys, "demo", "--out", other, "--overwrite", "--videos", "4"), other, problem="data/")
    assert hashes(data) == before and hashes(other) == before_other


def test_synth_overwrite_refuses_annotations_it_did_not_write(capsys, data):
    ann = json.loads((data / "annotations.json").read_text())
    del ann["gsmt"]  # the user's own annotations, with their features beside them
    (data / "annotations.json").write_text(json.dumps(ann))
    before = hashes(data)
    assert_fatal(cli(capsys, "synth", "--preset", "anet-like", "--videos", "3", "--out", data, "--overwrite"),
                 data / "annotations.json", problem="exists and was not written by gsmt synth")
    assert hashes(data) == before


def test_synth_overwrite_never_reads_an_annotations_link_to_a_device(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "annotations.json").symlink_to("/dev/zero")  # reading it would never end
    assert_fatal(cli(capsys, "synth", "--preset", "anet-like", "--videos", "3", "--out", out, "--overwrite"),
                 out / "annotations.json", problem="exists and was not written by gsmt synth")
    assert (out / "annotations.json").is_symlink()


def test_synth_refuses_timelines_that_are_its_own_output(capsys, data):
    before = hashes(data)
    assert_fatal(cli(capsys, "synth", "--preset", "anet-like", "--timelines", data / "annotations.json",
                     "--out", data, "--overwrite"), data / "annotations.json", problem="input")
    assert hashes(data) == before


# ------------------------------------------------------------------ 2. an output is never an input


def _hardlink(src: Path, dst: Path) -> Path:
    os.link(src, dst)
    return dst


def _symlink(src: Path, dst: Path) -> Path:
    dst.symlink_to(src.resolve())
    return dst


@pytest.mark.parametrize("case", ["gt", "pred", "gt symlink", "pred hard link"])
def test_eval_json_is_never_an_input(capsys, data, preds, tmp_path, case):
    pred = Path(shutil.copy(preds, tmp_path / "preds.json"))
    gt = data / "annotations.json"
    out = {"gt": gt, "pred": pred, "gt symlink": _symlink(gt, tmp_path / "link.json"),
           "pred hard link": _hardlink(pred, tmp_path / "hard.json")}[case]
    before = hashes(data, pred)
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", pred, "--json", out), out,
                 problem="is also an input of this command")
    assert hashes(data, pred) == before


@pytest.mark.parametrize("case", ["annotations", "checkpoint file", "run's last.pt", "feature file hard link",
                                  "feature folder file", "fuse scores"])
def test_predict_out_is_never_an_input(capsys, data, run, tmp_path, case):
    validation = sorted(v.id for v in load_annotations(data / "annotations.json").subset("validation"))
    feature = data / "features" / f"{validation[0]}.npy"
    fuse = tmp_path / "scores.json"
    fuse.write_text(json.dumps({validation[0]: {"action_0": 0.5}}))
    args = ["--checkpoint", run, "--data", data]
    out = {"annotations": data / "annotations.json", "checkpoint file": run / "best.pt",
           "run's last.pt": run / "last.pt", "feature file hard link": _hardlink(feature, tmp_path / "x.npy"),
           "feature folder file": feature, "fuse scores": fuse}[case]
    if case == "checkpoint file":
        args = ["--checkpoint", run / "best.pt", "--data", data]
    if case == "feature folder file":
        args = ["--checkpoint", run, "--features", data / "features"]
    if case == "fuse scores":
        args += ["--fuse", fuse]
    before = hashes(data, run, fuse)
    assert_fatal(cli(capsys, "predict", *args, "--out", out), out, problem="is also an input of this command")
    assert hashes(data, run, fuse) == before


@pytest.mark.parametrize("case", ["gt", "pred", "log", "features"])
def test_visualize_out_is_never_an_input(capsys, data, run, preds, tmp_path, case):
    pred = Path(shutil.copy(preds, tmp_path / "preds.json"))
    gt = data / "annotations.json"
    video = next(iter(json.loads(pred.read_text())["results"]))
    feature = data / "features" / f"{video}.npy"
    args = {"gt": ["--gt", gt, "--pred", pred, "--video", video, "--out", gt],
            "pred": ["--gt", gt, "--pred", pred, "--video", video, "--out", pred],
            "log": ["--log", run, "--out", run / "log.jsonl"],
            "features": ["--checkpoint", run, "--features", feature, "--out", feature]}[case]
    before = hashes(data, run, pred)
    assert_fatal(cli(capsys, "visualize", *args), args[-1], problem="is also an input of this command")
    assert hashes(data, run, pred) == before


def test_a_new_output_beside_the_inputs_is_fine(capsys, data, preds, tmp_path):
    out = data / "metrics.json"
    code, _, err = cli(capsys, "eval", "--gt", data / "annotations.json", "--pred", preds, "--json", out)
    assert code == 0, err
    code, _, err = cli(capsys, "eval", "--gt", data / "annotations.json", "--pred", preds, "--json", out)
    assert code == 0, err  # replacing one's own previous output is what --json is for


# ------------------------------------------------------------------ 3. one writer per run directory

HOLDER = """
import sys
from gsmt.io.guard import lock_folder
lock = lock_folder(sys.argv[1], "test holder")
print("locked", flush=True)
sys.stdin.read()
"""


def test_second_training_is_refused_while_another_process_writes_the_run(capsys, data, run):
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        before = hashes(run, data)
        line = assert_fatal(cli(capsys, *train_args(data, run, "--resume")), run / LOCK_NAME,
                            f"process {child.pid}", problem="in use")
        assert "test holder" in line
        # --overwrite does not break the lock either
        assert_fatal(cli(capsys, *train_args(data, run, "--overwrite")), run / LOCK_NAME, f"process {child.pid}")
        assert hashes(run, data) == before
    finally:
        child.kill()  # SIGKILL: no clean-up, the OS drops the flock
        child.wait()
    # The owner died without releasing: its lock is stale and taken over.
    code, out, err = cli(capsys, *train_args(data, run, "--resume"))
    assert code == 0, err
    assert f"took over the lock of process {child.pid}" in err
    assert not (run / LOCK_NAME).exists()


def test_a_lock_held_in_this_process_refuses_a_training(capsys, data, run):
    with lock_folder(run, "notebook"):
        assert_fatal(cli(capsys, *train_args(data, run, "--resume")), run / LOCK_NAME, f"process {os.getpid()}")
    code, _, err = cli(capsys, *train_args(data, run, "--resume"))
    assert code == 0, err


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_process_is_taken_over(capsys, data, run):
    pid = _dead_pid()
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": os.uname().nodename, "command": "gsmt train"}))
    code, out, err = cli(capsys, *train_args(data, run, "--resume"))
    assert code == 0, err
    assert f"took over the lock of process {pid}" in err
    assert not (run / LOCK_NAME).exists()


def test_lock_without_flock_falls_back_to_exclusive_create_and_pid(monkeypatch, tmp_path):
    import gsmt.io.guard as gio

    monkeypatch.setattr(gio, "fcntl", None)
    folder = tmp_path / "run"
    lock = gio.lock_folder(folder, "first")
    with pytest.raises(gio.GsmtError, match=f"in use by process {os.getpid()}"):
        gio.lock_folder(folder, "second")
    lock.release()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": os.uname().nodename}))
    again = gio.lock_folder(folder, "third")
    assert again.took_over is not None
    again.release()


def test_under_ddp_only_rank_0_claims_the_run_directory(monkeypatch):
    # `train` claims (checks, locks, clears) the run directory through `_on_main`: the other ranks
    # never touch it and raise rank 0's error when there is one (test_ddp.py runs real processes).
    claimed = []
    assert trainer._on_main(trainer.Dist(rank=1, world_size=1), lambda: claimed.append(1)) is None
    assert trainer._on_main(trainer.Dist(rank=0, world_size=1), lambda: claimed.append(0) or "lock") == "lock"
    assert claimed == [0]


# ------------------------------------------------------------------ 4. [D, T] features


def test_dt_feature_files_give_the_detections_of_their_td_twins(capsys, tiny_data, tiny_run, tmp_path):
    ann = load_annotations(tiny_data / "annotations.json")
    D = TINY_SYNTH["feature_dim"]
    # Videos much longer than D snippets, so that a length read off the wrong axis shows.
    videos = [v for v in ann.subset("validation") if len(np.load(tiny_data / "features" / f"{v.id}.npy")) > 4 * D][:4]
    assert len(videos) == 4
    td, dt = tmp_path / "td", tmp_path / "dt"
    td.mkdir(), dt.mkdir()
    for v in videos:
        x = np.load(tiny_data / "features" / f"{v.id}.npy")
        np.save(td / f"{v.id}.npy", x)
        np.save(dt / f"{v.id}.npy", np.ascontiguousarray(x.T))
    for folder in (td, dt):
        code, _, err = cli(capsys, "predict", "--checkpoint", tiny_run, "--features", folder,
                           "--out", tmp_path / f"{folder.name}.json")
        assert code == 0, err
    from_td = json.loads((tmp_path / "td.json").read_text())
    from_dt = json.loads((tmp_path / "dt.json").read_text())
    assert from_dt == from_td
    # Detections reach past the first D snippets' time (what the wrong axis gave).
    grid = ann.meta["grid"]
    wrong_end = ((D - 1) * grid["feature_stride"] + grid["feature_window"]) / grid["fps"]
    assert max(d["segment"][1] for r in from_td["results"].values() for d in r) > wrong_end


def test_api_resolves_the_layout_with_the_same_rule(tiny_data, tiny_run):
    from gsmt import Localizer
    from gsmt.errors import GsmtError

    loc = Localizer.from_checkpoint(tiny_run)
    video = load_annotations(tiny_data / "annotations.json").subset("validation")[0]
    x = np.load(tiny_data / "features" / f"{video.id}.npy")
    assert loc.predict(x.T, duration=video.duration) == loc.predict(x, duration=video.duration)
    square = np.ones((loc.feature_dim, loc.feature_dim), np.float32)
    with pytest.raises(GsmtError, match="cannot resolve layout"):
        loc.predict(square, duration=10.0)


# ------------------------------------------------------------------ 5. --resume checks before it writes


@pytest.mark.parametrize("change, named", [
    (["--set", "model.hidden_dim=16"], ["model.hidden_dim 32 -> 16"]),
    (["--set", "train.lr=0.01", "--set", "data.T=32"], ["data.T 64 -> 32", "train.lr 0.005 -> 0.01"]),
    ("other features", ["feature dimension 24 -> 12"]),
    ("fewer videos", ["training videos 54 -> 53"]),
])
def test_resume_with_another_config_or_data_changes_nothing(capsys, data, run, tmp_path, change, named):
    extra = change if isinstance(change, list) else []
    if change == "other features":
        data = tmp_path / "d12"
        generate(data, **{**TINY_SYNTH, "feature_dim": 12})
    if change == "fewer videos":
        ann = json.loads((data / "annotations.json").read_text())
        first = next(v for v, e in ann["database"].items() if e["subset"] == "training")
        del ann["database"][first]
        (data / "annotations.json").write_text(json.dumps(ann))
    before = hashes(run, data)
    line = assert_fatal(cli(capsys, *train_args(data, run, "--resume", *extra)), run / "last.pt", *named,
                        problem="--resume asks for another run")
    assert "train.epochs" in line  # the allowlist is named
    assert hashes(run, data) == before


def test_resume_allows_more_epochs_and_other_run_settings(capsys, data, run):
    before = hashes(data)
    code, out, err = cli(capsys, *train_args(data, run, "--resume", "--set", "train.epochs=16",
                                            "--set", "train.num_workers=0", "--set", "decode.batch_size=4",
                                            "--set", "train.max_nonfinite_steps=5"))
    assert code == 0, err
    assert "resumed from epoch 15" in out and "epoch 16/16" in out
    assert load_checkpoint(run / "last.pt")["epoch"] == 16
    assert "epochs: 16" in (run / "config.yaml").read_text()
    assert hashes(data) == before


def test_resume_of_a_run_saved_before_newer_config_keys(capsys, data, run):
    # A checkpoint written by an older gsmt lacks keys added since; they compare as their defaults.
    from gsmt.engine.checkpoint import save_checkpoint
    from gsmt.engine.rundir import run_record

    state = load_checkpoint(run / "last.pt")
    del state["meta"]["config"]["model"]["conv_stem"], state["meta"]["config"]["train"]["resident"]
    save_checkpoint(run / "last.pt", state)
    run_record(run).record([run / "last.pt"])  # as the older run recorded it (an unrecorded one is refused)
    code, out, err = cli(capsys, *train_args(data, run, "--resume", "--set", "train.epochs=16",
                                            "--set", "train.resident=never"))
    assert code == 0, err
    assert "resumed from epoch 15" in out
    # A missing key whose request differs from the default is still a different run.
    state = load_checkpoint(run / "last.pt")
    del state["meta"]["config"]["model"]["conv_stem"]
    save_checkpoint(run / "last.pt", state)
    run_record(run).record([run / "last.pt"])
    before = hashes(run, data)
    assert_fatal(cli(capsys, *train_args(data, run, "--resume", "--set", "train.epochs=16",
                                         "--set", "model.conv_stem=1")),
                 run / "last.pt", problem="model.conv_stem 0 -> 1")
    assert hashes(run, data) == before


def test_resume_before_the_first_checkpoint_compares_config_yaml(capsys, data, run):
    for name in ("last.pt", "best.pt"):
        (run / name).unlink()
    before = hashes(run, data)
    assert_fatal(cli(capsys, *train_args(data, run, "--resume", "--set", "model.num_layers=2")),
                 run / "config.yaml", problem="model.num_layers 1 -> 2")
    assert hashes(run, data) == before


# ------------------------------------------------------------------ 6. divergence


def test_diverging_training_stops_with_an_error_and_saves_no_nan_model(capsys, data, tmp_path):
    run = tmp_path / "run"
    line = assert_fatal(cli(capsys, *train_args(data, run, "--set", "train.lr=1e12", "--set", "train.epochs=3",
                                                "--set", "data.val_fraction=0")), run, problem="training diverged")
    assert "lower train.lr" in line.lower() and "no checkpoint was saved" in line
    assert not (run / "last.pt").exists() and not (run / "best.pt").exists()
    # Nothing was saved, so nothing of the run stays (issue 33, row h4): its config.yaml would refuse
    # the rerun with a lower train.lr, or bind it on --resume; the error line says what happened.
    assert not run.exists() or sorted(p.name for p in run.iterdir()) == []
    code, _, err = cli(capsys, *train_args(data, run, "--set", "train.epochs=1", "--set", "data.val_fraction=0"))
    assert code == 0, err


def test_nan_after_good_epochs_keeps_the_last_finite_checkpoint(capsys, monkeypatch, data, tmp_path):
    """The loss turns NaN in epoch 3: the run stops after `train.max_nonfinite_steps` skipped steps,
    last.pt and best.pt stay those of epoch 2, with finite weights that predict."""
    real, calls = loop.gsmt_loss, [0]
    steps_per_epoch = 7  # 49 training videos, batches of 8

    def poisoned(outputs, batch, cfg, **kw):
        loss, logs = real(outputs, batch, cfg, **kw)
        if "normalizers" not in kw:  # a model-selection pass, not a training step
            return loss, logs
        calls[0] += 1
        return (loss * float("nan") if calls[0] > 2 * steps_per_epoch else loss), logs

    monkeypatch.setattr(loop, "gsmt_loss", poisoned)  # the training step's loss
    run = tmp_path / "run"
    line = assert_fatal(cli(capsys, *train_args(data, run, "--set", "train.epochs=4",
                                                "--set", "train.max_nonfinite_steps=3")),
                        run, problem="3 consecutive steps")
    assert "epoch 3" in line and f"{run / 'last.pt'}, epoch 2" in line
    for name in ("last.pt", "best.pt"):
        state = load_checkpoint(run / name)
        assert state["epoch"] <= 2
        for weights in (state["model"], state["ema_model"]):
            assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    monkeypatch.undo()
    code, _, err = cli(capsys, "predict", "--checkpoint", run, "--data", data, "--out", tmp_path / "p.json")
    assert code == 0, err
    assert sum(len(r) for r in json.loads((tmp_path / "p.json").read_text())["results"].values()) > 0


def test_an_epoch_ending_on_a_nan_step_is_not_saved(capsys, monkeypatch, data, tmp_path):
    """Non-finite steps fewer than the limit, but the last one of epoch 2: its weights are not saved;
    a finite epoch 3 saves again and the run ends normally."""
    real, calls = loop.gsmt_loss, [0]

    def poisoned(outputs, batch, cfg, **kw):
        loss, logs = real(outputs, batch, cfg, **kw)
        if "normalizers" not in kw:  # a model-selection pass, not a training step
            return loss, logs
        calls[0] += 1
        return (loss * float("nan") if calls[0] in (13, 14) else loss), logs

    monkeypatch.setattr(loop, "gsmt_loss", poisoned)  # the training step's loss
    run = tmp_path / "run"
    code, out, err = cli(capsys, *train_args(data, run, "--set", "train.epochs=3"))
    assert code == 0, err
    assert "not saved: non-finite loss" in out
    records = [json.loads(s) for s in (run / "log.jsonl").read_text().splitlines() if '"epoch"' in s]
    assert [r.get("nonfinite_steps", 0) for r in records] == [0, 2, 0]
    assert load_checkpoint(run / "last.pt")["epoch"] == 3
    assert load_checkpoint(run / "best.pt")["best"]["epoch"] != 2


# ------------------------------------------------------------------ 14. end < start ground truth


def test_reversed_ground_truth_counts_as_in_the_official_evaluator(capsys, tmp_path):
    database = {"a": {"subset": "test", "duration": 10.0, "annotations": [
        {"label": "run", "segment": [1.0, 3.0]},
        {"label": "run", "segment": [5.0, 4.0]},  # end before start
    ]}}
    results = {"a": [{"label": "run", "score": 0.9, "segment": [1.0, 3.0]}]}
    tiou = np.linspace(0.5, 0.95, 10)
    official, _ = reference_detection(database, results, "test", tiou)
    assert official[:, 0].tolist() == [0.5] * 10  # one of two positives found
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": database}))
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": results}))
    assert evaluate_detection(load_annotations(gt), results, tiou="anet").per_class_ap["run"] == [0.5] * 10

    code, out, err = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--json", tmp_path / "m.json")
    assert code == 0, err
    assert "Traceback" not in out + err
    warning = [s for s in err.splitlines() if s.startswith("gsmt: warning:") and "end < start" in s]
    assert len(warning) == 1 and "1 segment with end < start (kept" in warning[0], err
    assert json.loads((tmp_path / "m.json").read_text())["average_mAP"] == pytest.approx(0.5)


def test_class_with_only_reversed_ground_truth_is_averaged_like_the_official_code(tmp_path):
    database = {
        "a": {"subset": "test", "duration": 10.0, "annotations": [{"label": "run", "segment": [1.0, 3.0]},
                                                                  {"label": "jump", "segment": [7.0, 6.0]}]},
        # A prediction 1 s long against a reversed GT 1 s long: union 0, tIoU 0/0 = NaN, which the
        # official loop lets match.
        "b": {"subset": "test", "duration": 10.0, "annotations": [{"label": "jump", "segment": [4.0, 3.0]}]},
    }
    results = {"a": [{"label": "run", "score": 0.9, "segment": [1.0, 3.0]},
                     {"label": "jump", "score": 0.8, "segment": [6.0, 7.0]}],
               "b": [{"label": "jump", "score": 0.7, "segment": [8.0, 9.0]}]}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": database}))
    tiou = np.linspace(0.5, 0.95, 10)
    official, index = reference_detection(database, results, "test", tiou)
    metrics = evaluate_detection(load_annotations(gt), results, tiou=tiou)
    for label, column in index.items():
        assert metrics.per_class_ap[label] == pytest.approx(official[:, column].tolist())
    assert metrics.mAP == pytest.approx(official.mean(axis=1))
