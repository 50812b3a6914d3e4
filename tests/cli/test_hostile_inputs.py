"""Hostile and crafted inputs end in one line naming the right file (issue 13, items 7, 8, 11, 12, 13;
docs/robustness.md).

Each fatal case runs the real command in-process (`gsmt.cli.main`) and asserts exit code 2, exactly
one stderr line `gsmt: error: <file>: ...` (the last line) naming the file at fault, and no
traceback. Nothing here trains except two one-epoch runs on six tiny videos; the checkpoint cases
edit the session's tiny run (conftest.py: `tiny_data`, `tiny_run`).
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import shutil
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import assert_fatal, cli
from gsmt.api import Localizer
from gsmt.annotations.types import Video
from gsmt.data.dataset import LONG_DURATION_FAULT, TALDataset
from gsmt.data.features import FeatureStore
from gsmt.synth.generate import generate
from gsmt.engine import checkpoint as checkpoint_module
from gsmt.errors import GsmtError

pytestmark = pytest.mark.usefixtures("one_thread")

D = 24  # the tiny data's feature dimension
SMALL_TRAIN = ["--set", "train.epochs=1", "--set", "model.hidden_dim=16", "--set", "model.num_layers=1",
               "--set", "data.T=32", "--set", "data.window_stride=16", "--set", "train.batch_size=4", "--set", "data.val_fraction=0",
               "--set", "train.device=cpu", "--quiet"]


# ------------------------------------------------------------------ helpers






def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope="module")
def gt(tiny_data) -> Path:
    return tiny_data / "annotations.json"


@pytest.fixture(scope="module")
def val_id(gt) -> str:
    db = json.loads(gt.read_text())["database"]
    return next(v for v, e in db.items() if e["subset"] == "validation")


@pytest.fixture
def pred(tmp_path, val_id) -> Path:
    return write_json(tmp_path / "pred.json", {"version": "1.3", "results": {
        val_id: [{"label": "action_0", "score": 0.5, "segment": [1.0, 5.0]}]}})


@pytest.fixture
def feature_folder(tmp_path) -> Path:
    folder = tmp_path / "feats"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(folder / f"{name}.npy", rng.normal(size=(40, D)).astype(np.float32))
    return folder


DEEP_JSON = "[" * 100_000 + "]" * 100_000


# ------------------------------------------------------------------ 7. hostile files


@pytest.mark.parametrize("role", ["--gt", "--pred", "--blocked", "--fuse"])
def test_deeply_nested_json_is_one_error(capsys, tmp_path, gt, pred, tiny_run, role):
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP_JSON)
    if role == "--fuse":
        result = cli(capsys, "predict", "--checkpoint", tiny_run, "--data", tmp_path / "unused",
                     "--fuse", deep, "--out", tmp_path / "p.json")
    else:
        args = {"--gt": gt, "--pred": pred, "--blocked": None, **{role: deep}}
        result = cli(capsys, "eval", *[a for k, v in args.items() if v for a in (k, v)], "--subset", "validation")
    assert_fatal(result, deep, problem="nested too deeply")


def _non_utf8(tmp_path: Path, name: str, head: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(head + b"\xff\xfe caf\xe9\n")
    return path


@pytest.mark.parametrize("kind", ["gt json", "gt csv", "pred", "blocked", "fuse", "config yaml", "durations csv"])
def test_non_utf8_bytes_are_one_error(capsys, tmp_path, gt, pred, tiny_data, tiny_run, feature_folder, kind):
    out = tmp_path / "p.json"
    if kind == "gt json":
        bad = _non_utf8(tmp_path, "gt.json", b'{"database": {"v": {"subset": "test", "duration": 5, "x": "')
        result = cli(capsys, "eval", "--gt", bad, "--pred", pred)
    elif kind == "gt csv":
        bad = _non_utf8(tmp_path, "gt.csv", b"video,start,end,label,duration\nv,1,2,")
        result = cli(capsys, "eval", "--gt", bad, "--pred", pred)
    elif kind == "pred":
        bad = _non_utf8(tmp_path, "bad_pred.json", b'{"results": {"')
        result = cli(capsys, "eval", "--gt", gt, "--pred", bad)
    elif kind == "blocked":
        bad = _non_utf8(tmp_path, "blocked.json", b'["')
        result = cli(capsys, "eval", "--gt", gt, "--pred", pred, "--blocked", bad)
    elif kind == "fuse":
        bad = _non_utf8(tmp_path, "fuse.json", b'{"')
        result = cli(capsys, "predict", "--checkpoint", tiny_run, "--data", tiny_data, "--fuse", bad, "--out", out)
    elif kind == "config yaml":
        bad = _non_utf8(tmp_path, "config.yaml", b"name: ")
        result = cli(capsys, "train", bad, "--data", tiny_data, "--out", tmp_path / "run")
    else:
        bad = _non_utf8(tmp_path, "durations.csv", b"video,duration\na,")
        result = cli(capsys, "predict", "--checkpoint", tiny_run, "--features", feature_folder,
                     "--durations", bad, "--out", out)
    assert_fatal(result, bad, problem="not UTF-8")
    assert not out.exists() and not (tmp_path / "run").exists()


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("text", [ALIAS_BOMB, "model: &m {hidden_dim: 16}\ntrain: {<<: *m}\n"])
def test_yaml_aliases_are_refused_before_anything_is_built(capsys, tmp_path, tiny_data, text):
    config = tmp_path / "bomb.yaml"
    config.write_text(text)
    assert_fatal(cli(capsys, "train", config, "--data", tiny_data, "--out", tmp_path / "run"), config,
                 problem="alias")
    assert not (tmp_path / "run").exists()


def test_yaml_alias_in_a_set_value_is_not_expanded(capsys, tmp_path, tiny_data):
    result = cli(capsys, "train", "demo", "--data", tiny_data, "--out", tmp_path / "run", *SMALL_TRAIN,
                 "--set", "train.epochs=[&a [1, 2], *a, *a]")
    # read as the plain string it is (no alias expanded), refused by the config's type
    assert_fatal(result, problem="train.epochs")


def _link_to(target: str, tmp_path: Path, name: str) -> Path:
    link = tmp_path / name
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("role", ["--gt", "--pred", "--blocked", "CONFIG", "--durations", "--fuse",
                                  "--checkpoint", "--log", "feature file", "--data features"])
def test_unbounded_input_such_as_dev_zero_ends_quickly(capsys, tmp_path, gt, pred, tiny_data, tiny_run,
                                                        feature_folder, role):
    zero = _link_to("/dev/zero", tmp_path, "zero.json")
    out = tmp_path / "p.json"
    if role in ("--gt", "--pred", "--blocked"):
        args = {"--gt": gt, "--pred": pred, "--blocked": None, role: zero}
        result = cli(capsys, "eval", *[a for k, v in args.items() if v for a in (k, v)], "--subset", "validation")
    elif role == "CONFIG":
        zero = _link_to("/dev/zero", tmp_path, "zero.yaml")
        result = cli(capsys, "train", zero, "--data", tiny_data, "--out", tmp_path / "run")
    elif role in ("--durations", "--fuse"):
        result = cli(capsys, "predict", "--checkpoint", tiny_run, "--features", feature_folder, role, zero,
                     "--out", out)
    elif role == "--checkpoint":
        result = cli(capsys, "predict", "--checkpoint", zero, "--data", tiny_data, "--out", out)
    elif role == "--log":
        result = cli(capsys, "visualize", "--log", zero, "--out", tmp_path / "c.png")
    elif role == "feature file":
        zero = _link_to("/dev/zero", feature_folder, "c.npy")
        result = cli(capsys, "predict", "--checkpoint", tiny_run, "--features", feature_folder, "--out", out)
    else:  # the data folder's features are "one .h5 file": a device named like one
        data = tmp_path / "data"
        data.mkdir()
        shutil.copy(gt, data / "annotations.json")
        zero = _link_to("/dev/zero", data, "features.h5")
        result = cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run",
                     "--set", "data.features=features.h5", *SMALL_TRAIN)
    line = assert_fatal(result, zero)
    assert "device" in line or "not a regular file" in line, line


def test_an_endless_pipe_is_read_only_up_to_the_cap(capsys, monkeypatch, tmp_path, pred):
    monkeypatch.setenv("GSMT_MAX_INPUT_MB", "1")
    fifo = tmp_path / "gt.json"
    os.mkfifo(fifo)

    def write_forever():
        try:
            with open(fifo, "wb") as fh:
                while True:
                    fh.write(b" " * 65536)
        except OSError:  # the reader closed the pipe: what this test waits for
            pass

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    assert_fatal(cli(capsys, "eval", "--gt", fifo, "--pred", pred), fifo, problem="larger than 1 MB")
    writer.join(timeout=10)
    assert not writer.is_alive()


def test_a_gzip_bomb_is_refused_at_the_cap(capsys, monkeypatch, tmp_path, pred):
    monkeypatch.setenv("GSMT_MAX_INPUT_MB", "1")
    bomb = tmp_path / "gt.json.gz"
    bomb.write_bytes(gzip.compress(b" " * (8 << 20)))
    assert_fatal(cli(capsys, "eval", "--gt", bomb, "--pred", pred), bomb, problem="decompressed larger than 1 MB")


def _h5_with(tmp_path: Path, gt: Path, tiny_data: Path, kind: str) -> Path:
    """A data folder whose features.h5 holds every video as a link (or external data) to real features."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(gt, data / "annotations.json")
    arrays = {p.stem: np.load(p) for p in sorted((tiny_data / "features").glob("*.npy"))}
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        for vid, x in arrays.items():
            f[vid] = x
    with h5py.File(data / "features.h5", "w") as f:
        store = f.create_group("store")
        for vid, x in arrays.items():
            if kind == "soft link":
                store[vid] = x
                f[vid] = h5py.SoftLink(f"/store/{vid}")
            elif kind == "external link":
                f[vid] = h5py.ExternalLink(str(other), f"/{vid}")
            else:  # external storage: the dataset's bytes live in another file
                raw = tmp_path / f"{vid}.raw"
                raw.write_bytes(np.ascontiguousarray(x, np.float32).tobytes())
                f.create_dataset(vid, shape=x.shape, dtype=np.float32, external=[(str(raw), 0, x.nbytes)])
    return data


