"""The paper's Table 7 ablation end to end: without the mask branch, decoding thresholds actionness."""

import json

from gsmt.cli import main


def test_train_and_predict_without_mask_branch(tiny_data, tmp_path, one_thread):
    run = tmp_path / "run"
    args = ["train", "demo", "--data", str(tiny_data), "--out", str(run), "--quiet"]
    for o in ["data.T=32", "model.hidden_dim=16", "model.num_layers=1", "train.epochs=1",
              "model.mask_branch=false"]:
        args += ["--set", o]
    assert main(args) == 0
    preds = tmp_path / "preds.json"
    assert main(["predict", "--checkpoint", str(run), "--data", str(tiny_data), "--out", str(preds)]) == 0
    results = json.loads(preds.read_text())["results"]
    assert results and all(isinstance(v, list) for v in results.values())
    for dets in results.values():
        for d in dets:
            assert 0.0 <= d["segment"][0] <= d["segment"][1] and 0.0 < d["score"] <= 1.0
