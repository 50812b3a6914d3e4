import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gsmt.annotations.types import Video
from gsmt.data.dataset import TALDataset, collate
from gsmt.data.features import FeatureStore
from gsmt.data.targets import make_targets
from gsmt.data.grid import Grid, resize_features, resize_spans
from gsmt.errors import GsmtError

# fps 10, stride 5, window 10: snippet i centred at 0.5 + 0.5 i s, spans ±0.25 s.
# A 6 s video holds floor((60 - 10) / 5) + 1 = 11 snippets.
GRID = dict(fps=10.0, feature_stride=5, feature_window=10)
D = 3


def video(vid, duration=6.0, segments=(), labels=(), grid=True, **kw):
    return Video(id=vid, subset="train", duration=duration,
                 segments=np.array(segments, float).reshape(-1, 2), labels=np.array(labels, np.int64),
                 **(GRID if grid else {}), **kw)


def write(root, vid, T, seed=0):
    x = np.random.default_rng(seed).random((T, D)).astype(np.float32)
    np.save(root / f"{vid}.npy", x)
    return x


def test_resize_mode_item(tmp_path):
    x = write(tmp_path, "a", 7)
    v = video("a", duration=10.0, segments=[[2.1, 5.0]], labels=[1])
    ds = TALDataset([v], FeatureStore(tmp_path), 2, mode="resize", T=5)
    assert len(ds) == 1
    item = ds[0]
    assert item["video_id"] == "a" and item["duration"] == 10.0
    assert item["features"].dtype == torch.float32 and item["features"].shape == (D, 5)
    np.testing.assert_allclose(item["features"].numpy(), resize_features(x, 5).T)
    np.testing.assert_allclose(item["t_start"].numpy(), [0, 2, 4, 6, 8])
    np.testing.assert_allclose(item["t_end"].numpy(), [2, 4, 6, 8, 10])
    assert item["t_start"].dtype == torch.float64
    assert item["valid"].dtype == torch.bool and item["valid"].all()
    # centres 1, 3, 5, 7, 9: [2.1, 5] holds 3 and 5
    assert item["cls_target"].tolist() == [2, 1, 1, 2, 2]
    assert item["cls_target"].dtype == torch.int64
    mask = item["mask_target"]
    assert mask.dtype == torch.float32 and mask.shape == (5, 5)
    assert mask[:, 1].tolist() == [0, 1, 1, 0, 0] and not mask[:, 0].any()


def test_resize_mode_reads_nothing_at_construction(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"corrupt")
    ds = TALDataset([video("a"), video("b")], FeatureStore(tmp_path), 2, mode="resize", T=4)
    assert len(ds) == 2
    with pytest.raises(GsmtError, match="corrupt"):
        ds[0]
    with pytest.raises(GsmtError, match="no feature file"):
        ds[1]


def test_window_mode_items(tmp_path):
    x = write(tmp_path, "a", 11)
    v = video("a", segments=[[1.9, 2.1], [3.6, 10.0]], labels=[0, 1])
    ds = TALDataset([v], FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2)
    assert ds.index == [(0, 0), (0, 2), (0, 4), (0, 6), (0, 7)]
    grid = Grid(**GRID)
    for i, (_, start) in enumerate(ds.index):
        item = ds[i]
        np.testing.assert_array_equal(item["features"].numpy(), x[start : start + 4].T)
        t_start, t_end = grid.spans(4, start)
        np.testing.assert_allclose(item["t_start"].numpy(), t_start)
        np.testing.assert_allclose(item["t_end"].numpy(), t_end)
        assert item["valid"].all()
    # window 2 covers snippets 2..5 (centres 1.5, 2.0, 2.5, 3.0): [1.9, 2.1] holds centre 2.0
    assert ds[1]["cls_target"].tolist() == [2, 0, 2, 2]
    # last window, snippets 7..10 (centres 4.0 .. 5.5): [3.6, 10] clipped to the video end 6.0
    assert ds[4]["cls_target"].tolist() == [1, 1, 1, 1]
    assert ds[4]["mask_target"][:, 0].tolist() == [1, 1, 1, 1]


def test_window_instance_cut_by_the_window_edge_is_clipped(tmp_path):
    write(tmp_path, "a", 11)
    # Window 2: snippets 2..5, centres 1.5, 2.0, 2.5, 3.0, span [1.25, 3.25].
    # P = [1.0, 2.6] class 1 (1.6, clipped 1.35); Q = [2.4, 5.0] class 0 (2.6, clipped 0.85).
    # Snippet 2 (centre 2.5) lies in both: clipped, Q is the shorter one.
    v = video("a", segments=[[1.0, 2.6], [2.4, 5.0]], labels=[1, 0])
    ds = TALDataset([v], FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2)
    item = ds[1]
    assert item["cls_target"].tolist() == [1, 1, 0, 0]
    assert item["mask_target"][:, 2].tolist() == [0, 0, 1, 1]
    assert item["mask_target"][:, 0].tolist() == [1, 1, 1, 0]