@pytest.mark.parametrize("kind", ["soft link", "external link", "external storage"])
def test_h5_entries_that_are_links_are_refused(capsys, tmp_path, gt, tiny_data, kind):
    data = _h5_with(tmp_path, gt, tiny_data, kind)
    result = cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run",
                 "--set", "data.features=features.h5", *SMALL_TRAIN)
    assert_fatal(result, data / "features.h5", problem="refused")
    assert not (tmp_path / "run" / "last.pt").exists()


def _gt_with(tmp_path: Path, **entry) -> Path:
    video = {"subset": "validation", "duration": 10.0,
             "annotations": [{"label": "a", "segment": [1.0, 2.0]}], **entry}
    return write_json(tmp_path / "gt.json", {"database": {"v1": video}})


@pytest.mark.parametrize("entry, problem", [
    ({"duration": 1e308}, "no valid duration"),
    ({"duration": float("nan")}, "no valid duration"),
    ({"duration": -5}, "no valid duration"),
    ({"duration": float("inf")}, "no valid duration"),
    ({"duration": True}, "no valid duration"),
    ({"fps": 1e308}, "fps"),
    ({"fps": -30}, "fps"),
    ({"feature_stride": 1e400}, "feature_stride"),  # JSON 1e400 is inf: round() used to overflow
    ({"feature_window": float("nan")}, "feature_window"),
])
def test_absurd_numbers_in_annotations_are_refused_where_read(capsys, tmp_path, entry, problem):
    gt = _gt_with(tmp_path, **entry)
    pred = write_json(tmp_path / "pred.json", {"results": {"v1": []}})
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", pred), gt, "v1", problem=problem)


