"""The paper's ablations (Tables 4-7, 9, 12-14; "Table 0": gsmt's mask head) in the semi-real harness, over seeds.

Every (benchmark, variant, seed) is one GSMT training on features rendered on the real THUMOS14 or
ActivityNet timelines (`harness.render_benchmark`, cached), evaluated with the official protocol. Seed s
fixes the video sample, the rendering and the training, so the baseline (the preset) and every
variant of seed s see the same data: differences are paired by seed. Table 6 (oracles) needs no
training: the baseline checkpoints predict again with the ground-truth classes or masks substituted.

Verdict rule, on the average mAP: with d_s = variant_s - baseline_s over the n seeds, a difference
is clear when |mean(d)| > 2 sd(d) (sample sd over seeds, ddof 1). A clear difference in the
paper's direction (the sign of the paper's own difference between the two settings) "holds",
in the other direction it is "opposite"; otherwise "no clear difference".

    python -m benchmarks.ablations --tiny --benchmark both --seeds 0 1 --jobs 2 --out /tmp/abl_tiny   # CPU smoke
    python -m benchmarks.ablations --device cuda --jobs 12 --out DIR                                 # full set

Outputs under --out: `runs/<benchmark>/<variant>_s<seed>.json` (one per run: resume skips those
present with the same settings), `logs/`, `ablations.json` and `ablations.md` (also printed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks import harness
from gsmt.config import DecodeConfig, load_config
from gsmt.synth.models.prototype import DEFAULT_DIFFICULTY
from gsmt.engine.resolve import make_dataset
from gsmt.engine.predictor import predict_dataset, predict_results, to_results
from gsmt.engine.trainer import train
from gsmt.evaluation import evaluate_detection
from gsmt.postprocess import Detections

# ------------------------------------------------------------------------------------ the paper's tables


@dataclass(frozen=True)
class Row:
    """One line of a paper table: a setting, how to get it, and the paper's (mAP@0.5, avg mAP) on ActivityNet."""

    key: str  # file-safe id, unique over all tables
    label: str
    overrides: tuple[str, ...] = ()
    paper: tuple[float, float] | None = None
    oracle: str | None = None  # Table 6: "class" | "mask" | "both" substituted from the ground truth


@dataclass(frozen=True)
class Table:
    number: int
    title: str
    rows: tuple[Row, ...]
    only: str | None = None  # benchmark key when the table applies to one benchmark
    note: str = ""


