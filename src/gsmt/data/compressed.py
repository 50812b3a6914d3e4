"""Transparent gzip for the text files gsmt reads (annotations, CSV lists, blocked ids, predictions).

A file is gzip when its first two bytes are the gzip magic (0x1f 0x8b) or its name ends in `.gz`;
it is then decompressed in memory. Format detection looks at the name without `.gz`
(`x.json.gz` is JSON, `x.csv.gz` is CSV). Every failure is one `GsmtError` naming the file.

Reads are bounded: a device (`/dev/zero`, `/dev/urandom`) is refused before a byte is read, and a
file, a pipe or a gzip stream is read only up to `max_input_bytes()` (1 GiB; the environment
variable `GSMT_MAX_INPUT_MB` changes it), so an unbounded input ends in an error, quickly.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

from gsmt.errors import GsmtError

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


def read_text(path: str | Path) -> str:
    """The file as UTF-8 text (a byte-order mark is dropped), decompressed when it is gzip."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise GsmtError(path, "not UTF-8 text") from None