@pytest.mark.parametrize("value", ["1e308", "nan", "-3", "0", "inf", "abc", ""])
def test_absurd_durations_csv_values_are_refused(capsys, tmp_path, tiny_run, feature_folder, value):
    durations = tmp_path / "durations.csv"
    durations.write_text(f"video,duration\na,{value}\nb,12.5\n")
    result = cli(capsys, "predict", "--checkpoint", tiny_run, "--features", feature_folder,
                 "--durations", durations, "--out", tmp_path / "p.json")
    assert_fatal(result, durations, "'a'", problem="duration must be a finite number of seconds")


def test_segments_with_absurd_times_are_counted_not_fatal(capsys, tmp_path):
    gt = write_json(tmp_path / "gt.json", {"database": {"v1": {"subset": "validation", "duration": 10.0,
        "annotations": [{"label": "a", "segment": [1.0, 2.0]}, {"label": "a", "segment": [-1e308, 1e308]}]}}})
    pred = write_json(tmp_path / "pred.json", {"results": {"v1": [
        {"label": "a", "score": 0.9, "segment": [1.0, 2.0]}]}})
    code, out, err = cli(capsys, "eval", "--gt", gt, "--pred", pred)
    assert code == 0, err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("gsmt: warning:")]
    assert len(warnings) == 1 and "1 segment with a time beyond 1e+06 s (dropped)" in warnings[0], err


