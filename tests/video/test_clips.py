"""The synthetic clips of gsmt.video.clips: actions are on screen exactly during their segments."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")

from gsmt.video.clips import _COLOURS, _ORANGE, ClipSpec, _render  # noqa: E402


@pytest.mark.parametrize("one_colour", [False, True])
def test_an_action_is_drawn_in_its_colour_only_during_its_segment(one_colour):
    spec = ClipSpec(seconds=4.0, fps=10, one_colour=one_colour)
    events = [(1.0, 2.0, "sweep"), (2.5, 3.5, "pulse")]
    frames = _render(spec, events, np.random.default_rng(0))
    assert frames.shape == (40, spec.height, spec.width, 3)
    for label in ("sweep", "pulse"):
        colour = np.array(_ORANGE if one_colour else _COLOURS[label], dtype=np.uint8)
        shown = (frames == colour).all(axis=-1).any(axis=(1, 2))  # a pixel of that colour in frame f
        start, end = next((s, e) for s, e, name in events if name == label)
        expected = np.zeros(40, bool) if one_colour else (np.arange(40) / 10 >= start) & (np.arange(40) / 10 < end)
        if one_colour:  # both actions share the colour: it shows during either
            for s, e, _ in events:
                expected |= (np.arange(40) / 10 >= s) & (np.arange(40) / 10 < e)
        assert np.array_equal(shown, expected), label