def test_window_targets_match_make_targets(tmp_path):
    write(tmp_path, "a", 11)
    v = video("a", segments=[[0.0, 1.2], [2.2, 2.3], [4.0, 5.9]], labels=[0, 1, 0],
              ambiguous=np.array([[3.0, 3.6]]))
    ds = TALDataset([v], FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2)
    item = ds[2]  # snippets 4..7, spans [2.25, 4.25]
    ref = make_targets(v.segments, v.labels, item["t_start"].numpy(), item["t_end"].numpy(),
                       np.ones(4, bool), 2, span=(2.25, 4.25), ambiguous=v.ambiguous, inner_edges=(True, True))
    # [2.2, 2.3] (cut by the inner edge at 2.25, no centre anywhere) goes to snippet 4, whose span
    # [2.25, 2.75) holds its midpoint 2.25, as on the full grid; [0, 1.2] lies outside
    assert item["cls_target"].tolist() == ref.cls.tolist() == [1, -1, -1, 0]
    np.testing.assert_array_equal(item["mask_target"].numpy(), ref.mask)


def test_train_keeps_windows_with_instances_and_a_seeded_background_share(tmp_path):
    write(tmp_path, "a", 11)
    write(tmp_path, "b", 11)
    # [1.9, 2.1] holds snippet 3 (centre 2.0): windows 0 (0..3) and 2 (2..5).
    # [4.62, 4.7] holds no centre; its midpoint 4.66 is nearest to snippet 8 (4.5): windows 6, 7.
    videos = [video("a", segments=[[1.9, 2.1]], labels=[0]), video("b", segments=[[4.62, 4.7]], labels=[1])]
    store = FeatureStore(tmp_path)
    kw = dict(mode="window", T=4, window_stride=2, train=True)
    ds = TALDataset(videos, store, 2, **kw)
    assert ds.index == [(0, 0), (0, 2), (1, 6), (1, 7)]
    assert TALDataset(videos, store, 2, mode="window", T=4, window_stride=2).index.__len__() == 10
    assert len(TALDataset(videos, store, 2, **kw, background_window_ratio=1.0)) == 10
    half = TALDataset(videos, store, 2, **kw, background_window_ratio=0.5, seed=3)
    assert len(half) == 4 + 3  # 6 background windows, half of them
    assert set(ds.index) <= set(half.index)
    assert half.index == TALDataset(videos, store, 2, **kw, background_window_ratio=0.5, seed=3).index
    others = {tuple(TALDataset(videos, store, 2, **kw, background_window_ratio=0.5, seed=s).index) for s in range(8)}
    assert len(others) > 1  # the seed picks the background windows


def test_window_mode_trusts_the_file_length(tmp_path):
    short = write(tmp_path, "short", 9)  # the grid predicts 11
    write(tmp_path, "long", 13)
    ds = TALDataset([video("short"), video("long")], FeatureStore(tmp_path), 2, mode="window", T=4,
                    window_stride=2)
    assert ds.index[:5] == [(0, 0), (0, 2), (0, 4), (0, 6), (0, 7)]
    item = ds[3]  # snippets 6..9, the file ends at 8
    assert item["valid"].tolist() == [True, True, True, False]
    np.testing.assert_array_equal(item["features"].numpy()[:, :3], short[6:9].T)
    assert not item["features"][:, 3].any()
    assert item["cls_target"].tolist() == [2, 2, 2, -1]
    assert ds[4]["valid"].tolist() == [True, True, False, False]
    # the longer file: windows as predicted, snippets 11 and 12 never indexed
    assert [s for k, s in ds.index if k == 1] == [0, 2, 4, 6, 7]
    assert ds[9]["valid"].all()


def test_short_video_gives_one_padded_window(tmp_path):
    x = write(tmp_path, "a", 2)
    v = video("a", duration=1.6, segments=[[0.0, 0.3]], labels=[1])  # 2 snippets, centres 0.5, 1.0
    ds = TALDataset([v], FeatureStore(tmp_path), 2, mode="window", T=4, train=True)
    assert ds.index == [(0, 0)]
    item = ds[0]
    assert item["valid"].tolist() == [True, True, False, False]
    np.testing.assert_array_equal(item["features"].numpy()[:, :2], x.T)
    # [0, 0.3] holds no centre: the nearest, snippet 0, takes it
    assert item["cls_target"].tolist() == [1, 2, -1, -1]


