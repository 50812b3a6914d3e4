"""Predictions: reading and checking an ActivityNet submission (`load_predictions`, the strict
reader; `read_predictions`, its msgspec fast path with the same guarantees) and flattening it into
arrays (`flatten_predictions`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from pathlib import Path

import numpy as np

from gsmt.errors import GsmtError
from gsmt.io.read import parse_json, read_json, read_text


def _check_number(x: object) -> bool:
    try:  # an int past every float (10**400) overflows in isfinite: not a number gsmt takes either
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    except OverflowError:
        return False


def _shown(p: object) -> str:
    try:
        return f"{p!r:.200}"
    except ValueError:  # an int of more than 4,300 digits has no repr
        return f"a {type(p).__name__} holding a number too long to show"


def _check_results(results: object, where: str) -> dict[str, list[dict]]:
    if not isinstance(results, Mapping):
        raise GsmtError(where, "'results' must map video ids to lists of predictions")
    for vid, preds in results.items():
        if not isinstance(preds, list):
            raise GsmtError(where, f"video {vid!r}: predictions must be a list")
        for i, p in enumerate(preds):
            ok = (isinstance(p, Mapping) and isinstance(p.get("label"), str)
                  and _check_number(p.get("score")) and isinstance(p.get("segment"), (list, tuple))
                  and len(p["segment"]) == 2 and all(_check_number(t) for t in p["segment"]))
            if not ok:
                raise GsmtError(where, f"video {vid!r}, prediction {i}: expected "
                                       "{'label': str, 'score': number, 'segment': [start, end]} "
                                       f"with finite numbers, got {_shown(p)}")
    return dict(results)


def load_predictions(path: str | Path) -> dict[str, list[dict]]:
    """Read an ActivityNet submission JSON `{"results": {video_id: [{label, score, segment}]}}`
    (gzip-compressed too: magic bytes or a `.gz` name)."""
    if not Path(path).exists():
        raise GsmtError(path, "file not found")
    data = read_json(path)  # bounded, UTF-8, a video id listed twice refused
    if not isinstance(data, dict) or "results" not in data:
        raise GsmtError(path, "not an ActivityNet submission: no top-level 'results' key")
    return _check_results(data["results"], str(path))


# The fast path of `read_predictions` (issue 14): msgspec decodes and checks the schema in one pass
# in C. It refuses NaN/Infinity literals, booleans and out-of-range numbers, as `_check_results`
# does; what it cannot see (a key listed twice: msgspec keeps the last) is ruled out by counting
# colons, below. Any doubt sends the file to the strict reader, which then names the fault.
_FAST: tuple | None = None


def _fast_decoders() -> tuple | None:
    """(top-level decoder, results decoder, record type), or None without msgspec."""
    global _FAST
    if _FAST is None:
        try:
            import msgspec
        except ImportError:  # an optional speed-up: the strict reader does the same job
            _FAST = ()
        else:
            # gc=False: a record holds a str, a float and a tuple of floats, so it can never be
            # part of a reference cycle; untracked, half a million of them decode 4x faster.
            class Prediction(msgspec.Struct, gc=False):
                """One prediction record; `p["score"]` works as on the dict the strict reader gives."""

                label: str
                score: float
                segment: tuple[float, float]

                def __getitem__(self, key: str):
                    return getattr(self, key)

            _FAST = (msgspec.json.Decoder(dict[str, msgspec.Raw]),
                     msgspec.json.Decoder(dict[str, list[Prediction]]), Prediction, msgspec.DecodeError)
    return _FAST or None


def _fast_results(path: str | Path) -> dict[str, list] | None:
    """`results` of a submission read by msgspec, or None where only the strict reader may answer.

    Same guarantees as `read_json` + `_check_results`: the bounded UTF-8 read is the same; the
    other top-level values (version, external_data, ...) go through the strict `parse_json`; for
    `results`, every colon of the text is either a member of an object or inside a string, and no
    escape writes a colon (`\\u003a` sends the file to the strict reader), so

        colons in the text == video ids + 3 x predictions + colons in ids and labels

    holds exactly when no object lists a key twice and no prediction carries an extra field.
    """
    fast = _fast_decoders()
    if fast is None:
        return None
    top_decoder, results_decoder, _, decode_error = fast
    text = read_text(path)  # bounded, UTF-8 checked, a byte-order mark dropped
    if "\\u003" in text:  # perhaps an escaped colon (\\u003a): one scan, rare false alarms
        return None
    try:
        top = top_decoder.decode(text)
        raw = top.get("results")
        if raw is None:
            return None
        results = results_decoder.decode(raw)
    except (decode_error, RecursionError):  # RecursionError: msgspec's depth limit
        return None
    expected = len(top) + sum(key.count(":") for key in top)
    for key, value in top.items():
        if key != "results":
            piece = bytes(value).decode("utf-8")
            try:
                parse_json(piece, path)  # duplicate keys and runaway nesting of the other values
            except GsmtError:
                return None
            expected += piece.count(":")
    labels = list(map(attrgetter("label"), chain.from_iterable(results.values())))
    expected += (len(results) + 3 * len(labels) + "".join(results).count(":")
                 + "".join(labels).count(":"))
    if text.count(":") != expected:
        return None
    return results


def read_predictions(path: str | Path) -> dict[str, list]:
    """`load_predictions`, fast: the same checks and the same numbers, as records that answer
    `p["label"]`, `p.label` alike (msgspec; the strict reader's dicts when it is missing or when
    the file needs a closer look, so every error message is the strict reader's)."""
    if not Path(path).exists():
        raise GsmtError(path, "file not found")
    results = _fast_results(path)
    return results if results is not None else load_predictions(path)


@dataclass
class FlatPredictions:
    """All predictions as flat arrays, in file order (videos in dict order, then each list)."""

    video_ids: list[str]  # the predictions' video ids, dict order
    video: np.ndarray  # [N] int64 index into video_ids
    segments: np.ndarray  # [N, 2] float64 seconds
    label: np.ndarray  # [N] int64 id in `classes`; -1 for a name not in `classes`
    score: np.ndarray  # [N] float64
    unknown_labels: list[str] = field(default_factory=list)  # names mapped to -1


def flatten_predictions(predictions: Mapping[str, list[dict]], classes: Sequence[str]) -> FlatPredictions:
    """Convert `{video_id: [{label, score, segment}]}` into flat arrays, keeping file order."""
    video_ids = list(predictions)
    lists = [predictions[v] for v in video_ids]
    counts = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    flat = [p for x in lists for p in x]
    n = len(flat)
    index = {name: i for i, name in enumerate(classes)}
    fast = _FAST and set(map(type, flat)) == {_FAST[2]}  # records of `read_predictions`
    get = attrgetter if fast else itemgetter
    names = list(map(get("label"), flat))
    label = np.fromiter(map(index.get, names, repeat(-1, n)), dtype=np.int64, count=n)
    score = np.fromiter(map(get("score"), flat), dtype=np.float64, count=n)
    segments = np.fromiter(chain.from_iterable(map(get("segment"), flat)), dtype=np.float64,
                           count=2 * n).reshape(n, 2)
    unknown = sorted({names[i] for i in np.flatnonzero(label < 0)})
    video = np.repeat(np.arange(len(video_ids), dtype=np.int64), counts)
    return FlatPredictions(video_ids, video, segments, label, score, unknown)