# ------------------------------------------------------------------ 8. crafted checkpoints


def _set(path: list, value):
    def change(state):
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop(path: list):
    def change(state):
        node = state
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def _nan_weight(state):
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    state["ema_model"] = None


def _both_T(value):
    def change(state):
        state["meta"]["T"] = value
        state["meta"]["config"]["data"]["T"] = value
    return change


CRAFTED = {
    "meta missing": (_drop(["meta"]), "not a gsmt checkpoint"),
    "meta not an object": (_set(["meta"], ["gsmt-checkpoint-1"]), "not a gsmt checkpoint"),
    "config missing": (_drop(["meta", "config"]), "'meta.config' is missing"),
    "classes missing": (_drop(["meta", "classes"]), "'meta.classes' is missing"),
    "model missing": (_drop(["model"]), "'model' (the weights) is missing"),
    "classes a string": (_set(["meta", "classes"], "abc"), "meta.classes"),
    "classes and num_classes disagree": (_set(["meta", "num_classes"], 5), "meta.classes"),
    "num_classes a string": (_set(["meta", "num_classes"], "3"), "meta.num_classes"),
    "feature_dim negative": (_set(["meta", "feature_dim"], -24), "meta.feature_dim"),
    "feature_dim absurd": (_set(["meta", "feature_dim"], 10**9), "meta.feature_dim"),
    "T absurd": (_both_T(10**6), "meta.T"),
    "T disagrees with config": (_set(["meta", "T"], 32), "meta.T"),
    "temporal_mode unknown": (_set(["meta", "temporal_mode"], "sideways"), "meta.temporal_mode"),
    "grid not an object": (_set(["meta", "grid"], [30, 16, 16]), "meta.grid"),
    "grid fps negative": (_set(["meta", "grid", "fps"], -30.0), "meta.grid.fps"),
    "grid stride fractional": (_set(["meta", "grid", "feature_stride"], 2.5), "meta.grid.feature_stride"),
    "decode not an object": (_set(["meta", "decode"], "fast"), "meta.decode"),
    "config not an object": (_set(["meta", "config"], [1, 2]), "meta.config"),
    "hidden_dim 10^7": (_set(["meta", "config", "model", "hidden_dim"], 10**7), "model.hidden_dim = 10,000,000"),
    "num_layers 10^6": (_set(["meta", "config", "model", "num_layers"], 10**6), "model.num_layers"),
    "n_heads 10^5": (_set(["meta", "config", "model", "n_heads"], 10**5), "model.n_heads"),
    "hidden_dim a string": (_set(["meta", "config", "model", "hidden_dim"], "big"), "model.hidden_dim"),
    "weights not a dict": (_set(["model"], "weights"), "'model'"),
    "weights hold a non-tensor": (_set(["model", "proj.weight"], [1.0, 2.0]), "not a named tensor"),
    "weights hold NaN": (_nan_weight, "NaN/Inf"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_checkpoint_is_refused_before_building_a_model(capsys, monkeypatch, tmp_path, tiny_run,
                                                                tiny_data, case):
    change, problem = CRAFTED[case]
    state = copy.deepcopy(torch.load(tiny_run / "last.pt", map_location="cpu", weights_only=True))
    change(state)
    crafted = tmp_path / "crafted.pt"
    torch.save(state, crafted)

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built from a checkpoint that should have been refused")

    monkeypatch.setattr(checkpoint_module, "build_model", no_build)
    out = tmp_path / "p.json"
    assert_fatal(cli(capsys, "predict", "--checkpoint", crafted, "--data", tiny_data, "--out", out),
                 crafted, problem=problem)
    assert not out.exists()
    with pytest.raises(GsmtError, match="crafted.pt"):
        Localizer.from_checkpoint(crafted)


def test_weights_of_another_shape_are_compared_on_the_meta_device(capsys, tmp_path, tiny_run, tiny_data):
    state = torch.load(tiny_run / "last.pt", map_location="cpu", weights_only=True)
    state["meta"]["config"]["model"]["hidden_dim"] = 4096  # 2,000x the parameters of the weights
    crafted = tmp_path / "crafted.pt"
    torch.save(state, crafted)
    line = assert_fatal(cli(capsys, "predict", "--checkpoint", crafted, "--data", tiny_data,
                            "--out", tmp_path / "p.json"), crafted, problem="weights do not fit")
    assert "4096" in line


def test_resume_from_a_crafted_training_state_is_one_error(capsys, tmp_path, tiny_run, tiny_data):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    state["rng"] = "not a generator state"
    torch.save(state, run / "last.pt")
    from conftest import TINY_RUN

    from gsmt.engine.rundir import run_record

    run_record(run).record([run / "last.pt"])  # a crafted record too: the state is still checked

    result = cli(capsys, "train", "demo", "--data", tiny_data, "--out", run, "--resume", "--quiet",
                 *[a for o in TINY_RUN for a in ("--set", o)], "--set", "train.epochs=16")
    assert_fatal(result, run / "last.pt", problem="rng")


# ------------------------------------------------------------------ 11. the error names the file at fault


def test_bad_gsmt_tiou_field_names_the_annotation_file(capsys, tmp_path, gt, pred):
    doc = json.loads(gt.read_text())
    doc["gsmt"]["tiou"] = "nope"
    bad = write_json(tmp_path / "gt.json", doc)
    line = assert_fatal(cli(capsys, "eval", "--gt", bad, "--pred", pred), bad, problem="gsmt.tiou")
    assert "--tiou" not in line and str(pred) not in line


@pytest.mark.parametrize("field, value", [("temporal_mode", "sideways"), ("grid", [30, 16, 16]),
                                          ("train_subset", 7), ("tiou", {"a": 1})])
def test_bad_gsmt_meta_fields_name_the_annotation_file(capsys, tmp_path, tiny_data, field, value):
    data = tmp_path / "data"
    data.mkdir()
    (data / "features").symlink_to(tiny_data / "features")
    doc = json.loads((tiny_data / "annotations.json").read_text())
    doc["gsmt"][field] = value
    write_json(data / "annotations.json", doc)
    assert_fatal(cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run", *SMALL_TRAIN),
                 data / "annotations.json", problem=f"gsmt.{field}")


def test_eval_subset_that_the_ground_truth_lacks_names_the_ground_truth(capsys, gt, pred):
    line = assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", pred, "--subset", "nope"), gt,
                        problem="no subset 'nope'")
    assert str(pred) not in line


def test_missing_blocked_file_says_not_found(capsys, tmp_path, gt, pred):
    missing = tmp_path / "blocked.json"
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", pred, "--blocked", missing), missing,
                 problem="not found")


