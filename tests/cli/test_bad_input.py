"""Bad input through the real `gsmt` command (DESIGN.md section 10).

Fatal cases end with exit code 2 and one stderr line `gsmt: error: <file>: <problem>`, no traceback.
Counted cases print a summary line and the command goes on to the right result. Every command
runs in-process through `gsmt.cli.main` on a tiny synthetic dataset and a one-epoch checkpoint.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import assert_fatal as _assert_fatal, cli
from gsmt.cli import main
from gsmt.synth.generate import generate

D = 8  # feature dimension of the tiny dataset
TRAIN_ARGS = ["--set", "train.epochs=1", "--set", "model.hidden_dim=16", "--set", "model.num_layers=1",
              "--set", "data.T=32", "--set", "data.window_stride=16", "--set", "train.batch_size=4", "--quiet"]


# ------------------------------------------------------------------ helpers


def assert_fatal(result, *names, problem: str = "") -> str:
    """Exit 2 with the one error line as the only stderr line."""
    return _assert_fatal(result, *names, problem=problem, only_line=True)






def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_json(path: Path, obj) -> Path:
    Path(path).write_text(json.dumps(obj))
    return Path(path)


def subset_ids(data: Path, subset: str) -> list[str]:
    db = read_json(data / "annotations.json")["database"]
    return sorted(v for v, e in db.items() if e["subset"] == subset)


def add_video(data: Path, video_id: str, subset: str, duration: float, feats: np.ndarray,
              segments: list[tuple[float, float, str]] = ()) -> None:
    """Add a video with its features to a synthetic data folder."""
    ann = read_json(data / "annotations.json")
    grid = ann["gsmt"]["grid"]
    ann["database"][video_id] = {
        "subset": subset, "duration": duration, **grid,
        "annotations": [{"label": lab, "segment": [s, e]} for s, e, lab in segments]}
    write_json(data / "annotations.json", ann)
    np.save(data / "features" / f"{video_id}.npy", feats)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A clean synthetic data folder: 6 thumos-like videos (3 validation, 3 test), D = 8."""
    out = tmp_path_factory.mktemp("base") / "data"
    generate(out, preset="thumos-like", videos=6, feature_dim=D, seed=0)
    return out


@pytest.fixture
def data(base, tmp_path) -> Path:
    """A private copy of the clean data folder, free to damage."""
    return Path(shutil.copytree(base, tmp_path / "data"))


@pytest.fixture(scope="module")
def trained(base, tmp_path_factory) -> dict:
    """One-epoch training run on a copy of `base` with counted faults in its training subset."""
    root = tmp_path_factory.mktemp("trained")
    faulty = Path(shutil.copytree(base, root / "faulty"))
    ann = read_json(faulty / "annotations.json")
    first = subset_ids(faulty, "validation")[0]
    entry = ann["database"][first]
    label, duration = ann["classes"][0], entry["duration"]
    entry["annotations"] += [
        {"label": label, "segment": [5.0, 4.0]},  # end before start: kept (official), no training target
        {"label": label, "segment": [6.0, 6.0]},  # zero length
        {"label": label, "segment": [duration - 2.0, duration + 3.0]},  # past the end: clipped
    ]
    write_json(faulty / "annotations.json", ann)
    # Shorter than one snippet: its extractor wrote no row. Its instance makes training read it.
    add_video(faulty, "tiny", "validation", 0.3, np.zeros((0, D), np.float32), [(0.05, 0.25, label)])
    run = root / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "demo", "--data", str(faulty), "--out", str(run), *TRAIN_ARGS])
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "run": run, "data": faulty}


@pytest.fixture(scope="module")
def ckpt(trained) -> Path:
    assert trained["code"] == 0, trained["stderr"]
    return trained["run"] / "last.pt"


# ------------------------------------------------------------------ counted, not fatal: train