def test_skipped_videos_and_faults(tmp_path):
    write(tmp_path, "a", 11)
    np.save(tmp_path / "empty.npy", np.zeros((0, D), np.float32))
    videos = [video("zero", duration=0.0), video("a", segments=[[1.0, 1.0], [2.0, 3.0]], labels=[0, 1]),
              video("empty")]
    ds = TALDataset(videos, FeatureStore(tmp_path), 2, mode="resize", T=4)
    assert [v.id for v in ds.videos] == ["a", "empty"]
    assert ds.faults.counts["videos with zero duration skipped"] == 1
    assert ds.faults.counts["zero-length segments skipped"] == 1
    item = ds[1]
    assert not item["valid"].any() and (item["cls_target"] == -1).all() and not item["mask_target"].any()
    assert item["features"].shape == (D, 4)
    ds[1]
    assert ds.faults.counts["videos shorter than one snippet skipped"] == 1


def test_construction_errors(tmp_path):
    store = FeatureStore(tmp_path)
    with pytest.raises(GsmtError, match="window mode needs fps"):
        TALDataset([video("a", grid=False)], store, 2, mode="window", T=4)
    # a config grid replaces missing per-video ones
    assert len(TALDataset([video("a", grid=False)], store, 2, mode="window", T=4, grid=Grid(**GRID))) == 5
    with pytest.raises(GsmtError, match="label ids"):
        TALDataset([video("a", segments=[[0, 1]], labels=[2])], store, 2, mode="resize", T=4)
    with pytest.raises(GsmtError, match="unknown temporal mode"):
        TALDataset([], store, 2, mode="crop", T=4)


def test_without_targets_and_collate(tmp_path):
    write(tmp_path, "a", 11)
    write(tmp_path, "b", 5)
    videos = [video("a", segments=[[1.0, 2.0]], labels=[0]), video("b", duration=3.0)]
    ds = TALDataset(videos, FeatureStore(tmp_path), 2, mode="resize", T=4, with_targets=False)
    assert "cls_target" not in ds[0] and "mask_target" not in ds[0]
    ds = TALDataset(videos, FeatureStore(tmp_path), 2, mode="resize", T=4)
    batch = collate([ds[0], ds[1]])
    assert batch["video_id"] == ["a", "b"]
    assert batch["features"].shape == (2, D, 4) and batch["mask_target"].shape == (2, 4, 4)
    assert batch["cls_target"].shape == (2, 4) and batch["valid"].shape == (2, 4)
    assert batch["duration"].dtype == torch.float64 and batch["duration"].tolist() == [6.0, 3.0]
    np.testing.assert_allclose(batch["t_end"][1].numpy(), resize_spans(3.0, 4)[1])
    loaded = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate)))
    assert torch.equal(loaded["features"], batch["features"])


def test_window_jitter_moves_training_windows_within_the_video(tmp_path):
    x = write(tmp_path, "a", 11)
    v = video("a", segments=[[1.9, 2.1], [3.6, 10.0]], labels=[0, 1])
    plain = TALDataset([v], FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2, train=True)
    ds = TALDataset([v], FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2, train=True,
                    window_jitter=1.0, seed=3)
    assert ds.index == plain.index and ds.max_shift == 1 and ds.redrawn_each_epoch
    assert not plain.redrawn_each_epoch
    grid = Grid(**GRID)
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        shifts = ds._shifts.copy()
        ds.set_epoch(epoch)  # the same (seed, epoch), the same draw
        np.testing.assert_array_equal(ds._shifts, shifts)
        for i, (_, start) in enumerate(ds.index):
            moved = int(np.clip(start + shifts[i], 0, 7))  # 7: the last window start of 11 snippets
            item = ds[i]
            np.testing.assert_array_equal(item["features"].numpy(), x[moved : moved + 4].T)
            np.testing.assert_allclose(item["t_start"].numpy(), grid.spans(4, moved)[0])
            assert (item["overlap_prev"], item["overlap_next"]) == ds.overlaps(0, moved)
            seen.add(moved - start)
    assert seen == {-1, 0, 1}


def test_overlaps_of_a_window_between_grid_windows(tmp_path):
    write(tmp_path, "a", 11)
    ds = TALDataset([video("a")], FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2)
    assert ds._starts[0].tolist() == [0, 2, 4, 6, 7]
    assert ds.overlaps(0, 2) == (2, 2)  # a grid window: as before
    assert ds.overlaps(0, 3) == (3, 3)  # neighbours start at 2 and 4: 2 + 4 - 3, 3 + 4 - 4
    assert ds.overlaps(0, 0) == (0, 2) and ds.overlaps(0, 7) == (3, 0)


def test_window_jitter_needs_window_mode_and_a_share(tmp_path):
    write(tmp_path, "a", 11)
    with pytest.raises(GsmtError, match="window mode"):
        TALDataset([video("a")], FeatureStore(tmp_path), 2, mode="resize", T=4, train=True, window_jitter=0.5)
    with pytest.raises(GsmtError, match=r"in \[0, 1\]"):
        TALDataset([video("a")], FeatureStore(tmp_path), 2, mode="window", T=4, train=True, window_jitter=2.0)
    # Evaluation windows never move.
    ds = TALDataset([video("a")], FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2, window_jitter=1.0)
    assert ds.max_shift == 0 and not ds.redrawn_each_epoch
