"""Context-free baseline for the semi-real benchmarks: every snippet classified on its own.

A logistic regression (or a one-hidden-layer MLP) is trained with torch on the snippet features of
the training subset, at the native snippet grid, with the class of each snippet's centre as its
target (background = K, THUMOS `Ambiguous` snippets ignored). At inference each snippet takes the
argmax class (background included); a run of consecutive snippets with the same action class is a
segment, scored by the mean probability of that class over the run; Soft-NMS per video
(`gsmt.postprocess`) and the official-protocol evaluation (`gsmt.evaluation`) follow.

It sees no temporal context at all, so it is the yardstick that calibrates the synthetic
difficulty (DESIGN.md section 9): a benchmark it already solves cannot tell models apart.

    python -m benchmarks.peers.baseline --data DIR [--subset test] [--tiou thumos] [--blocked FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsmt.annotations.types import Annotations, Video
from gsmt.annotations.load import load_annotations
from gsmt.data.features import FeatureStore
from gsmt.data.grid import Grid
from gsmt.errors import GsmtError
from gsmt.evaluation import DetectionMetrics, evaluate_detection
from gsmt.postprocess import Detections, soft_nms

IGNORE = -1


@dataclass(frozen=True)
class BaselineConfig:
    """Fixed settings: chosen once, never tuned on an evaluation subset."""

    hidden: int = 128  # 0 = logistic regression
    epochs: int = 8
    batch_size: int = 2048
    lr: float = 5e-3
    weight_decay: float = 1e-4
    seed: int = 0
    nms_sigma: float = 0.4
    max_keep: int = 200


def video_grid(video: Video, meta: dict | None = None) -> Grid:
    """The snippet grid a video's features were rendered on (its own fields, else the dataset's meta)."""
    grid = (meta or {}).get("grid") or {}
    fps = video.fps or grid.get("fps")
    stride = video.feature_stride or grid.get("feature_stride")
    window = video.feature_window or grid.get("feature_window")
    if not (fps and stride and window):
        raise GsmtError(video.id, "no snippet grid (fps, feature_stride, feature_window)")
    return Grid(float(fps), int(stride), int(window))


def snippet_labels(video: Video, centers: np.ndarray, num_classes: int) -> np.ndarray:
    """Class of each snippet centre: the shortest instance holding it (then the lower class id),
    background `num_classes` elsewhere, IGNORE inside an ambiguous segment that no instance holds."""
    segs = np.asarray(video.segments, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(video.labels, dtype=np.int64).reshape(-1)
    keep = segs[:, 1] > segs[:, 0]
    segs, labels = segs[keep], labels[keep]
    out = np.full(len(centers), num_classes, dtype=np.int64)
    if len(segs):
        inside = (segs[None, :, 0] <= centers[:, None]) & (centers[:, None] <= segs[None, :, 1])
        # Rank by (length, class id): the lowest rank inside a snippet owns it.
        order = np.lexsort((labels, segs[:, 1] - segs[:, 0]))
        rank = np.empty(len(segs), dtype=np.int64)
        rank[order] = np.arange(len(segs))
        best = np.where(inside, rank[None, :], len(segs)).min(axis=1)
        fg = best < len(segs)
        out[fg] = labels[order[best[fg]]]
    amb = np.asarray(video.ambiguous, dtype=np.float64).reshape(-1, 2)
    if len(amb):
        in_amb = ((amb[None, :, 0] <= centers[:, None]) & (centers[:, None] <= amb[None, :, 1])).any(axis=1)
        out[in_amb & (out == num_classes)] = IGNORE
    return out


def load_snippets(videos: list[Video], features: FeatureStore, num_classes: int,
                  meta: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All snippets of `videos`: features [N, D] float32 and class targets [N] (IGNORE dropped)."""
    xs, ys = [], []
    for video in videos:
        feats = features.load(video.id)
        y = snippet_labels(video, video_grid(video, meta).centers(len(feats)), num_classes)
        xs.append(feats[y != IGNORE])
        ys.append(y[y != IGNORE])
    if not xs:
        raise GsmtError("baseline", "no training videos")
    return np.concatenate(xs), np.concatenate(ys)


