"""The `gsmt` command end to end: predict (data folder, bare features, fusion), eval, train output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import gsmt
from conftest import TINY_RUN, single_thread
from gsmt.cli import main
from gsmt.config import config_from_dict
from gsmt.annotations.load import load_annotations
from gsmt.engine.checkpoint import build_model, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

METRIC_KEYS = {"tiou", "mAP", "average_mAP", "per_class_ap", "recall"}


def predict(checkpoint, out: Path, *args: str) -> dict:
    assert main(["predict", "--checkpoint", str(checkpoint), "--out", str(out), *args]) == 0
    return json.loads(out.read_text())


def evaluate(gt: Path, pred: Path, out: Path, *args: str) -> dict:
    assert main(["eval", "--gt", str(gt), "--pred", str(pred), "--json", str(out), *args]) == 0
    return json.loads(out.read_text())


def untrained_checkpoint(run: Path, out: Path) -> Path:
    """The run's own checkpoint with the weights it started from (same seed, no training)."""
    state = load_checkpoint(run / "last.pt")
    meta = state["meta"]
    cfg = config_from_dict(meta["config"])
    torch.manual_seed(cfg.train.seed)
    state["model"] = build_model(cfg, meta["num_classes"], meta["feature_dim"]).state_dict()
    state["ema_model"] = None
    save_checkpoint(out, state)
    return out


@pytest.fixture(scope="module")
def predictions(tiny_run, tiny_data, tmp_path_factory) -> Path:
    """`gsmt predict` on the validation subset (the data's evaluation subset) of the tiny run."""
    out = tmp_path_factory.mktemp("pred") / "preds.json"
    with single_thread():  # module-scoped: the function-scoped `one_thread` is not set up yet
        predict(tiny_run, out, "--data", str(tiny_data))
    return out


def test_trained_model_beats_untrained_by_015_average_map(tiny_run, tiny_data, predictions, tmp_path, capsys):
    gt = tiny_data / "annotations.json"
    trained = evaluate(gt, predictions, tmp_path / "trained.json")
    table = capsys.readouterr().out
    untrained_pred = tmp_path / "untrained_preds.json"
    predict(untrained_checkpoint(tiny_run, tmp_path / "untrained.pt"), untrained_pred, "--data", str(tiny_data))
    untrained = evaluate(gt, untrained_pred, tmp_path / "untrained.json")
    print(f"average mAP: trained {trained['average_mAP']:.4f}, untrained {untrained['average_mAP']:.4f}")
    assert trained["average_mAP"] >= untrained["average_mAP"] + 0.15

    for metrics in (trained, untrained):
        assert set(metrics) == METRIC_KEYS
        assert metrics["tiou"] == pytest.approx(np.linspace(0.5, 0.95, 10).tolist(), abs=0)
        assert len(metrics["mAP"]) == 10
        assert metrics["average_mAP"] == pytest.approx(np.mean(metrics["mAP"]), abs=1e-12)
        assert set(metrics["per_class_ap"]) == {"action_0", "action_1", "action_2"}
        per_class = np.array(list(metrics["per_class_ap"].values()))
        assert np.mean(per_class, axis=0) == pytest.approx(metrics["mAP"], abs=1e-12)
    # The printed table ends its first row with the average in percent.
    assert table.splitlines()[2].split("|")[-1].strip() == f"{100 * trained['average_mAP']:.2f}"


def test_predict_writes_a_submission_for_every_video_of_the_subset(predictions, tiny_data, tmp_path):
    ann = load_annotations(tiny_data / "annotations.json")
    sub = json.loads(predictions.read_text())
    assert sub["version"] == "VERSION 1.3" and sub["external_data"] == {"used": False}
    assert set(sub["results"]) == {v.id for v in ann.subset("validation")}
    durations = {v.id: v.duration for v in ann.videos}
    for vid, dets in sub["results"].items():
        assert all(set(d) == {"label", "score", "segment"} for d in dets)
        assert all(0 <= d["segment"][0] <= d["segment"][1] <= durations[vid] for d in dets)
        assert [d["score"] for d in dets] == sorted((d["score"] for d in dets), reverse=True)
        assert {d["label"] for d in dets} <= set(ann.classes)