def test_train_counts_data_faults_and_goes_on(trained):
    assert trained["code"] == 0, trained["stderr"]
    text = trained["stdout"] + trained["stderr"]
    assert "Traceback" not in text
    summary = [line for line in text.splitlines() if "annotations.json:" in line]
    assert len(summary) == 1, text
    line = summary[0]
    assert "1 segment with end < start (kept" in line
    assert "1 zero-length segment (kept)" in line
    assert "1 segment ending after the video's end" in line
    assert "1 video shorter than one snippet skipped" in text
    assert "1 segment with end < start skipped" in text  # by the training targets
    assert (trained["run"] / "last.pt").is_file()
    log = [json.loads(s) for s in (trained["run"] / "log.jsonl").read_text().splitlines()]
    assert np.isfinite([r["loss"] for r in log if "loss" in r]).all()


@pytest.mark.parametrize("workers", [0, 2])
def test_empty_video_read_in_dataloader_workers_is_counted_once(capsys, trained, tmp_path, workers):
    # All training videos in the training set (no model-selection share), read in this process or in
    # worker processes, whose own fault counts never reach the summary.
    data = Path(shutil.copytree(trained["data"], tmp_path / "data"))
    code, out, err = cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run", *TRAIN_ARGS,
                         "--set", "data.val_fraction=0", "--set", f"train.num_workers={workers}")
    assert code == 0, err
    lines = [line for line in (out + err).splitlines() if "shorter than one snippet skipped" in line]
    assert len(lines) == 1 and "1 video shorter than one snippet skipped" in lines[0], out + err


# ------------------------------------------------------------------ fatal: features


def test_missing_feature_files_are_counted_and_named(capsys, ckpt, data):
    test_ids = subset_ids(data, "test")
    for vid in test_ids[:2]:
        (data / "features" / f"{vid}.npy").unlink()
    line = assert_fatal(cli(capsys, "predict", "--checkpoint", ckpt, "--data", data, "--out", data / "p.json"),
                        data, *test_ids[:2], problem=f"2 of {len(test_ids)} videos have no feature file")
    assert test_ids[2] not in line
    assert not (data / "p.json").exists()


def test_missing_feature_files_in_training_are_counted(capsys, data, tmp_path):
    train_ids = subset_ids(data, "validation")
    (data / "features" / f"{train_ids[1]}.npy").unlink()
    assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run", *TRAIN_ARGS),
                 train_ids[1], problem="1 of 3 videos have no feature file")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_npy(capsys, ckpt, data, damage):
    path = data / "features" / f"{subset_ids(data, 'test')[0]}.npy"
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 2], "garbage": os.urandom(300), "empty": b""}[damage])
    assert_fatal(cli(capsys, "predict", "--checkpoint", ckpt, "--data", data, "--out", data / "p.json"),
                 path, problem="cannot read features")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_h5(capsys, data, tmp_path, damage):
    h5 = data / "features.h5"
    with h5py.File(h5, "w") as f:
        for npy in sorted((data / "features").glob("*.npy")):
            f.create_dataset(npy.stem, data=np.load(npy))
    raw = h5.read_bytes()
    h5.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else os.urandom(len(raw)))
    line = assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run",
                            "--set", "data.features=features.h5", *TRAIN_ARGS), h5)
    assert "truncated or corrupt" in line


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(capsys, ckpt, data, bad):
    path = data / "features" / f"{subset_ids(data, 'test')[1]}.npy"
    x = np.load(path)
    x[len(x) // 2, 3] = bad
    np.save(path, x)
    assert_fatal(cli(capsys, "predict", "--checkpoint", ckpt, "--data", data, "--out", data / "p.json"),
                 path, problem="NaN/Inf")


def test_feature_dimension_differs_from_checkpoint(capsys, ckpt, tmp_path):
    other = tmp_path / "d12"
    generate(other, preset="thumos-like", videos=6, feature_dim=12, seed=0)
    line = assert_fatal(cli(capsys, "predict", "--checkpoint", ckpt, "--data", other, "--out", tmp_path / "p.json"),
                        other / "features", problem="feature dimension")
    assert "8" in line and "12" in line


def test_mixed_feature_dimensions_in_one_dataset(capsys, data, tmp_path):
    odd = data / "features" / f"{subset_ids(data, 'validation')[2]}.npy"
    np.save(odd, np.ones((40, D + 4), np.float32))
    line = assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run", *TRAIN_ARGS),
                        data / "features", problem="feature dimension")
    assert "12" in line


