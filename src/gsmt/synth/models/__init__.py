"""Feature models of the semi-real benchmark family: how an action becomes snippet features.

`gsmt synth` renders features from a latent per time point through a fixed random map. The
`prototype` model adds a class prototype under a ramped envelope. The `phases` and `motion` models
differ from it in mechanism, not only in noise, so that a default tuned on one of them has to hold
on another (BENCHMARKS.md "Benchmark family"); each module's docstring describes its model.

`motion` is the held-out model: no default, preset or architecture decision may look at it.
Each model has one difficulty knob (`difficulty`: prototype scales its `RenderParams`, phases and
motion the white noise and the slow background drift); the frozen values were set with the
context-free baseline alone (BENCHMARKS.md).

A new feature model is one module here (`make_world`, `render_features`, its frozen difficulty)
plus one line in `FEATURE_MODELS`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from gsmt.annotations.types import Video
from gsmt.data.grid import Grid
from gsmt.synth.models import motion, phases, prototype
from gsmt.synth.models.common import FamilyWorld


class FeatureModel(NamedTuple):
    """One feature model's render functions and its frozen default difficulty."""

    world: Callable[..., Any]  # (num_classes, feature_dim, seed, difficulty) -> the dataset-level world
    render: Callable[..., np.ndarray]  # (video, world, seed, grid) -> [T, D] float32 features, >= 0
    difficulty: float


FEATURE_MODELS: dict[str, FeatureModel] = {
    "prototype": FeatureModel(prototype.make_world_at, prototype.render_features, prototype.DEFAULT_DIFFICULTY),
    "phases": FeatureModel(phases.make_world, phases.render_features, phases.DIFFICULTY),
    "motion": FeatureModel(motion.make_world, motion.render_features, motion.DIFFICULTY),
}
HELD_OUT = "motion"
# Frozen by calibration with the context-free baseline alone (BENCHMARKS.md "Benchmark family").
FROZEN_DIFFICULTY = {name: m.difficulty for name, m in FEATURE_MODELS.items() if name != "prototype"}


def make_family_world(model: str, num_classes: int, feature_dim: int, seed: int,
                      difficulty: float = 1.0) -> FamilyWorld:
    """The class structure and the latent -> feature map of `model`, seeded by `seed`."""
    if model not in FROZEN_DIFFICULTY:
        raise ValueError(f"unknown feature model {model!r} (phases, motion; prototype: "
                         "gsmt.synth.models.prototype.make_world)")
    return FEATURE_MODELS[model].world(num_classes, feature_dim, seed, difficulty)


def render_family_features(video: Video, world: FamilyWorld, seed: int, grid: Grid) -> np.ndarray:
    """[T, D] float32 features of one video under `world.model`, `T = grid.num_snippets(duration)`."""
    return FEATURE_MODELS[world.model].render(video, world, seed, grid)
