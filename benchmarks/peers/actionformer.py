"""ActionFormer (public release) as a peer detector on a gsmt data folder, scored by gsmt's evaluator.

Reads a gsmt data folder (`annotations.json` with its `gsmt` meta block, `features/<video_id>.npy`
as [T, D] on the snippet grid of the annotations), writes ActionFormer's annotation JSON and a
config derived from the release's own (`configs/thumos_i3d.yaml` for window-mode data,
`configs/anet_tsp.yaml` for resize-mode data) into a work folder, runs the release's `train.py` and
`eval.py --saveonly` as subprocesses, converts its `eval_results.pkl` into an ActivityNet
submission with our class names and evaluates it with `gsmt.evaluation` (what `gsmt eval` runs),
on the same videos and ground truth as GSMT. Prints mAP per tIoU and the average, the training
time (per epoch too) and the inference time.

ActionFormer's code is not part of this repository and nothing here edits it. Set-up, done by hand
once (tested with the release at commit 61ea7eb, PyTorch 2.13 CPU, NumPy 2.4, Python 3.11):

    # a clone of the public release happyharrycn/actionformer_release in .peers/actionformer (git-ignored)
    .venv/bin/pip install pandas joblib          # imported by its libs/utils/metrics.py
    cd .peers/actionformer/libs/utils && ../../../../.venv/bin/pip install --no-build-isolation . && cd -
                                                 # builds its NMS C++ extension `nms_1d_cpu` (g++)

and these edits in `.peers/actionformer` so that it runs without CUDA and with NumPy >= 1.24:

1. `libs/utils/train_utils.py`, in `train_one_epoch` and in `valid_one_epoch`: guard both
   `torch.cuda.synchronize()` calls with `if torch.cuda.is_available():`.
2. `libs/utils/metrics.py` (`compute_average_precision_detection`): `.astype(np.float)` ->
   `.astype(np.float64)`, twice (only its own evaluator uses it; the module is imported anyway).
3. `eval.py`: `torch.load(ckpt_file, map_location = lambda storage, loc: storage.cuda(...))` ->
   `map_location = 'cpu'`.
4. `train.py` (`--resume` only): the same `map_location = 'cpu'` in its `torch.load`.

Nothing else is needed: on a machine without CUDA `nn.DataParallel` hands the model through,
`torch.cuda.manual_seed` is a no-op, and the DataLoader gets `num_workers >= 1` from our config
(the release sets `persistent_workers=True`, which refuses 0 workers). The harness checks for the
edits and for `nms_1d_cpu` before it starts.

What the derived config changes (everything else is the release's):
- dataset: our annotation JSON and feature folder, `input_dim` = D, `num_classes` = classes with at
  least one instance in the written JSON (ActionFormer asserts that count), `feat_stride` /
  `num_frames` / `default_fps` = our grid (`feature_stride`, `feature_window`, `fps`; `default_fps`
  is left out when videos differ in fps: the JSON carries each video's), `file_prefix` none,
  train / eval splits = the meta's `train_subset` / `eval_subset`;
- `opt.epochs` / `opt.warmup_epochs` when `--epochs` / `--warmup-epochs` are given (ActionFormer
  trains epochs + warmup_epochs in all), `loader.num_workers` = `--workers`, `init_rand_seed`;
- resize-mode (ActivityNet-like) data only: the release's ActivityNet configs are class-agnostic
  (`num_classes: 1`) and take their labels from an external video classifier
  (`ext_score_file`); here there is none, so ActionFormer predicts our K classes itself with
  `multiclass_nms: True`, as in all its K-class configs, and `ext_score_file` is removed.
Training videos without any instance are left out of the written JSON (ActionFormer cannot train
on them; its own ActivityNet files drop them too); THUMOS `Ambiguous` segments are not written
(not ground truth; gsmt's evaluator handles them as in `gsmt eval`).

    python -m benchmarks.peers.actionformer --data DIR --out WORK [--epochs N] [--threads 2]

Cost on a CPU: the THUMOS template pads every training sample to 2,304 snippets, so one iteration
(batch 2, 26.5 M parameters at D = 256) takes about 6 CPU seconds whatever the video lengths; the
release's 35 epochs (30 + 5 warm-up) on 58 training videos are 1,015 iterations, about 1.75 hours
of one core. Only the last checkpoint is kept (about 400 MB: weights, EMA weights, AdamW state).

WORK must be outside the repository or in a git-ignored folder of it (e.g. `.peers/work`).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import pickle
import re
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gsmt.annotations.types import Annotations
from gsmt.annotations.load import load_annotations
from gsmt.errors import GsmtError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PEER = REPO / ".peers" / "actionformer"
TEMPLATES = {"window": "configs/thumos_i3d.yaml", "resize": "configs/anet_tsp.yaml"}
RUN_NAME = "run"  # train.py --output: checkpoints go to <output_folder>/<config stem>_run


# ------------------------------------------------------------------------------------ pure conversions


def data_grid(ann: Annotations) -> tuple[float | None, int, int]:
    """(fps, feature_stride, feature_window) shared by all videos; fps None when videos differ in fps.

    A video's own fields win over the meta's `grid`. ActionFormer has one stride and one window
    for a dataset, so videos that differ in either are refused."""
    grid = ann.meta.get("grid") or {}
    fps, strides, windows = set(), set(), set()
    for v in ann.videos:
        f = v.fps or grid.get("fps")
        s = v.feature_stride or grid.get("feature_stride")
        w = v.feature_window or grid.get("feature_window")
        if not (f and s and w):
            raise GsmtError(v.id, "no snippet grid (fps, feature_stride, feature_window) in the annotations")
        fps.add(float(f))
        strides.add(int(s))
        windows.add(int(w))
    if len(strides) != 1 or len(windows) != 1:
        raise GsmtError("annotations", f"ActionFormer needs one feature_stride and one feature_window for all "
                                       f"videos (found strides {sorted(strides)}, windows {sorted(windows)})")
    return (fps.pop() if len(fps) == 1 else None), strides.pop(), windows.pop()


def _trainable(segments: np.ndarray, duration: float) -> bool:
    """Whether ActionFormer's training reader keeps one of `segments` (see `to_actionformer_json`)."""
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    s, e = seg[:, 0], seg[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = (np.minimum(e, duration) - s) / (e - s)
    return bool(np.any((s < duration) & (inside >= 0.5)))


def to_actionformer_json(ann: Annotations, *, train_subset: str | None = None) -> dict:
    """ActionFormer's annotation JSON for `ann` (its `thumos14.py` / `anet.py` readers).

    `database`: {video_id: {subset, duration, fps, annotations: [{label, label_id, segment}]}};
    `label_id` is dense over the classes that have at least one instance in the file (ActionFormer
    asserts `len(label_dict) == num_classes` and one-hot encodes label ids), in our class order,
    and `classes[label_id]` gives the name back. Videos of `train_subset` without an instance
    ActionFormer can train on are left out (`dropped_train_videos` counts them): its training
    reader skips a segment that starts past the video's features or lies less than half
    (`trunc_thresh` 0.5) inside them, and fails on a video left with none (real ActivityNet
    annotations run past the video's end); the video's duration stands for the features' extent,
    which is never shorter. Segments are written as they are in `ann`.
    """
    grid = ann.meta.get("grid") or {}
    present = sorted({int(c) for v in ann.videos for c in v.labels.tolist()})
    label_id = {c: i for i, c in enumerate(present)}
    database: dict[str, dict] = {}
    dropped = 0
    for v in ann.videos:
        if train_subset is not None and v.subset == train_subset and not _trainable(v.segments, v.duration):
            dropped += 1
            continue
        entry: dict = {"subset": v.subset, "duration": float(v.duration)}
        fps = v.fps or grid.get("fps")
        if fps:
            entry["fps"] = float(fps)
        entry["annotations"] = [
            {"label": ann.classes[int(c)], "label_id": label_id[int(c)], "segment": [float(s), float(e)]}
            for (s, e), c in zip(v.segments.tolist(), v.labels.tolist())
        ]
        database[v.id] = entry
    return {"version": "gsmt data for ActionFormer", "classes": [ann.classes[c] for c in present],
            "dropped_train_videos": dropped, "database": database}


def actionformer_config(template: Mapping, *, mode: str, json_file: str, feat_folder: str, input_dim: int,
                        num_classes: int, feat_stride: int, num_frames: int, fps: float | None,
                        train_subset: str, eval_subset: str, output_folder: str, epochs: int | None = None,
                        warmup_epochs: int | None = None, num_workers: int = 1, seed: int | None = None) -> dict:
    """The release's config `template` (a loaded YAML) adapted to our data; see the module docstring."""
    if mode not in TEMPLATES:
        raise ValueError(f"mode must be one of {', '.join(TEMPLATES)}, got {mode!r}")
    if num_workers < 1:
        raise ValueError("ActionFormer's DataLoader uses persistent workers: num_workers must be >= 1")
    cfg = copy.deepcopy(dict(template))
    cfg["train_split"] = [train_subset]
    cfg["val_split"] = [eval_subset]
    dataset = dict(cfg.get("dataset") or {})
    dataset.update(json_file=json_file, feat_folder=feat_folder, file_prefix=None, file_ext=".npy",
                   num_classes=int(num_classes), input_dim=int(input_dim), feat_stride=int(feat_stride),
                   num_frames=int(num_frames))
    if fps is not None:
        dataset["default_fps"] = float(fps)
    else:
        dataset.pop("default_fps", None)  # read from each video's `fps`
    cfg["dataset"] = dataset
    if mode == "resize":
        test_cfg = dict(cfg.get("test_cfg") or {})
        test_cfg.pop("ext_score_file", None)
        test_cfg["multiclass_nms"] = True
        cfg["test_cfg"] = test_cfg
    opt = dict(cfg.get("opt") or {})
    if epochs is not None:
        opt["epochs"] = int(epochs)
    if warmup_epochs is not None:
        opt["warmup_epochs"] = int(warmup_epochs)
    cfg["opt"] = opt
    cfg["loader"] = {**(cfg.get("loader") or {}), "num_workers": int(num_workers)}
    if seed is not None:
        cfg["init_rand_seed"] = int(seed)
    cfg["output_folder"] = output_folder
    return cfg


def from_actionformer_results(results: Mapping, classes: Sequence[str], video_ids: Sequence[str] = ()) -> dict:
    """ActivityNet submission {"results": {video_id: [{label, score, segment}]}} from ActionFormer's
    saved results (`eval.py --saveonly`: {'video-id': [...], 't-start', 't-end', 'label', 'score'},
    times in seconds); labels are ActionFormer label ids, i.e. indices into `classes`.
    Every id of `video_ids` gets an entry, empty when ActionFormer found nothing there."""
    vids = list(results["video-id"])
    cols = [np.asarray(results[k]).reshape(-1) for k in ("t-start", "t-end", "label", "score")]
    if any(len(c) != len(vids) for c in cols):
        raise ValueError("ActionFormer results: columns of different lengths")
    out: dict[str, list[dict]] = {str(v): [] for v in video_ids}
    for vid, start, end, label, score in zip(vids, *cols):
        label = int(label)
        if not 0 <= label < len(classes):
            raise ValueError(f"ActionFormer results: label id {label} outside 0..{len(classes) - 1}")
        out.setdefault(str(vid), []).append(
            {"label": classes[label], "score": float(score), "segment": [float(start), float(end)]})
    return {"version": "VERSION 1.3", "external_data": {"used": False, "details": "ActionFormer"}, "results": out}


def epoch_seconds(events: Sequence[tuple[float, str]]) -> list[float]:
    """Seconds per training epoch from timestamped train.py output lines (`[Train]: Epoch N started/finished`)."""
    started: dict[int, float] = {}
    out: list[float] = []
    for t, line in events:
        m = re.search(r"\[Train\]: Epoch (\d+) (started|finished)", line)
        if not m:
            continue
        if m.group(2) == "started":
            started[int(m.group(1))] = t
        elif int(m.group(1)) in started:
            out.append(t - started.pop(int(m.group(1))))
    return out


# ------------------------------------------------------------------------------------ set-up checks


def unedited(peer: Path) -> list[str]:
    """The hand edits of the module docstring that `peer` still lacks (edit 4 is for --resume only)."""
    missing = []
    lines = (peer / "libs/utils/train_utils.py").read_text().splitlines()
    if any("torch.cuda.synchronize()" in line and "torch.cuda.is_available()" not in lines[i - 1]
           for i, line in enumerate(lines)):
        missing.append("libs/utils/train_utils.py: guard torch.cuda.synchronize() (edit 1)")
    if "astype(np.float)" in (peer / "libs/utils/metrics.py").read_text():
        missing.append("libs/utils/metrics.py: np.float -> np.float64 (edit 2)")
    if "storage.cuda(" in (peer / "eval.py").read_text():
        missing.append("eval.py: torch.load(..., map_location='cpu') (edit 3)")
    return missing


def check_peer(peer: Path, *, cpu: bool) -> list[str]:
    """Problems that stop the release from running here (empty when ready)."""
    if not (peer / "train.py").is_file() or not (peer / "libs/utils/train_utils.py").is_file():
        return [f"{peer}: no ActionFormer release there (see the set-up in this script's docstring)"]
    problems = []
    try:
        import torch  # noqa: F401  (loads libtorch, which the extension links against)
        import nms_1d_cpu  # noqa: F401  (the release's C++ NMS, built by hand)
    except ImportError:
        problems.append("the NMS extension `nms_1d_cpu` is not importable: build it from libs/utils")
    for module in ("pandas", "joblib", "yaml"):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"ActionFormer imports `{module}`: pip install it")
    if cpu:
        problems += unedited(peer)
    return problems


