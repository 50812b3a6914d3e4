"""A new user's own videos, end to end, exactly as the README's "From raw videos" says (issue 34).

Makes 32 clips of 30 s (64 x 48 px, 10 fps) in which one orange object makes up to 6 actions of
three classes told apart only by shape and motion (`gsmt.video.clips`, `one_colour`), on a scrolling
texture with a wandering distractor; 24 clips train, 8 are held out. Labels are a plain CSV
`video,start,end,label`; the backbone is a random-weight VideoMAE saved in a local folder (4 frames
of 32 px, D = 32). Then, through the `gsmt` command next to this Python, in fresh folders:

    gsmt extract --videos my_videos --backbone bb/videomae --fps 10 --feature-stride 2 \\
        --feature-window 4 --out my_data --annotations my_labels.csv
    gsmt train thumos --data my_data --out runs/mine             # no --set
    cd elsewhere && gsmt detect ../new_videos --checkpoint ../runs/mine --out detections
    gsmt eval --gt heldout.csv --pred detections/detections.json --tiou thumos

once per variant (`--variants`: `default` as above, `none` / `global` / `dims` for `--set
model.standardize=...`, `T256` / `T256_none`: the preset's T = 256 instead of the fitted one), and
prints the held-out average mAP (%) and the wall-clock seconds of each step.

    python -m benchmarks.own_videos --work /tmp/own_videos [--variants default,none,dims]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TRAIN, HELD_OUT = 24, 8


def make_inputs(work: Path, seed: int) -> None:
    """Clips, the CSV labels of the training clips, the held-out truth and the backbone folder."""
    import torch

    from gsmt.video.clips import ClipSpec, save_random_video_encoder, write_clips

    spec = ClipSpec(seconds=30.0, max_events=6, min_event=1.5, max_event=4.0, one_colour=True)
    write_clips(work / "clips", videos=TRAIN + HELD_OUT, seed=seed, spec=spec, validation_share=HELD_OUT / (TRAIN + HELD_OUT))
    truth = json.loads((work / "clips" / "annotations.json").read_text())["database"]
    for folder in ("my_videos", "new_videos"):
        (work / folder).mkdir()
    rows = {"my_videos": [], "new_videos": []}
    for vid, entry in sorted(truth.items()):
        folder = "my_videos" if entry["subset"] == "training" else "new_videos"
        shutil.move(work / "clips" / "videos" / f"{vid}.mp4", work / folder / f"{vid}.mp4")
        rows[folder] += [(vid, a["segment"][0], a["segment"][1], a["label"]) for a in entry["annotations"]]
    for name, folder in (("my_labels.csv", "my_videos"), ("heldout.csv", "new_videos")):
        with open(work / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["video", "start", "end", "label"])
            writer.writerows(rows[folder])
    torch.manual_seed(seed)
    save_random_video_encoder(work / "bb" / "videomae")


def _gsmt(gsmt: str, args: list[str], cwd: Path, log: Path) -> float:
    start = time.perf_counter()
    with open(log, "a") as fh:
        fh.write(f"\n$ (cd {cwd}) gsmt {' '.join(args)}\n")
        fh.flush()
        code = subprocess.run([gsmt, *args], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"gsmt {args[0]} failed ({code}); see {log}")
    return time.perf_counter() - start


def run_variant(work: Path, name: str, extra: list[str], gsmt: str, threads: int) -> dict:
    """The README's steps 2-4 and an evaluation; the features are extracted once for all variants."""
    log = work / "log.txt"
    seconds = {}
    if not (work / "my_data" / "annotations.json").exists():
        seconds["extract"] = _gsmt(gsmt, ["extract", "--videos", "my_videos", "--backbone", "bb/videomae",
                                          "--fps", "10", "--feature-stride", "2", "--feature-window", "4",
                                          "--out", "my_data", "--annotations", "my_labels.csv",
                                          "--threads", str(threads), "--quiet"], work, log)
    run = f"runs/{name}"
    seconds["train"] = _gsmt(gsmt, ["train", "thumos", "--data", "my_data", "--out", run, "--quiet", *extra],
                             work, log)
    elsewhere = work / f"elsewhere_{name}"
    elsewhere.mkdir()
    seconds["detect"] = _gsmt(gsmt, ["detect", str(Path("..") / "new_videos"), "--checkpoint", str(Path("..") / run),
                                     "--out", "detections", "--threads", str(threads), "--quiet"], elsewhere, log)
    _gsmt(gsmt, ["eval", "--gt", "heldout.csv", "--pred", f"{elsewhere.name}/detections/detections.json",
                 "--tiou", "thumos", "--json", f"metrics_{name}.json"], work, log)
    metrics = json.loads((work / f"metrics_{name}.json").read_text())
    config = (work / run / "config.yaml").read_text()
    decided = [line for line in config.splitlines() if "decided from the data" in line]
    return {"variant": name, "average_mAP": 100 * metrics["average_mAP"], "seconds": seconds, "decided": decided}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gsmt_own_videos"))
    parser.add_argument("--variants", default="default,none,dims")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    variants = {"default": [], **{mode: ["--set", f"model.standardize={mode}"] for mode in ("none", "global", "dims")},
                # the first try: the preset's T = 256 (one short window per 30-s clip), as read
                "T256_none": ["--set", "data.T=256", "--set", "model.standardize=none"],
                "T256": ["--set", "data.T=256"]}
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    make_inputs(args.work, args.seed)
    gsmt = str(Path(sys.executable).parent / "gsmt")
    results = [run_variant(args.work, name, variants[name], gsmt, args.threads) for name in args.variants.split(",")]
    print("| variant | held-out average mAP (%) | extract s | train s | detect s |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        s = r["seconds"]
        print(f"| {r['variant']} | {r['average_mAP']:.2f} | {s.get('extract', 0):.0f} | {s['train']:.0f} | "
              f"{s['detect']:.0f} |")
    for r in results:
        print(f"{r['variant']}: " + "; ".join(r["decided"]))
    (args.work / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