def test_square_features_layout_cannot_be_resolved(capsys, ckpt, tmp_path):
    # A square file takes the layout of the dataset's unambiguous files; when every file is square
    # nothing decides it (tests/cli/test_hostile_inputs.py has the mixed case).
    folder = tmp_path / "feats"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((D, D), np.float32))
    np.save(folder / "b.npy", np.ones((D, D), np.float32))
    assert_fatal(cli(capsys, "predict", "--checkpoint", ckpt, "--features", folder, "--out", tmp_path / "p.json"),
                 folder / "a.npy", problem="cannot resolve layout")


# ------------------------------------------------------------------ fatal: annotations


def _pred_file(tmp_path: Path, results: dict | None = None) -> Path:
    return write_json(tmp_path / "pred.json", {"version": "VERSION 1.3", "results": results or {}})


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ('{"database": {}}', "no videos"),
    ("{}", "no videos"),
    ('{"database": {"a": {"subset": "test", "annotations": [{"label": "x", "segment": [1, 2]}]}}}',
     "has no duration"),
])
def test_bad_annotation_file(capsys, tmp_path, content, problem):
    gt = tmp_path / "gt.json"
    gt.write_text(content)
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", _pred_file(tmp_path)), gt, problem=problem)


def test_bad_annotation_file_in_a_data_folder(capsys, data, tmp_path):
    (data / "annotations.json").write_text('{"database": ')
    assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run", *TRAIN_ARGS),
                 data / "annotations.json", problem="not valid JSON")


def test_bad_prediction_file(capsys, base, tmp_path):
    pred = tmp_path / "pred.json"
    pred.write_text("[1, 2")
    assert_fatal(cli(capsys, "eval", "--gt", base / "annotations.json", "--pred", pred), pred,
                 problem="not valid JSON")


# ------------------------------------------------------------------ fatal: checkpoints and configs


def test_checkpoint_of_another_model_configuration(capsys, ckpt, data, tmp_path):
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state["meta"]["config"]["model"]["hidden_dim"] = 32
    other = tmp_path / "other.pt"
    torch.save(state, other)
    assert_fatal(cli(capsys, "predict", "--checkpoint", other, "--data", data, "--out", tmp_path / "p.json"),
                 other, problem="do not fit")


@pytest.mark.parametrize("kind", ["text", "foreign torch file", "truncated", "folder without one"])
def test_not_a_checkpoint(capsys, ckpt, data, tmp_path, kind):
    path = tmp_path / "x.pt"
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "foreign torch file":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "truncated":
        raw = ckpt.read_bytes()
        path.write_bytes(raw[: len(raw) // 3])
    else:
        path = tmp_path / "empty_run"
        path.mkdir()
    assert_fatal(cli(capsys, "predict", "--checkpoint", path, "--data", data, "--out", tmp_path / "p.json"),
                 path, problem="checkpoint")


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _evil_checkpoint(path: Path, marker: Path, container: str) -> Path:
    state = {"meta": {"format": "gsmt-checkpoint-1"}, "x": _Payload(marker)}
    if container == "raw pickle":
        path.write_bytes(pickle.dumps(state, protocol=4))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("container", ["raw pickle", "torch zip"])
def test_checkpoint_with_a_pickle_payload_is_refused(capsys, recwarn, data, tmp_path, container):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker, container)
    assert not marker.exists()
    assert_fatal(cli(capsys, "predict", "--checkpoint", evil, "--data", data, "--out", tmp_path / "p.json"),
                 evil, problem="refused")
    assert not marker.exists()
    assert [str(w.message) for w in recwarn] == []  # a Python warning would print more lines


def test_feature_file_with_a_pickle_payload_is_refused(capsys, ckpt, tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "feats"
    folder.mkdir()
    torch.save({"feats": torch.zeros(40, D), "x": _Payload(marker)}, folder / "a.pt")
    assert_fatal(cli(capsys, "predict", "--checkpoint", ckpt, "--features", folder, "--out", tmp_path / "p.json"),
                 folder / "a.pt", problem="refused")
    assert not marker.exists()


def test_unknown_config_key(capsys, data, tmp_path):
    assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run",
                     "--set", "train.epochz=3", *TRAIN_ARGS), "demo.yaml", problem="unknown config key 'train.epochz'")
    assert not (tmp_path / "run").exists()