@dataclass
class SnippetClassifier:
    """Standardisation plus a torch classifier; `probs` gives [N, K+1] class probabilities."""

    mean: np.ndarray
    std: np.ndarray
    net: torch.nn.Module

    @torch.no_grad()
    def probs(self, x: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
        self.net.eval()
        z = torch.from_numpy((x - self.mean) / self.std).float().to(device)
        return torch.softmax(self.net(z), dim=1).cpu().numpy()


def fit_classifier(x: np.ndarray, y: np.ndarray, num_classes: int, cfg: BaselineConfig = BaselineConfig(),
                   *, device: str | torch.device = "cpu") -> SnippetClassifier:
    """Cross-entropy training on snippets, minibatch AdamW, fixed epochs (no model selection)."""
    torch.manual_seed(cfg.seed)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    d = x.shape[1]
    k = num_classes + 1
    if cfg.hidden > 0:
        net = torch.nn.Sequential(torch.nn.Linear(d, cfg.hidden), torch.nn.ReLU(), torch.nn.Linear(cfg.hidden, k))
    else:
        net = torch.nn.Linear(d, k)
    net.to(device)
    xt = torch.from_numpy((x - mean) / std).float().to(device)
    yt = torch.from_numpy(y).long().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * -(-len(xt) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, steps), pct_start=0.1)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    net.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(xt), generator=gen).to(device)
        for i in range(0, len(xt), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return SnippetClassifier(mean.astype(np.float32), std.astype(np.float32), net.eval())


def runs_to_detections(probs: np.ndarray, t_start: np.ndarray, t_end: np.ndarray, duration: float) -> Detections:
    """Runs of same-argmax snippets (background = last column dropped) -> segments scored by mean probability."""
    num_classes = probs.shape[1] - 1
    cls = probs.argmax(axis=1)
    if len(cls) == 0:
        return Detections.empty()
    first = np.flatnonzero(np.concatenate([[True], cls[1:] != cls[:-1]]))
    last = np.concatenate([first[1:] - 1, [len(cls) - 1]])
    run_cls = cls[first]
    picked = probs[np.arange(len(cls)), cls]
    score = np.add.reduceat(picked, first) / (last - first + 1)
    action = run_cls < num_classes
    segments = np.stack([t_start[first], t_end[last]], axis=1)[action]
    return Detections(np.clip(segments, 0.0, duration), run_cls[action], score[action])


def predict(model: SnippetClassifier, videos: list[Video], features: FeatureStore, cfg: BaselineConfig,
            classes: list[str], *, meta: dict | None = None,
            device: str | torch.device = "cpu") -> dict[str, list[dict]]:
    """ActivityNet `results` ({video_id: [{label, score, segment}]}) for every video in `videos`."""
    results: dict[str, list[dict]] = {}
    for video in videos:
        feats = features.load(video.id)
        t_start, t_end = video_grid(video, meta).spans(len(feats))
        dets = runs_to_detections(model.probs(feats, device), t_start, t_end, video.duration)
        dets = soft_nms(dets.segments, dets.scores, dets.labels, sigma=cfg.nms_sigma, max_keep=cfg.max_keep)
        results[video.id] = [
            {"label": classes[int(c)], "score": float(s), "segment": [float(a), float(b)]}
            for (a, b), c, s in zip(dets.segments, dets.labels, dets.scores)
        ]
    return results


@dataclass
class BaselineRun:
    """What one baseline run produced: predictions, metrics per blocked setting, phase timings."""

    results: dict[str, list[dict]]
    metrics: dict[str, DetectionMetrics]
    train_s: float
    predict_s: float
    eval_s: float
    train_snippets: int
    eval_videos: int


def run(data_dir: str | Path, *, train_subset: str, eval_subset: str, tiou: str,
        blocked: dict[str, list[str]] | None = None, cfg: BaselineConfig = BaselineConfig(),
        device: str | torch.device = "cpu") -> BaselineRun:
    """Train on `train_subset`, predict and evaluate `eval_subset` of a `gsmt synth` folder.

    `blocked` maps a setting name to blocked ids, e.g. {"all": [], "minus 198": ids}.
    """
    data_dir = Path(data_dir)
    ann: Annotations = load_annotations(data_dir / "annotations.json")
    # `gsmt synth` writes [T, D]; "auto" cannot tell a 256-snippet video from its transpose at D = 256.
    features = FeatureStore(data_dir / "features", layout="TD")
    train_videos = ann.subset(train_subset)
    eval_videos = ann.subset(eval_subset)
    if not train_videos or not eval_videos:
        raise GsmtError(data_dir, f"needs videos in '{train_subset}' and '{eval_subset}' (has {ann.subsets})")
    t0 = time.perf_counter()
    x, y = load_snippets(train_videos, features, ann.num_classes, ann.meta)
    model = fit_classifier(x, y, ann.num_classes, cfg, device=device)
    t1 = time.perf_counter()
    results = predict(model, eval_videos, features, cfg, ann.classes, meta=ann.meta, device=device)
    t2 = time.perf_counter()
    metrics = {name: evaluate_detection(ann, results, subset=eval_subset, tiou=tiou, blocked=ids)
               for name, ids in (blocked or {"all": []}).items()}
    t3 = time.perf_counter()
    return BaselineRun(results, metrics, t1 - t0, t2 - t1, t3 - t2, len(x), len(eval_videos))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `gsmt synth` folder (annotations.json + features/)")
    parser.add_argument("--train-subset", help="default: the dataset's recorded train subset")
    parser.add_argument("--subset", help="evaluated subset (default: the dataset's recorded eval subset)")
    parser.add_argument("--tiou", help="tIoU preset or list (default: the dataset's recorded one)")
    parser.add_argument("--blocked", metavar="FILE", help="JSON list of video ids left out of the evaluation")
    parser.add_argument("--hidden", type=int, default=BaselineConfig.hidden, help="MLP width, 0 = logistic regression")
    parser.add_argument("--epochs", type=int, default=BaselineConfig.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", metavar="FILE", help="write the predictions (ActivityNet JSON) here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        meta = load_annotations(Path(args.data) / "annotations.json").meta
        blocked = {"all": []}
        if args.blocked:
            blocked = {"blocked": [str(v) for v in json.loads(Path(args.blocked).read_text())]}
        cfg = BaselineConfig(hidden=args.hidden, epochs=args.epochs, seed=args.seed)
        out = run(args.data, train_subset=args.train_subset or meta.get("train_subset", "training"),
                  eval_subset=args.subset or meta.get("eval_subset", "validation"),
                  tiou=args.tiou or meta.get("tiou", "anet"), blocked=blocked, cfg=cfg, device=args.device)
    except GsmtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for metrics in out.metrics.values():
        print(metrics.format_table())
    print(f"train {out.train_s:.1f} s ({out.train_snippets} snippets), predict {out.predict_s:.1f} s, "
          f"eval {out.eval_s:.1f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"version": "VERSION 1.3", "external_data": {"used": False},
                                              "results": out.results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