@pytest.mark.parametrize("text", ['["v_abc", "v_def"]', '"v_abc"', '{"v_abc": 1}'])
def test_blocked_json_text_is_refused_not_read_character_by_character(capsys, gt, pred, text):
    assert_fatal(cli(capsys, "eval", "--gt", gt, "--pred", pred, "--blocked", text), text[:20],
                 problem="not JSON text")


def test_blocked_string_in_the_python_api_is_refused(gt, pred):
    from gsmt.annotations.load import load_annotations
    from gsmt.evaluation import evaluate_detection, load_predictions

    with pytest.raises(GsmtError, match="expected a list of video ids"):
        evaluate_detection(load_annotations(gt), load_predictions(pred), subset="validation", blocked="v_abc")


@pytest.mark.parametrize("content", ['{"meta": {"format": "gsmt-checkpoint-1"}}', "model:\n  hidden_dim: 8\n",
                                     ""])
def test_a_json_or_text_file_given_as_checkpoint_is_not_a_checkpoint(capsys, tmp_path, tiny_data, content):
    fake = tmp_path / "model.pt"
    fake.write_text(content)
    line = assert_fatal(cli(capsys, "predict", "--checkpoint", fake, "--data", tiny_data,
                            "--out", tmp_path / "p.json"), fake, problem="not a gsmt checkpoint")
    assert "unsafe" not in line


