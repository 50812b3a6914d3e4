"""The systems gsmt is compared with, each runnable on a gsmt data folder and scored by gsmt's evaluator:
`baseline` (the context-free per-snippet baseline) and `actionformer` (the public ActionFormer release,
set up by hand). `benchmarks.harness` runs them beside GSMT."""
