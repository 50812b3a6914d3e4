"""Training engine and predictor: run directory, checkpoints, schedule, determinism, batching."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_RUN

import gsmt
from gsmt.config import load_config
from gsmt.annotations.types import Video
from gsmt.annotations.load import load_annotations
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint, resolve_checkpoint
from gsmt.engine.resolve import make_dataset, open_data, resolve_config, split_for_selection, subset_videos
from gsmt.engine.predictor import predict_dataset, to_results
from gsmt.engine.loop import lr_factor
from gsmt.engine.rundir import claim_run_dir
from gsmt.engine.trainer import prepare_run_dir, train
from gsmt.errors import GsmtError
from gsmt.engine.predictor import predict_results

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS_PER_EPOCH = 7  # 49 training videos (54 less 5 held out for model selection) in batches of 8


def epoch_records(run: Path) -> list[dict]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "epoch" in r]


def test_run_directory_holds_config_log_and_checkpoints(tiny_run):
    assert {"config.yaml", "log.jsonl", "last.pt", "best.pt"} <= {p.name for p in tiny_run.iterdir()}
    cfg = load_config(tiny_run / "config.yaml")
    # The saved config is the resolved one: overrides applied, `auto` settings taken from the data.
    assert (cfg.data.T, cfg.model.hidden_dim, cfg.train.epochs) == (64, 32, 15)
    assert (cfg.data.temporal_mode, cfg.decode.mode, cfg.decode.tiou) == ("resize", "own+long", "anet")
    assert cfg.decode.mask_score == "iou"
    assert (cfg.data.train_subset, cfg.data.eval_subset) == ("training", "validation")

    records = epoch_records(tiny_run)
    assert [r["epoch"] for r in records] == list(range(1, 16))
    assert [r["step"] for r in records] == [STEPS_PER_EPOCH * e for e in range(1, 16)]
    assert all(r["split"] == "train" and math.isfinite(r["loss"]) for r in records)
    assert all(math.isfinite(r["val_loss"]) and 0.0 <= r["val_mAP"] <= 1.0 for r in records)
    assert records[-1]["loss"] < 0.7 * records[0]["loss"]
    # The schedule's last step lands just short of the cosine's end.
    assert 0.0 <= records[-1]["lr"] < 1e-4


def test_checkpoint_is_self_describing(tiny_run, tiny_data):
    state = load_checkpoint(tiny_run)
    meta = state["meta"]
    ann = load_annotations(tiny_data / "annotations.json")
    assert meta["format"] == "gsmt-checkpoint-1" and meta["version"] == gsmt.__version__
    assert meta["classes"] == ann.classes == ["action_0", "action_1", "action_2"]
    assert (meta["num_classes"], meta["feature_dim"], meta["T"], meta["temporal_mode"]) == (3, 24, 64, "resize")
    assert meta["grid"] == {"fps": 30.0, "feature_stride": 16, "feature_window": 16}
    assert meta["decode"]["mode"] == "own+long" and meta["config"]["train"]["lr"] == 0.005

    last = load_checkpoint(tiny_run / "last.pt")
    assert (last["epoch"], last["step"], len(last["history"])) == (15, 15 * STEPS_PER_EPOCH, 15)
    history = epoch_records(tiny_run)
    assert last["history"] == history
    # best.pt is the epoch of highest mAP on the held-out model-selection videos (last one on ties).
    val_map = [r["val_mAP"] for r in history]
    best_epoch = len(val_map) - int(np.argmax(val_map[::-1]))
    assert state["best"] == last["best"] == {"epoch": best_epoch, "metric": "val_mAP", "value": max(val_map)}
    assert state["epoch"] == best_epoch and state["history"] == history[:best_epoch]

    # Prediction uses the EMA weights when the run kept them.
    model, cfg, _ = model_from_checkpoint(state)
    assert not model.training and cfg.data.T == 64 and cfg.train.ema == 0.9
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state["ema_model"].items())
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in state["model"].items())


def test_checkpoint_argument_takes_a_run_directory_or_a_file(tiny_run, tmp_path):
    assert resolve_checkpoint(tiny_run) == tiny_run / "best.pt"
    only_last = tmp_path / "only_last"
    only_last.mkdir()
    shutil.copy(tiny_run / "last.pt", only_last / "last.pt")
    assert resolve_checkpoint(only_last) == only_last / "last.pt"
    assert resolve_checkpoint(tiny_run / "last.pt") == tiny_run / "last.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(GsmtError, match="no checkpoint in this run directory"):
        resolve_checkpoint(tmp_path / "empty")
    with pytest.raises(GsmtError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "nothing.pt")


def test_run_directory_is_never_overwritten_silently(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(GsmtError, match="not a gsmt run directory"):  # no file of a run at all
        prepare_run_dir(run, resume=False, overwrite=True)
    # A file at a run's name that the folder's record does not say gsmt train wrote: never removed,
    # even one that looks like the run's (gsmt's config header).
    (run / "log.jsonl").write_text("{}\n")
    (run / "config.yaml").write_text("# Resolved gsmt config of this run (...)\nname: demo\n")
    with pytest.raises(GsmtError, match="config.yaml: exists and was not written by gsmt train"):
        prepare_run_dir(run, resume=False, overwrite=True)
    assert (run / "log.jsonl").read_text() == "{}\n"
    for name in ("config.yaml", "log.jsonl", "notes.txt"):
        (run / name).unlink()
    # What a training writes under its claim is recorded when its lock is released.
    lock = claim_run_dir(run, inputs={}, resume=False, overwrite=False)
    (run / "config.yaml").write_text("# Resolved gsmt config of this run (...)\nname: demo\n")
    (run / "log.jsonl").write_text("{}\n")
    lock.release()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(GsmtError, match="--overwrite or --resume"):
        prepare_run_dir(run, resume=False, overwrite=False)
    prepare_run_dir(run, resume=True, overwrite=False)
    assert (run / "log.jsonl").read_text() == "{}\n"
    prepare_run_dir(run, resume=False, overwrite=True)
    assert sorted(p.name for p in run.iterdir() if p.name != ".gsmt-outputs.json") == ["notes.txt"]
    prepare_run_dir(tmp_path / "new" / "run", resume=False, overwrite=False)
    assert (tmp_path / "new" / "run").is_dir()


@pytest.mark.parametrize("schedule, expected", [
    # 3 epochs of 4 steps, 1 warm-up epoch: linear ramp over steps 0..3, then cosine over 8 steps.
    ("cosine", [0.25, 0.5, 0.75, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 8)), 0.5, 0.0]),
    ("constant", [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]),
])
def test_learning_rate_schedule_hand_computed(schedule, expected):
    cfg = load_config("demo", ["train.epochs=3", "train.warmup_epochs=1", f"train.schedule={schedule}"])
    steps = [0, 1, 2, 3, 4, 5, 8, 12]
    assert [lr_factor(cfg, s, 4) for s in steps] == pytest.approx(expected, abs=1e-12)


def test_auto_settings_come_from_the_data(tiny_data):
    cfg = load_config("demo")
    ann = load_annotations(tiny_data / "annotations.json")
    resolved = resolve_config(cfg, ann)
    assert (resolved.data.temporal_mode, resolved.decode.mode, resolved.decode.tiou) == ("resize", "own+long", "anet")
    assert resolved.decode.mask_score == "iou"  # auto: the soft IoU ranks own runs against long spans
    assert (resolved.data.fps, resolved.data.feature_stride, resolved.data.feature_window) == (30.0, 16, 16)
    explicit = resolve_config(load_config("demo", ["data.temporal_mode=window", "decode.mode=short"]), ann)
    assert (explicit.data.temporal_mode, explicit.decode.mode, explicit.decode.mask_score) == ("window", "short", "max")
    chosen = resolve_config(load_config("demo", ["decode.mask_score=max"]), ann)
    assert (chosen.decode.mode, chosen.decode.mask_score) == ("own+long", "max")
    with pytest.raises(GsmtError, match="no videos in subset 'nope'"):
        subset_videos(ann, "nope", "data")


def test_selection_split_is_seeded_and_disjoint():
    videos = [Video(id=f"v{i}", subset="training", duration=10.0) for i in range(20)]
    fit, held = split_for_selection(videos, 0.1, seed=3)
    assert len(held) == 2 and len(fit) == 18
    assert {v.id for v in fit} | {v.id for v in held} == {v.id for v in videos}
    assert [v.id for v in split_for_selection(videos, 0.1, seed=3)[1]] == [v.id for v in held]
    assert [v.id for v in fit] == sorted((v.id for v in fit), key=lambda s: int(s[1:]))  # order kept
    assert split_for_selection(videos, 0.0, seed=3) == (videos, [])
    assert split_for_selection(videos[:1], 0.5, seed=3) == (videos[:1], [])


def _short_run(data: Path, out: Path, seed: int):
    cfg = load_config("demo", [*TINY_RUN, "train.epochs=1", f"train.seed={seed}"])
    return train(cfg, data, out, progress=False)


def test_training_is_seeded_and_deterministic(tiny_data, tmp_path):
    a = _short_run(tiny_data, tmp_path / "a", seed=0)
    b = _short_run(tiny_data, tmp_path / "b", seed=0)
    c = _short_run(tiny_data, tmp_path / "c", seed=1)
    wa, wb, wc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    drop = ("samples_per_s",)
    strip = lambda h: [{k: v for k, v in r.items() if k not in drop} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history) != strip(c.history)
    assert a.num_parameters == sum(p.numel() for p in a.model.parameters())


def test_predictions_do_not_depend_on_batch_size(tiny_run, tiny_data):
    model, cfg, meta = model_from_checkpoint(load_checkpoint(tiny_run))
    source = open_data(tiny_data, cfg, feature_dim=meta["feature_dim"])
    videos = subset_videos(source.annotations, "validation", "data")
    dataset = make_dataset(videos, source.features, cfg, 3, train=False)
    # Exactly the same numbers, not merely the same rounded JSON.
    one, seven = (predict_dataset(model, dataset, cfg.decode, batch_size=b) for b in (1, 7))
    assert one.keys() == seven.keys()
    for vid, dets in one.items():
        assert np.array_equal(seven[vid].segments, dets.segments)
        assert np.array_equal(seven[vid].scores, dets.scores)
        assert np.array_equal(seven[vid].labels, dets.labels)

    results = predict_results(model, cfg, meta["classes"], videos, source.features, device="cpu")
    expected = to_results(one, meta["classes"])
    assert results == {v.id: expected.get(v.id, []) for v in videos}  # every video, even without detections
    assert sum(len(r) for r in results.values()) > 0
    for video in videos:
        dets = results[video.id]
        scores = [d["score"] for d in dets]
        assert scores == sorted(scores, reverse=True)
        segs = np.array([d["segment"] for d in dets]).reshape(-1, 2)
        assert np.all(segs[:, 0] >= 0) and np.all(segs[:, 1] <= video.duration)
        assert np.all(segs[:, 0] <= segs[:, 1])
        assert len(dets) <= cfg.decode.max_keep
