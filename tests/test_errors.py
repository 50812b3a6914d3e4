"""gsmt.errors: counted (summary lines say "1 video", never "1 videos")."""

from __future__ import annotations

from gsmt.errors import Faults, counted


def test_counted_plurals():
    assert [counted(n, "video") for n in (0, 1, 2)] == ["0 videos", "1 video", "2 videos"]
    assert counted(1, "epoch") == "1 epoch" and counted(3, "class", "classes") == "3 classes"


def test_fault_summary_says_one_in_the_singular():
    faults = Faults()
    faults.add("videos not extracted (unreadable)")
    faults.add("zero-length segments (kept)", 2)
    faults.add("segments with end < start (kept, as the official evaluator does)")
    assert faults.summary("a.json") == ("a.json: 1 segment with end < start (kept, as the official evaluator does), "
                                        "1 video not extracted (unreadable), 2 zero-length segments (kept)")