FULL = (56.0, 36.2)  # the paper's GSMT on ActivityNet, the reference line of every ablation table
TABLES: dict[int, Table] = {t.number: t for t in (
    Table(0, "Mask head (not in the paper)", (
        Row("mask_head_pairwise", "pairwise: snippet affinity + offset bias (gsmt)", ("model.mask_head=pairwise",)),
        Row("mask_head_conv", "conv: C -> T readout (paper)", ("model.mask_head=conv",))),
        note="The paper's mask branch ends in a k=1 conv C -> T; gsmt's presets use the pairwise "
             "head (BENCHMARKS.md, mask head). No paper numbers: the paper has one head."),
    Table(4, "Transformer vs 1-D CNN snippet embedding", (
        Row("embedding_transformer", "Transformer", ("model.embedding=transformer",), FULL),
        Row("embedding_cnn", "1-D CNN", ("model.embedding=cnn",), (46.8, 26.4))),
        note="MS-TCN (paper 53.1 / 33.8) is not implemented."),
    Table(5, "Loss objectives", (
        # Explicit settings: base settings that drop a term (e.g. --set loss.logistic=false) make
        # that row the baseline and "GSMT (full)" a variant; "w/o focal" is always LR alone.
        Row("loss_full", "GSMT (full)", ("loss.focal=true", "loss.logistic=true", "loss.dice=true",
                                         "loss.boundary=true"), FULL),
        Row("no_focal", "w/o focal loss", ("loss.focal=false", "loss.logistic=true"), (53.8, 34.2)),
        Row("no_logistic", "w/o balanced LR loss", ("loss.logistic=false",), (54.4, 35.2)),
        Row("no_dice", "w/o dice loss", ("loss.dice=false",), (54.1, 34.9)),
        Row("no_boundary", "w/o bIoU loss", ("loss.boundary=false",), (53.2, 34.3)))),
    Table(6, "Oracle analysis: ground truth substituted at test time", (
        Row("oracle_none", "GSMT", (), FULL),
        Row("oracle_class", "+ GT class", (), (69.2, 43.2), oracle="class"),
        Row("oracle_mask", "+ GT mask", (), (61.0, 47.0), oracle="mask"),
        Row("oracle_both", "+ GT class + GT mask", (), None, oracle="both")),
        note="Baseline checkpoints, no training. GT class: one-hot ground-truth class per snippet "
             "(background, and ignored snippets, as background); GT mask: the mask target. "
             "'+ GT class + GT mask' (not in the paper) bounds what the decoding can reach."),
    Table(7, "Network components", (
        Row("mask_branch", "GSMT (full)", ("model.mask_branch=true",), FULL),
        Row("no_mask_branch", "w/o mask branch (actionness decoding)", ("model.mask_branch=false",), (45.8, 28.9))),
        note="'w/o class branch + UNet' (paper 49.7 / 31.8) needs an external classifier: not run."),
    Table(9, "Number of attention heads", tuple(
        Row(f"heads{h}", str(h), (f"model.n_heads={h}",), p)
        for h, p in ((1, (53.8, 34.8)), (2, (54.6, 35.0)), (3, (55.2, 35.7)), (4, FULL), (5, (55.8, 35.9))))),
    Table(12, "Snippets per video T (ActivityNet resize mode)", tuple(
        Row(f"T{t}", str(t), (f"data.T={t}",), p)
        for t, p in ((50, (52.2, 33.5)), (100, FULL), (150, (55.7, 36.0)), (200, (55.1, 35.8)))),
        only="anet", note="THUMOS14 cuts fixed windows instead of resizing: not run there."),
    Table(13, "Positional encoding", (
        Row("pos_none", "none", ("model.pos_encoding=none",), FULL),
        Row("pos_learned", "learned", ("model.pos_encoding=learned",), (53.9, 33.4)),
        Row("pos_fixed", "fixed (sinusoidal)", ("model.pos_encoding=fixed",), (44.7, 28.0)))),
    Table(14, "Erosion kernel of the bIoU loss", tuple(
        Row(f"kernel{k}", str(k), (f"loss.erosion_kernel={k}",), p)
        for k, p in ((3, (53.3, 34.3)), (5, (55.1, 35.7)), (7, FULL), (9, (55.7, 36.0))))),
)}

# Default sizes (videos rendered per seed, training + evaluation, stratified) sized for the full set on
# one GPU with --jobs 12 in about 5 minutes; `--tiny` is a CPU smoke run.
DEFAULT_VIDEOS = {"thumos": 200, "anet": 2000}
TINY_VIDEOS = {"thumos": 12, "anet": 40}
TINY_SET = {"thumos": ["model.hidden_dim=32", "model.num_layers=1", "train.epochs=2", "data.T=64",
                       "data.window_stride=32", "train.batch_size=8"],
            "anet": ["model.hidden_dim=32", "model.num_layers=1", "train.epochs=2", "train.batch_size=8"]}


def baseline_row(table: Table, preset: str, base: list[str]) -> Row | None:
    """The table's row that the baseline already is (its overrides change nothing), if any."""
    reference = load_config(preset, base).to_dict()
    for row in table.rows:
        if row.oracle is None and load_config(preset, [*base, *row.overrides]).to_dict() == reference:
            return row
    return None


# ------------------------------------------------------------------------------------ one run


@dataclass
class Job:
    """One training (a variant, or the baseline with its oracles) for one benchmark and seed."""

    benchmark: str
    variant: str  # row key, or "baseline"
    seed: int
    overrides: list[str]  # full list given to the preset (base settings, then the variant's)
    videos: int
    difficulty: float
    device: str
    cache: str
    out: str
    oracles: list[str] = field(default_factory=list)  # row keys of Table 6, baseline only
    keep_checkpoints: bool = False

    @property
    def name(self) -> str:
        return f"{self.benchmark} {self.variant} s{self.seed}"


def run_path(out: Path, benchmark: str, variant: str, seed: int) -> Path:
    return out / "runs" / benchmark / f"{variant}_s{seed}.json"