def test_predict_other_subset_and_any_batch_size_gives_the_same_file(tiny_run, tiny_data, predictions, tmp_path):
    for batch in ("5",):
        out = tmp_path / f"b{batch}.json"
        predict(tiny_run, out, "--data", str(tiny_data), "--batch-size", batch)
        assert out.read_bytes() == predictions.read_bytes()
    training = predict(tiny_run / "last.pt", tmp_path / "train.json", "--data", str(tiny_data),
                       "--subset", "training")
    ann = load_annotations(tiny_data / "annotations.json")
    assert set(training["results"]) == {v.id for v in ann.subset("training")}


def _feature_folder(tiny_data: Path, ids: list[str], out: Path) -> Path:
    out.mkdir()
    for vid in ids:
        shutil.copy(tiny_data / "features" / f"{vid}.npy", out / f"{vid}.npy")
    return out


def test_features_only_with_durations_matches_the_data_folder(tiny_run, tiny_data, predictions, tmp_path):
    ann = load_annotations(tiny_data / "annotations.json")
    videos = ann.subset("validation")[:3]
    folder = _feature_folder(tiny_data, [v.id for v in videos], tmp_path / "feats")
    csv = tmp_path / "durations.csv"
    csv.write_text("video,duration\n" + "".join(f"{v.id},{v.duration}\n" for v in videos))
    sub = predict(tiny_run, tmp_path / "f.json", "--features", str(folder), "--durations", str(csv))
    expected = json.loads(predictions.read_text())["results"]
    assert sub["results"] == {v.id: expected[v.id] for v in videos}


def test_features_only_with_the_grid(tiny_run, tiny_data, tmp_path):
    ann = load_annotations(tiny_data / "annotations.json")
    video = ann.subset("validation")[0]
    folder = _feature_folder(tiny_data, [video.id], tmp_path / "feats")
    n = len(np.load(folder / f"{video.id}.npy"))
    # The grid recorded in the checkpoint (30 fps, stride 16, window 16 frames) gives the duration.
    duration = ((n - 1) * 16 + 16) / 30.0
    at_30 = predict(tiny_run, tmp_path / "a.json", "--features", str(folder))["results"][video.id]
    assert at_30 and max(d["segment"][1] for d in at_30) <= round(duration, 3)
    # Half the frame rate doubles every time in resize mode; labels and scores stay.
    at_15 = predict(tiny_run, tmp_path / "b.json", "--features", str(folder), "--fps", "15")["results"][video.id]
    assert [(d["label"], d["score"]) for d in at_15] == [(d["label"], d["score"]) for d in at_30]
    np.testing.assert_allclose([d["segment"] for d in at_15], [[2 * s for s in d["segment"]] for d in at_30],
                               atol=1.5e-3)


def test_fusion_multiplies_scores_and_is_recorded(tiny_run, tiny_data, predictions, tmp_path):
    plain = json.loads(predictions.read_text())["results"]
    ids = sorted(plain)
    probs = {"action_0": 0.5, "action_1": 0.25, "action_2": 1.0}
    scores = tmp_path / "classifier.json"
    scores.write_text(json.dumps({vid: probs for vid in ids[1:]}))  # the first video lacks scores
    sub = predict(tiny_run, tmp_path / "fused.json", "--data", str(tiny_data), "--fuse", str(scores))
    assert sub["external_data"]["used"] is True
    assert "classifier.json" in sub["external_data"]["details"]
    assert "multiply" in sub["external_data"]["details"]
    assert "1 video without scores" in sub["external_data"]["details"]
    assert sub["results"][ids[0]] == plain[ids[0]]
    for vid in ids[1:]:
        fused = sorted((d["label"], d["segment"], d["score"]) for d in sub["results"][vid])
        expect = sorted((d["label"], d["segment"], d["score"] * probs[d["label"]]) for d in plain[vid])
        assert [f[:2] for f in fused] == [e[:2] for e in expect]
        np.testing.assert_allclose([f[2] for f in fused], [e[2] for e in expect], atol=1e-6)
        assert [d["score"] for d in sub["results"][vid]] == sorted((d["score"] for d in sub["results"][vid]),
                                                                   reverse=True)


