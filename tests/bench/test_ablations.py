"""Paper ablations in the semi-real harness (`benchmarks/ablations.py`): oracles, plan, verdicts, one tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import ablations


def test_oracle_inputs_hand_computed():
    probs = np.full((3, 4), 1 / 3)  # K = 2, background = row 2
    masks = np.zeros((4, 4))
    cls_target = np.array([0, -1, 2, 1])  # an ignored snippet counts as background
    mask_target = np.eye(4, dtype=np.float32)
    p, m = ablations.oracle_inputs(probs, masks, cls_target, mask_target, "class")
    np.testing.assert_array_equal(p, [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 1, 0]])
    assert m is masks
    p, m = ablations.oracle_inputs(probs, masks, cls_target, mask_target, "mask")
    assert p is probs
    np.testing.assert_array_equal(m, np.eye(4))
    p, m = ablations.oracle_inputs(probs, None, cls_target, mask_target, "both")
    assert p.sum() == 4 and m.dtype == np.float64
    with pytest.raises(ValueError):
        ablations.oracle_inputs(probs, masks, cls_target, mask_target, "labels")


def test_verdict_rule():
    # mean -1.0, sd 0.2 over three seeds: clear (1.0 > 0.4).
    assert ablations.verdict([-1.2, -1.0, -0.8], paper_diff=-9.8) == "holds"
    assert ablations.verdict([-1.2, -1.0, -0.8], paper_diff=+2.0) == "opposite"
    assert ablations.verdict([-1.2, -1.0, -0.8], paper_diff=None) == "lower"
    # mean 0.5, sd 1.32: within 2 sd.
    assert ablations.verdict([2.0, -0.5, 0.0], paper_diff=-1.0) == "no clear difference"
    assert ablations.verdict([0.0, 0.0, 0.0], paper_diff=-1.0) == "no clear difference"
    assert ablations.verdict([3.0], paper_diff=1.0) == "n/a (one seed)"


def test_baseline_row_follows_the_preset():
    t13 = ablations.TABLES[13]
    # The presets use no positional encoding (the paper's best), so fixed and learned are variants;
    # with the encoding overridden the baseline row follows it.
    assert ablations.baseline_row(t13, "anet", []).key == "pos_none"
    assert ablations.baseline_row(t13, "anet", ["model.pos_encoding=fixed"]).key == "pos_fixed"
    assert ablations.baseline_row(ablations.TABLES[0], "thumos", []).key == "mask_head_pairwise"
    assert ablations.baseline_row(ablations.TABLES[9], "thumos", []).key == "heads4"
    assert ablations.baseline_row(ablations.TABLES[9], "thumos", ["model.n_heads=8"]) is None
    # A base setting that drops a loss term makes that row Table 5's baseline and "GSMT (full)" a variant.
    assert ablations.baseline_row(ablations.TABLES[5], "anet", []).key == "loss_full"
    assert ablations.baseline_row(ablations.TABLES[5], "anet", ["loss.logistic=false"]).key == "no_logistic"


def test_plan_of_the_full_set():
    jobs = ablations.plan(["thumos", "anet"], sorted(ablations.TABLES), [0, 1, 2], {"thumos": 200, "anet": 2000},
                          {"thumos": [], "anet": ["train.epochs=5"]}, difficulty=0.8, device="cuda", cache="c",
                          out="o")
    per_seed = {k: sorted(j.variant for j in jobs if j.benchmark == k and j.seed == 0) for k in ("thumos", "anet")}
    # Table 0: 1, Table 4: 1, Table 5: 4, Table 7: 1, Table 9: 4, Table 13: 2, Table 14: 3, baseline: 1;
    # ActivityNet adds Table 12: 3.
    assert len(per_seed["thumos"]) == 17 and len(per_seed["anet"]) == 20 and len(jobs) == 3 * (17 + 20)
    # The presets use the pairwise mask head, so the paper's conv head is Table 0's variant.
    assert "mask_head_conv" in per_seed["thumos"] and "mask_head_pairwise" not in per_seed["anet"]
    assert "T50" in per_seed["anet"] and "T50" not in per_seed["thumos"]
    assert "pos_none" not in per_seed["anet"] and "pos_fixed" in per_seed["anet"] and "kernel7" not in per_seed["thumos"]
    base = [j for j in jobs if j.variant == "baseline"]
    assert len(base) == 6 and all(j.oracles == ["oracle_class", "oracle_mask", "oracle_both"] for j in base)
    cnn = next(j for j in jobs if j.benchmark == "anet" and j.variant == "embedding_cnn" and j.seed == 2)
    assert cnn.overrides == ["train.epochs=5", "model.embedding=cnn"] and cnn.videos == 2000 and not cnn.oracles
    # Variant-major, benchmarks interleaved, tables in the order asked (Table 12 last here).
    head = [(j.benchmark, j.variant, j.seed) for j in jobs[:9]]
    assert head == [("thumos", "baseline", 0), ("thumos", "baseline", 1), ("thumos", "baseline", 2),
                    ("anet", "baseline", 0), ("anet", "baseline", 1), ("anet", "baseline", 2),
                    ("thumos", "mask_head_conv", 0), ("thumos", "mask_head_conv", 1), ("thumos", "mask_head_conv", 2)]
    ordered = ablations.plan(["anet"], [4, 12], [0, 1], {"anet": 40}, {"anet": []}, difficulty=0.8, device="cpu",
                             cache="c", out="o")
    assert [(j.variant, j.seed) for j in ordered][-2:] == [("T200", 0), ("T200", 1)]
    assert [(j.variant, j.seed) for j in ordered][:4] == [("baseline", 0), ("baseline", 1), ("embedding_cnn", 0),
                                                          ("embedding_cnn", 1)]


def _record(variant, seed, avg, at5):
    return {"benchmark": "anet", "variant": variant, "seed": seed,
            "metrics": {"validation": {"tiou": [0.5, 0.75], "mAP": [at5, 0.0], "average_mAP": avg}}}


def test_aggregate_pairs_seeds_and_writes_the_paper_table():
    records = [_record("baseline", s, a, b) for s, a, b in ((0, 0.30, 0.50), (1, 0.32, 0.52), (2, 0.31, 0.51))]
    records += [_record("embedding_cnn", s, a, b) for s, a, b in ((0, 0.20, 0.40), (1, 0.21, 0.40), (2, 0.22, 0.43))]
    entries = ablations.aggregate(records, ["anet"], [4], {"anet": []})
    base, cnn = entries
    assert base["baseline"] and base["verdict"] == "baseline"
    np.testing.assert_allclose(cnn["diff_avg"], [-10.0, -11.0, -9.0])
    assert cnn["paper_diff_avg"] == pytest.approx(26.4 - 36.2) and cnn["verdict"] == "holds"
    text = ablations.markdown(entries, ["anet"], [4], ["head"]).splitlines()
    assert "| Transformer (baseline) | 56.0 | 36.2 | 51.00 ± 1.00 | 31.00 ± 1.00 | - | - | baseline |" in text
    assert "| 1-D CNN | 46.8 | 26.4 | 41.00 ± 1.73 | 21.00 ± 1.00 | -10.00 ± 1.00 | -9.8 | holds |" in text
    assert text[-1] == "| 4 | 1-D CNN | -9.8 | -10.00 ± 1.00 (holds) |"
    # A variant without results is reported as missing, not dropped.
    missing = ablations.aggregate(records[:3], ["anet"], [4], {"anet": []})
    assert missing[1]["verdict"] == "missing"


def test_tiny_ablation_end_to_end_and_resume(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["--tiny", "--benchmark", "anet", "--tables", "4", "6", "--seeds", "0", "1", "--jobs", "1",
            "--cache", str(cache), "--out", str(out)]
    assert ablations.main(argv) == 0
    first = capsys.readouterr().out
    runs = sorted(p.name for p in (out / "runs" / "anet").glob("*.json"))
    assert runs == sorted(f"{v}_s{s}.json" for s in (0, 1)
                          for v in ("baseline", "embedding_cnn", "oracle_class", "oracle_mask", "oracle_both"))
    assert not list(out.rglob("*.pt"))  # checkpoints are dropped once evaluated
    summary = json.loads((out / "ablations.json").read_text())
    entries = {(e["table"], e["row"]): e for e in summary["entries"]}
    assert len(summary["runs"]) == 10 and summary["failed"] == []
    for e in entries.values():
        assert e["seeds"] == [0, 1] and all(0 <= v <= 100 for v in e["avg_mAP"] + e["mAP_0.5"])
    trained = [r for r in summary["runs"] if not r["variant"].startswith("oracle")]
    # the held-out videos' best mAP, for choices: none here, since the presets hold no video out
    assert [r["heldout_mAP"] for r in trained] == [None] * 4
    # Ground-truth classes and masks together decode most instances whatever the (barely trained) model.
    assert min(entries[(6, "oracle_both")]["avg_mAP"]) > 50
    assert entries[(6, "oracle_both")]["verdict"] in ("higher", "no clear difference")
    assert "#### ActivityNet-1.3: Table 4. Transformer vs 1-D CNN snippet embedding" in first
    assert (out / "ablations.md").read_text().strip() in first

    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    assert ablations.main(argv) == 0
    again = capsys.readouterr().out
    assert again.count("cached: anet") == 4 and "trainings" in again
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.json")}
    # Other settings are not reused: one more override retrains.
    assert not ablations.is_done(out, ablations.plan(["anet"], [4], [0], {"anet": 40}, {"anet": ["train.epochs=1"]},
                                                     difficulty=0.8, device="cpu", cache=str(cache),
                                                     out=str(out))[0])