def settings_of(job: Job) -> dict:
    """What a stored result must match to be reused."""
    return {"overrides": job.overrides, "videos": job.videos, "difficulty": job.difficulty}


def is_done(out: Path, job: Job) -> bool:
    for key in [job.variant, *job.oracles]:
        path = run_path(out, job.benchmark, key, job.seed)
        if not path.is_file():
            return False
        try:
            stored = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        if stored.get("settings") != settings_of(job):
            return False
    return True


def oracle_inputs(probs: np.ndarray, masks: np.ndarray | None, cls_target: np.ndarray, mask_target: np.ndarray,
                  which: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Substitute ground truth for the class probabilities [K+1, T] ("class"), the masks [T, T] ("mask") or both.

    GT class: one-hot of the snippet's class; background and ignored (-1) snippets get background.
    """
    if which not in ("class", "mask", "both"):
        raise ValueError(f"unknown oracle {which!r}")
    if which in ("class", "both"):
        background = probs.shape[0] - 1
        target = np.where(cls_target >= 0, cls_target, background)
        probs = np.eye(probs.shape[0], dtype=probs.dtype)[target].T
    if which in ("mask", "both"):
        masks = np.asarray(mask_target, dtype=np.float64)
    return probs, masks


def predict_oracle(model, dataset, cfg: DecodeConfig, which: str, device: torch.device) -> dict[str, Detections]:
    """`predict_dataset` with ground truth substituted for one branch (or both) before decoding."""
    def substitute(probs, masks, batch, i):
        return oracle_inputs(probs, masks, batch["cls_target"][i].numpy(), batch["mask_target"][i].numpy(), which)

    return predict_dataset(model, dataset, cfg, device=device, substitute=substitute)


def _metrics(ann, results: dict, bench: harness.Benchmark) -> dict[str, dict]:
    return {name: {k: v for k, v in evaluate_detection(ann, results, subset=bench.eval_subset, tiou=bench.tiou,
                                                        blocked=ids).to_json().items()
                   if k in ("tiou", "mAP", "average_mAP")}
            for name, ids in harness.blocked_settings(bench).items()}


def execute(job: Job) -> list[dict]:
    """Train one job, evaluate it (and its oracles), write one JSON per result; returns the results."""
    out, bench = Path(job.out), harness.BENCHMARKS[job.benchmark]
    device = torch.device(job.device)
    torch.set_num_threads(1)  # several jobs share the CPU cores
    data_dir, _, _ = harness.render_benchmark(bench, videos=job.videos, seed=job.seed, difficulty=job.difficulty,
                                              cache=Path(job.cache))
    run_dir = out / "runs" / job.benchmark / f"{job.variant}_s{job.seed}"
    cfg = load_config(bench.config, [f"train.seed={job.seed}", f"train.device={device.type}", "train.threads=1",
                                     "data.feature_layout=TD", *job.overrides])
    t0 = time.perf_counter()
    result = train(cfg, data_dir, run_dir, overwrite=True, progress=False)
    train_s = time.perf_counter() - t0
    model, rcfg, meta, ann, features, videos = harness.load_trained(bench, data_dir, run_dir, device)
    t1 = time.perf_counter()
    results = predict_results(model, rcfg, meta["classes"], videos, features, device=device)
    common = {"benchmark": job.benchmark, "seed": job.seed, "settings": settings_of(job),
              "train_videos": len(ann.subset(bench.train_subset)), "eval_videos": len(videos),
              "best_epoch": result.best_epoch, "epochs": rcfg.train.epochs, "parameters": result.num_parameters,
              "train_s": train_s,
              # held-out training videos' best mAP: what a choice of defaults may look at (not the evaluated set)
              "heldout_mAP": max((h["val_mAP"] for h in result.history if h.get("val_mAP") is not None), default=None)}
    records = [{"variant": job.variant, **common, "predict_s": time.perf_counter() - t1,
                "metrics": _metrics(ann, results, bench)}]
    if job.oracles:
        dataset = make_dataset(videos, features, rcfg, len(meta["classes"]), train=False)
        for key in job.oracles:
            which = next(r.oracle for t in TABLES.values() for r in t.rows if r.key == key)
            t2 = time.perf_counter()
            detections = predict_oracle(model, dataset, rcfg.decode, which, device)
            oracle_results = {v.id: [] for v in videos} | to_results(detections, meta["classes"])
            records.append({"variant": key, **common, "train_s": 0.0, "predict_s": time.perf_counter() - t2,
                            "metrics": _metrics(ann, oracle_results, bench)})
    for record in records:
        path = run_path(out, job.benchmark, record["variant"], job.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)  # a killed run never leaves a half-written result to be reused
    if not job.keep_checkpoints:
        for name in ("best.pt", "last.pt"):
            (run_dir / name).unlink(missing_ok=True)
    return records


def execute_logged(job: Job) -> list[dict]:
    """`execute` with its output in `OUT/logs/<benchmark>_<variant>_s<seed>.log` (parallel jobs would interleave)."""
    log = Path(job.out) / "logs" / f"{job.benchmark}_{job.variant}_s{job.seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    with open(log, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            return execute(job)
        except BaseException:
            traceback.print_exc()
            raise
        finally:
            torch.set_num_threads(threads)  # run in-process (--jobs 1), the caller keeps its own setting


def render_logged(bench_key: str, videos: int, seed: int, difficulty: float, cache: str, out: str) -> float:
    log = Path(out) / "logs" / f"{bench_key}_render_s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        _, seconds, _ = harness.render_benchmark(harness.BENCHMARKS[bench_key], videos=videos, seed=seed,
                                                 difficulty=difficulty, cache=Path(cache))
    return seconds


# ------------------------------------------------------------------------------------ plan


def plan(keys: list[str], tables: list[int], seeds: list[int], sizes: dict[str, int], base: dict[str, list[str]],
         *, difficulty: float, device: str, cache: str, out: str, keep_checkpoints: bool = False) -> list[Job]:
    """Jobs for every (benchmark, variant, seed): the shared baseline (with the requested oracles) and each variant."""
    runs: dict[str, list[tuple[str, list[str], list[str]]]] = {}  # benchmark -> (variant, overrides, oracles)
    for key in keys:
        bench = harness.BENCHMARKS[key]
        variants: dict[str, Row] = {}
        oracles: list[str] = []
        for number in tables:
            table = TABLES[number]
            if table.only not in (None, key):
                continue
            base_row = baseline_row(table, bench.config, base[key])
            for row in table.rows:
                if row.oracle is not None:
                    oracles.append(row.key)
                elif row is not base_row:
                    variants[row.key] = row
        runs[key] = [("baseline", list(base[key]), oracles),
                     *((row.key, [*base[key], *row.overrides], []) for row in variants.values())]
    # Variant-major, benchmarks interleaved, tables in the order asked: a run cut short by a time limit
    # leaves whole variants (all seeds) on both benchmarks rather than one seed of everything.
    jobs = []
    for rank in range(max((len(r) for r in runs.values()), default=0)):
        for key in keys:
            if rank < len(runs[key]):
                variant, overrides, oracles = runs[key][rank]
                jobs += [Job(key, variant, seed, overrides, sizes[key], difficulty, device, cache, out,
                             oracles=oracles, keep_checkpoints=keep_checkpoints) for seed in seeds]
    return jobs


def run_all(jobs: list[Job], *, workers: int, log=print) -> list[str]:
    """Render each (benchmark, seed) once, then run the jobs (up to `workers` processes); names of failed jobs."""
    out = Path(jobs[0].out) if jobs else Path(".")
    todo = [j for j in jobs if not is_done(out, j)]
    for j in jobs:
        if j not in todo:
            log(f"  cached: {j.name}")
    renders = sorted({(j.benchmark, j.videos, j.seed, j.difficulty, j.cache) for j in todo})
    failed: list[str] = []
    done, total, start = 0, len(todo), time.perf_counter()

    def report(job: Job, future: Future) -> None:
        nonlocal done
        done += 1
        elapsed = time.perf_counter() - start
        try:
            records = future.result()
        except Exception as exc:  # one failed run must not lose the others
            failed.append(job.name)
            log(f"[{done}/{total}] FAILED {job.name}: {type(exc).__name__}: {exc} (see logs/)")
            return
        main = records[0]
        m = next(iter(main["metrics"].values()))
        extra = "".join(f", {r['variant']} {100 * next(iter(r['metrics'].values()))['average_mAP']:.2f}"
                        for r in records[1:])
        log(f"[{done}/{total}] {job.name}: avg mAP {100 * m['average_mAP']:.2f}{extra} "
            f"(train {main['train_s']:.0f} s, best epoch {main['best_epoch']}/{main['epochs']}) "
            f"{elapsed:.0f} s elapsed")

    if workers <= 1:
        for args in renders:
            seconds = render_logged(args[0], args[1], args[2], args[3], args[4], str(out))
            log(f"  features {args[0]} seed {args[2]}: {f'rendered in {seconds:.1f} s' if seconds else 'cached'}")
        for job in todo:
            future: Future = Future()
            try:
                future.set_result(execute_logged(job))
            except Exception as exc:
                future.set_exception(exc)
            report(job, future)
        return failed

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: dict[Future, tuple[str, object]] = {}
        for args in renders:
            pending[pool.submit(render_logged, *args, str(out))] = ("render", args)
        waiting = list(todo)
        order = {id(j): i for i, j in enumerate(todo)}
        ready: list[int] = []  # indices into todo whose features are rendered
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                kind, what = pending.pop(future)
                if kind == "job":
                    report(what, future)
                    continue
                b, videos, seed, difficulty, cache = what
                mine = [j for j in waiting if (j.benchmark, j.videos, j.seed, j.difficulty, j.cache) == what]
                waiting = [j for j in waiting if j not in mine]
                try:
                    seconds = future.result()
                    log(f"  features {b} seed {seed}: {f'rendered in {seconds:.1f} s' if seconds else 'cached'}")
                except Exception as exc:
                    log(f"  render FAILED {b} seed {seed}: {type(exc).__name__}: {exc}")
                    failed += [j.name for j in mine]
                    continue
                ready = sorted(ready + [order[id(j)] for j in mine])
            # at most `workers` jobs in flight, taken in plan order (a FIFO queue would run them by render)
            while ready and sum(kind == "job" for kind, _ in pending.values()) < workers:
                job = todo[ready.pop(0)]
                try:
                    pending[pool.submit(execute_logged, job)] = ("job", job)
                except RuntimeError as exc:  # a worker died (e.g. killed for memory): the pool is broken
                    failed.append(job.name)
                    log(f"  not started {job.name}: {type(exc).__name__}: {exc}")
    return failed


# ------------------------------------------------------------------------------------ aggregate


def verdict(diffs: list[float], paper_diff: float | None) -> str:
    """Paired per-seed differences (variant - baseline) against the paper's difference (same sign = same direction)."""
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) < 2:
        return "n/a (one seed)"
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if not abs(mean) > 2 * sd:
        return "no clear difference"
    if paper_diff is None or paper_diff == 0:
        return "higher" if mean > 0 else "lower"
    return "holds" if np.sign(mean) == np.sign(paper_diff) else "opposite"


