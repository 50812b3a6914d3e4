"""Reading the files a user hands to gsmt: one bounded, strict reader per text format.

Every JSON, YAML and CSV input of gsmt goes through this module (annotations, predictions, blocked
lists, classifier scores, durations, configs), so each hostile file ends in one `GsmtError` naming
it, before anything is built from it:

- bounded reads (below): devices such as `/dev/zero` are refused, files, pipes
  and gzip streams are read up to `max_input_bytes()`;
- UTF-8 only (a byte-order mark is dropped); other bytes are an error naming their offset;
- JSON: a key listed twice in one object is refused (Python's `json` would keep the last one
  silently: two entries for one video id), nesting deeper than Python can parse is an error;
- YAML: aliases (`*name`, `<<: *name`) are refused while the document is composed, before any
  object is built, so an alias bomb costs nothing; nesting is bounded the same way;
- CSV: a header row is required; rows are dicts.

Also the one rule for a length of time read from a file or an argument: `check_seconds`.

Transparent gzip and bounded reads:
A file is gzip when its first two bytes are the gzip magic (0x1f 0x8b) or its name ends in `.gz`;
it is then decompressed in memory. Format detection looks at the name without `.gz`
(`x.json.gz` is JSON, `x.csv.gz` is CSV). Every failure is one `GsmtError` naming the file.

Reads are bounded: a device (`/dev/zero`, `/dev/urandom`) is refused before a byte is read, and a
file, a pipe or a gzip stream is read only up to `max_input_bytes()` (1 GiB; the environment
variable `GSMT_MAX_INPUT_MB` changes it), so an unbounded input ends in an error, quickly.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
import zlib
from pathlib import Path

import yaml

from gsmt.errors import GsmtError

# ------------------------------------------------------------------ bytes: bounded, gzip

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_INPUT_MB = 1024
_CHUNK = 1 << 20


def max_input_bytes() -> int:
    """The most bytes gsmt reads from one text input (also after gzip decompression)."""
    try:
        mb = float(os.environ.get("GSMT_MAX_INPUT_MB", DEFAULT_MAX_INPUT_MB))
    except ValueError:
        mb = DEFAULT_MAX_INPUT_MB
    return max(1, int(mb * (1 << 20)))


def _too_big(limit: int) -> str:
    return (f"larger than {limit / (1 << 20):g} MB, refused (set GSMT_MAX_INPUT_MB to read a "
            "larger file)")


def check_readable_file(path: str | Path) -> os.stat_result:
    """`os.stat` of an existing file that is not a folder nor a device; a GsmtError otherwise.

    Regular files, pipes and sockets pass (process substitution `<(zcat x.gz)` works); a
    character or block device such as `/dev/zero` never ends and is refused.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise GsmtError(path, "no such file") from None
    except OSError as exc:
        raise GsmtError(path, f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise GsmtError(path, "is a folder, expected a file")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise GsmtError(path, "not a regular file (a device), refused")
    return st


def read_capped(path: str | Path, limit: int | None = None) -> bytes:
    """The raw bytes of a file, refused (GsmtError) when it holds more than `limit` bytes."""
    path = Path(path)
    limit = max_input_bytes() if limit is None else limit
    st = check_readable_file(path)
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise GsmtError(path, _too_big(limit))
    parts, size = [], 0
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(min(_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise GsmtError(path, _too_big(limit))
    except OSError as exc:
        raise GsmtError(path, f"cannot read: {exc.strerror or exc}") from None
    return b"".join(parts)


def _gunzip(data: bytes, path: Path, limit: int) -> bytes:
    """Decompress every gzip member of `data`, refusing output past `limit` bytes (a gzip bomb)."""
    out, size = [], 0
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = d.decompress(data, limit + 1 - size)
        while True:
            out.append(chunk)
            size += len(chunk)
            if size > limit:
                raise GsmtError(path, "decompressed " + _too_big(limit))
            if d.eof or not d.unconsumed_tail:
                break
            chunk = d.decompress(d.unconsumed_tail, limit + 1 - size)
        if not d.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        data = d.unused_data.lstrip(b"\0")  # trailing zero padding is allowed, as gzip allows it
        if data and data[:2] != GZIP_MAGIC:
            raise OSError("trailing garbage after the gzip data")
    return b"".join(out)


def logical_name(path: str | Path) -> str:
    """The file name without a trailing `.gz` (`a.json.gz` -> `a.json`)."""
    name = Path(path).name
    return name[:-3] if name.lower().endswith(".gz") and len(name) > 3 else name


def logical_suffix(path: str | Path) -> str:
    """The lower-cased suffix of `logical_name` (`a.json.gz` -> `.json`, `a.CSV` -> `.csv`)."""
    return Path(logical_name(path)).suffix.lower()


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, decompressed when it is gzip (magic bytes or `.gz` name); bounded reads."""
    path = Path(path)
    limit = max_input_bytes()
    data = read_capped(path, limit)
    if data[:2] == GZIP_MAGIC or path.name.lower().endswith(".gz"):
        if data[:2] != GZIP_MAGIC:
            raise GsmtError(path, "not a gzip file (the name ends in .gz)")
        try:
            return _gunzip(data, path, limit)
        except (OSError, EOFError, zlib.error) as exc:
            raise GsmtError(path, f"corrupt gzip file ({exc})") from None
    return data


# ------------------------------------------------------------------ text

# A video longer than this (about 11.6 days) is taken for a typo or a hostile number: 1e308 s
# passes `isfinite` and overflows as soon as it is multiplied by a frame rate.
MAX_SECONDS = 1e6
MAX_FPS = 1000.0  # frames per second of a video (high-speed footage: a few hundred)
MAX_FRAMES = 10**7  # feature_stride / feature_window in frames


def decode_utf8(data: bytes, where: str | Path) -> str:
    """`data` as UTF-8 text (a byte-order mark dropped); a GsmtError naming the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        raise GsmtError(where, f"not UTF-8 text (byte 0x{bad} at offset {exc.start})") from None


def read_text(path: str | Path) -> str:
    """A file as UTF-8 text: bounded read, gzip decompressed transparently."""
    return decode_utf8(read_bytes(path), path)


# ------------------------------------------------------------------ JSON


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


# An integer of more digits than this is past every float (1.8e308): converting it would overflow
# (OverflowError), and past 4,300 digits Python refuses even to read it (ValueError). No number gsmt
# reads is that large, so such a literal is refused where the file is parsed, naming the file.
MAX_INT_DIGITS = 300


class LongNumberError(yaml.constructor.ConstructorError):
    """A YAML integer of more than `MAX_INT_DIGITS` digits (`.digits`)."""

    def __init__(self, digits: int, mark):
        super().__init__(None, None, long_number_problem(digits), mark)
        self.digits = digits


class _LongNumber(Exception):
    def __init__(self, digits: int):
        super().__init__(digits)
        self.digits = digits


def long_number_problem(digits: int) -> str:
    return f"a number of {digits} digits: gsmt reads whole numbers of at most {MAX_INT_DIGITS} digits"


def _parse_int(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise _LongNumber(digits)
    return int(literal)


def parse_json(text: str, where: str | Path):
    """Parse JSON text; a duplicate key, bad syntax, runaway nesting or an integer literal of more than
    `MAX_INT_DIGITS` digits is a GsmtError naming `where`."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_parse_int)
    except _LongNumber as exc:
        raise GsmtError(where, f"not valid JSON for gsmt: {long_number_problem(exc.digits)}") from None
    except _DuplicateKey as exc:
        raise GsmtError(where, f"duplicate key {exc.key[:200]!r}: one JSON object lists it twice "
                               "(only one entry may stand; refusing to keep the last silently)") from None
    except json.JSONDecodeError as exc:
        raise GsmtError(where, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise GsmtError(where, "not valid JSON for gsmt: nested too deeply") from None


def read_json(path: str | Path):
    """A JSON file (gzip allowed): bounded, UTF-8, no duplicate keys, bounded nesting."""
    return parse_json(read_text(path), path)


# ------------------------------------------------------------------ YAML


class NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses aliases while composing, before any object is built."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} refused: gsmt configs may not use YAML aliases",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        """A key listed twice in one mapping is refused, naming the key (as JSON's duplicate keys are),
        instead of keeping the last value silently."""
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    twice = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeConstructor names it
                    break
                if twice:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {str(key)[:200]!r}, listed again", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        literal = str(self.construct_scalar(node))
        digits = sum(c.isalnum() for c in literal)  # signs and `_` separators aside
        if digits > MAX_INT_DIGITS:
            raise LongNumberError(digits, node.start_mark)
        return super().construct_yaml_int(node)


NoAliasLoader.add_constructor("tag:yaml.org,2002:int", NoAliasLoader.construct_yaml_int)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def parse_yaml(text: str, where: str | Path):
    """Parse YAML text with `NoAliasLoader`; any failure is one GsmtError naming `where`."""
    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise GsmtError(where, f"not a readable YAML file ({_yaml_problem(exc)})") from None
    except RecursionError:
        raise GsmtError(where, "not a readable YAML file: nested too deeply") from None


def read_yaml_file(path: str | Path):
    """A YAML file: bounded, UTF-8, no aliases, bounded nesting."""
    return parse_yaml(read_text(path), path)


# ------------------------------------------------------------------ CSV


def parse_csv(text: str, where: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header fields, rows as dicts) of CSV text; a malformed file is a GsmtError naming `where`."""
    try:
        # A file object, not `text.splitlines()`: that also splits on U+2028, U+0085, \x0c..., and
        # inside a quoted field, cutting a row in two instead of reading the field as written.
        reader = csv.DictReader(io.StringIO(text, newline=""))
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as exc:
        raise GsmtError(where, f"not a readable CSV file ({exc})") from None
    return fields, rows


def read_csv_rows(path: str | Path, required: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """Rows of a CSV file with a header holding `required` (gzip allowed; UTF-8 only)."""
    fields, rows = parse_csv(read_text(path), path)
    missing = [c for c in required if c not in fields]
    if missing:
        raise GsmtError(path, f"expected a CSV with a header {','.join(required)} ({what}); "
                              f"missing: {', '.join(missing)}")
    return rows


# ------------------------------------------------------------------ numbers


def check_seconds(value: object, where: str | Path, what: str) -> float:
    """A length of time in seconds: a finite number in (0, MAX_SECONDS]; a GsmtError otherwise."""
    if isinstance(value, bool):
        x = math.nan
    else:
        try:
            x = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            x = math.nan
    if not (math.isfinite(x) and 0 < x <= MAX_SECONDS):
        raise GsmtError(where, f"{what} must be a finite number of seconds in (0, {MAX_SECONDS:g}], "
                               f"got {value!r:.60}")
    return x
