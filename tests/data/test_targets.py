import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmt.data.targets import make_targets
from gsmt.errors import Faults

# Five unit snippets: spans [t, t + 1), centres 0.5, 1.5, 2.5, 3.5, 4.5.
T5_START = np.arange(5, dtype=np.float64)
T5_END = T5_START + 1.0
ALL_VALID = np.ones(5, bool)


def targets(segments, labels, valid=ALL_VALID, K=3, span=(0.0, 5.0), **kw):
    return make_targets(np.array(segments, float).reshape(-1, 2), np.array(labels, np.int64),
                        T5_START, T5_END, valid, K, span=span, **kw)


def cols(*idx, T=5):
    v = np.zeros(T, np.float32)
    v[list(idx)] = 1
    return v


def test_single_instance_hand_computed():
    t = targets([[1.2, 3.6]], [0], K=2)
    assert t.cls.tolist() == [2, 0, 0, 0, 2]
    assert t.fg.tolist() == [False, True, True, True, False]
    for j in (1, 2, 3):
        np.testing.assert_array_equal(t.mask[:, j], cols(1, 2, 3))
    assert not t.mask[:, [0, 4]].any()
    assert t.cls.dtype == np.int64 and t.mask.dtype == np.float32 and t.mask.shape == (5, 5)


def test_boundaries_are_inclusive():
    t = targets([[1.5, 2.5]], [1])
    assert t.cls.tolist() == [3, 1, 1, 3, 3]


def test_overlap_shortest_wins_and_mask_is_column_wise():
    # A = [0, 5] class 1 covers every centre; B = [2, 3] class 0 covers only snippet 2.
    t = targets([[0.0, 5.0], [2.0, 3.0]], [1, 0])
    assert t.cls.tolist() == [1, 1, 0, 1, 1]
    np.testing.assert_array_equal(t.mask[:, 2], cols(2))
    for j in (0, 1, 3, 4):
        np.testing.assert_array_equal(t.mask[:, j], cols(0, 1, 2, 3, 4))
    # Asymmetric: row 2 (position 2 in every mask) differs from column 2 (snippet 2's mask).
    np.testing.assert_array_equal(t.mask[2, :], np.ones(5))
    assert not np.array_equal(t.mask[:, 2], t.mask[2, :])


def test_equal_lengths_go_to_the_lower_class_id():
    # A = [0, 2] class 2 listed first, B = [1, 3] class 1: both length 2; snippet 1 lies in both.
    t = targets([[0.0, 2.0], [1.0, 3.0]], [2, 1])
    assert t.cls.tolist() == [2, 1, 1, 3, 3]
    np.testing.assert_array_equal(t.mask[:, 0], cols(0, 1))
    np.testing.assert_array_equal(t.mask[:, 1], cols(1, 2))
    np.testing.assert_array_equal(t.mask[:, 2], cols(1, 2))


def test_very_short_instance_takes_the_nearest_snippet():
    # [1.6, 1.9] holds no centre; its midpoint 1.75 is nearest to centre 1.5 (snippet 1).
    t = targets([[1.6, 1.9]], [0])
    assert t.cls.tolist() == [3, 0, 3, 3, 3]
    np.testing.assert_array_equal(t.mask[:, 1], cols(1))


def test_very_short_instance_inside_a_long_one_is_not_dropped():
    t = targets([[0.0, 5.0], [2.05, 2.2]], [1, 0])  # midpoint 2.125 -> snippet 2 (centre 2.5)
    assert t.cls.tolist() == [1, 1, 0, 1, 1]
    np.testing.assert_array_equal(t.mask[:, 2], cols(2))
    np.testing.assert_array_equal(t.mask[:, 0], np.ones(5))


def test_padded_snippets_are_ignored():
    valid = np.array([True, True, True, False, False])
    t = targets([[2.0, 5.0]], [0], valid=valid)
    assert t.cls.tolist() == [3, 3, 0, -1, -1]
    np.testing.assert_array_equal(t.mask[:, 2], cols(2))
    assert not t.mask[3:].any()


def test_instance_in_padding_goes_to_the_nearest_valid_snippet():
    valid = np.array([True, True, True, False, False])
    t = targets([[3.2, 4.8]], [1], valid=valid)
    assert t.cls.tolist() == [3, 3, 1, -1, -1]
    np.testing.assert_array_equal(t.mask[:, 2], cols(2))


