"""Config presets, overrides and type checks."""

import pytest

from gsmt.config import PRESETS, apply_overrides, load_config, parse_override
from gsmt.errors import GsmtError


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert cfg.data.T > 0 and cfg.train.epochs > 0


def test_preset_values_follow_the_paper_settings():
    anet, thumos = load_config("anet"), load_config("thumos")
    assert (anet.data.temporal_mode, anet.data.T) == ("resize", 100)
    assert (anet.decode.mode, anet.decode.mask_score) == ("own+long", "iou")  # the paper: long, max
    assert (thumos.data.temporal_mode, thumos.data.T, thumos.decode.mode) == ("window", 256, "own")
    assert (thumos.decode.nms_sigma, thumos.decode.max_keep) == (0.4, 200)
    # every label of a snippet, one mask per (snippet, class): 200 pairs propose per window (issue 32)
    assert (thumos.model.labels, thumos.decode.m1) == ("multi", 200)
    # No epoch is picked on held-out videos: the model is the last weight average (as ActionFormer)
    assert (thumos.data.val_fraction, thumos.train.ema) == (anet.data.val_fraction, anet.train.ema) == (0.0, 0.99)
    assert anet.decode.nms_sigma == 0.3  # the paper: 0.6 (BENCHMARKS.md)
    # THUMOS14's videos hold one class or two: the detections weighed by their video's class mass
    assert (thumos.decode.video_fusion, anet.decode.video_fusion, load_config("multithumos").decode.video_fusion) \
        == (0.5, 0.0, 0.0)


def test_override_parsing_and_numbers_written_without_a_dot():
    assert parse_override("train.lr=3e-4") == {"train": {"lr": "3e-4"}}  # YAML 1.1 reads this as text
    cfg = load_config("demo", ["train.lr=2e-3", "train.epochs=3.0", "data.fps=30", "decode.thresholds=[0.5, 0.7]",
                               "model.head_dim=16", "model.mask_branch=false"])
    assert cfg.train.lr == 0.002 and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.data.fps == 30.0 and cfg.decode.thresholds == [0.5, 0.7]
    assert cfg.model.head_dim == 16 and cfg.model.mask_branch is False


@pytest.mark.parametrize("bad, message", [
    ("train.lr=abc", "config key 'train.lr' must be float, got 'abc'"),
    ("train.epochs=2.5", "config key 'train.epochs' must be int, got 2.5"),
    ("model.mask_branch=3", "config key 'model.mask_branch' must be bool, got 3"),
    ("train.nope=1", "unknown config key 'train.nope'"),
    ("nope", "'nope' is not key=value"),
])
def test_bad_overrides_are_one_line_errors(bad, message):
    with pytest.raises(GsmtError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_config("demo", [bad])


def test_apply_overrides_limits_sections():
    cfg = load_config("demo")
    assert apply_overrides(cfg, ["decode.max_keep=7"], sections=("decode",)).decode.max_keep == 7
    with pytest.raises(GsmtError, match="only decode"):
        apply_overrides(cfg, ["train.lr=1"], sections=("decode",))


def test_retired_keys_of_earlier_checkpoints_load_at_their_neutral_value():
    from gsmt.config import config_from_dict

    values = load_config("thumos").to_dict()
    values["model"]["mask_skip"] = False  # written by every checkpoint of 2026-12-01 00:13-03:40
    values["loss"]["interval_weight"] = 1.0  # 2026-11-30: weighted only the removed interval head
    assert config_from_dict(values) == load_config("thumos")
    values["model"]["mask_skip"] = True
    with pytest.raises(GsmtError, match=r"^checkpoint: config key 'model.mask_skip' was removed from gsmt; .* "
                                        r"only at False, got True$"):
        config_from_dict(values)


def test_mask_score_auto_follows_the_decoding_mode():
    from gsmt.config import DecodeConfig

    # Soft IoU ranks a column's own run against its long span; every other mode keeps the paper's max
    assert [DecodeConfig(mode=m).resolved_mask_score() for m in ("own+long", "long", "own", "short")] == \
        ["iou", "max", "max", "max"]
    assert DecodeConfig(mode="own+long", mask_score="max").resolved_mask_score() == "max"
    assert DecodeConfig(mode="long", mask_score="iou").resolved_mask_score() == "iou"
    assert load_config("thumos").decode.resolved_mask_score() == "iou"