def test_eval_picks_the_subset_of_the_predicted_videos(tiny_data, predictions, tmp_path):
    auto = evaluate(tiny_data / "annotations.json", predictions, tmp_path / "a.json")
    explicit = evaluate(tiny_data / "annotations.json", predictions, tmp_path / "b.json", "--subset", "validation")
    assert auto == explicit
    # Against the training subset every prediction sits on a video without ground truth there.
    other = evaluate(tiny_data / "annotations.json", predictions, tmp_path / "c.json", "--subset", "training")
    assert other["average_mAP"] == 0.0
    thumos = evaluate(tiny_data / "annotations.json", predictions, tmp_path / "d.json", "--tiou", "thumos")
    assert thumos["tiou"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7], abs=1e-15)


def test_errors_exit_2_with_one_line(tiny_run, tiny_data, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(tmp_path / "none"), "--data", str(tiny_data),
                 "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert err == f"gsmt: error: {tmp_path / 'none'}: checkpoint not found\n"
    assert main(["predict", "--checkpoint", str(tiny_run), "--data", str(tiny_data), "--subset", "nope",
                 "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gsmt: error: ") and "no videos in subset 'nope'" in err and err.count("\n") == 1
    assert not (tmp_path / "p.json").exists()
    assert main(["predict", "--checkpoint", str(tiny_run), "--features", str(tiny_data / "features"),
                 "--durations", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "p.json")]) == 2
    assert "cannot read durations" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"gsmt {gsmt.__version__}\n"


def test_train_prints_its_size_epochs_and_summary(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    overrides = [a for o in [*TINY_RUN, "train.epochs=1"] for a in ("--set", o)]
    assert main(["train", "demo", "--data", str(tiny_data), "--out", str(run), *overrides]) == 0
    out = capsys.readouterr().out.splitlines()
    weights = load_checkpoint(run)["model"]
    n_params = sum(v.numel() for k, v in weights.items() if k not in ("feature_mean", "feature_std"))
    # The tiny data's features vary by about their size: model.standardize=auto leaves them as read.
    assert out[0].startswith("decided from the data: model.standardize=none (the training features vary by ")
    assert out[1] == (f"gsmt train: {n_params:,} parameters, 49 training samples (49 videos), 5 videos for model "
                      "selection, mode resize, T=64, K=3, D=24, features as read, device cpu, samples resident in "
                      "cpu memory")
    assert any(line.startswith("epoch 1/1  loss ") for line in out)
    assert out[-1] == f"trained 1 epoch, best epoch 1; run directory: {run}"


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    small = ["train.epochs=1", "data.T=32", "model.hidden_dim=16", "model.num_layers=1", "train.threads=1"]
    assert main(["demo", "--preset", "anet-like", "--videos", "12", "--out", str(out), "--quiet",
                 *[a for o in small for a in ("--set", o)]]) == 0
    printed = capsys.readouterr().out
    ann = load_annotations(out / "data" / "annotations.json")
    evaluated = ann.subset("validation")
    assert f"Results on the 'validation' subset ({len(evaluated)} videos, tIoU anet):" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == METRIC_KEYS and len(metrics["mAP"]) == 10
    assert f"average mAP {metrics['average_mAP']:.4f}" in printed
    assert set(json.loads((out / "predictions.json").read_text())["results"]) == {v.id for v in evaluated}
    for picture in ("timeline.png", "mask.png", "curves.png", "fp_profile.png", "fp_pie.png", "map_bins.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["average_mAP"] == metrics["average_mAP"] and analysis["mAP_tiou"] == metrics["tiou"]
    assert {"config.yaml", "log.jsonl", "last.pt", "best.pt"} <= {p.name for p in (out / "run").iterdir()}
