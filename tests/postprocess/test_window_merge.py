"""Candidates cut by an inner window edge are left to the overlapping neighbour window."""

import numpy as np
import torch

from gsmt.config import DecodeConfig
from gsmt.annotations.types import Video
from gsmt.data.dataset import TALDataset
from gsmt.data.features import FeatureStore
from gsmt.data.grid import Grid
from gsmt.engine.predictor import predict_dataset
from gsmt.postprocess import Detections
from gsmt.postprocess.windows import drop_edge_cuts

# A middle window of 8 one-second snippets covering [10, 18) s of a 30 s video, stride 4: the previous
# window ends at 14 s (its snippets 4..7 are this window's 0..3), the next one starts at 14 s.
T_START = 10.0 + np.arange(8)
T_END = T_START + 1.0


def dets(*segments):
    seg = np.array(segments, dtype=np.float64)
    return Detections(seg, np.zeros(len(seg), dtype=np.int64), np.linspace(0.9, 0.5, len(seg)))


def test_middle_window_drops_only_cuts_inside_the_overlaps():
    d = dets([10, 12],   # touches the left edge, ends inside the previous window: dropped
             [10, 16],   # touches the left edge but reaches past the previous window: kept
             [15, 18],   # touches the right edge, starts inside the next window: dropped
             [12, 18],   # touches the right edge, starts before the next window: kept
             [11, 17])   # inside: kept
    out = drop_edge_cuts(d, T_START, T_END, overlap_prev=4, overlap_next=4)
    assert out.segments.tolist() == [[10, 16], [12, 18], [11, 17]]


def test_uneven_overlap_of_the_last_window():
    # The last window is shifted to end at the video's last snippet: it shares 6 snippets (10..16 s)
    # with the previous window, not stride-many.
    d = dets([10, 15.5], [10, 16.5])
    out = drop_edge_cuts(d, T_START, T_END, overlap_prev=6, overlap_next=0)
    assert out.segments.tolist() == [[10, 16.5]]


def test_video_edges_are_not_inner_edges_on_a_grid_that_does_not_start_at_0():
    # One window of a whole video on a real grid (30 fps, stride 8, window 16): the first snippet
    # starts at 0.133 s, the last ends before the duration. Nothing touches an inner edge.
    grid = Grid(30.0, 8, 16)
    t_start, t_end = grid.spans(8)
    assert t_start[0] > 0
    d = dets([t_start[0], t_end[1]], [t_start[5], t_end[7]], [t_start[0], t_end[7]])
    out = drop_edge_cuts(d, t_start, t_end, overlap_prev=0, overlap_next=0)
    assert out.segments.tolist() == d.segments.tolist()


def test_first_and_last_window_keep_their_outer_edges():
    grid = Grid(30.0, 8, 16)
    t_start, t_end = grid.spans(8)
    d = dets([t_start[0], t_end[2]], [t_start[6], t_end[7]])
    # first window of several: only the right edge is inner
    assert drop_edge_cuts(d, t_start, t_end, 0, 4).segments.tolist() == [[t_start[0], t_end[2]]]
    # last window of several: only the left edge is inner
    assert drop_edge_cuts(d, t_start, t_end, 4, 0).segments.tolist() == [[t_start[6], t_end[7]]]


def test_dataset_reports_the_overlaps_of_each_window(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((11, 3), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((2, 3), np.float32))
    grid = dict(fps=10.0, feature_stride=5, feature_window=10)
    videos = [Video(id="a", subset="s", duration=6.0, **grid), Video(id="b", subset="s", duration=1.5, **grid)]
    ds = TALDataset(videos, FeatureStore(tmp_path), 2, mode="window", T=4, window_stride=2, with_targets=False)
    # video a: windows at 0, 2, 4, 6, 7 (the last one shifted); video b: one padded window
    assert [s for _, s in ds.index] == [0, 2, 4, 6, 7, 0]
    assert [(ds[i]["overlap_prev"], ds[i]["overlap_next"]) for i in range(6)] == [
        (0, 2), (2, 2), (2, 2), (2, 3), (3, 0), (0, 0)]


class _EdgeModel(torch.nn.Module):
    """Every valid snippet is class 0 with certainty; every mask column covers all valid snippets."""

    def forward(self, features, valid):
        B, _, T = features.shape
        logits = torch.full((B, 2, T), -20.0)
        logits[:, 0] = 20.0
        masks = torch.where(valid[:, :, None] & valid[:, None, :], 20.0, -20.0)
        return {"cls_logits": logits, "mask_logits": masks}


def test_one_window_video_keeps_its_whole_action(tmp_path):
    # A video of 6 snippets in windows of T = 8 on a grid starting at 0.133 s: one window, both of
    # whose edges are the video's own. The old rule took them for inner edges and dropped it all.
    np.save(tmp_path / "v.npy", np.zeros((6, 3), np.float32))
    v = Video(id="v", subset="s", duration=2.0, fps=30.0, feature_stride=8, feature_window=16)
    ds = TALDataset([v], FeatureStore(tmp_path), 1, mode="window", T=8, window_stride=4, with_targets=False)
    cfg = DecodeConfig(mode="short", topk_classes=1, drop_edge_cuts=True)
    out = predict_dataset(_EdgeModel(), ds, cfg)
    assert len(out["v"]) > 0
    t_start, t_end = Grid(30.0, 8, 16).spans(6)
    assert np.allclose(out["v"].segments[0], [t_start[0], t_end[5]])
