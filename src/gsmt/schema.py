"""Declared bounds of settings: each config field and each numeric CLI option states its type and
range once; one function checks them and names the key in a one-line error (issue 13, item 9).

A config field: `lr: float = bounded(1e-3, gt=0)`; `gsmt.config.validate` walks every section.
A CLI option: `p.add_argument("--fps", type=option(float, gt=0))`; argparse reports the option.
Numbers are always finite (NaN and infinities are refused); `bool` is never a number.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import typing
from dataclasses import MISSING, dataclass, field
from typing import Any

# The shared vocabulary: every module that lists or checks one of these reads it here.
TEMPORAL_MODES = ("resize", "window")  # DESIGN.md section 7
DECODE_MODES = ("long", "short", "own", "own+long")  # which runs of a mask column become candidates
FEATURE_LAYOUTS = ("auto", "TD", "DT")  # how a feature array lies: [T, D], [D, T] or decided by D
STANDARDIZE_MODES = ("auto", "none", "global", "dims")  # model.standardize (gsmt.data.standardize)
SEED_MAX = 2**32 - 1  # seeds are masked to 32 bits by the synthetic data; torch and NumPy take them all
DEMO_MIN_VIDEOS = 2  # `gsmt demo --videos`: one training and one evaluation video at least


@dataclass(frozen=True)
class Bounds:
    """What a value must satisfy besides its type."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None  # a string's full match (device names)
    pattern_text: str | None = None  # how the pattern reads in a message
    nonempty: bool = False  # strings and lists
    odd: bool = False
    item: "Bounds | None" = None  # bounds of each element of a list


NO_BOUNDS = Bounds()


def bounded(default: Any = MISSING, *, default_factory: Any = MISSING, **bounds) -> Any:
    """A dataclass field carrying its `Bounds` (read back by `field_bounds`)."""
    meta = {"bounds": Bounds(**bounds)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def field_bounds(f: dataclasses.Field) -> Bounds:
    return f.metadata.get("bounds", NO_BOUNDS)


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _interval(b: Bounds) -> str:
    lo = ("(", b.gt) if b.gt is not None else ("[", b.ge) if b.ge is not None else None
    hi = (")", b.lt) if b.lt is not None else ("]", b.le) if b.le is not None else None
    if lo and hi:
        return f" in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return f" {'>' if lo[0] == '(' else '>='} {_num(lo[1])}"
    if hi:
        return f" {'<' if hi[0] == ')' else '<='} {_num(hi[1])}"
    return ""


def describe(kind: type, b: Bounds = NO_BOUNDS) -> str:
    """`an integer >= 1`, `a finite number in [0, 1)`, `one of cosine, constant`, ..."""
    if kind is bool:
        return "true or false"
    if kind is int:
        return ("an odd integer" if b.odd else "an integer") + _interval(b)
    if kind is float:
        return "a finite number" + _interval(b)
    if kind is list:
        inner = describe(float, b.item or NO_BOUNDS).removeprefix("a finite ").replace("number", "numbers", 1)
        return ("a non-empty list" if b.nonempty else "a list") + f" of {inner}"
    if b.choices:
        return "one of " + ", ".join(b.choices)
    if b.pattern_text:
        return b.pattern_text
    return "a non-empty string" if b.nonempty else "a string"


def _in_range(value: float, b: Bounds) -> bool:
    return ((b.gt is None or value > b.gt) and (b.ge is None or value >= b.ge)
            and (b.lt is None or value < b.lt) and (b.le is None or value <= b.le))


def satisfies(value: Any, kind: type, b: Bounds = NO_BOUNDS) -> bool:
    """Whether `value` (already of a type that fits `kind`, or not) meets `kind` and `b`."""
    if kind is bool:
        return isinstance(value, bool)
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value) or not _in_range(value, b):
            return False
        return not (b.odd and value % 2 == 0)
    if kind is list:
        if not isinstance(value, list) or (b.nonempty and not value):
            return False
        return all(satisfies(v, float, b.item or NO_BOUNDS) for v in value)
    if not isinstance(value, str):
        return False
    if b.nonempty and not value.strip():
        return False
    if b.choices is not None and value not in b.choices:
        return False
    return b.pattern is None or re.fullmatch(b.pattern, value) is not None


def kind_of(hint: Any) -> tuple[type, bool]:
    """(base type, None allowed) of a field's type hint: `int | None` -> (int, True)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list:
        return list, False
    if args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], len(rest) < len(args)
    return hint, False


def check_dataclass(obj: Any, report: typing.Callable[[str, str, Any], Exception], prefix: str = "") -> None:
    """Check every field of a (nested) dataclass against its type hint and `Bounds`.

    `report(key, requirement, value)` makes the exception to raise for the first bad field."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_dataclass(value, report, f"{key}.")
            continue
        kind, optional = kind_of(hints[f.name])
        if value is None and optional:
            continue
        bounds = field_bounds(f)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # an int is a fine float
        if not satisfies(value, kind, bounds):
            raise report(key, describe(kind, bounds), getattr(obj, f.name))


def option(kind: type, **bounds) -> typing.Callable[[str], Any]:
    """An argparse `type=` that parses `kind` (int or float) and checks the bounds; argparse then
    reports `--name: must be an integer >= 1, got '0'` and exits 2."""
    b = Bounds(**bounds)

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is None or not satisfies(value, kind, b):
            raise argparse.ArgumentTypeError(f"must be {describe(kind, b)}, got {text!r}")
        return value

    parse.__name__ = describe(kind, b)
    return parse


def device_option(text: str) -> str:
    """argparse `type=` of `--device`: the names `train.device` takes."""
    if not satisfies(text, str, DEVICE):
        raise argparse.ArgumentTypeError(f"must be {DEVICE.pattern_text}, got {text!r}")
    return text


DEVICE = Bounds(pattern=r"auto|cpu|mps|cuda(:[0-9]+)?", pattern_text="auto, cpu, cuda, cuda:N or mps")
