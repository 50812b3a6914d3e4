"""Tests for gsmt.viz: files are valid, non-trivial PNGs; figures carry the right bars, labels and data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from matplotlib.patches import Rectangle

from gsmt.errors import GsmtError
from gsmt.viz.common import DPI, class_colors
from gsmt.viz.curves import curves_figure, plot_curves, read_jsonl
from gsmt.viz.masks import masks_figure, plot_masks
from gsmt.viz.timeline import gt_lanes, plot_timeline, timeline_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = ["BaseballPitch", "CliffDiving", "Diving", "HighJump"]


def assert_png(path: Path, fig_size_in: tuple[float, float] | None = None) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    if fig_size_in is not None:
        w, h = fig_size_in
        assert img.shape[:2] == (round(h * DPI), round(w * DPI))
    # not a blank picture: many distinct colours
    assert len(np.unique(img.reshape(-1, img.shape[2]), axis=0)) > 20
    assert not list(path.parent.glob(".*.tmp")), "temporary file left behind"
    return img


def bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def tick_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def legend_texts(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


# ----------------------------------------------------------------------------- timeline

GT = np.array([[2.0, 6.0], [10.0, 14.0], [10.0, 14.0]])
GT_LABELS = np.array([3, 1, 2])
PRED = np.array([[1.5, 6.5], [9.0, 15.0], [30.0, 35.0], [10.5, 13.0]])
PRED_LABELS = np.array([3, 1, 0, 2])
PRED_SCORES = np.array([0.5, 0.93, 0.07, 0.61])


def timeline(**kw):
    args = dict(duration=40.0, gt_segments=GT, gt_labels=GT_LABELS, pred_segments=PRED,
                pred_labels=PRED_LABELS, pred_scores=PRED_SCORES, classes=CLASSES,
                video_id="video_test_0000004")
    args.update(kw)
    return timeline_figure(**args)


def test_timeline_rows_ticks_and_legend():
    fig = timeline(top=3)
    ax = fig.axes[0]
    assert tick_texts(ax) == ["ground truth", "#1 0.93", "#2 0.61", "#3 0.50"]
    rects = bars(ax)
    assert len(rects) == len(GT) + 3
    # the prediction bars, in rank order, are the top-3 segments by score
    pred_rects = sorted(rects[len(GT):], key=lambda r: r.get_y())
    got = [(r.get_x(), r.get_x() + r.get_width()) for r in pred_rects]
    assert got == [(9.0, 15.0), (10.5, 13.0), (1.5, 6.5)]
    # legend: classes present in GT or shown predictions, by id; class 0 only in the hidden one
    assert legend_texts(fig) == ["CliffDiving", "Diving", "HighJump"]
    assert "video_test_0000004" in ax.get_title()
    assert "top 3 of 4" in ax.get_title()
    assert ax.get_xlabel() == "time (s)"
    assert ax.get_xlim() == (0.0, 40.0)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["CliffDiving 0.93", "Diving 0.61", "HighJump 0.50"]


def test_timeline_colours_follow_class():
    fig = timeline(top=10)
    rects = bars(fig.axes[0])
    gt_rects, pred_rects = rects[: len(GT)], rects[len(GT):]
    assert len(pred_rects) == 4
    by_pos = {(r.get_x(), r.get_width()): r.get_facecolor() for r in pred_rects}
    # HighJump (id 3) GT [2, 6] and HighJump prediction [1.5, 6.5] share a colour
    assert gt_rects[0].get_facecolor() == by_pos[(1.5, 5.0)]
    # the CliffDiving/Diving twins differ in colour and sit in different lanes of the GT row
    assert gt_rects[1].get_facecolor() != gt_rects[2].get_facecolor()
    assert gt_rects[1].get_y() != gt_rects[2].get_y()
    for r in gt_rects:  # all GT lanes stay inside row 0
        assert -0.5 < r.get_y() and r.get_y() + r.get_height() < 0.5


def test_timeline_ties_keep_input_order_and_title_override():
    fig = timeline(pred_scores=np.array([0.5, 0.5, 0.5, 0.5]), top=2, title="custom")
    ax = fig.axes[0]
    assert tick_texts(ax) == ["ground truth", "#1 0.50", "#2 0.50"]
    assert ax.texts[0].get_text() == "HighJump 0.50"  # the first listed prediction ranks first
    assert ax.get_title() == "custom"


@pytest.mark.parametrize("n_gt,n_pred", [(0, 0), (0, 2), (3, 0)])
def test_timeline_empty_inputs(tmp_path, n_gt, n_pred):
    kw = dict(gt_segments=GT[:n_gt], gt_labels=GT_LABELS[:n_gt], pred_segments=PRED[:n_pred],
              pred_labels=PRED_LABELS[:n_pred], pred_scores=PRED_SCORES[:n_pred])
    fig = timeline(**kw)
    ax = fig.axes[0]
    assert len(bars(ax)) == n_gt + n_pred
    assert len(tick_texts(ax)) == 1 + n_pred
    texts = [t.get_text() for t in ax.texts]
    assert ("no ground truth" in texts) == (n_gt == 0)
    assert ("no predictions" in texts) == (n_pred == 0)
    out = plot_timeline(tmp_path / "t.png", duration=40.0, classes=CLASSES, **kw)
    assert out == tmp_path / "t.png"
    img = imread(out)
    assert out.read_bytes()[:8] == PNG_SIGNATURE and img.shape[1] == 10 * DPI


def test_plot_timeline_writes_png(tmp_path):
    out = plot_timeline(tmp_path / "sub" / "timeline.png", duration=40.0, gt_segments=GT,
                            gt_labels=GT_LABELS, pred_segments=PRED, pred_labels=PRED_LABELS,
                            pred_scores=PRED_SCORES, classes=CLASSES, video_id="v1")
    fig = timeline()
    assert_png(out, tuple(fig.get_size_inches()))


def test_timeline_unknown_label_and_bad_shapes():
    fig = timeline(pred_labels=np.array([3, 7, 0, 2]))
    assert "class 7" in legend_texts(fig)
    with pytest.raises(GsmtError, match="pred_scores has 3 entries for 4"):
        timeline(pred_scores=PRED_SCORES[:3])
    with pytest.raises(GsmtError, match=r"gt_segments must have shape \[N, 2\]"):
        timeline(gt_segments=np.zeros((3, 3)))
    with pytest.raises(GsmtError, match="duration"):
        timeline(duration=0.0)


def test_gt_lanes():
    lanes, n = gt_lanes(np.array([[0.0, 3.0], [1.0, 10.0], [5.0, 12.0], [3.0, 4.0]]))
    # [0,3] and [3,4] touch but do not overlap; [5,12] reuses lane 0 once [3,4] ended
    assert lanes.tolist() == [0, 1, 0, 0] and n == 2
    lanes, n = gt_lanes(np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]))
    assert sorted(lanes.tolist()) == [0, 1, 2] and n == 3


def test_class_colors():
    few = class_colors(np.array([3, 1]), 8)
    assert few[3] == class_colors(np.array([3]), 8)[3]  # fixed by id
    assert few[1] != few[3]
    many = class_colors(np.arange(0, 200, 13), 200)  # 16 classes of 200
    assert len(set(many.values())) == 16


# ----------------------------------------------------------------------------- masks


def asymmetric_mask(T: int = 12) -> np.ndarray:
    m = np.zeros((T, T))
    m[2:6, 8] = 1.0  # snippet 8 predicts positions 2..5
    m[9, 1] = 0.5
    return m


def test_masks_image_is_the_input_not_its_transpose():
    pred = asymmetric_mask()
    gt = (pred > 0.7).astype(float)
    fig = masks_figure(pred_mask=pred, gt_mask=gt, title="v1")
    ax_pred, ax_gt = fig.axes[0], fig.axes[1]
    (im_pred,), (im_gt,) = ax_pred.get_images(), ax_gt.get_images()
    np.testing.assert_array_equal(np.ma.getdata(im_pred.get_array()), pred)
    np.testing.assert_array_equal(np.ma.getdata(im_gt.get_array()), gt)
    assert not np.array_equal(pred, pred.T)
    assert im_pred.origin == "lower"
    assert im_pred.get_clim() == (0.0, 1.0) and im_gt.get_clim() == (0.0, 1.0)
    assert ax_pred.get_xlabel() == "source snippet t (column)"
    assert ax_pred.get_ylabel() == "mask position i"
    assert fig._suptitle.get_text() == "v1"
    # a shared colour bar: exactly one extra axes
    assert len(fig.axes) == 3


def test_masks_padding_is_masked(tmp_path):
    T = 12
    valid = np.arange(T) < 9
    pred = asymmetric_mask(T)
    fig = masks_figure(pred_mask=pred, gt_mask=pred, valid=valid)
    arr = fig.axes[0].get_images()[0].get_array()
    hidden = np.ma.getmaskarray(arr)
    assert hidden[:, 9:].all() and hidden[9:, :].all() and not hidden[:9, :9].any()
    out = plot_masks(tmp_path / "m.png", pred_mask=pred, gt_mask=pred, valid=valid,
                         t_start=np.arange(T) * 1.5, t_end=np.arange(T) * 1.5 + 1.5)
    img = assert_png(out, tuple(fig.get_size_inches()))
    # the grey padding colour (0.82) is present in the picture
    assert np.any(np.all(np.abs(img[..., :3] - 0.82) < 0.01, axis=-1))


def test_masks_single_panel_and_actionness(tmp_path):
    T = 12
    pred = asymmetric_mask(T)
    fig = masks_figure(pred_mask=pred)
    assert len(fig.axes) == 2  # heatmap + colour bar
    act = np.linspace(0.0, 1.0, T)
    valid = np.arange(T) < 10
    fig = masks_figure(pred_mask=pred, gt_mask=pred, valid=valid, actionness=act)
    ax_act = fig.axes[-1]
    assert ax_act.get_ylabel() == "actionness"
    (line,) = ax_act.get_lines()
    y = np.asarray(line.get_ydata(), dtype=float)
    np.testing.assert_allclose(y[:10], act[:10])
    assert np.isnan(y[10:]).all()  # nothing drawn over padding
    assert ax_act.get_xlim() == fig.axes[0].get_xlim()  # aligned with the heatmap's columns
    out = plot_masks(tmp_path / "ma.png", pred_mask=pred, gt_mask=pred, valid=valid,
                         actionness=act)
    assert_png(out, tuple(fig.get_size_inches()))


def test_masks_bad_shapes():
    with pytest.raises(GsmtError, match="square"):
        masks_figure(pred_mask=np.zeros((4, 5)))
    with pytest.raises(GsmtError, match="differs"):
        masks_figure(pred_mask=np.zeros((4, 4)), gt_mask=np.zeros((5, 5)))
    with pytest.raises(GsmtError, match="valid"):
        masks_figure(pred_mask=np.zeros((4, 4)), valid=np.ones(3, bool))


# ----------------------------------------------------------------------------- curves


def write_log(path: Path, records: list, tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def line_data(ax) -> dict[str, tuple[list, list]]:
    return {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.get_lines()}


def test_curves_per_epoch_means_and_map(tmp_path):
    log = write_log(tmp_path / "log.jsonl", [
        {"epoch": 1, "step": 1, "split": "train", "loss": 3.0, "loss_cls": 2.0},
        {"epoch": 1, "step": 2, "split": "train", "loss": 1.0, "loss_cls": 1.0},
        {"epoch": 1, "split": "val", "val_loss": 2.5, "val_mAP": 0.2},
        {"epoch": 2, "step": 3, "loss": 1.5},  # no split: a train record
        {"epoch": 2, "split": "val", "val_loss": 1.8, "val_mAP": 0.35},
        {"epoch": 3, "split": "val", "val_mAP": 0.3, "note": "text ignored"},
        {"step": 4, "loss": 9.0},  # no epoch: ignored
    ])
    fig = curves_figure(read_jsonl(log), log)
    loss_ax, map_ax = fig.axes
    lines = line_data(loss_ax)
    assert lines["train loss"] == ([1.0, 2.0], [2.0, 1.5])
    assert lines["train loss_cls"] == ([1.0], [1.5])
    assert lines["val loss"] == ([1.0, 2.0], [2.5, 1.8])
    assert line_data(map_ax)["val mAP"] == ([1.0, 2.0, 3.0], [0.2, 0.35, 0.3])
    assert line_data(map_ax)["best 0.35 (epoch 2)"] == ([2.0], [0.35])
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() == "loss"
    assert map_ax.get_ylabel() == "mAP"
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == list(lines)
    out = plot_curves(tmp_path / "curves.png", log)
    assert_png(out, (10.0, 4.0))


def test_curves_val_split_loss_and_no_map_panel(tmp_path):
    log = write_log(tmp_path / "log.jsonl", [
        {"epoch": 0, "split": "train", "loss": float("nan")},  # non-finite values are skipped
        {"epoch": 1, "split": "train", "loss": 2.0},
        {"epoch": 1, "split": "val", "loss": 2.2, "mAP": "n/a"},
    ])
    fig = curves_figure(read_jsonl(log), log)
    assert len(fig.axes) == 1
    lines = line_data(fig.axes[0])
    assert lines["train loss"] == ([1.0], [2.0])
    assert lines["val loss"] == ([1.0], [2.2])


def test_read_jsonl_tolerates_torn_last_line_only(tmp_path):
    good = [{"epoch": 1, "loss": 1.0}, [1, 2], {"epoch": 2, "loss": 0.5}]
    log = write_log(tmp_path / "a.jsonl", good, tail='\n{"epoch": 3, "lo')
    assert read_jsonl(log) == [good[0], good[2]]  # the list line is not a record
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"epoch": 1}\nnot json\n{"epoch": 2}\n')
    with pytest.raises(GsmtError, match="line 2 is not JSON"):
        read_jsonl(bad)
    with pytest.raises(GsmtError, match="cannot read run log"):
        read_jsonl(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("records", [[], [{"epoch": 1}, {"epoch": 2, "lr": "x"}], [{"loss": 1.0}]])
def test_curves_nothing_to_plot(tmp_path, records):
    log = write_log(tmp_path / "log.jsonl", records)
    with pytest.raises(GsmtError, match="no epochs logged") as info:
        plot_curves(tmp_path / "c.png", log)
    assert info.value.where == str(log)
    assert not (tmp_path / "c.png").exists()


def test_save_replaces_existing_file(tmp_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"old")
    plot_masks(out, pred_mask=asymmetric_mask())
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


# ----------------------------------------------------------------------------- timeline: long videos


def _many(n: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 290, n)
    return {"duration": 300.0, "pred_segments": np.c_[s, s + rng.uniform(1, 10, n)],
            "pred_labels": rng.integers(0, k, n), "pred_scores": rng.uniform(0.0, 1.0, n),
            "classes": [f"c{i}" for i in range(k)], "video_id": "long"}


@pytest.mark.parametrize("n", [44, 500])
def test_timeline_past_ranked_max_has_one_lane_per_class(tmp_path, n):
    """Past RANKED_MAX detections (44 and 500 at >= min_score), one lane per class, a height that
    does not grow with the detections, every detection >= min_score drawn and none below it."""
    from gsmt.viz.timeline import RANKED_MAX

    kw = _many(2 * n, 5)
    above = int((kw["pred_scores"] >= 0.5).sum())
    assert above > RANKED_MAX
    fig = timeline_figure(gt_segments=None, gt_labels=None, top=None, min_score=0.5, **kw)
    ax = fig.axes[0]
    assert [t.split(" (")[0] for t in tick_texts(ax)] == kw["classes"]
    counts = [int(t.split("(")[1].rstrip(")")) for t in tick_texts(ax)]
    assert sum(counts) == above == len(bars(ax))
    assert "ground truth" not in tick_texts(ax) + [ax.get_ylabel()]
    assert f"{above} of {2 * n} predictions scored >= 0.50" in ax.get_title()
    w, h = fig.get_size_inches()
    assert h < 5 and w == 12
    assert_png(plot_timeline(tmp_path / "t.png", gt_segments=None, gt_labels=None, top=None, min_score=0.5,
                             **kw), (w, h))


def test_timeline_up_to_ranked_max_stays_ranked_and_honours_min_score():
    from gsmt.viz.timeline import RANKED_MAX

    kw = _many(60, 3)
    order = np.argsort(-kw["pred_scores"])
    cut = float(kw["pred_scores"][order[RANKED_MAX - 1]])
    fig = timeline_figure(gt_segments=None, gt_labels=None, top=None, min_score=cut, **kw)
    ticks = tick_texts(fig.axes[0])
    assert len(ticks) == RANKED_MAX and ticks[0].startswith("#1 ")  # no ground-truth row
    assert len(bars(fig.axes[0])) == RANKED_MAX
    # --top past RANKED_MAX chooses lanes too; layout= forces either
    lanes = tick_texts(timeline_figure(gt_segments=None, gt_labels=None, top=30, **kw).axes[0])
    assert [t.split(" (")[0] for t in lanes] == kw["classes"]
    assert len(tick_texts(timeline_figure(gt_segments=None, gt_labels=None, top=3, layout="lanes",
                                          **kw).axes[0])) <= 3
    with pytest.raises(GsmtError, match="layout"):
        timeline_figure(gt_segments=None, gt_labels=None, layout="rows", **kw)


def test_timeline_of_dense_ground_truth_has_one_lane_per_class():
    """MultiTHUMOS-like ground truth (four instances of four classes over one moment: four
    sub-rows) gets lanes even with three predictions; the THUMOS twin (two sub-rows) stays ranked."""
    from gsmt.viz.timeline import GT_ROWS_MAX

    dense = np.array([[1.0, 9.0], [2.0, 4.0], [3.0, 8.0], [3.5, 5.0], [20.0, 22.0]])
    labels = np.array([0, 1, 2, 3, 1])
    assert 4 > GT_ROWS_MAX
    ax = timeline(gt_segments=dense, gt_labels=labels, top=3).axes[0]
    assert [t.split(" (")[0] for t in tick_texts(ax)] == CLASSES
    black = [r for r in bars(ax) if r.get_facecolor()[:3] == (0.0, 0.0, 0.0)]
    assert len(black) == len(dense) and len(bars(ax)) == len(dense) + 3
    # three overlapping instances: three sub-rows, still ranked; layout="ranked" keeps dense ground truth ranked
    assert tick_texts(timeline(gt_segments=dense[:3], gt_labels=labels[:3], top=3).axes[0])[0] == "ground truth"
    assert tick_texts(timeline(top=3).axes[0])[0] == "ground truth"  # the twin
    assert tick_texts(timeline(gt_segments=dense, gt_labels=labels, top=3, layout="ranked").axes[0])[0] == \
        "ground truth"


def test_timeline_lanes_with_ground_truth():
    fig = timeline(top=None, layout="lanes")
    ax = fig.axes[0]
    # classes of the ground truth and the predictions, one lane each; ground truth as black strips
    assert [t.split(" (")[0] for t in tick_texts(ax)] == CLASSES
    black = [r for r in bars(ax) if r.get_facecolor()[:3] == (0.0, 0.0, 0.0)]
    assert len(black) == len(GT) and len(bars(ax)) == len(GT) + len(PRED)
    assert "ground truth" in ax.get_ylabel()