def test_unknown_decode_key_in_predict(capsys, ckpt, data, tmp_path):
    assert_fatal(cli(capsys, "predict", "--checkpoint", ckpt, "--data", data, "--out", tmp_path / "p.json",
                     "--set", "decode.sigmaa=0.3"), "--set", problem="unknown config key 'decode.sigmaa'")


def test_yaml_config_is_loaded_safely(capsys, data, tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    assert_fatal(cli(capsys, "train", cfg, "--data", data, "--out", tmp_path / "run", *TRAIN_ARGS), cfg)
    assert not marker.exists()


# ------------------------------------------------------------------ fatal: output folders


def test_existing_run_directory_is_refused_without_overwrite(capsys, data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", run, *TRAIN_ARGS), run, problem="--overwrite")
    assert (run / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", [["synth", "--preset", "anet-like", "--videos", "2"], ["demo"]])
def test_existing_output_folder_is_refused_without_overwrite(capsys, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_fatal(cli(capsys, *command, "--out", out), out, problem="--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# ------------------------------------------------------------------ untrusted video ids


@pytest.mark.parametrize("video_id", ["../../x", "/etc/x", "..", "a\\..\\..\\x"])
def test_unsafe_video_id_is_refused_before_any_path_is_opened(capsys, monkeypatch, data, tmp_path, video_id):
    # A readable feature file where `../../x` would lead: reading it would "work".
    np.save(tmp_path / "x.npy", np.ones((40, D), np.float32))
    ann = read_json(data / "annotations.json")
    ann["database"][video_id] = {"subset": "validation", "duration": 20.0, "annotations": []}
    write_json(data / "annotations.json", ann)
    opened: list[str] = []

    def spy(real):
        def wrapper(file, *args, **kwargs):
            opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file))
            return real(file, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(builtins, "open", spy(builtins.open))
    monkeypatch.setattr(io, "open", spy(io.open))
    line = assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run", *TRAIN_ARGS),
                        data / "annotations.json", problem="unsafe video id")
    assert repr(video_id) in line
    escaped = [p for p in opened if "x.npy" in p or p.startswith("/etc") or p.endswith(("x", "x.npy"))]
    assert escaped == []
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("video_id", ["../../x", "/etc/x"])
def test_unsafe_video_id_in_ground_truth_for_eval(capsys, tmp_path, video_id):
    gt = write_json(tmp_path / "gt.json", {"database": {video_id: {"subset": "test", "duration": 10.0,
                                                                     "annotations": []}}})
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", _pred_file(tmp_path)), gt, problem="unsafe video id")


# ------------------------------------------------------------------ counted, not fatal: predict and eval


def test_video_shorter_than_one_snippet_is_skipped_in_predict(capsys, ckpt, data):
    add_video(data, "tiny", "test", 0.3, np.zeros((0, D), np.float32))
    code, out, err = cli(capsys, "predict", "--checkpoint", ckpt, "--data", data, "--out", data / "p.json")
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "1 video shorter than one snippet skipped" in out + err
    results = read_json(data / "p.json")["results"]
    assert results["tiny"] == []
    assert set(results) == set(subset_ids(data, "test"))


def _gt_with_faults(tmp_path: Path) -> Path:
    return write_json(tmp_path / "gt.json", {"database": {
        "a": {"subset": "test", "duration": 10.0, "annotations": [
            {"label": "run", "segment": [1.0, 3.0]},
            {"label": "run", "segment": [5.0, 4.0]},  # end before start: kept, as the official code does
            {"label": "run", "segment": [8.0, 12.0]},  # past the end: kept for evaluation
            {"label": "jump", "segment": [6.0, 6.0]},  # zero length: kept for evaluation
        ]},
        "b": {"subset": "test", "duration": 20.0, "annotations": [{"label": "jump", "segment": [2.0, 9.0]}]},
    }})


def _eval(capsys, tmp_path, gt: Path, results: dict, *extra) -> tuple[int, str, str, dict]:
    pred = _pred_file(tmp_path, results)
    code, out, err = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--json", tmp_path / "m.json", *extra)
    metrics = read_json(tmp_path / "m.json") if code == 0 else {}
    return code, out, err, metrics


PERFECT = {
    "a": [{"label": "run", "score": 0.9, "segment": [1.0, 3.0]},
          {"label": "run", "score": 0.8, "segment": [8.0, 12.0]},
          {"label": "jump", "score": 0.7, "segment": [6.0, 6.0]}],
    "b": [{"label": "jump", "score": 0.6, "segment": [2.0, 9.0]}],
}


def test_eval_counts_ground_truth_faults_and_goes_on(capsys, tmp_path):
    gt = _gt_with_faults(tmp_path)
    code, out, err, metrics = _eval(capsys, tmp_path, gt, PERFECT)
    assert code == 0, err
    assert "Traceback" not in out + err
    summary = [line for line in (out + err).splitlines() if f"{gt}:" in line]
    assert len(summary) == 1, out + err
    assert "1 segment with end < start (kept" in summary[0]
    assert "1 zero-length segment (kept)" in summary[0]
    assert "1 segment ending after the video's end" in summary[0]
    # The reversed segment is a positive no prediction overlaps, as in the official code: run finds
    # 2 of its 3 instances (AP 2/3), jump both of its 2 (AP 1).
    assert metrics["average_mAP"] == pytest.approx((2 / 3 + 1) / 2)


def test_eval_ignores_and_counts_unknown_labels(capsys, tmp_path):
    gt = _gt_with_faults(tmp_path)
    code, _, _, clean = _eval(capsys, tmp_path, gt, {"a": PERFECT["a"][:1]})
    assert code == 0
    unknown = {"a": [{"label": "Unheard", "score": 0.99, "segment": [1.0, 3.0]},
                     {"label": "Unheard", "score": 0.95, "segment": [8.0, 9.0]}, *PERFECT["a"][:1]]}
    code, out, err, metrics = _eval(capsys, tmp_path, gt, unknown)
    assert code == 0, err
    assert "Traceback" not in out + err
    line = [s for s in (out + err).splitlines() if "Unheard" in s]
    assert len(line) == 1 and "2 predictions" in line[0], out + err
    assert metrics["mAP"] == clean["mAP"]
    # run: 1 of 3 instances found first (AP 1/3, the reversed one counts); jump: none (AP 0)
    assert metrics["average_mAP"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("results", [{}, {"a": [], "b": []}])
def test_empty_prediction_file_gives_map_zero(capsys, tmp_path, results):
    gt = _gt_with_faults(tmp_path)
    code, out, err, metrics = _eval(capsys, tmp_path, gt, results)
    assert code == 0, err
    assert "Traceback" not in out + err
    assert metrics["average_mAP"] == 0.0
    assert metrics["mAP"] == [0.0] * len(metrics["tiou"])


# ------------------------------------------------------------------ the installed command


def _command(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gsmt.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=120)


def test_installed_command_prints_one_line_and_exits_2(tmp_path):
    gt = tmp_path / "gt.json"
    gt.write_text("{oops")
    proc = _command("eval", "--gt", gt, "--pred", gt)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"gsmt: error: {gt}: not valid JSON")


def test_installed_command_refuses_a_pickle_payload_in_one_line(tmp_path):
    # Outside pytest nothing captures Python warnings: this is what a user's terminal shows.
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker, "raw pickle")
    proc = _command("predict", "--checkpoint", evil, "--features", tmp_path, "--out", tmp_path / "p.json")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"gsmt: error: {evil}: refused: the file holds objects other than "
                                        "tensors and plain data (not a gsmt checkpoint, or unsafe)"]
    assert not marker.exists()
