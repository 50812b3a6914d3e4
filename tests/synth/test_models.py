"""The benchmark family's feature models: shapes, determinism, independence, and the CLI switch."""

import json

import numpy as np
import pytest

from gsmt.cli import main
from gsmt.annotations.types import Video
from gsmt.synth.models import (FEATURE_MODELS, FROZEN_DIFFICULTY, HELD_OUT, make_family_world,
    render_family_features)
from gsmt.data.grid import Grid

GRID = Grid(30.0, 8, 16)


def clip(vid="v1", duration=40.0):
    return Video(id=vid, subset="validation", duration=duration,
                 segments=np.array([[5.0, 9.0], [10.0, 13.5], [30.0, 31.0]]), labels=np.array([0, 0, 2]))


@pytest.mark.parametrize("model", ["phases", "motion"])
def test_shape_sign_and_determinism(model):
    world = make_family_world(model, 4, 24, seed=3)
    x = render_family_features(clip(), world, 3, GRID)
    assert x.shape == (GRID.num_snippets(40.0), 24) and x.dtype == np.float32
    assert np.isfinite(x).all() and (x >= 0).all()
    again = render_family_features(clip(), make_family_world(model, 4, 24, seed=3), 3, GRID)
    np.testing.assert_array_equal(x, again)
    other_seed = render_family_features(clip(), make_family_world(model, 4, 24, seed=4), 4, GRID)
    assert not np.array_equal(x, other_seed)


def test_a_videos_features_do_not_depend_on_other_videos_or_on_its_actions_elsewhere():
    world = make_family_world("phases", 4, 16, seed=0)
    a = render_family_features(clip("a"), world, 0, GRID)
    b = render_family_features(clip("b"), world, 0, GRID)
    assert not np.array_equal(a, b)  # per-video randomness is keyed by the id
    np.testing.assert_array_equal(a, render_family_features(clip("a"), world, 0, GRID))


def test_the_models_differ_and_one_is_held_out():
    assert set(FEATURE_MODELS) == {"prototype", "phases", "motion"} and HELD_OUT == "motion"
    assert set(FROZEN_DIFFICULTY) == {"phases", "motion"}
    p = render_family_features(clip(), make_family_world("phases", 4, 16, 0), 0, GRID)
    m = render_family_features(clip(), make_family_world("motion", 4, 16, 0), 0, GRID)
    assert not np.allclose(p, m)
    with pytest.raises(ValueError):
        make_family_world("prototype", 4, 16, 0)


def test_synth_cli_records_the_feature_model_and_its_frozen_difficulty(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["synth", "--preset", "thumos-like", "--videos", "4", "--feature-dim", "8",
                 "--feature-model", "phases", "--out", str(out)]) == 0
    meta = json.loads((out / "annotations.json").read_text())["gsmt"]
    assert meta["feature_model"] == "phases" and meta["difficulty"] == FROZEN_DIFFICULTY["phases"]
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--preset", "thumos-like", "--videos", "4", "--feature-model", "nope",
              "--out", str(tmp_path / "e")])
    assert exc.value.code == 2 and not (tmp_path / "e").exists()