def _values(records: dict[int, dict]) -> tuple[dict[int, float], dict[int, float]]:
    """Per seed: (average mAP, mAP@0.5) in %, on the first evaluation setting."""
    avg, at5 = {}, {}
    for seed, r in records.items():
        m = next(iter(r["metrics"].values()))
        avg[seed] = 100 * m["average_mAP"]
        at5[seed] = 100 * m["mAP"][int(np.argmin(np.abs(np.asarray(m["tiou"]) - 0.5)))]
    return avg, at5


def _ms(values: list[float]) -> str:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return "-"
    return f"{v.mean():.2f}" if len(v) == 1 else f"{v.mean():.2f} ± {v.std(ddof=1):.2f}"


def aggregate(records: list[dict], keys: list[str], tables: list[int], base: dict[str, list[str]]) -> list[dict]:
    """One entry per (benchmark, table, row): per-seed values, paired differences to the baseline, verdict."""
    by = {(r["benchmark"], r["variant"]): {} for r in records}
    for r in records:
        by[(r["benchmark"], r["variant"])][r["seed"]] = r
    entries = []
    for key in keys:
        bench = harness.BENCHMARKS[key]
        base_avg, base_at5 = _values(by.get((key, "baseline"), {}))
        for number in tables:
            table = TABLES[number]
            if table.only not in (None, key):
                continue
            ref = baseline_row(table, bench.config, base[key])
            for row in table.rows:
                is_base = row is ref or (row.oracle is None and number == 6)
                avg, at5 = (base_avg, base_at5) if is_base else _values(by.get((key, row.key), {}))
                seeds = sorted(set(avg) & set(base_avg))
                diffs = [avg[s] - base_avg[s] for s in seeds]
                diffs5 = [at5[s] - base_at5[s] for s in seeds]
                paper_diff = (row.paper[1] - ref.paper[1]
                              if row.paper and ref is not None and ref.paper and not is_base else None)
                entries.append({
                    "benchmark": key, "table": number, "row": row.key, "label": row.label, "baseline": is_base,
                    "paper": row.paper, "paper_diff_avg": paper_diff, "seeds": sorted(avg),
                    "avg_mAP": [avg[s] for s in sorted(avg)], "mAP_0.5": [at5[s] for s in sorted(at5)],
                    "diff_avg": diffs, "diff_0.5": diffs5,
                    "verdict": "baseline" if is_base else (verdict(diffs, paper_diff) if diffs else "missing"),
                })
    return entries


