"""Batched prediction (issue 14, item 1): the model runs on whole batches, and batch sizes 1, 7 and
64 give the same detections on short, long, windowed and padded samples."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
import torch

from gsmt.data.dataset import collate
from gsmt.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gsmt.engine.resolve import make_dataset, open_data
from gsmt.engine.predictor import _forward, _per_sample_convs, predict_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mixed(tiny_run, tiny_data):
    """The tiny run's model on every tiny video, whole (resize) and cut into windows of T=64
    snippets: one padded window for a short video, several for a long one."""
    model, cfg, meta = model_from_checkpoint(load_checkpoint(tiny_run))
    source = open_data(tiny_data, cfg, feature_dim=meta["feature_dim"])
    videos = source.annotations.videos
    sets = {}
    for mode in ("resize", "window"):
        c = copy.deepcopy(cfg)
        c.data.temporal_mode = mode
        sets[mode] = (c, make_dataset(videos, source.features, c, len(meta["classes"]), train=False))
    return model, sets


def test_the_window_set_mixes_short_long_and_padded_videos(mixed):
    _, sets = mixed
    dataset = sets["window"][1]
    windows = Counter(dataset.videos[k].id for k, _ in dataset.index)
    assert min(windows.values()) == 1 and max(windows.values()) >= 3
    padded = sum(not bool(dataset[i]["valid"].all()) for i in range(len(dataset)))
    assert 0 < padded < len(dataset)


@pytest.mark.parametrize("mode", ["resize", "window"])
def test_batch_sizes_1_7_64_give_the_same_detections(mixed, mode):
    model, sets = mixed
    cfg, dataset = sets[mode]
    runs = {b: predict_dataset(model, dataset, cfg.decode, batch_size=b) for b in (1, 7, 64)}
    assert sum(len(d.scores) for d in runs[1].values()) > 0
    for b in (7, 64):
        assert runs[b].keys() == runs[1].keys()
        for vid, dets in runs[1].items():
            other = runs[b][vid]
            assert np.array_equal(other.segments, dets.segments), (b, vid)
            assert np.array_equal(other.labels, dets.labels), (b, vid)
            np.testing.assert_allclose(other.scores, dets.scores, rtol=0, atol=1e-5)
            assert np.array_equal(other.scores, dets.scores), (b, vid)  # in fact bit for bit


def test_a_batch_gives_each_sample_the_bits_of_a_plain_one_sample_pass(mixed):
    model, sets = mixed
    batch = collate([sets["window"][1][i] for i in range(64)])
    with torch.no_grad():
        together = _forward(model, batch["features"], batch["valid"])
        alone = [model(batch["features"][i:i + 1], batch["valid"][i:i + 1]) for i in range(64)]
    assert not any("forward" in vars(m) for m in model.modules())  # the model is left as it was
    for key, value in together.items():
        assert torch.equal(value, torch.cat([a[key] for a in alone])), key


def test_per_sample_convs_are_the_convs_one_sample_at_a_time():
    torch.manual_seed(0)
    x = torch.randn(9, 6, 17)
    for conv in (torch.nn.Conv1d(6, 4, 1), torch.nn.Conv1d(6, 4, 3, padding=1),
                 torch.nn.Conv1d(6, 4, 3, padding=5, dilation=5), torch.nn.Conv1d(6, 1, 2),
                 torch.nn.Conv1d(6, 4, 3, stride=2, padding=1, groups=2)):
        holder = torch.nn.Sequential(conv)
        with torch.no_grad():
            with _per_sample_convs(holder):
                got = holder(x)
            assert torch.equal(got, torch.cat([conv(x[i:i + 1]) for i in range(len(x))]))
        assert "forward" not in vars(conv)  # restored


def test_video_fusion_weighs_each_videos_detections_by_their_own_class_mass(mixed):
    """`decode.video_fusion` is applied last, per video: the same as weighing the plain detections."""
    from gsmt.postprocess.decode import FlatDetections
    from gsmt.postprocess.fusion import weigh_by_video_classes

    model, sets = mixed
    cfg, dataset = sets["window"]
    plain = predict_dataset(model, dataset, cfg.decode)
    fused_cfg = copy.deepcopy(cfg.decode)
    fused_cfg.video_fusion = 0.5
    fused = predict_dataset(model, dataset, fused_cfg)
    expected = weigh_by_video_classes(FlatDetections.from_parts(list(plain.values())), 0.5).split(len(plain))
    assert fused.keys() == plain.keys()
    changed = 0
    for (vid, got), want in zip(fused.items(), expected):
        assert np.array_equal(got.segments, want.segments) and np.array_equal(got.labels, want.labels), vid
        np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-12)
        changed += int(not np.array_equal(got.scores, plain[vid].scores))
    assert changed > 0  # the tiny model's videos hold several classes: some scores move
