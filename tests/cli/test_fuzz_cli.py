"""Fuzz of the command line (hypothesis): for every command, any combination of its options (good
values, edge values, garbage, missing and wrong-kind paths, unwritable outputs) ends in exit 0, or
in exit 2 with exactly one `gsmt: error:` line (the last on stderr); main() never raises, and no
file changes outside the command's output location (issue 13, items 9 and 10).

Everything runs in-process on a micro world (4 videos, D=8, a 1-epoch run) in a temporary folder
that is the working directory. `train` and `demo` are fuzzed with one refused value always among
their options (appended last, so it wins), so they stop before training. A few seconds in CI;
`GSMT_FUZZ_EXAMPLES=500` runs that many examples per command (a benchmark-sized run).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import single_thread
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gsmt.cli import main
from gsmt.synth.generate import generate

SCALE = int(os.environ.get("GSMT_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int):
    return settings(max_examples=SCALE or examples, deadline=None, database=None, derandomize=not SCALE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


MICRO_RUN = ["data.T=16", "model.hidden_dim=8", "model.num_layers=1", "train.epochs=1", "train.batch_size=4",
             "train.device=cpu", "train.threads=1", "data.val_fraction=0", "train.ema=0"]
VIDEO = "anet_like_00000"

# Output locations, relative to the world. Writable ones are the only places a change may appear.
FRESH_FOLDERS = ["outs/new", "ro/new"]  # ro/ is read-only: only root creates in it
FRESH_FILES = ["outs/new.json", "outs/new.png", "outs/old.json", "ro/x.json"]
BAD_FOLDERS = ["outs/old.json", "afile/sub", "/proc/gsmt-fuzz", ""]
BAD_FILES = ["outs", "afile/x.json", "/proc/gsmt-fuzz.json", "/dev/null", ""]
WRITABLE = set(FRESH_FOLDERS + FRESH_FILES)

NUMBERS = ["0", "-1", "nan", "inf", "1e309", "abc", "", "2.5", "0x10", "1\n2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    generate(root / "data", preset="anet-like", videos=4, num_classes=2, feature_dim=8, seed=0)
    sets = [a for o in MICRO_RUN for a in ("--set", o)]
    with single_thread():
        assert main(["train", "demo", "--data", str(root / "data"), "--out", str(root / "run"), "--quiet",
                     *sets]) == 0
        assert main(["predict", "--checkpoint", str(root / "run"), "--data", str(root / "data"),
                     "--out", str(root / "preds.json")]) == 0
    (root / "afile").write_text("not a gsmt file\n")
    (root / "durations.csv").write_text("video,duration\n" + "".join(
        f"{p.stem},60\n" for p in sorted((root / "data" / "features").glob("*.npy"))))
    (root / "scores.json").write_text(json.dumps({VIDEO: {"action_0": 0.9, "action_1": 0.1}}))
    (root / "blocked.json").write_text(json.dumps([VIDEO]))
    # Issue 33: numbers past every float (and past Python's int-string limit), a label that breaks lines.
    (root / "long_number.json").write_text(re.sub(r'"score": [^,}]+', '"score": 1' + "0" * 400,
                                                  (root / "preds.json").read_text(), count=1))
    (root / "huge_number.json").write_text('{"version": "1.3", "results": {"%s": [{"label": "a", "score": 1%s, '
                                           '"segment": [1, 2]}]}}' % (VIDEO, "0" * 5000))
    ann = json.loads((root / "data" / "annotations.json").read_text())
    first = next(iter(ann["database"].values()))["annotations"][0]
    first["label"] = "a\n\n99:00:00.000 --> 99:00:01.000\nb"
    (root / "control_label.json").write_text(json.dumps(ann))
    # Issue 33, h7: a video of 1e6 s (an allowed duration) whose features would be 3.6 GiB at once.
    (root / "long_video.json").write_text(json.dumps({"database": {"v_long": {
        "subset": "validation", "duration": 1e6, "annotations": [{"label": "a", "segment": [1, 5]}]}}}))
    (root / "ro").mkdir()
    (root / "ro" / "keep.txt").write_text("mine\n")
    (root / "ro").chmod(0o555)
    yield root
    (root / "ro").chmod(0o755)


def _reset_outs(world: Path) -> None:
    shutil.rmtree(world / "outs", ignore_errors=True)
    (world / "outs").mkdir()
    (world / "outs" / "old.json").write_text("an old output\n")
    for name in ("new", "x.json"):  # what root could write into the read-only folder
        path = world / "ro" / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def last_value(argv: list[str], flag: str) -> str | None:
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]
    return values[-1] if values else None


def run_and_check(world: Path, argv: list[str], out_flag: str) -> int:
    """Run `gsmt ARGV` in `world`; check the exit code, the error line and what changed on disk."""
    _reset_outs(world)
    before = snapshot(world)
    cwd = os.getcwd()
    stdout, stderr = io.StringIO(), io.StringIO()
    os.chdir(world)
    try:
        with single_thread(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)  # any exception other than argparse's exit fails the test
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(cwd)
    err = stderr.getvalue()
    assert code in (0, 2), (argv, code, err)
    event(f"exit {code}")  # pytest --hypothesis-show-statistics shows the mix
    assert "Traceback" not in stdout.getvalue() + err, (argv, err)
    errors = [line for line in err.splitlines() if line.startswith("gsmt: error:")]
    if code == 2:
        assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], (argv, err)
    else:
        assert not errors, (argv, err)
    out = last_value(argv, out_flag)
    after = snapshot(world)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if out in WRITABLE:
        outside = {k for k in changed if k != out and not k.startswith(out + "/")}
        assert not outside, (argv, sorted(outside))
    else:
        assert not changed, (argv, sorted(changed))
    return code


def options(spec: list[tuple[str, list, list]]) -> st.SearchStrategy[list[str]]:
    """A command line from (flag, good values, bad values): each option is bad one time in 8, so
    that about a quarter of the command lines are fully good. None leaves the option out, True is
    a bare flag, a list the words themselves, an empty flag a positional argument."""
    def one(flag, good, bad):
        pick = st.sampled_from(good)
        if bad:
            pick = st.integers(0, 7).flatmap(lambda r: st.sampled_from(bad if r == 0 else good))
        return pick.map(lambda v: [] if v is None else [flag] if v is True else list(v) if isinstance(v, list)
                        else [flag, str(v)] if flag else [str(v)])
    return st.tuples(*(one(*s) for s in spec)).map(lambda parts: [a for part in parts for a in part])


GOOD_SETS = [None, None, *MICRO_RUN]
BAD_SETS = ["train.lr=0", "train.lr=nan", "train.epochs=0", "train.batch_size=-1", "train.schedule=cosin",
            "train.device=gpu", "train.num_workers=-1", "data.val_fraction=1", "data.window_stride=0",
            "decode.nms_sigma=0", "decode.max_keep=0", "decode.thresholds=[]", "decode.theta_c=.inf",
            "train.nope=1", "nope", "train=0", "data.fps=0", "data.T=1e400", "name=[1]",
            "train.epochs=1" + "0" * 400, "train.lr=1" + "0" * 5000]
INVALID_LAST = [["--set", "train.lr=0"], ["--set", "decode.thresholds=[]"], ["--set", "train.schedule=nope"],
                ["--set", "data.val_fraction=1"], ["--set", "train.device=tpu"], ["--set", "train.nope=1"],
                ["--set", "model.dropout=nan"], ["--set", "train.epochs=.inf"], ["--out", "afile/sub"],
                ["--out", "outs/old.json"], ["--out", "/proc/gsmt-fuzz"]]


@fuzz_settings(10)
@given(argv=options([
    ("", ["demo", "anet", "thumos"], ["afile", "missing.yaml", "data"]),
    ("--data", ["data"], ["missing", "afile", None]),
    ("--out", FRESH_FOLDERS, [*BAD_FOLDERS, "data", "run", None]),
    ("--set", GOOD_SETS, BAD_SETS), ("--set", GOOD_SETS, BAD_SETS), ("--set", GOOD_SETS, BAD_SETS),
    ("--resume", [None, True], []), ("--overwrite", [None, True], []), ("--quiet", [True], []),
]), invalid=st.sampled_from(INVALID_LAST))
def test_fuzz_train(world, argv, invalid):
    assert run_and_check(world, ["train", *argv, *invalid], "--out") == 2


@fuzz_settings(8)
@given(argv=options([
    ("--preset", ["thumos-like", "anet-like", None], ["nope"]),
    ("--videos", [None, "2", "4"], [*NUMBERS, "1"]),
    ("--seed", [None, "0", "5"], ["-1", "4294967296", "x"]),
    ("--out", FRESH_FOLDERS, [*BAD_FOLDERS, None]),
    ("--set", GOOD_SETS, BAD_SETS), ("--set", GOOD_SETS, BAD_SETS),
    ("--overwrite", [None, True], []), ("--quiet", [True], []),
]), invalid=st.sampled_from([*INVALID_LAST, ["--videos", "0"], ["--videos", "1"], ["--seed", "-1"]]))
def test_fuzz_demo(world, argv, invalid):
    assert run_and_check(world, ["demo", *argv, *invalid], "--out") == 2


@fuzz_settings(20)
@given(argv=options([
    ("--preset", ["thumos-like", "anet-like"], ["nope", None]),
    ("--timelines", [None, None, "data/annotations.json", "thumos14"], ["afile", "missing.json", "data",
                                                                         "long_video.json"]),
    ("--videos", ["1", "2", "3"], ["0", "-1", "x", "1e3"]),
    ("--classes", [None, "1", "3", "1000"], ["0", "-3"]),
    ("--feature-dim", [None, "4", "8"], ["0", "-2", "x"]),
    ("--difficulty", [None, "0", "0.5", "3"], ["-1", "nan", "inf"]),
    ("--feature-model", [None, "prototype", "phases", "motion"], ["bogus"]),
    ("--seed", [None, "0", "7", "4294967295"], ["-1", "4294967296", "x"]),
    ("--fps", [None, "30", "0.5"], ["0", "-1", "nan"]),
    ("--feature-stride", [None, "8", "1", "1000"], ["0"]),
    ("--feature-window", [None, "16", "1", "1000"], ["0"]),
    ("--overwrite", [None, True], []),
    ("--out", FRESH_FOLDERS, [*BAD_FOLDERS, None]),
]))
def test_fuzz_synth(world, argv):
    run_and_check(world, ["synth", *argv], "--out")


@fuzz_settings(14)
@given(argv=options([
    ("--checkpoint", ["run", "run/last.pt"], ["afile", "missing", "data", None]),
    ("", [["--data", "data"], ["--features", "data/features"]],  # exactly one of them
     [None, ["--data", "data", "--features", "data/features"], ["--data", "missing"], ["--data", "afile"],
      ["--features", "afile"], ["--features", "missing"], ["--features", "data"]]),
    ("--subset", [None, "validation", "training"], ["nope"]),
    ("--fps", [None, "30", "0.5"], NUMBERS),
    ("--feature-stride", [None, "16", "1"], ["0", "-4", "x"]),
    ("--feature-window", [None, "16", "1"], ["0", "1.5"]),
    ("--durations", [None, "durations.csv"], ["afile", "missing.csv"]),
    ("--batch-size", [None, "1", "3"], ["0", "-1"]),
    ("--device", [None, "cpu", "auto"], ["gpu", "cuda:7", ""]),
    ("--fuse", [None, None, "scores.json"], ["afile", "missing.json"]),
    ("--fuse-mode", [None, "multiply", "topk"], ["x"]),
    ("--set", [None, "decode.max_keep=5", "decode.thresholds=[0.5]", "decode.score=run"],
     ["decode.max_keep=0", "train.lr=1", "decode.topk_classes=3", "decode.tiou=abc", "decode.nms_sigma=nan",
      "decode.nope=1"]),
    ("--out", FRESH_FILES, [*BAD_FILES, None]),
]))
def test_fuzz_predict(world, argv):
    run_and_check(world, ["predict", *argv], "--out")


GT = (["data/annotations.json"], ["preds.json", "afile", "missing.json", "data", None, "control_label.json",
                                  "huge_number.json"])
PRED = (["preds.json"], ["data/annotations.json", "afile", "missing.json", None, "long_number.json",
                         "huge_number.json"])
BLOCKED = ([None, None, "activitynet13", "blocked.json"], ["afile", "missing.json"])
TIOU_SET = ([None, "anet", "thumos", "0.3,0.5"], ["abc", "", "2", "nan", "0.5,,0.7"])
SUBSET = ([None, "validation"], ["training", "nope"])


@fuzz_settings(14)
@given(argv=options([
    ("--gt", *GT), ("--pred", *PRED), ("--subset", *SUBSET), ("--tiou", *TIOU_SET), ("--blocked", *BLOCKED),
    ("--json", [None, *FRESH_FILES], BAD_FILES),
]))
def test_fuzz_eval(world, argv):
    run_and_check(world, ["eval", *argv], "--json")


@fuzz_settings(6)
@given(argv=options([
    ("--gt", *GT), ("--pred", *PRED), ("--subset", *SUBSET), ("--tiou", [None, "0.5", "1"], NUMBERS),
    ("--tiou-set", *TIOU_SET), ("--blocked", *BLOCKED), ("--out", FRESH_FOLDERS, [*BAD_FOLDERS, None]),
]))
def test_fuzz_analyze(world, argv):
    run_and_check(world, ["analyze", *argv], "--out")


@fuzz_settings(8)
@given(argv=options([
    ("--gt", [None, "data/annotations.json"], ["afile", "missing.json"]),
    ("--pred", [None, "preds.json"], ["afile"]),
    ("--video", [None, VIDEO], ["nope"]),
    ("--checkpoint", [None, "run"], ["afile", "missing"]),
    ("--features", [None, f"data/features/{VIDEO}.npy"], ["afile", "missing.npy"]),
    ("--log", [None, "run", "run/log.jsonl"], ["afile", "missing"]),
    ("--top", [None, "1", "5"], ["0", "-1", "x"]),
    ("--out", FRESH_FILES, [*BAD_FILES, None]),
]))
def test_fuzz_visualize(world, argv):
    run_and_check(world, ["visualize", *argv], "--out")


# ------------------------------------------------------------------ video commands (issue 33, h9)


@pytest.fixture(scope="module")
def vworld(world) -> Path:
    """The micro world plus a DINOv2 of 8 dimensions (the run's D), a good 2-s clip and hostile video
    files: an hour's gap between two frames, an extreme aspect ratio, audio only, a truncated file, a
    degenerate display matrix; and a model folder whose preprocessor config holds a string mean."""
    import struct
    from fractions import Fraction

    import av
    import numpy as np
    import torch
    from transformers import Dinov2Config, Dinov2Model

    from gsmt.video.clips import encode_mp4

    root = world
    if (root / "dino").exists():
        return root
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(image_size=32, patch_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16)).save_pretrained(root / "dino")
    shutil.copytree(root / "dino", root / "badproc")
    (root / "badproc" / "preprocessor_config.json").write_text('{"image_mean": "a", "rescale_factor": 1e400}')
    arrays = np.random.default_rng(0).integers(0, 256, (20, 48, 64, 3), dtype=np.uint8)
    (root / "videos").mkdir()
    encode_mp4(root / "videos" / "a.mp4", arrays, 10)
    hostile = root / "hostile"
    hostile.mkdir()

    def timed(name, times, size=(64, 48)):
        with av.open(str(hostile / name), "w") as c:
            s = c.add_stream("mpeg4", rate=10)
            s.width, s.height, s.pix_fmt = *size, "yuv420p"
            s.time_base = s.codec_context.time_base = Fraction(1, 1000)
            for t in times:
                f = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), np.uint8), format="rgb24")
                f.pts, f.time_base = int(t * 1000), Fraction(1, 1000)
                for p in s.encode(f):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)

    timed("gap.mkv", [0.0, 0.1, 3600.1])
    timed("wide.mkv", [0.0, 0.1], size=(4096, 2))
    with av.open(str(hostile / "song.m4a"), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    whole = (root / "videos" / "a.mp4").read_bytes()
    (hostile / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    rot = bytearray(encode_mp4(hostile / "rot.mp4", arrays[:3], 10, rotation=90).read_bytes())
    box = rot.find(b"tkhd") - 4
    rot[box + 48:box + 84] = struct.pack(">9i", *[0] * 8, 0x40000000)
    (hostile / "rot.mp4").write_bytes(bytes(rot))
    return root


VIDEOS = (["videos", "videos/a.mp4"], ["hostile", "hostile/gap.mkv", "hostile/wide.mkv", "hostile/song.m4a",
                                        "hostile/cut.mp4", "hostile/rot.mp4", "afile", "missing.mp4", "data"])
BACKBONE = (["dino"], ["badproc", "afile", "missing", "data", None])


@fuzz_settings(8)
@given(argv=options([
    ("--videos", *VIDEOS), ("--backbone", *BACKBONE),
    ("--fps", ["10", "4"], NUMBERS), ("--feature-stride", ["2", "1"], ["0", "x"]),
    ("--feature-window", ["4", "2"], ["0", "5000"]),
    ("--batch-size", [None, "4"], ["0", "2000"]), ("--device", [None, "cpu"], ["gpu", "cuda:7"]),
    ("--annotations", [None], ["afile", "missing.json"]), ("--quiet", [True], []),
    ("--out", FRESH_FOLDERS, [*BAD_FOLDERS, "videos", "dino", None]),
]))
def test_fuzz_extract(vworld, argv):
    run_and_check(vworld, ["extract", *argv], "--out")


@fuzz_settings(6)
@given(argv=options([
    ("", VIDEOS[0], VIDEOS[1]), ("--checkpoint", ["run"], ["afile", "missing", "data", None]),
    ("--backbone", *BACKBONE), ("--fps", [None, "10"], ["0", "nan"]),
    ("--min-score", [None, "0.1"], ["-1", "nan", "2"]), ("--top", [None, "3"], ["0"]),
    ("--batch-size", [None, "4"], ["0"]), ("--quiet", [True], []),
    ("--out", FRESH_FOLDERS, [*BAD_FOLDERS, "videos", "dino", None]),
]))
def test_fuzz_detect(vworld, argv):
    run_and_check(vworld, ["detect", *argv], "--out")


@fuzz_settings(6)
@given(argv=options([
    ("--video", [True], []), ("--preset", [None], ["thumos-like"]),
    ("--videos", [None, "2"], ["0", "1", "x"]), ("--seed", [None, "3"], ["-1"]),
    ("--set", GOOD_SETS, BAD_SETS), ("--overwrite", [None, True], []), ("--quiet", [True], []),
    ("--out", FRESH_FOLDERS, [*BAD_FOLDERS, None]),
]), invalid=st.sampled_from([*INVALID_LAST, ["--preset", "anet-like"]]))
def test_fuzz_demo_video(world, argv, invalid):
    """`demo --video` with one refused value (it stops before making clips or training)."""
    assert run_and_check(world, ["demo", *argv, *invalid], "--out") == 2


@pytest.mark.parametrize("argv", [
    ["analyze", "--gt", "data/annotations.json", "--pred", "preds.json"],
    ["detect", "videos", "--checkpoint", "run", "--backbone", "dino", "--quiet"],
    ["extract", "--videos", "videos", "--backbone", "dino", "--fps", "10", "--feature-stride", "2",
     "--feature-window", "4", "--quiet"],
    ["synth", "--preset", "anet-like", "--videos", "2"],
    ["demo", "--quiet"], ["demo", "--video", "--quiet"],
])
def test_an_empty_out_is_never_the_working_folder(vworld, argv, monkeypatch):
    """Found by the video fuzz: `Path("")` is `.`, and these commands wrote into the working folder."""
    monkeypatch.setitem(globals(), "event", lambda *_: None)  # hypothesis' statistics: not a fuzz here
    assert run_and_check(vworld, [*argv, "--out", ""], "--out") == 2
