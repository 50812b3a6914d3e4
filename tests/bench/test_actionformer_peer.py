"""The pure conversions of the ActionFormer peer harness (`benchmarks/peers/actionformer.py`).

ActionFormer itself is not needed (nor present in CI): these check the files handed to it and
the reading of its results, against the fields its dataset readers and eval.py use.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.peers import actionformer as afp
from gsmt.annotations.types import Annotations, Video
from gsmt.errors import GsmtError
from gsmt.evaluation import evaluate_detection

CLASSES = ["a", "b", "c", "d"]
META = {"grid": {"fps": 30.0, "feature_stride": 8, "feature_window": 16}, "train_subset": "validation",
        "eval_subset": "test", "temporal_mode": "window", "tiou": "thumos"}


def annotations() -> Annotations:
    # Class "a" (id 0) has no instance anywhere; "c" only in the evaluated subset.
    videos = [
        Video("v1", "validation", 20.0, segments=np.array([[1.0, 3.0], [5.0, 9.5]]), labels=np.array([1, 3])),
        Video("v2", "validation", 15.0),  # no instance: left out for training
        Video("v3", "test", 30.0, segments=np.array([[2.0, 4.0], [10.0, 12.0]]), labels=np.array([2, 1]),
              ambiguous=np.array([[20.0, 21.0]])),
        Video("v4", "test", 12.0, fps=25.0),
    ]
    return Annotations(videos, list(CLASSES), meta=dict(META))


def test_to_actionformer_json_fields_and_dense_label_ids():
    out = afp.to_actionformer_json(annotations(), train_subset="validation")
    assert out["classes"] == ["b", "c", "d"]  # label_id -> name, our class order, only classes with instances
    assert out["dropped_train_videos"] == 1
    db = out["database"]
    assert list(db) == ["v1", "v3", "v4"]
    assert db["v1"] == {"subset": "validation", "duration": 20.0, "fps": 30.0, "annotations": [
        {"label": "b", "label_id": 0, "segment": [1.0, 3.0]}, {"label": "d", "label_id": 2, "segment": [5.0, 9.5]}]}
    assert [a["label_id"] for a in db["v3"]["annotations"]] == [1, 0]  # no Ambiguous entry
    assert db["v4"] == {"subset": "test", "duration": 12.0, "fps": 25.0, "annotations": []}
    # What ActionFormer's readers build from it: label -> label_id, consistent and dense 0..K-1.
    label_dict = {a["label"]: a["label_id"] for v in db.values() for a in v["annotations"]}
    assert sorted(label_dict.values()) == list(range(len(out["classes"])))
    assert all(out["classes"][i] == name for name, i in label_dict.items())


def test_to_actionformer_json_keeps_everything_without_train_subset():
    out = afp.to_actionformer_json(annotations())
    assert list(out["database"]) == ["v1", "v2", "v3", "v4"] and out["dropped_train_videos"] == 0


def test_data_grid_shared_and_mixed_fps():
    assert afp.data_grid(annotations()) == (None, 8, 16)  # v4 has its own fps
    ann = annotations()
    ann.videos = ann.videos[:3]
    assert afp.data_grid(ann) == (30.0, 8, 16)
    ann.videos[0].feature_stride = 4
    with pytest.raises(GsmtError, match="one feature_stride"):
        afp.data_grid(ann)
    ann = Annotations([Video("x", "test", 5.0)], ["a"], meta={})
    with pytest.raises(GsmtError, match="no snippet grid"):
        afp.data_grid(ann)


THUMOS_TEMPLATE = {  # the release's configs/thumos_i3d.yaml, as yaml.safe_load reads it
    "dataset_name": "thumos", "train_split": ["validation"], "val_split": ["test"],
    "dataset": {"json_file": "./data/thumos/annotations/thumos14.json", "feat_folder": "./data/thumos/i3d_features",
                "file_prefix": None, "file_ext": ".npy", "num_classes": 20, "input_dim": 2048, "feat_stride": 4,
                "num_frames": 16, "trunc_thresh": 0.5, "crop_ratio": [0.9, 1.0], "max_seq_len": 2304},
    "model": {"fpn_type": "identity", "max_buffer_len_factor": 6.0, "n_mha_win_size": 19},
    "opt": {"learning_rate": 0.0001, "epochs": 30, "weight_decay": 0.05},
    "loader": {"batch_size": 2},
    "test_cfg": {"voting_thresh": 0.7, "pre_nms_topk": 2000, "max_seg_num": 200, "min_score": 0.001,
                 "multiclass_nms": True},
    "output_folder": "./ckpt/",
}
ANET_TEMPLATE = {  # the parts of configs/anet_tsp.yaml that the harness touches
    "dataset_name": "anet", "train_split": ["training"], "val_split": ["validation"],
    "dataset": {"file_prefix": "v_", "num_classes": 1, "input_dim": 512, "feat_stride": 16, "num_frames": 16,
                "default_fps": 15, "max_seq_len": 192, "force_upsampling": True},
    "opt": {"learning_rate": 0.001, "epochs": 10, "weight_decay": 0.05},
    "loader": {"batch_size": 16},
    "test_cfg": {"multiclass_nms": False, "nms_sigma": 0.75,
                 "ext_score_file": "./data/anet_1.3/annotations/cuhk_val_simp_share.json"},
    "output_folder": "./ckpt/",
}


def config(template, mode, **kw):
    args = dict(mode=mode, json_file="/w/af.json", feat_folder="/d/features", input_dim=64, num_classes=14,
                feat_stride=8, num_frames=16, fps=30.0, train_subset="validation", eval_subset="test",
                output_folder="/w/ckpt")
    return afp.actionformer_config(template, **{**args, **kw})


def test_actionformer_config_window_mode():
    cfg = config(THUMOS_TEMPLATE, "window")
    assert cfg["dataset"] == {**THUMOS_TEMPLATE["dataset"], "json_file": "/w/af.json", "feat_folder": "/d/features",
                              "num_classes": 14, "input_dim": 64, "feat_stride": 8, "num_frames": 16,
                              "default_fps": 30.0}
    assert (cfg["train_split"], cfg["val_split"], cfg["output_folder"]) == (["validation"], ["test"], "/w/ckpt")
    assert cfg["opt"] == THUMOS_TEMPLATE["opt"]  # the release's epochs unless given
    assert cfg["loader"] == {"batch_size": 2, "num_workers": 1}
    assert cfg["model"] == THUMOS_TEMPLATE["model"] and cfg["test_cfg"] == THUMOS_TEMPLATE["test_cfg"]
    assert "init_rand_seed" not in cfg
    assert THUMOS_TEMPLATE["dataset"]["num_classes"] == 20  # the template is not modified
    cfg = config(THUMOS_TEMPLATE, "window", epochs=3, warmup_epochs=1, seed=7, fps=None, num_workers=2)
    assert cfg["opt"]["epochs"] == 3 and cfg["opt"]["warmup_epochs"] == 1 and cfg["init_rand_seed"] == 7
    assert "default_fps" not in cfg["dataset"] and cfg["loader"]["num_workers"] == 2
    with pytest.raises(ValueError, match="num_workers"):
        config(THUMOS_TEMPLATE, "window", num_workers=0)
    with pytest.raises(ValueError, match="mode"):
        config(THUMOS_TEMPLATE, "other")


def test_actionformer_config_resize_mode_predicts_classes_itself():
    cfg = config(ANET_TEMPLATE, "resize", num_classes=5, feat_stride=16)
    assert cfg["dataset"]["file_prefix"] is None and cfg["dataset"]["num_classes"] == 5
    assert cfg["dataset"]["force_upsampling"] is True and cfg["dataset"]["max_seq_len"] == 192
    assert cfg["dataset"]["default_fps"] == 30.0
    assert cfg["test_cfg"] == {"multiclass_nms": True, "nms_sigma": 0.75}  # no external classifier


def pkl_results():
    # What eval.py --saveonly pickles: ids repeated per segment, arrays concatenated over videos.
    return {"video-id": ["v3", "v3", "v1"], "t-start": np.array([2.1, 9.0, 1.0], dtype=np.float32),
            "t-end": np.array([4.0, 12.5, 3.0], dtype=np.float32), "label": np.array([1, 0, 2]),
            "score": np.array([0.9, 0.5, 0.25], dtype=np.float32)}


def test_from_actionformer_results():
    out = afp.from_actionformer_results(pkl_results(), ["b", "c", "d"], video_ids=["v3", "v4"])
    assert set(out) == {"version", "external_data", "results"}
    res = out["results"]
    assert list(res) == ["v3", "v4", "v1"]
    assert res["v4"] == []
    assert [d["label"] for d in res["v3"]] == ["c", "b"] and res["v1"][0]["label"] == "d"
    np.testing.assert_allclose(res["v3"][1]["segment"], [9.0, 12.5])
    np.testing.assert_allclose([d["score"] for d in res["v3"]], [0.9, 0.5])
    assert all(isinstance(x, float) for d in res["v3"] for x in [d["score"], *d["segment"]])
    with pytest.raises(ValueError, match="label id 2"):
        afp.from_actionformer_results(pkl_results(), ["b", "c"])
    bad = pkl_results()
    bad["score"] = bad["score"][:2]
    with pytest.raises(ValueError, match="lengths"):
        afp.from_actionformer_results(bad, ["b", "c", "d"])


def test_round_trip_through_the_evaluator():
    """Ground truth written for ActionFormer and read back as perfect predictions scores 1.0 with gsmt."""
    ann = annotations()
    af = afp.to_actionformer_json(ann, train_subset="validation")
    rows = [(vid, a["segment"], a["label_id"]) for vid, v in af["database"].items() if v["subset"] == "test"
            for a in v["annotations"]]
    results = {"video-id": [r[0] for r in rows], "t-start": np.array([r[1][0] for r in rows]),
               "t-end": np.array([r[1][1] for r in rows]), "label": np.array([r[2] for r in rows]),
               "score": np.linspace(0.9, 0.5, len(rows))}
    sub = afp.from_actionformer_results(results, af["classes"], [v.id for v in ann.subset("test")])
    metrics = evaluate_detection(ann, sub, subset="test", tiou="thumos")
    assert metrics.average_mAP == pytest.approx(1.0)


def test_epoch_seconds_from_train_log():
    events = [(0.0, "Start training"), (1.0, "[Train]: Epoch 0 started"), (4.5, "Epoch: [000][00010/00029]"),
              (7.0, "[Train]: Epoch 0 finished with lr=0.00010000"), (7.5, "[Train]: Epoch 1 started"),
              (10.0, "[Train]: Epoch 1 finished with lr=0.00000001")]
    assert afp.epoch_seconds(events) == [6.0, 2.5]
    assert afp.epoch_seconds([]) == []


def test_unedited_lists_missing_hand_edits(tmp_path):
    (tmp_path / "libs/utils").mkdir(parents=True)
    (tmp_path / "train.py").write_text("")
    (tmp_path / "libs/utils/train_utils.py").write_text("x\n        torch.cuda.synchronize()\n")
    (tmp_path / "libs/utils/metrics.py").write_text("a.astype(np.float)\n")
    (tmp_path / "eval.py").write_text("map_location = lambda storage, loc: storage.cuda(cfg['devices'][0])\n")
    assert [p.split(":")[0] for p in afp.unedited(tmp_path)] == ["libs/utils/train_utils.py",
                                                                  "libs/utils/metrics.py", "eval.py"]
    (tmp_path / "libs/utils/train_utils.py").write_text(
        "x\n        if torch.cuda.is_available():\n            torch.cuda.synchronize()\n")
    (tmp_path / "libs/utils/metrics.py").write_text("a.astype(np.float64)\n")
    (tmp_path / "eval.py").write_text("map_location = 'cpu'\n")
    assert afp.unedited(tmp_path) == []
    assert "no ActionFormer release" in afp.check_peer(tmp_path / "missing", cpu=True)[0]


def test_work_folder_inside_the_repository_must_be_ignored(tmp_path):
    afp.check_work_folder(tmp_path / "work")  # outside: fine
    with pytest.raises(GsmtError, match="inside the repository"):
        afp.check_work_folder(afp.REPO / "benchmarks" / "af_work")


def test_training_videos_without_a_segment_actionformer_keeps_are_left_out():
    # ActionFormer's training reader skips segments starting past the video or less than half inside
    # it, and fails on a video left with none (real ActivityNet annotations run past the end).
    videos = [
        Video("past", "validation", 10.0, segments=np.array([[10.0, 14.0]]), labels=np.array([1])),
        Video("mostly", "validation", 10.0, segments=np.array([[8.0, 14.0], [3.0, 3.0]]), labels=np.array([1, 2])),
        Video("half", "validation", 10.0, segments=np.array([[8.0, 12.0]]), labels=np.array([1])),
        Video("mixed", "validation", 10.0, segments=np.array([[11.0, 12.0], [2.0, 4.0]]), labels=np.array([1, 2])),
        Video("evaluated", "test", 10.0, segments=np.array([[10.0, 14.0]]), labels=np.array([1])),
    ]
    out = afp.to_actionformer_json(Annotations(videos, list(CLASSES), meta=dict(META)), train_subset="validation")
    assert list(out["database"]) == ["half", "mixed", "evaluated"] and out["dropped_train_videos"] == 2
    # the segments of a kept video are written as they are
    assert [a["segment"] for a in out["database"]["mixed"]["annotations"]] == [[11.0, 12.0], [2.0, 4.0]]


def test_a_stopped_harness_stops_the_peer_it_runs(tmp_path):
    # `kill` of benchmarks/family.py (SIGTERM) must not leave ActionFormer training on its own.
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); print('up', flush=True); time.sleep(60)"
    harness = ("import os, signal, sys; from pathlib import Path; from benchmarks.peers.actionformer import run_peer; "
               "signal.signal(signal.SIGTERM, lambda s, f: sys.exit(128 + s)); "
               f"run_peer([sys.executable, '-c', {child!r}], cwd=Path('.'), env=dict(os.environ), "
               f"log=Path({str(tmp_path / 'peer.log')!r}), echo=False)")
    parent = subprocess.Popen([sys.executable, "-c", harness], cwd=afp.REPO)
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    child_pid = int(pid_file.read_text())
    time.sleep(0.3)  # the harness is reading the child's output
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    with pytest.raises(ProcessLookupError):  # gone, not orphaned (and reaped: no zombie left either)
        os.kill(child_pid, 0)