# ------------------------------------------------------------------ 12. a key listed twice


def _twice(outer: str, key: str, first: str, second: str) -> str:
    return f'{{"{outer}": {{"{key}": {first}, "{key}": {second}}}}}'


VIDEO = '{"subset": "validation", "duration": 10, "annotations": []}'


@pytest.mark.parametrize("role", ["--gt", "--pred", "--fuse", "--gt bsn"])
def test_a_video_listed_twice_is_refused_with_its_id(capsys, tmp_path, gt, pred, tiny_run, tiny_data, role):
    bad = tmp_path / "twice.json"
    out = tmp_path / "p.json"
    if role == "--gt":
        bad.write_text(_twice("database", "v_dup", VIDEO, VIDEO.replace("10", "20")))
        result = cli(capsys, "eval", "--gt", bad, "--pred", pred)
    elif role == "--gt bsn":
        entry = '{"duration_second": 10, "annotations": []}'
        bad.write_text(f'{{"v_dup": {entry}, "v_other": {entry}, "v_dup": {entry}}}')
        result = cli(capsys, "eval", "--gt", bad, "--pred", pred)
    elif role == "--pred":
        det = '[{"label": "action_0", "score": 0.5, "segment": [1, 2]}]'
        bad.write_text(_twice("results", "v_dup", det, "[]"))
        result = cli(capsys, "eval", "--gt", gt, "--pred", bad)
    else:
        bad.write_text('{"v_dup": {"action_0": 0.9}, "v_dup": {"action_1": 0.9}}')
        result = cli(capsys, "predict", "--checkpoint", tiny_run, "--data", tiny_data, "--fuse", bad, "--out", out)
    assert_fatal(result, bad, "'v_dup'", problem="duplicate key")
    assert not out.exists()


def test_a_video_listed_twice_in_the_durations_csv_is_refused(capsys, tmp_path, tiny_run, feature_folder):
    durations = tmp_path / "durations.csv"
    durations.write_text("video,duration\na,10\nb,12\na,11\n")
    assert_fatal(cli(capsys, "predict", "--checkpoint", tiny_run, "--features", feature_folder,
                     "--durations", durations, "--out", tmp_path / "p.json"), durations, "'a'",
                 problem="listed twice")


# ------------------------------------------------------------------ 13. the Python API


