"""Every setting is checked before work starts, and every output location before anything is
written (issue 13, items 9 and 10; docs/robustness.md).

Each refused command ends with exit code 2 and exactly one stderr line `gsmt: error: ...` (the last)
naming the config key or the option, no traceback, and nothing written. Everything runs in-process
through `gsmt.cli.main` on a micro dataset (6 videos, D=8) and a 1-epoch micro run of this module.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import typing
from pathlib import Path

import pytest
import torch
from conftest import single_thread

from gsmt.cli import main
from gsmt.config import PRESETS, Config, TrainConfig, load_config, validate
from gsmt.synth.generate import generate
from gsmt.engine.trainer import train
from gsmt.errors import GsmtError
from gsmt.io.guard import check_output_location
from gsmt.schema import field_bounds

pytestmark = pytest.mark.usefixtures("one_thread")

MICRO_RUN = ["data.T=16", "model.hidden_dim=8", "model.num_layers=1", "train.epochs=1", "train.batch_size=4",
             "train.device=cpu", "train.threads=1", "data.val_fraction=0", "train.ema=0"]


def sets(overrides) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    """micro/data (anet-like, 6 videos, 2 classes, D=8) and micro/run (1 epoch)."""
    root = tmp_path_factory.mktemp("micro")
    generate(root / "data", preset="anet-like", videos=6, num_classes=2, feature_dim=8, seed=0)
    with single_thread():
        assert main(["train", "demo", "--data", str(root / "data"), "--out", str(root / "run"), "--quiet",
                     *sets(MICRO_RUN)]) == 0
    return root


def cli(capsys, *argv) -> tuple[int, str, str]:
    """`gsmt ARGV` in-process; argparse's exit (SystemExit) becomes the exit code."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_fatal(result, *names, problem: str = "") -> str:
    """Exit 2, no traceback, exactly one stderr line `gsmt: error: ...`, the last, naming `names`."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("gsmt: error:")]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    for name in names:
        assert str(name) in errors[0], (name, errors[0])
    assert problem in errors[0], (problem, errors[0])
    return errors[0]


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under `root`, a file with its size and modification time (a folder's time
    changes when a file is created and removed in it: the writability probe does so)."""
    return {str(p): None if p.is_dir() else (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def writable(folder: Path) -> bool:
    """Whether this process can really create a file in `folder` (root ignores permission bits)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


# ------------------------------------------------------------------ item 9: the config schema


def test_every_config_value_declares_its_bounds():
    """The schema is declarative: every field that is not a switch or the run's name has bounds."""
    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                yield from walk(hints[f.name], f"{prefix}{f.name}.")
            elif hints[f.name] is not bool and f"{prefix}{f.name}" != "name":
                yield f"{prefix}{f.name}", field_bounds(f)
    unbounded = [key for key, bounds in walk(Config) if bounds == type(bounds)()]
    assert unbounded == []
    validate(Config())
    for name in PRESETS:
        validate(load_config(name))


BAD_CONFIG = [
    ("train.batch_size=0", "train.batch_size", "an integer >= 1, got 0"),
    ("train.batch_size=2.5", "train.batch_size", "must be int"),
    ("train.epochs=0", "train.epochs", "an integer >= 1"),
    ("train.epochs=.inf", "train.epochs", "must be int, got inf"),
    ("train.lr=0", "train.lr", "a finite number > 0, got 0.0"),
    ("train.lr=-1e-3", "train.lr", "a finite number > 0"),
    ("train.lr=nan", "train.lr", "a finite number > 0, got nan"),
    ("train.lr=.inf", "train.lr", "a finite number > 0, got inf"),
    ("train.lr=abc", "train.lr", "must be float"),
    ("train.device=gpu", "train.device", "auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("train.device=cuda:x", "train.device", "auto, cpu, cuda, cuda:N or mps"),
    ("train.num_workers=-1", "train.num_workers", "an integer in [0, 1024]"),
    ("train.num_workers=100000", "train.num_workers", "an integer in [0, 1024]"),
    ("train.threads=-2", "train.threads", "an integer in [0, 1024]"),
    ("train.seed=-1", "train.seed", "an integer in [0, 4294967295]"),
    ("train.schedule=cosin", "train.schedule", "one of cosine, constant, got 'cosin'"),
    ("train.optimizer=adam", "train.optimizer", "one of adamw, sgd"),
    ("train.select_metric=mAP", "train.select_metric", "one of val_mAP, val_loss"),
    # YAML reads on/off, yes/no as booleans: a choice given one names its choices, not the type str.
    ("train.resident=on", "train.resident", "one of auto, always, never, got True (YAML reads on/off, yes/no "
                                            "and true/false as booleans)"),
    ("decode.mode=no", "decode.mode", "one of auto, long, short, own, own+long, got False (YAML reads on/off, yes/no and "
                                      "true/false as booleans)"),
    ("train.device=off", "train.device", "auto, cpu, cuda, cuda:N or mps, got False (YAML reads on/off, "
                                         "yes/no and true/false as booleans)"),
    ("train.ema=1", "train.ema", "in [0, 1)"),
    ("train.max_nonfinite_steps=0", "train.max_nonfinite_steps", ">= 1"),
    ("data.window_stride=0", "data.window_stride", "an integer >= 1"),
    ("data.val_fraction=1", "data.val_fraction", "a finite number in [0, 1), got 1.0"),
    ("data.val_fraction=-0.1", "data.val_fraction", "in [0, 1)"),
    ("data.T=0", "data.T", ">= 1"),
    ("data.fps=0", "data.fps", "a finite number > 0"),
    ("data.feature_stride=0", "data.feature_stride", ">= 1"),
    ("data.feature_window=-16", "data.feature_window", ">= 1"),
    ("data.temporal_mode=resized", "data.temporal_mode", "one of auto, resize, window"),
    ("model.dropout=1", "model.dropout", "in [0, 1)"),
    ("model.pos_encoding=sine", "model.pos_encoding", "one of none, learned, fixed"),
    ("loss.erosion_kernel=4", "loss.erosion_kernel", "an odd integer >= 1"),
    ("loss.lambda1=2", "loss.lambda1", "in [0, 1]"),
    ("decode.nms_sigma=0", "decode.nms_sigma", "a finite number > 0"),
    ("decode.max_keep=0", "decode.max_keep", "an integer >= 1"),
    ("decode.thresholds=[]", "decode.thresholds", "a non-empty list of numbers in (0, 1), got []"),
    ("decode.thresholds=[0, 0.5]", "decode.thresholds", "a non-empty list of numbers in (0, 1)"),
    ("decode.thresholds=[0.5, 1]", "decode.thresholds", "a non-empty list of numbers in (0, 1)"),
    ("decode.thresholds=0.5", "decode.thresholds", "must be a list"),
    ("decode.theta_c=nan", "decode.theta_c", "a finite number in [0, 1], got nan"),
    ("decode.topk_classes=0", "decode.topk_classes", ">= 1"),
    ("decode.mode=medium", "decode.mode", "one of auto, long, short"),
    ("decode.score=max", "decode.score", "one of source, run"),
    ("decode.nms_method=hard", "decode.nms_method", "one of gaussian, linear"),
    ("decode.tiou=abc", "decode.tiou", "auto, anet, thumos, epic, multithumos or a comma list"),
    ("decode.batch_size=0", "decode.batch_size", ">= 1"),
]


@pytest.mark.parametrize("override, key, problem", BAD_CONFIG, ids=[b[0] for b in BAD_CONFIG])
def test_train_refuses_a_bad_config_value_naming_the_key(override, key, problem, tmp_path, capsys):
    run = tmp_path / "run"
    line = assert_fatal(cli(capsys, "train", "demo", "--data", tmp_path / "no-data", "--out", run,
                            "--set", override), f"config key '{key}'", problem=problem)
    assert "demo.yaml with --set" in line  # and the config it came from
    assert list(tmp_path.iterdir()) == []


def test_a_yaml_config_is_checked_like_overrides(tmp_path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text("train:\n  lr: -0.1\n")
    assert_fatal(cli(capsys, "train", config, "--data", tmp_path / "no-data", "--out", tmp_path / "run"),
                 config, "config key 'train.lr'", problem="a finite number > 0, got -0.1")
    assert not (tmp_path / "run").exists()


def test_keys_that_depend_on_the_data_are_checked_before_the_run_directory_is_made(micro, tmp_path, capsys):
    # Window mode: windows further apart than their length skip snippets.
    thumos = tmp_path / "thumos"
    generate(thumos, preset="thumos-like", videos=3, feature_dim=8, seed=0)
    assert_fatal(cli(capsys, "train", "demo", "--data", thumos, "--out", tmp_path / "run", "--quiet",
                     *sets(MICRO_RUN), "--set", "data.window_stride=24"),
                 "config key 'data.window_stride'",
                 problem="<= data.T (16) in window mode (windows further apart than their length skip "
                         "snippets), got 24")
    # More classes per snippet than the dataset has (K = 2).
    assert_fatal(cli(capsys, "train", "demo", "--data", micro / "data", "--out", tmp_path / "run", "--quiet",
                     *sets(MICRO_RUN), "--set", "decode.topk_classes=3"),
                 "config key 'decode.topk_classes'", problem="<= the dataset's 2 classes, got 3")
    assert not (tmp_path / "run").exists()


def test_a_config_built_in_python_is_checked_by_train(micro, tmp_path):
    cfg = Config(train=dataclasses.replace(TrainConfig(), lr=-1.0))
    with pytest.raises(GsmtError, match=r"config key 'train\.lr' must be a finite number > 0, got -1\.0"):
        train(cfg, micro / "data", tmp_path / "run", progress=False)
    cfg = Config(train=dataclasses.replace(TrainConfig(), schedule="linear"))  # never a silent cosine
    with pytest.raises(GsmtError, match=r"config key 'train\.schedule' must be one of cosine, constant"):
        train(cfg, micro / "data", tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_config_out_of_bounds_is_refused(micro, tmp_path, capsys):
    state = torch.load(micro / "run" / "last.pt", map_location="cpu", weights_only=True)
    state["meta"]["config"]["decode"]["max_keep"] = 0
    state["meta"]["decode"]["max_keep"] = 0
    torch.save(state, tmp_path / "bad.pt")
    assert_fatal(cli(capsys, "predict", "--checkpoint", tmp_path / "bad.pt", "--data", micro / "data",
                     "--out", tmp_path / "p.json"), "config key 'decode.max_keep'", problem=">= 1, got 0")
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("override, key", [
    ("decode.nms_sigma=0", "config key 'decode.nms_sigma'"),
    ("decode.thresholds=[]", "config key 'decode.thresholds'"),
    ("decode.theta_c=.inf", "config key 'decode.theta_c'"),
    ("decode.topk_classes=3", "decode.topk_classes must be <= the model's 2 classes"),
])
def test_predict_set_decode_is_checked(micro, tmp_path, capsys, override, key):
    assert_fatal(cli(capsys, "predict", "--checkpoint", micro / "run", "--data", micro / "data",
                     "--out", tmp_path / "p.json", "--set", override), "--set", key)
    assert not (tmp_path / "p.json").exists()


def test_predict_set_decode_auto_takes_the_default_of_the_models_temporal_mode(micro, tmp_path, capsys):
    outputs = {}
    for value in ("auto", "own+long"):  # the micro run is resize mode
        out = tmp_path / f"{value}.json"
        assert cli(capsys, "predict", "--checkpoint", micro / "run", "--data", micro / "data", "--out", out,
                   "--set", f"decode.mode={value}", "--set", "decode.mask_score=auto")[0] == 0
        outputs[value] = out.read_bytes()
    assert outputs["auto"] == outputs["own+long"]


# ------------------------------------------------------------------ item 9: the CLI's own options

BAD_OPTIONS = [  # (command line without the bad option, option, value, problem)
    (["predict", "--checkpoint", "RUN", "--features", "FEATURES"], "--fps", "0", "a finite number > 0, got '0'"),
    (["predict", "--checkpoint", "RUN", "--features", "FEATURES"], "--fps", "-30", "a finite number > 0"),
    (["predict", "--checkpoint", "RUN", "--features", "FEATURES"], "--fps", "nan", "a finite number > 0"),
    (["predict", "--checkpoint", "RUN", "--features", "FEATURES"], "--fps", "inf", "a finite number > 0"),
    (["predict", "--checkpoint", "RUN", "--features", "FEATURES"], "--feature-stride", "0", "an integer >= 1"),
    (["predict", "--checkpoint", "RUN", "--features", "FEATURES"], "--feature-window", "-1", "an integer >= 1"),
    (["predict", "--checkpoint", "RUN", "--features", "FEATURES"], "--feature-window", "16.5", "an integer >= 1"),
    (["predict", "--checkpoint", "RUN", "--data", "DATA"], "--batch-size", "0", "an integer >= 1, got '0'"),
    (["predict", "--checkpoint", "RUN", "--data", "DATA"], "--device", "gpu", "auto, cpu, cuda, cuda:N or mps"),
    (["demo"], "--videos", "0", "an integer >= 2, got '0'"),
    (["demo"], "--videos", "1", "an integer >= 2"),
    (["demo"], "--videos", "many", "an integer >= 2"),
    (["demo"], "--seed", "-1", "an integer in [0, 4294967295]"),
    (["synth", "--preset", "anet-like"], "--videos", "0", "an integer >= 1"),
    (["synth", "--preset", "anet-like"], "--classes", "0", "an integer >= 1"),
    (["synth", "--preset", "anet-like"], "--feature-dim", "-8", "an integer >= 1"),
    (["synth", "--preset", "anet-like"], "--difficulty", "nan", "a finite number >= 0"),
    (["synth", "--preset", "anet-like"], "--seed", "-3", "an integer in [0, 4294967295]"),
    (["synth", "--preset", "anet-like"], "--fps", "0", "a finite number > 0"),
    (["synth", "--preset", "anet-like"], "--feature-stride", "0", "an integer >= 1"),
    (["synth", "--preset", "anet-like"], "--feature-window", "0", "an integer >= 1"),
    (["visualize", "--log", "RUN"], "--top", "0", "an integer >= 1"),
    (["analyze", "--gt", "GT", "--pred", "GT"], "--tiou", "0", "a finite number in (0, 1]"),
    (["analyze", "--gt", "GT", "--pred", "GT"], "--tiou", "1.5", "a finite number in (0, 1]"),
    (["analyze", "--gt", "GT", "--pred", "GT"], "--tiou-set", "0.5,2", "thresholds must lie in [0, 1]"),
    (["eval", "--gt", "GT", "--pred", "GT"], "--tiou", "abc", "neither a preset"),
]


@pytest.mark.parametrize("argv, option, value, problem", BAD_OPTIONS,
                         ids=[f"{b[0][0]} {b[1]} {b[2]}" for b in BAD_OPTIONS])
def test_cli_options_are_checked_naming_the_option(micro, tmp_path, capsys, argv, option, value, problem):
    names = {"RUN": micro / "run", "DATA": micro / "data", "FEATURES": micro / "data" / "features",
             "GT": micro / "data" / "annotations.json"}
    out = tmp_path / ("out.png" if argv[0] == "visualize" else "out.json" if argv[0] == "predict" else "out")
    argv = [names.get(a, a) for a in argv] + [option, value, "--out", out]
    if argv[0] == "eval":
        argv = argv[:-2]
    line = assert_fatal(cli(capsys, *argv), f"gsmt: error: {option}: ", problem=problem)
    assert line.endswith(f"(see gsmt {argv[0]} --help)")
    assert list(tmp_path.iterdir()) == []


def test_fps_zero_never_falls_back_to_the_checkpoint_grid(micro, tmp_path, capsys):
    """`--fps 0` used to mean "not given" (the checkpoint's grid was taken silently)."""
    base = ["predict", "--checkpoint", micro / "run", "--features", micro / "data" / "features",
            "--out", tmp_path / "p.json"]
    assert_fatal(cli(capsys, *base, "--fps", "0", "--feature-stride", "16", "--feature-window", "16"), "--fps")
    assert cli(capsys, *base, "--fps", "15", "--feature-stride", "16", "--feature-window", "16")[0] == 0


def test_argparse_errors_are_one_line_too(capsys):
    assert_fatal(cli(capsys, "train"), "the following arguments are required: config, --data, --out")
    assert_fatal(cli(capsys, "nope"), "COMMAND: invalid choice: 'nope'")
    assert_fatal(cli(capsys, "predict", "--checkpoint", "x", "--data", "y", "--features", "z", "--out", "p"),
                 "--features: not allowed with argument --data")
    # a line break in a value cannot split the error line
    assert_fatal(cli(capsys, "synth", "--preset", "anet-like", "--videos", "1\n2", "--out", "x"),
                 "--videos", "got '1\\n2'")


def test_a_line_break_in_a_path_stays_on_the_error_line(tmp_path, capsys):
    missing = tmp_path / "two\nlines"
    assert_fatal(cli(capsys, "eval", "--gt", missing, "--pred", missing), "two\\nlines")


# ------------------------------------------------------------------ item 10: output locations


def command(name: str, micro: Path, out: Path, *, poison: bool = False) -> list:
    """A command line whose output is `out`; with `poison`, one input (or setting) that is refused
    right after the output location check, so a run that passes the check stops there."""
    missing = out.parent / "missing-input"
    data, run = micro / "data", micro / "run"
    gt = data / "annotations.json"
    return {
        "train": ["train", "demo", "--data", missing if poison else data, "--out", out, "--quiet",
                  *sets(MICRO_RUN)],
        "demo": ["demo", "--out", out, "--quiet", "--videos", "4",
                 *sets(["train.lr=0"] if poison else MICRO_RUN)],
        "synth": ["synth", "--preset", "anet-like", "--videos", "2", "--feature-dim", "4", "--out", out],
        "visualize": ["visualize", "--log", missing if poison else run, "--out", out],
        "predict": ["predict", "--checkpoint", missing if poison else run, "--data", data, "--out", out],
        "eval": ["eval", "--gt", missing if poison else gt, "--pred", micro / "preds.json", "--json", out],
        "analyze": ["analyze", "--gt", missing if poison else gt, "--pred", micro / "preds.json", "--out", out],
    }[name]


FOLDER_OUTPUTS = ("train", "demo", "synth", "analyze")
FILE_OUTPUTS = ("visualize", "predict", "eval")
FLAG = {"eval": "--json"}


@pytest.fixture(scope="module")
def micro_preds(micro) -> Path:
    with single_thread():
        assert main(["predict", "--checkpoint", str(micro / "run"), "--data", str(micro / "data"),
                     "--out", str(micro / "preds.json")]) == 0
    return micro / "preds.json"


@pytest.fixture
def place(tmp_path) -> Path:
    """tmp/place holding `a-file` and `folder/` (which holds `keep.txt`)."""
    root = tmp_path / "place"
    (root / "folder").mkdir(parents=True)
    (root / "folder" / "keep.txt").write_text("mine\n")
    (root / "a-file").write_text("mine\n")
    return root


@pytest.mark.parametrize("name", FOLDER_OUTPUTS + FILE_OUTPUTS)
def test_an_output_of_the_wrong_kind_is_refused(name, micro, micro_preds, place, capsys):
    flag = FLAG.get(name, "--out")
    if name in FOLDER_OUTPUTS:  # an existing file where a folder is needed
        out, problem = place / "a-file", f"exists and is not a folder: {flag} must be a folder"
    else:  # an existing folder where a file is needed
        out, problem = place / "folder", f"is a folder: {flag} must be a file"
    before = snapshot(place)
    assert_fatal(cli(capsys, *command(name, micro, out)), f"gsmt: error: {out}: {problem}")
    assert snapshot(place) == before


@pytest.mark.parametrize("name", FOLDER_OUTPUTS + FILE_OUTPUTS)
def test_an_output_under_a_file_is_refused(name, micro, micro_preds, place, capsys):
    """Refused whoever runs it, root included: a regular file cannot hold a folder."""
    out = place / "a-file" / ("sub" if name in FOLDER_OUTPUTS else "x.json")
    before = snapshot(place)
    assert_fatal(cli(capsys, *command(name, micro, out)), out,
                 problem=f"cannot be created: {place / 'a-file'} is a file, not a folder: choose another "
                         f"{FLAG.get(name, '--out')}")
    assert snapshot(place) == before


@pytest.mark.parametrize("name", FOLDER_OUTPUTS + FILE_OUTPUTS)
def test_an_output_in_a_read_only_folder(name, micro, micro_preds, place, capsys):
    """Permission bits: refused for a normal user; root may write anyway, and then the command goes
    past the location check (stopped by a missing input, or, synth, writing its dataset)."""
    folder = place / "folder"
    out = folder / ("new" if name in FOLDER_OUTPUTS else "x.json")
    folder.chmod(0o555)
    try:
        can_write = writable(folder)  # False for a normal user, True for root
        before = snapshot(place)
        result = cli(capsys, *command(name, micro, out, poison=True))
        after = snapshot(place)
    finally:
        folder.chmod(0o755)
    if not can_write:
        assert_fatal(result, out, problem=f"cannot write in {folder} (Permission denied)")
        assert after == before
    elif name == "synth":
        assert result[0] == 0 and (out / "annotations.json").is_file()
    else:
        line = assert_fatal(result, "missing-input" if name != "demo" else "config key 'train.lr'")
        assert "cannot write" not in line
        assert after == before


@pytest.mark.parametrize("name", FOLDER_OUTPUTS + FILE_OUTPUTS)
def test_an_output_where_no_one_can_write_is_refused(name, micro, micro_preds, capsys):
    """/proc takes no new files, not even from root (which `os.access` would wave through)."""
    out = Path("/proc") / ("gsmt-out" if name in FOLDER_OUTPUTS else "gsmt-out.json")
    assert_fatal(cli(capsys, *command(name, micro, out)), out, problem="cannot write in /proc")


def test_special_files_and_empty_paths_are_not_outputs(tmp_path):
    with pytest.raises(GsmtError, match="not a regular file"):
        check_output_location("/dev/null", "file")
    with pytest.raises(GsmtError, match="an empty path"):
        check_output_location("", "folder")
    check_output_location(tmp_path / "new" / "deeper" / "x.json", "file")  # creatable: fine, nothing made
    check_output_location(tmp_path / "new" / "deeper", "folder")
    assert list(tmp_path.iterdir()) == []
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(GsmtError, match="is a broken symbolic link"):
        check_output_location(link / "x.json", "file")


def test_a_good_output_location_still_works(micro, micro_preds, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "timeline.png"
    assert cli(capsys, "visualize", "--log", micro / "run", "--out", out)[0] == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    shutil.rmtree(tmp_path / "new")
