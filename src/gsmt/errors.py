"""User-facing errors and counted, recoverable data faults (DESIGN.md section 10)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`1 video`, `2 videos`, `0 videos`: a count with its noun in the right number (summary lines)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


# Fault kinds are written in the plural ("videos not extracted (unreadable)"); one of them reads
# "1 video not extracted (unreadable)".
_PLURAL_NOUNS = re.compile(r"\b(video|segment|frame|row|instance|file)s\b")


def _singular(kind: str) -> str:
    return _PLURAL_NOUNS.sub(r"\1", kind, count=1)


class GsmtError(Exception):
    """A fatal user error: the CLI prints `gsmt: error: <where>: <problem>` and exits with code 2."""

    def __init__(self, where: str | Path | None, problem: str, *, shared: bool = False):
        self.where = str(where) if where is not None else None
        self.problem = problem
        # Raised by every rank of a torchrun job together (after they exchanged their failures), so
        # the ranks may still meet once to leave the process group.
        self.shared = shared
        super().__init__(f"{self.where}: {problem}" if self.where else problem)


@dataclass
class Faults:
    """Counts recoverable data faults so they can be reported in one summary line."""

    counts: Counter = field(default_factory=Counter)

    def add(self, kind: str, n: int = 1) -> None:
        if n:
            self.counts[kind] += int(n)

    def merge(self, other: "Faults") -> None:
        self.counts.update(other.counts)

    def __bool__(self) -> bool:
        return any(self.counts.values())

    def summary(self, source: str = "data") -> str:
        """One line, e.g. `annotations.json: 3 segments clipped to the video's end, 1 zero-length segment`."""
        parts = [f"{n} {kind if n != 1 else _singular(kind)}" for kind, n in sorted(self.counts.items()) if n]
        return f"{source}: " + (", ".join(parts) if parts else "no data faults")