@pytest.fixture(scope="module")
def loc(tiny_run) -> Localizer:
    return Localizer.from_checkpoint(tiny_run)


X = np.random.default_rng(0).normal(size=(50, D)).astype(np.float32)


@pytest.mark.parametrize("kwargs, where, problem", [
    (dict(duration=-1.0), "video_0", "duration must be a finite number of seconds"),
    (dict(duration=float("nan")), "video_0", "duration must be a finite number of seconds"),
    (dict(duration=float("inf")), "video_0", "duration must be a finite number of seconds"),
    (dict(duration=1e308), "video_0", "duration must be a finite number of seconds"),
    (dict(duration="ten"), "video_0", "duration must be a finite number of seconds"),
    (dict(duration=0), "video_0", "duration must be a finite number of seconds"),
    (dict(fps=-30.0, feature_stride=16, feature_window=16), "fps", "frames per second"),
    (dict(fps=float("nan"), feature_stride=16, feature_window=16), "fps", "frames per second"),
    (dict(fps=30.0, feature_stride=0, feature_window=16), "feature_stride", "whole number of frames"),
    (dict(fps=30.0, feature_stride=16, feature_window=2.5), "feature_window", "whole number of frames"),
    (dict(duration=10.0, layout="XY"), "layout", "unknown feature layout"),
])
def test_api_refuses_bad_numbers_with_a_gsmt_error(loc, kwargs, where, problem):
    with pytest.raises(GsmtError) as err:
        loc.predict(X, **kwargs)
    assert err.value.where == where and problem in err.value.problem, err.value


@pytest.mark.parametrize("features, problem", [
    (np.full((50, D), "a"), "2-D array of numbers"),
    (np.empty((50, D), dtype=object), "2-D array of numbers"),
    ([[1.0, 2.0], [3.0]], "2-D array of numbers"),
    (np.zeros(D, np.float32), "do not fit"),
    (np.zeros((50, D + 1), np.float32), "do not fit"),
    (np.full((50, D), np.nan, np.float32), "NaN/Inf"),
    (torch.zeros(50, D, requires_grad=True), "2-D array of numbers"),
    (np.zeros((D, D), np.float32), "cannot resolve layout"),
])
def test_api_refuses_bad_arrays_with_a_gsmt_error(loc, features, problem):
    with pytest.raises(GsmtError, match=problem) as err:
        loc.predict(features, duration=10.0)
    assert err.value.where == "video_0"


def test_api_durations_must_match_the_videos(loc):
    with pytest.raises(GsmtError, match="2 durations for 1 video$"):
        loc.predict_many([X], durations=[10.0, 20.0])
    with pytest.raises(GsmtError, match="a list of videos"):
        loc.predict_many(X, durations=[10.0])


# ------------------------------------------------------------------ the layout is a property of the dataset


def test_square_files_take_the_layout_of_the_dataset(tmp_path):
    rng = np.random.default_rng(0)
    a, b, sq = (rng.normal(size=s).astype(np.float32) for s in ((40, 8), (30, 8), (8, 8)))
    # Without a known D (training) an unequal file is [T, D] by the module's rule 3; with the
    # model's D (prediction) it is whichever axis has D.
    for layout, store_as, feature_dim in (("TD", lambda x: x, None), ("TD", lambda x: x, 8),
                                          ("DT", lambda x: x.T, 8)):
        folder = tmp_path / f"{layout}{feature_dim}"
        folder.mkdir()
        np.save(folder / "a_square.npy", store_as(sq))  # first in name order: loaded first
        np.save(folder / "b.npy", store_as(a))
        np.save(folder / "c.npy", store_as(b))
        store = FeatureStore(folder, feature_dim=feature_dim)
        np.testing.assert_array_equal(store.load("a_square"), sq)
        np.testing.assert_array_equal(store.load("b"), a)
        assert store.num_snippets("c") == 30 and store.num_snippets("a_square") == 8
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["a_square"], f["b"] = sq.T, a.T
    np.testing.assert_array_equal(FeatureStore(tmp_path / "f.h5", feature_dim=8).load("a_square"), sq)