def check_work_folder(out: Path) -> None:
    """Refuse a work folder inside the repository unless git ignores it (ActionFormer's files are never committed)."""
    out = out.resolve()
    if out != REPO and REPO not in out.parents:
        return
    try:
        ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(out)],
                                 capture_output=True).returncode == 0
    except OSError:
        ignored = False
    if not ignored:
        raise GsmtError(out, "the work folder is inside the repository and not git-ignored: use a folder "
                             "outside it or under .peers/")


# ------------------------------------------------------------------------------------ running


def prepare_features(data_dir: Path, ann: Annotations, work: Path) -> tuple[Path, int]:
    """(feature folder ActionFormer reads, D). The data folder's own `features/` when every video has a
    [T, D] `.npy` there; otherwise [T, D] float32 `.npy` copies in WORK/features (via gsmt's reader)."""
    meta = ann.meta
    folder = data_dir / "features"
    dim = meta.get("feature_dim")
    layout = meta.get("feature_layout", "auto")
    direct = folder.is_dir() and layout != "DT"
    if direct:
        for v in ann.videos:
            path = folder / f"{v.id}.npy"
            if not path.is_file():
                direct = False
                break
            shape = np.load(path, mmap_mode="r").shape
            if len(shape) != 2 or (dim is not None and shape[1] != dim):
                direct = False
                break
            dim = shape[1] if dim is None else dim
    if direct and dim is not None:
        return folder, int(dim)
    from gsmt.data.features import FeatureStore

    store = FeatureStore(folder, layout=layout if layout in ("TD", "DT") else "auto", feature_dim=dim)
    target = work / "features"
    target.mkdir(parents=True, exist_ok=True)
    for v in ann.videos:
        np.save(target / f"{v.id}.npy", np.ascontiguousarray(store.load(v.id), dtype=np.float32))
    return target, int(store.feature_dim)