def test_window_clipping_changes_which_instance_is_shortest():
    # Window of 3 snippets spanning [2, 5] (centres 2.5, 3.5, 4.5).
    t_start, t_end = np.array([2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0])
    segs = np.array([
        [3.0, 20.0],  # class 0: length 17, clipped to [3, 5] = 2
        [2.0, 4.6],  # class 1: length 2.6
        [-5.0, 1.0],  # outside: ignored, not a fault
        [6.0, 8.0],  # outside: ignored, not a fault
        [0.0, 2.4],  # clipped to [2, 2.4]: no centre, nearest to 2.2 is snippet 0
    ])
    faults = Faults()
    t = make_targets(segs, np.array([0, 1, 2, 2, 3]), t_start, t_end, np.ones(3, bool), 4,
                     span=(2.0, 5.0), faults=faults)
    # snippet 0 lies in class 1's [2, 4.6] (2.6) and holds class 3's clipped [2, 2.4] (0.4): 3 wins
    assert t.cls.tolist() == [3, 0, 0]
    np.testing.assert_array_equal(t.mask[:, 1], cols(1, 2, T=3))
    np.testing.assert_array_equal(t.mask[:, 0], cols(0, T=3))
    assert not faults


def test_zero_and_negative_length_segments_are_skipped_and_counted():
    faults = Faults()
    t = targets([[2.5, 2.5], [3.0, 2.0], [0.0, 1.0], [9.0, 9.0]], [0, 1, 2, 0], faults=faults)
    assert t.cls.tolist() == [2, 3, 3, 3, 3]
    # [9, 9] lies outside the span: not this sample's fault
    assert faults.counts["zero-length segments skipped"] == 2


def test_ambiguous_snippets_are_ignored_unless_foreground():
    t = targets([[0.0, 1.0]], [0], ambiguous=np.array([[0.0, 3.0]]))
    assert t.cls.tolist() == [0, -1, -1, 3, 3]
    assert t.fg.tolist() == [True, False, False, False, False]


def test_no_instances_gives_background_and_empty_masks():
    t = targets(np.zeros((0, 2)), [])
    assert t.cls.tolist() == [3] * 5
    assert not t.fg.any() and not t.mask.any()


def test_no_valid_snippet_gives_all_ignored():
    t = targets([[1.0, 2.0]], [0], valid=np.zeros(5, bool))
    assert t.cls.tolist() == [-1] * 5
    assert not t.mask.any()


def reference_targets(segs, labels, centers, valid, K, lo, hi):
    """Loop-by-loop reading of DESIGN.md section 4, to check the vectorised version."""
    T = len(centers)
    inst = []
    for (s, e), c in zip(segs, labels):
        s, e = max(s, lo), min(e, hi)
        if e > s:
            members = [t for t in range(T) if valid[t] and s <= centers[t] <= e]
            if not members and valid.any():
                d = [abs(centers[t] - (s + e) / 2) if valid[t] else np.inf for t in range(T)]
                members = [int(np.argmin(d))]
            inst.append((e - s, int(c), len(inst), members))
    cls = np.where(valid, K, -1)
    mask = np.zeros((T, T), np.float32)
    for t in range(T):
        owners = sorted((length, c, i, m) for length, c, i, m in inst if t in m)
        if owners:
            cls[t] = owners[0][1]
            mask[owners[0][3], t] = 1
    return cls, mask


@settings(max_examples=80, deadline=None)
@given(
    data=st.lists(st.tuples(st.floats(-2, 12), st.floats(0, 6), st.integers(0, 3)), max_size=6),
    n_valid=st.integers(0, 10),
    lo=st.floats(-1, 4),
    width=st.floats(0.5, 12),
)
def test_matches_loop_reference(data, n_valid, lo, width):
    T = 10
    t_start = np.arange(T) * 1.0
    t_end = t_start + 1.0
    valid = np.arange(T) < n_valid
    segs = np.array([[s, s + length] for s, length, _ in data], float).reshape(-1, 2)
    labels = np.array([c for _, _, c in data], np.int64)
    hi = lo + width
    t = make_targets(segs, labels, t_start, t_end, valid, 4, span=(lo, hi))
    cls, mask = reference_targets(segs, labels, (t_start + t_end) / 2, valid, 4, lo, hi)
    np.testing.assert_array_equal(t.cls, cls)
    np.testing.assert_array_equal(t.mask, mask)
    # invariants: a foreground snippet is in its own mask; background and padded columns are empty
    fg = (t.cls >= 0) & (t.cls < 4)
    np.testing.assert_array_equal(t.fg, fg)
    assert (np.diag(t.mask)[fg] == 1).all()
    assert not t.mask[:, ~fg].any() and not t.mask[~valid].any()


