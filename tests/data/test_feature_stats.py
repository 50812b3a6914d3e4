"""Feature statistics for input standardisation (gsmt.data.standardize)."""

from __future__ import annotations

import numpy as np

from gsmt.data.features import FeatureStore
from gsmt.data.standardize import FeatureStats, auto_mode, feature_stats


def test_hand_computed_statistics_with_a_constant_dimension(tmp_path):
    # Dimension 0 takes 0, 2, 4 over two videos: mean 2, population variance 8/3.
    # Dimension 1 is 1 everywhere: centred, not scaled (std reported as 1).
    np.save(tmp_path / "a.npy", np.array([[0.0, 1.0], [2.0, 1.0]], np.float32))
    np.save(tmp_path / "b.npy", np.array([[4.0, 1.0]], np.float32))
    stats = feature_stats(FeatureStore(tmp_path), ["a", "b"], 2)
    assert stats.count == 3
    assert np.allclose(stats.mean, [2.0, 1.0], rtol=0, atol=1e-15)
    assert np.allclose(stats.std(), [np.sqrt(8 / 3), 1.0], rtol=0, atol=1e-15)
    assert np.array_equal(stats.scale("dims"), stats.std())
    # One spread for both: the RMS of the centred values, sqrt((8/3 + 0) / 2).
    assert np.allclose(stats.scale("global"), [np.sqrt(4 / 3)] * 2, rtol=0, atol=1e-15)


def test_merging_videos_equals_the_statistics_of_all_snippets():
    rng = np.random.default_rng(0)
    # Large offsets and small spreads: a naive sum of squares would lose every digit here.
    videos = [1e4 + 1e-2 * rng.standard_normal((n, 5)) for n in (1, 7, 0, 300, 2)]
    merged = FeatureStats(0, np.zeros(5), np.zeros(5))
    for v in videos:
        merged = merged.merge(FeatureStats.of(v.reshape(-1, 5)))
    every = np.concatenate(videos)
    assert merged.count == len(every)
    np.testing.assert_allclose(merged.mean, every.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(merged.std(), every.std(axis=0), rtol=1e-9)


def test_no_snippets_or_all_constant_gives_the_identity_scale():
    empty = FeatureStats(0, np.zeros(3), np.zeros(3))
    assert np.array_equal(empty.std(), np.ones(3))
    flat = FeatureStats.of(np.full((4, 3), 7.0))
    assert np.array_equal(flat.mean, [7.0, 7.0, 7.0]) and np.array_equal(flat.std(), np.ones(3))
    assert np.array_equal(flat.scale("global"), np.ones(3)) and np.array_equal(empty.scale("global"), np.ones(3))


def test_auto_standardises_only_features_that_barely_vary_against_their_size():
    rng = np.random.default_rng(0)
    lively = np.abs(rng.standard_normal((500, 8)))  # spread about 0.6 around a size of 1: as read
    assert auto_mode(FeatureStats.of(lively))[0] == "none"
    faint = 0.34 + 0.01 * rng.standard_normal((500, 8))  # a random-weight backbone's features
    mode, why = auto_mode(FeatureStats.of(faint))
    assert mode == "global" and why.startswith("the training features vary by 0.0101 around a size of 0.34: centred and scaled")
    assert auto_mode(FeatureStats.of(1000 * lively))[0] == "global"  # huge values
    assert auto_mode(FeatureStats.of(0.001 * lively))[0] == "global"  # tiny values
