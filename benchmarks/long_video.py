"""Peak memory and speed of `gsmt extract` on one long video (issue 34: RSS grew with video length).

    python -m benchmarks.long_video [--minutes 20] [--threads 1 2] [--work /tmp/gsmt_long_video]

Writes one generated video (default 20 min, 64x64 px, 30 fps, H.264; streamed to the encoder, never
held whole), a random-weight tiny image encoder (`video.clips.save_random_image_encoder`), then runs
in child processes (`benchmarks.extract_speed._child_run`: wall time and the child's peak RSS):

- decoding alone (`VideoReader` over the whole video at the extraction fps), the floor;
- `gsmt extract --threads N --quiet` for each N of `--threads`.

Prints a markdown table: what ran, frames, wall, frames/s, peak RSS. The code measured is whatever
`gsmt` the child imports: set PYTHONPATH=<tree>/src to measure another tree (the command line of
each row uses `python -m gsmt.cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.extract_speed import _child_run

_DECODE = """
import sys
from gsmt.video.frames import VideoReader
n = 0
for _ in VideoReader(sys.argv[1], float(sys.argv[2]), short_edge=int(sys.argv[3]), threads=int(sys.argv[4])):
    n += 1
print(n)
"""


def write_long_video(path: Path, *, minutes: float, fps: int, size: int, seed: int = 0) -> Path:
    """A `minutes`-long `size` x `size` H.264 mp4 of a scrolling random texture, encoded frame by
    frame (one libx264 thread) so the generator holds one frame, whatever the length."""
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(size, 2 * size, 3), dtype=np.uint8)
    n = round(minutes * 60 * fps)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "threads": "1"}
        for i in range(n):
            shift = i % size
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, shift:shift + size]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def main() -> None:
    import torch

    from gsmt.video.clips import save_random_image_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/gsmt_long_video")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--fps", type=int, default=30, help="the video's frame rate, also the extraction fps")
    ap.add_argument("--size", type=int, default=64, help="frame width and height (px)")
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--no-decode", action="store_true", help="skip the decoding-alone row")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    video = work / "videos" / f"long_{args.minutes:g}min_{args.size}px_{args.fps}fps.mp4"
    video.parent.mkdir(exist_ok=True)
    if not video.exists():
        t0 = time.perf_counter()
        write_long_video(video, minutes=args.minutes, fps=args.fps, size=args.size)
        print(f"wrote {video} ({video.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    model = work / "tiny_image"
    if not (model / "config.json").exists():
        torch.manual_seed(0)
        save_random_image_encoder(model)
    frames = round(args.minutes * 60 * args.fps)

    print(f"{args.minutes:g}-min video, {args.size}x{args.size} px, {args.fps} fps ({frames} frames); tiny random "
          f"DINOv2-shaped image encoder (32 px, D=48); grid {args.fps} fps, stride {args.stride}, window "
          f"{args.window}, batch {args.batch_size}")
    print("| run | frames | wall | frames/s | peak RSS |\n|---|---:|---:|---:|---:|")
    if not args.no_decode:
        dt, rss = _child_run_python(["-c", _DECODE, str(video), str(args.fps), "32", "1"])
        print(f"| decoding alone (VideoReader, 1 thread) | {frames} | {dt:.1f} s | {frames / dt:.0f} | "
              f"{rss:.0f} MiB |", flush=True)
    for threads in args.threads:
        out = work / f"out_t{threads}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        dt, rss = _child_run(["extract", "--videos", str(video), "--backbone", str(model), "--fps", str(args.fps),
                              "--feature-stride", str(args.stride), "--feature-window", str(args.window),
                              "--batch-size", str(args.batch_size), "--threads", str(threads), "--out", str(out),
                              "--quiet"])
        done = json.loads((out / "extracted" / f"{video.stem}.json").read_text())
        print(f"| `gsmt extract --threads {threads}` | {done['frames']} | {dt:.1f} s | {done['frames'] / dt:.0f} | "
              f"{rss:.0f} MiB |", flush=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
                      "torch": torch.__version__, "gsmt_from": os.environ.get("PYTHONPATH", "installed")}))


def _child_run_python(argv: list[str]) -> tuple[float, float]:
    """`_child_run` for a plain `python ARGV` child (decoding alone)."""
    import benchmarks.extract_speed as es

    saved = es.GSMT
    es.GSMT = [sys.executable]
    try:
        return _child_run(argv)
    finally:
        es.GSMT = saved


if __name__ == "__main__":
    main()