def test_remnant_cut_by_an_inner_window_edge_is_not_a_short_instance():
    # A long action [−4, 0.2] reaches this window from the previous one: its remnant [0, 0.2] holds
    # no centre. It is the neighbour's; the old fallback made snippet 0 a one-snippet instance.
    t = targets([[-4.0, 0.2]], [1], inner_edges=(True, False))
    assert t.cls.tolist() == [3, 3, 3, 3, 3] and not t.mask.any()
    # The same on the right edge; and at the video's own edges (no inner edge) it is kept as before.
    t = targets([[4.8, 9.0]], [1], inner_edges=(False, True))
    assert t.cls.tolist() == [3, 3, 3, 3, 3]
    assert targets([[-4.0, 0.2]], [1]).cls.tolist() == [1, 3, 3, 3, 3]


def test_short_instance_straddling_an_inner_edge_goes_where_the_full_grid_puts_it():
    # [−0.1, 0.3]: no centre anywhere; its midpoint 0.1 lies in snippet 0's span [0, 1) -> snippet 0.
    t = targets([[-0.1, 0.3]], [2], inner_edges=(True, True))
    assert t.cls.tolist() == [2, 3, 3, 3, 3]
    np.testing.assert_array_equal(t.mask[:, 0], cols(0))
    # [−0.4, 0.0]: midpoint −0.2 lies in the previous window's snippet: not this window's.
    t = targets([[-0.4, 0.05]], [2], inner_edges=(True, True))
    assert t.cls.tolist() == [3, 3, 3, 3, 3]


# ---------------------------------------------------------------- multi-label targets (issue 32)


def test_twin_instance_gives_both_labels_and_both_pairs():
    """THUMOS14's CliffDiving/Diving twins: one extent, two classes. The single label keeps the lower
    class id; the multi-label targets give every snippet both labels and a mask under each class."""
    t = targets([[1.2, 3.6], [1.2, 3.6]], [2, 0], K=3, multilabel=True)
    assert t.cls.tolist() == [3, 0, 0, 0, 3]  # single label: the lower class id
    np.testing.assert_array_equal(t.labels, [[0, 1, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 1, 1, 0]])
    assert t.pair_snippet.tolist() == [1, 1, 2, 2, 3, 3]
    assert t.pair_class.tolist() == [0, 2, 0, 2, 0, 2]
    np.testing.assert_array_equal(t.pair_mask, np.tile(cols(1, 2, 3), (6, 1)))
    assert t.labels.dtype == np.float32 and t.pair_mask.dtype == np.float32


def test_long_and_short_instances_of_two_classes_keep_their_own_extents():
    """A snippet inside a long instance of class 1 (snippets 0-4) and a short one of class 0
    (snippets 2-3) owns two masks: the long one under class 1, the short one under class 0."""
    t = targets([[0.1, 4.9], [2.1, 3.9]], [1, 0], K=2, multilabel=True)
    assert t.cls.tolist() == [1, 1, 0, 0, 1]  # single label: the shortest instance wins
    np.testing.assert_array_equal(t.labels, [[0, 0, 1, 1, 0], [1, 1, 1, 1, 1]])
    pairs = list(zip(t.pair_snippet.tolist(), t.pair_class.tolist()))
    assert pairs == [(0, 1), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (4, 1)]
    masks = dict(zip(pairs, t.pair_mask))
    np.testing.assert_array_equal(masks[(2, 0)], cols(2, 3))
    np.testing.assert_array_equal(masks[(2, 1)], cols(0, 1, 2, 3, 4))
    np.testing.assert_array_equal(masks[(4, 1)], cols(0, 1, 2, 3, 4))


def test_same_class_instances_keep_the_shortest_owner_per_pair():
    """Two nested instances of one class: the pair (snippet, class) takes the shorter one, as the
    single label does; the outer instance's own snippets keep the outer mask."""
    t = targets([[0.1, 4.9], [1.1, 2.9]], [0, 0], K=1, multilabel=True)
    assert t.pair_snippet.tolist() == [0, 1, 2, 3, 4] and t.pair_class.tolist() == [0] * 5
    np.testing.assert_array_equal(t.pair_mask[1], cols(1, 2))
    np.testing.assert_array_equal(t.pair_mask[0], cols(0, 1, 2, 3, 4))
    np.testing.assert_array_equal(t.mask, targets([[0.1, 4.9], [1.1, 2.9]], [0, 0], K=1).mask)


def test_multilabel_targets_leave_the_single_label_targets_as_they_are():
    args = ([[0.2, 2.2], [1.7, 4.1], [3.3, 3.4]], [1, 0, 2])
    single, multi = targets(*args), targets(*args, multilabel=True)
    for name in ("cls", "mask", "fg"):
        np.testing.assert_array_equal(getattr(single, name), getattr(multi, name))
    assert single.labels is None and single.pair_mask is None
    # Every foreground snippet has a pair per label, and only those.
    assert int(multi.labels.sum()) == len(multi.pair_class)
    assert set(multi.pair_snippet.tolist()) == set(np.flatnonzero(multi.fg).tolist())