@dataclass
class PeerRun:
    seconds: float
    events: list[tuple[float, str]] = field(default_factory=list)  # (perf_counter, line)


def run_peer(cmd: list[str], *, cwd: Path, env: dict, log: Path, echo: bool) -> PeerRun:
    """Run one of the release's scripts, teeing its output to `log` with timestamps kept for parsing."""
    start = time.perf_counter()
    run = PeerRun(0.0)
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                run.events.append((time.perf_counter(), line.rstrip("\n")))
                fh.write(line)
                if echo:
                    print("    | " + line, end="", flush=True)
        except BaseException:  # Ctrl-C or a stopped harness (SIGTERM, benchmarks/family.py): the peer stops with it
            proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
    run.seconds = time.perf_counter() - start
    if rc != 0:
        tail = "\n".join(line for _, line in run.events[-15:])
        raise GsmtError(cmd[1], f"exited with status {rc} (log: {log}):\n{tail}")
    return run


def load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as fh:
        return yaml.safe_load(fh)


@dataclass
class PeerResult:
    """One ActionFormer run on one data folder, evaluated by gsmt."""

    metrics: object  # gsmt.evaluation.DetectionMetrics
    train_s: float  # wall time of train.py (start-up, data loading and checkpoint included)
    epoch_s: list[float]  # wall time of each training epoch
    iterations_per_epoch: int
    infer_s: float  # wall time of eval.py --saveonly (start-up and model loading included)
    infer_loop_s: float | None  # eval.py's own timer: the inference loop over the evaluated videos
    train_cpu_s: float  # CPU seconds of train.py and its DataLoader workers
    infer_cpu_s: float
    peak_rss_mib: float  # the largest ActionFormer process
    eval_s: float  # gsmt's evaluation
    train_videos: int
    eval_videos: int
    classes: list[str]
    epochs: int  # trained in all, warm-up included
    mode: str
    predictions: Path