def markdown(entries: list[dict], keys: list[str], tables: list[int], header: list[str]) -> str:
    """Paper-style tables (ours beside the paper's ActivityNet numbers) and a summary of the directions."""
    lines = list(header)
    head = ["setting", "paper mAP@0.5", "paper avg", "mAP@0.5", "avg mAP", "Δ avg (paired)", "paper Δ avg", "verdict"]
    for key in keys:
        title = harness.BENCHMARKS[key].title
        for number in tables:
            rows = [e for e in entries if e["benchmark"] == key and e["table"] == number]
            if not rows:
                continue
            table = TABLES[number]
            lines += ["", f"#### {title}: Table {number}. {table.title}", "",
                      "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
            for e in rows:
                paper = e["paper"] or ("-", "-")
                label = e["label"] + (" (baseline)" if e["baseline"] else "")
                delta = "-" if e["baseline"] else _ms(e["diff_avg"])
                pdiff = "-" if e["paper_diff_avg"] is None else f"{e['paper_diff_avg']:+.1f}"
                lines.append("| " + " | ".join([label, str(paper[0]), str(paper[1]), _ms(e["mAP_0.5"]),
                                                _ms(e["avg_mAP"]), delta, pdiff, e["verdict"]]) + " |")
            if table.note:
                lines += ["", table.note]
    lines += ["", "#### Summary: does the paper's direction hold here?", "",
              "| table | setting | paper Δ avg | " + " | ".join(harness.BENCHMARKS[k].title + " Δ avg (verdict)"
                                                             for k in keys) + " |",
              "|---|---|---:|" + "---|" * len(keys)]
    seen = []
    for e in sorted(entries, key=lambda x: x["table"]):  # stable: rows keep the paper's order
        if e["baseline"] or (e["table"], e["row"]) in seen:
            continue
        seen.append((e["table"], e["row"]))
        cells = []
        for k in keys:
            match = [x for x in entries if x["benchmark"] == k and x["table"] == e["table"] and x["row"] == e["row"]]
            cells.append(f"{_ms(match[0]['diff_avg'])} ({match[0]['verdict']})" if match else "not run")
        pdiff = "-" if e["paper_diff_avg"] is None else f"{e['paper_diff_avg']:+.1f}"
        lines.append(f"| {e['table']} | {e['label']} | {pdiff} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=("thumos", "anet", "both"), default="both")
    parser.add_argument("--tables", type=int, nargs="+", choices=sorted(TABLES), default=sorted(TABLES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--videos", type=int, nargs="+", metavar="N",
                        help="videos rendered per benchmark and seed: one value for all or one per benchmark "
                             f"(thumos anet); 0 = all; default {DEFAULT_VIDEOS['thumos']} THUMOS14, "
                             f"{DEFAULT_VIDEOS['anet']} ActivityNet ({TINY_VIDEOS['thumos']} / {TINY_VIDEOS['anet']} with --tiny)")
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run, e.g. train.epochs=10 (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run: few videos, a tiny model, 2 epochs")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--cache", default="/tmp/gsmt_bench/features", help="rendered features, reused between runs")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each run's best.pt / last.pt")
    parser.add_argument("--out", required=True, help="results folder (resumable)")
    parser.add_argument("--aggregate-only", action="store_true",
                        help="train nothing: tabulate the runs already stored in --out (e.g. after a time limit)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    keys = ["thumos", "anet"] if args.benchmark == "both" else [args.benchmark]
    defaults = TINY_VIDEOS if args.tiny else DEFAULT_VIDEOS
    sizes = (harness.videos_per_benchmark(args.videos, keys) if args.videos else {k: defaults[k] for k in keys})
    base = {k: [*(TINY_SET[k] if args.tiny else []), *args.overrides] for k in keys}
    for k in keys:  # a wrong key or value fails here, once, and not in every worker
        load_config(harness.BENCHMARKS[k].config, base[k])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.ablations " + " ".join(sys.argv[1:] if argv is None else argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    jobs = plan(keys, args.tables, args.seeds, sizes, base, difficulty=args.difficulty, device=args.device,
                cache=args.cache, out=str(out), keep_checkpoints=args.keep_checkpoints)
    size_text = ", ".join(f"{k}: {sizes[k] or 'all'} videos" for k in keys)
    print(f"ablations: {len(jobs)} trainings ({size_text}), "
          f"seeds {' '.join(map(str, args.seeds))}, tables {' '.join(map(str, sorted(args.tables)))}, "
          f"device {args.device}, {args.jobs} in parallel", flush=True)
    start = time.perf_counter()
    failed = [] if args.aggregate_only else run_all(jobs, workers=args.jobs, log=lambda text: print(text, flush=True))
    wall = time.perf_counter() - start

    records = []
    for job in jobs:
        for key in [job.variant, *job.oracles]:
            path = run_path(out, job.benchmark, key, job.seed)
            if path.is_file():
                records.append(json.loads(path.read_text()))
    entries = aggregate(records, keys, sorted(args.tables), base)
    counts = {k: next(((r["train_videos"], r["eval_videos"]) for r in records if r["benchmark"] == k), (0, 0))
              for k in keys}
    header = [f"### Ablation run {stamp}", "",
              f"`{command}` on {harness.machine()}, device {args.device}, "
              + (f"tabulated from the {len(records)} stored results (the runs' own wall time is in their logs)"
                 if args.aggregate_only else f"{wall:.0f} s wall ({len(jobs)} trainings, {args.jobs} in parallel)")
              + f", difficulty {args.difficulty:g}, D = "
              f"{harness.FEATURE_DIM}, seeds {' '.join(map(str, args.seeds))}. "
              + "; ".join(f"{harness.BENCHMARKS[k].title}: {counts[k][0]} `{harness.BENCHMARKS[k].train_subset}` "
                          "videos for training (the preset's `data.val_fraction` share, if any, held out for "
                          f"model selection), {counts[k][1]} "
                          f"`{harness.BENCHMARKS[k].eval_subset}` videos evaluated" for k in keys) + ". "
              + ("Settings beyond the presets: `" + " ".join(base[keys[0]]) + "`. " if base[keys[0]] else "")
              + "Numbers are mAP (%) on the evaluated videos, mean ± sd over seeds; paper numbers are its "
                "ActivityNet ones. Δ avg: per-seed paired difference to the baseline (mean ± sd); a direction "
                "holds when |mean Δ| > 2 sd and its sign is the paper's."]
    if failed:
        header += ["", f"Failed runs (see `logs/`): {', '.join(failed)}."]
    missing = [f"{j.benchmark}/{j.variant}_s{j.seed}" for j in jobs
               if not run_path(out, j.benchmark, j.variant, j.seed).is_file() and f"{j.benchmark}/{j.variant}_s{j.seed}" not in failed]
    if missing:
        header += ["", f"{len(missing)} of {len(jobs)} trainings did not run to the end (time limit) and are "
                       f"left out: {', '.join(missing)}."]
    text = markdown(entries, keys, sorted(args.tables), header)
    (out / "ablations.md").write_text(text + "\n")
    (out / "ablations.json").write_text(json.dumps(
        {"command": command, "date": stamp, "machine": harness.machine(), "device": args.device, "wall_s": wall,
         "seeds": args.seeds, "videos": sizes, "difficulty": args.difficulty, "overrides": base,
         "failed": failed, "entries": entries, "runs": records}, indent=1))
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
