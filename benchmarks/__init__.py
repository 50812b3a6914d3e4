"""Benchmarks of gsmt: accuracy sweeps, speed benchmarks and peer runners, results in BENCHMARKS.md.

Run each script from the repository root as a module, e.g. `python -m benchmarks.semi_real --help`.
`harness.py` renders the benchmark data, runs a system on it and tabulates the results; `peers/`
holds the systems gsmt is compared with (the context-free baseline, ActionFormer).
"""