def _children() -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of the waited-for child processes so far (Linux reports KiB)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def run_actionformer(data_dir: str | Path, work: str | Path, *, peer: str | Path = DEFAULT_PEER,
                     epochs: int | None = None, warmup_epochs: int | None = None, mode: str | None = None,
                     train_subset: str | None = None, eval_subset: str | None = None, tiou: str | None = None,
                     blocked: Sequence[str] = (), threads: int = 2, workers: int = 1, seed: int | None = None,
                     device: str = "cpu", echo: bool = True) -> PeerResult:
    """Train and run ActionFormer on a gsmt data folder and evaluate it with gsmt (see the module docstring)."""
    from gsmt.evaluation import evaluate_detection

    data_dir, work, peer = Path(data_dir), Path(work).resolve(), Path(peer).resolve()
    check_work_folder(work)
    problems = check_peer(peer, cpu=device == "cpu")
    if problems:
        raise GsmtError(peer, "not ready:\n  " + "\n  ".join(problems))
    ann = load_annotations(data_dir / "annotations.json")
    meta = ann.meta
    train_subset = train_subset or meta.get("train_subset", "training")
    eval_subset = eval_subset or meta.get("eval_subset", "validation")
    tiou = tiou or meta.get("tiou", "anet")
    mode = mode or meta.get("temporal_mode", "window")
    if mode not in TEMPLATES:
        raise GsmtError("annotations", f"unknown temporal_mode {mode!r}: pass --mode window|resize")
    if not ann.subset(train_subset) or not ann.subset(eval_subset):
        raise GsmtError(data_dir, f"needs videos in '{train_subset}' and '{eval_subset}' (has {ann.subsets})")
    fps, stride, window = data_grid(ann)

    work.mkdir(parents=True, exist_ok=True)
    feat_folder, dim = prepare_features(data_dir, ann, work)
    af_json = to_actionformer_json(ann, train_subset=train_subset)
    (work / "actionformer_annotations.json").write_text(json.dumps(af_json))
    template_path = peer / TEMPLATES[mode]
    cfg = actionformer_config(
        load_yaml(template_path), mode=mode, json_file=str(work / "actionformer_annotations.json"),
        feat_folder=str(feat_folder), input_dim=dim, num_classes=len(af_json["classes"]), feat_stride=stride,
        num_frames=window, fps=fps, train_subset=train_subset, eval_subset=eval_subset,
        output_folder=str(work / "ckpt"), epochs=epochs, warmup_epochs=warmup_epochs, num_workers=workers,
        seed=seed)
    import yaml

    cfg_path = work / "actionformer.yaml"
    cfg_path.write_text(f"# derived from {template_path} by benchmarks/peers/actionformer.py\n"
                        + yaml.safe_dump(cfg, sort_keys=False))
    (work / "ckpt").mkdir(exist_ok=True)

    n_train = sum(1 for v in af_json["database"].values() if v["subset"] == train_subset)
    eval_ids = [v.id for v in ann.subset(eval_subset)]
    batch = int(cfg["loader"]["batch_size"])
    iters = n_train // batch  # drop_last
    warmup = int(cfg["opt"].get("warmup_epochs", 5))
    total_epochs = int(cfg["opt"]["epochs"]) + warmup
    print(f"ActionFormer on {data_dir} ({mode} mode, template {TEMPLATES[mode]}): {n_train} '{train_subset}' "
          f"videos for training ({af_json['dropped_train_videos']} without an instance it can train on left out), "
          f"{len(eval_ids)} '{eval_subset}' evaluated, {len(af_json['classes'])} of {ann.num_classes} classes, "
          f"D = {dim}, grid fps {fps} / stride {stride} / window {window}; {total_epochs} epochs "
          f"({cfg['opt']['epochs']} + {warmup} warm-up) of {iters} iterations (batch {batch}); work folder {work}",
          flush=True)
    if iters < 2:
        raise GsmtError(data_dir, f"{n_train} training videos give {iters} iteration(s) per epoch at batch "
                                  f"{batch}: ActionFormer's warm-up schedule needs at least 2")

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    # Only the last checkpoint is written (-c 0); it is what eval.py loads (its EMA weights).
    cpu0, _ = _children()
    train = run_peer([sys.executable, "train.py", str(cfg_path), "--output", RUN_NAME, "-c", "0"],
                     cwd=peer, env=env, log=work / "train.log", echo=echo)
    cpu1, _ = _children()
    ckpt_dir = work / "ckpt" / f"{cfg_path.stem}_{RUN_NAME}"
    ckpt = ckpt_dir / f"epoch_{total_epochs:03d}.pth.tar"
    if not ckpt.is_file():
        raise GsmtError(ckpt_dir, f"train.py left no {ckpt.name}")
    results_pkl = ckpt_dir / "eval_results.pkl"
    results_pkl.unlink(missing_ok=True)
    infer = run_peer([sys.executable, "eval.py", str(cfg_path), str(ckpt), "--saveonly"],
                     cwd=peer, env=env, log=work / "eval.log", echo=echo)
    cpu2, rss = _children()
    with open(results_pkl, "rb") as fh:
        raw = pickle.load(fh)  # written by the release's eval.py in this run
    submission = from_actionformer_results(raw, af_json["classes"], eval_ids)
    predictions = work / "actionformer_predictions.json"
    predictions.write_text(json.dumps(submission))

    t0 = time.perf_counter()
    metrics = evaluate_detection(ann, submission, subset=eval_subset, tiou=tiou, blocked=[str(b) for b in blocked])
    eval_s = time.perf_counter() - t0
    loop = [float(m.group(1)) for _, line in infer.events if (m := re.search(r"Total time: ([\d.]+) sec", line))]
    return PeerResult(metrics, train.seconds, epoch_seconds(train.events), iters, infer.seconds,
                      loop[-1] if loop else None, cpu1 - cpu0, cpu2 - cpu1, rss, eval_s, n_train, len(eval_ids),
                      af_json["classes"], total_epochs, mode, predictions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a gsmt data folder (annotations.json + features/)")
    parser.add_argument("--out", required=True, help="work folder (outside the repo or git-ignored)")
    parser.add_argument("--peer", default=str(DEFAULT_PEER),
                        help="ActionFormer release folder (default .peers/actionformer)")
    parser.add_argument("--epochs", type=int, help="ActionFormer opt.epochs, after warm-up (default: the release "
                                                   "config's: 30 THUMOS, 10 ActivityNet)")
    parser.add_argument("--warmup-epochs", type=int, help="opt.warmup_epochs (default: the release's 5)")
    parser.add_argument("--mode", choices=("window", "resize"),
                        help="THUMOS-like windows or ActivityNet-like resize (default: the meta's temporal_mode)")
    parser.add_argument("--train-subset", help="default: the meta's train_subset")
    parser.add_argument("--subset", help="evaluated subset (default: the meta's eval_subset)")
    parser.add_argument("--tiou", help="tIoU preset or list (default: the meta's tiou)")
    parser.add_argument("--blocked", metavar="FILE", help="JSON list of video ids left out of the evaluation")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of ActionFormer's processes")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers (>= 1)")
    parser.add_argument("--seed", type=int, help="init_rand_seed (default: the release's)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu hides CUDA from ActionFormer (CUDA_VISIBLE_DEVICES='')")
    parser.add_argument("--quiet", action="store_true", help="do not echo ActionFormer's output (it is in OUT/*.log)")
    args = parser.parse_args(argv)
    try:
        blocked = [str(b) for b in json.loads(Path(args.blocked).read_text())] if args.blocked else []
        r = run_actionformer(args.data, args.out, peer=args.peer, epochs=args.epochs,
                             warmup_epochs=args.warmup_epochs, mode=args.mode, train_subset=args.train_subset,
                             eval_subset=args.subset, tiou=args.tiou, blocked=blocked, threads=args.threads,
                             workers=args.workers, seed=args.seed, device=args.device, echo=not args.quiet)
    except GsmtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    per_epoch = float(np.mean(r.epoch_s)) if r.epoch_s else float("nan")
    print(r.metrics.format_table())
    print(f"train {r.train_s:.1f} s ({r.epochs} epochs, {per_epoch:.1f} s/epoch, "
          f"{r.iterations_per_epoch / per_epoch:.3f} it/s at {r.iterations_per_epoch} it/epoch, "
          f"{r.train_cpu_s:.0f} CPU s); inference {r.infer_s:.1f} s ({r.infer_loop_s or float('nan'):.1f} s in "
          f"eval.py's loop, {r.eval_videos} videos, {r.metrics.num_predictions} predictions); "
          f"peak RSS {r.peak_rss_mib:.0f} MiB; gsmt evaluation {r.eval_s:.2f} s")
    summary = {
        "command": "python -m benchmarks.peers.actionformer " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "data": str(Path(args.data).resolve()), "peer": str(Path(args.peer).resolve()), "mode": r.mode,
        "template": TEMPLATES[r.mode], "train_videos": r.train_videos, "eval_videos": r.eval_videos,
        "classes": r.classes, "epochs": r.epochs, "iterations_per_epoch": r.iterations_per_epoch,
        "train_s": r.train_s, "epoch_s": r.epoch_s, "train_cpu_s": r.train_cpu_s, "infer_s": r.infer_s,
        "infer_loop_s": r.infer_loop_s, "infer_cpu_s": r.infer_cpu_s, "peak_rss_mib": r.peak_rss_mib,
        "threads": args.threads, "metrics": r.metrics.to_json(),
    }
    Path(args.out, "actionformer_metrics.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