def test_a_dataset_of_square_files_only_needs_the_layout(capsys, tmp_path, tiny_run):
    folder = tmp_path / "feats"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((D, D), np.float32))
    np.save(folder / "b.npy", np.ones((D, D), np.float32))
    assert_fatal(cli(capsys, "predict", "--checkpoint", tiny_run, "--features", folder, "--out", tmp_path / "p.json"),
                 folder / "a.npy", problem="data.feature_layout")
    np.save(folder / "c.npy", np.ones((40, D), np.float32))  # one file with unequal axes decides
    code, out, err = cli(capsys, "predict", "--checkpoint", tiny_run, "--features", folder,
                         "--out", tmp_path / "p.json")
    assert code == 0, err
    assert set(json.loads((tmp_path / "p.json").read_text())["results"]) == {"a", "b", "c"}


def test_api_square_array_takes_the_layout_of_the_other_videos(loc):
    square = np.random.default_rng(1).normal(size=(D, D)).astype(np.float32)
    # durations that fit the grid (30 fps, stride 16: 50 snippets start up to 26.1 s, D = 24 up to 12.3 s)
    dets = loc.predict_many([X.T, square], durations=[27.0, 13.0])  # X.T is [D, T]: the call is DT
    assert dets[1] == loc.predict(square.T, duration=13.0, layout="TD")


def _window_data(tmp_path: Path) -> tuple[Path, str, str]:
    """Six thumos-like videos (window mode, D = 8, layout not declared): a training video as long as
    D snippets (a square file) and another annotated 100x longer than its features."""
    data = tmp_path / "data"
    generate(data, preset="thumos-like", videos=6, feature_dim=8, seed=0)
    doc = json.loads((data / "annotations.json").read_text())
    del doc["gsmt"]["feature_layout"]
    train = sorted(v for v, e in doc["database"].items() if e["subset"] == "validation")
    square, long = train[1], train[2]
    grid = doc["gsmt"]["grid"]
    entry = doc["database"][square]
    entry["duration"] = ((8 - 1) * grid["feature_stride"] + grid["feature_window"]) / grid["fps"]
    entry["annotations"] = [{"label": doc["classes"][0], "segment": [0.5, 1.5]}]
    np.save(data / "features" / f"{square}.npy", np.load(data / "features" / f"{square}.npy")[:8])
    doc["database"][long]["duration"] *= 100
    write_json(data / "annotations.json", doc)
    return data, square, long


def test_long_annotated_duration_is_a_counted_fault_not_a_slowdown(tmp_path):
    data, _, long = _window_data(tmp_path)
    doc = json.loads((data / "annotations.json").read_text())
    entry, grid = doc["database"][long], doc["gsmt"]["grid"]
    from gsmt.data.grid import Grid

    store = FeatureStore(data / "features")
    g = Grid(grid["fps"], grid["feature_stride"], grid["feature_window"])

    def windows(duration):
        video = Video(id=long, subset="validation", duration=duration)
        return TALDataset([video], store, len(doc["classes"]), mode="window", T=32, grid=g, with_targets=False)

    inflated, true = windows(entry["duration"]), windows(entry["duration"] / 100)
    assert len(inflated) == len(true)  # not 100x the windows
    assert inflated.faults.counts[LONG_DURATION_FAULT] == 1 and not true.faults


def test_training_goes_through_square_files_and_reports_long_durations(capsys, tmp_path):
    data, square, _ = _window_data(tmp_path)
    code, out, err = cli(capsys, "train", "demo", "--data", data, "--out", tmp_path / "run", *SMALL_TRAIN)
    assert code == 0, err
    assert "Traceback" not in out + err
    one = LONG_DURATION_FAULT.replace("videos", "video", 1)  # counted once: in the singular
    faults = [line for line in err.splitlines() if one in line]
    assert len(faults) == 1 and f"1 {one}" in faults[0], err
    assert (tmp_path / "run" / "last.pt").is_file()
