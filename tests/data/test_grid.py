import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmt.data.grid import Grid, cut_window, resize_features, resize_spans, window_starts

# fps 10, stride 5 frames, window 10 frames: snippet i centred at (5 i + 5) / 10 = 0.5 + 0.5 i s.
GRID = Grid(fps=10.0, feature_stride=5, feature_window=10)


def test_grid_centers_and_spans_hand_computed():
    np.testing.assert_allclose(GRID.centers(3), [0.5, 1.0, 1.5])
    np.testing.assert_allclose(GRID.centers(2, start=4), [2.5, 3.0])
    t_start, t_end = GRID.spans(3)
    np.testing.assert_allclose(t_start, [0.25, 0.75, 1.25])
    np.testing.assert_allclose(t_end, [0.75, 1.25, 1.75])
    assert t_start.dtype == np.float64


def test_grid_seconds_to_index_inverts_centers():
    assert GRID.seconds_to_index(1.0) == pytest.approx(1.0)
    assert GRID.seconds_to_index(1.25) == pytest.approx(1.5)
    np.testing.assert_allclose(GRID.seconds_to_index(GRID.centers(7)), np.arange(7))


def test_grid_num_snippets():
    assert GRID.num_snippets(6.0) == 11  # floor((60 - 10) / 5) + 1
    assert GRID.num_snippets(6.04) == 11
    assert GRID.num_snippets(1.0) == 1
    assert GRID.num_snippets(0.5) == 1  # shorter than one window: still at least one snippet


def test_grid_rejects_nonpositive_fps():
    with pytest.raises(ValueError):
        Grid(0.0, 5, 10)


def test_resize_features_upsample_hand_computed():
    feats = np.array([[0.0, 10.0], [4.0, 30.0]], dtype=np.float32)
    # source positions for T=4 from T0=2: max((j + 0.5) / 2 - 0.5, 0) = 0, 0.25, 0.75, 1.25 -> clamp
    out = resize_features(feats, 4)
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 3.0, 4.0])
    np.testing.assert_allclose(out[:, 1], [10.0, 15.0, 25.0, 30.0])
    assert out.dtype == np.float32


def test_resize_features_downsample_hand_computed():
    feats = np.arange(4, dtype=np.float32)[:, None]
    # source positions (j + 0.5) * 2 - 0.5 = 0.5, 2.5
    np.testing.assert_allclose(resize_features(feats, 2)[:, 0], [0.5, 2.5])
    np.testing.assert_allclose(resize_features(feats, 1)[:, 0], [1.5])


def test_resize_features_same_length_is_a_copy():
    feats = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    out = resize_features(feats, 5)
    np.testing.assert_array_equal(out, feats)
    out[0, 0] = -1
    assert feats[0, 0] != -1


@settings(max_examples=40, deadline=None)
@given(T0=st.integers(1, 40), T=st.integers(1, 40), D=st.integers(1, 4))
def test_resize_features_matches_torch_interpolate(T0, T, D):
    feats = np.random.default_rng(T0 * 100 + T).normal(size=(T0, D)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(feats.T[None]), size=T, mode="linear", align_corners=False)[0].T.numpy()
    # torch computes its source positions in float32; ours are float64
    np.testing.assert_allclose(resize_features(feats, T), ref, rtol=1e-4, atol=1e-5)


def test_resize_features_rejects_empty():
    with pytest.raises(ValueError):
        resize_features(np.zeros((0, 3), np.float32), 4)


def test_resize_spans_hand_computed():
    t_start, t_end = resize_spans(10.0, 4)
    np.testing.assert_allclose(t_start, [0.0, 2.5, 5.0, 7.5])
    np.testing.assert_allclose(t_end, [2.5, 5.0, 7.5, 10.0])


@pytest.mark.parametrize(
    "n, T, stride, expected",
    [
        (10, 4, 2, [0, 2, 4, 6]),  # the last regular window already ends at the last snippet
        (11, 4, 2, [0, 2, 4, 6, 7]),  # plus a final window ending at snippet 10
        (5, 4, 2, [0, 1]),
        (4, 4, 2, [0]),
        (3, 4, 2, [0]),  # shorter than T: one (padded) window
        (1, 4, 2, [0]),
        (9, 3, 3, [0, 3, 6]),
    ],
)
def test_window_starts_hand_computed(n, T, stride, expected):
    starts = window_starts(n, T, stride)
    assert starts.tolist() == expected
    assert starts.dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), T=st.integers(1, 50), frac=st.floats(0.01, 1.0))
def test_window_starts_cover_every_snippet(n, T, frac):
    stride = max(1, int(T * frac))  # stride <= T: windows overlap or touch
    starts = window_starts(n, T, stride)
    assert starts[0] == 0
    assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= stride)
    assert starts[-1] == max(n - T, 0)
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s : s + T] = True
    assert covered.all()


def test_cut_window_pads_past_the_end():
    feats = np.arange(10, dtype=np.float32).reshape(5, 2)
    x, valid = cut_window(feats, 3, 4)
    np.testing.assert_array_equal(x, [[6, 7], [8, 9], [0, 0], [0, 0]])
    assert valid.tolist() == [True, True, False, False]
    x, valid = cut_window(feats, 1, 3)
    np.testing.assert_array_equal(x, feats[1:4])
    assert valid.all()
    x, valid = cut_window(feats, 7, 2)
    assert not valid.any() and not x.any()
