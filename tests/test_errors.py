"""gsmt.errors: counted (summary lines say "1 video", never "1 videos")."""

from __future__ import annotations

from gsmt.errors import counted


def test_counted_plurals():
    assert [counted(n, "video") for n in (0, 1, 2)] == ["0 videos", "1 video", "2 videos"]
    assert counted(1, "epoch") == "1 epoch" and counted(3, "class", "classes") == "3 classes"
