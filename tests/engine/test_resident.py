"""The device-resident training path (issue 14, item 2): the training samples and their targets read
once into contiguous tensors and batches gathered by index give the very model of the DataLoader
path for the same seed and settings (CPU), and `train.resident*` are checked like every setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gsmt.cli import main
from gsmt.config import load_config
from gsmt.synth.generate import generate
from gsmt.engine.resident import host_memory_bytes, load_resident, resident_place
from gsmt.engine.resolve import make_dataset, open_data
from gsmt.engine.trainer import train
from gsmt.errors import GsmtError

pytestmark = pytest.mark.usefixtures("one_thread")

# Window mode (several windows per video, a seeded share of background-only windows), dropout on (the global
# RNG is drawn in every step) and EMA on: everything the two paths must agree on.
RUN = ["data.T=32", "model.hidden_dim=16", "model.num_layers=1", "model.dropout=0.1", "train.batch_size=6",
       "train.epochs=2", "train.lr=0.005", "train.ema=0.9", "data.val_fraction=0.2", "train.device=cpu",
       "train.threads=1", "data.background_window_ratio=0.5"]


@pytest.fixture(scope="module")
def window_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resident") / "data"
    generate(out, preset="thumos-like", videos=14, num_classes=3, difficulty=0.3, feature_dim=16, seed=5)
    return out


def losses(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k.startswith(("loss", "val_"))} for r in records if "epoch" in r]


@pytest.mark.parametrize("labels", ["single", "multi"])
def test_resident_and_dataloader_paths_train_the_same_model(window_data, tmp_path, capsys, labels):
    """Multi-label targets too: their pairs are padded per batch by the DataLoader and per dataset
    when resident, and the padding changes no number."""
    runs = {}
    for policy in ("never", "always"):
        cfg = load_config("demo", [*RUN, f"train.resident={policy}", f"model.labels={labels}"])
        runs[policy] = train(cfg, window_data, tmp_path / policy, progress=False)
    out = capsys.readouterr().out
    assert out.count("samples resident in cpu memory") == 1  # the `always` run only
    loader, resident = (runs[p].model.state_dict() for p in ("never", "always"))
    assert loader.keys() == resident.keys()
    for name, weight in loader.items():
        assert torch.equal(resident[name], weight), name
    assert losses(tmp_path / "never") == losses(tmp_path / "always")  # every epoch's loss, val_mAP too
    assert len(losses(tmp_path / "never")) == 2
    saved = [torch.load(tmp_path / p / "last.pt", weights_only=False)["ema_model"] for p in ("never", "always")]
    for name, weight in saved[0].items():
        assert torch.equal(saved[1][name], weight), name


def test_resident_samples_are_the_dataset_items(window_data):
    cfg = load_config("demo", RUN)
    source = open_data(window_data, cfg)
    from gsmt.engine.resolve import resolve_config, subset_videos

    cfg = resolve_config(cfg, source.annotations)
    videos = subset_videos(source.annotations, cfg.data.train_subset, "data")
    dataset = make_dataset(videos, source.features, cfg, source.annotations.num_classes, train=True)
    resident = load_resident(dataset, torch.device("cpu"), "always", 0.5)
    assert len(resident) == len(dataset) > 10
    index = torch.tensor([3, 0, len(dataset) - 1, 3])
    batch = resident.batch(index, torch.device("cpu"))
    for row, i in enumerate(index.tolist()):
        item = dataset[i]
        for key in ("features", "valid", "cls_target", "mask_target"):
            assert torch.equal(batch[key][row], item[key]), key
    assert load_resident(dataset, torch.device("cpu"), "never", 0.5) is None


def test_where_the_samples_live():
    cpu, host = torch.device("cpu"), host_memory_bytes()
    assert host > 0
    assert resident_place(1000, cpu, "never", 0.5) is None
    assert resident_place(1000, cpu, "auto", 0.5) == cpu
    assert resident_place(int(0.5 * host), cpu, "auto", 0.5) == cpu
    assert resident_place(int(0.5 * host) + 1, cpu, "auto", 0.5) is None  # the DataLoader then
    assert resident_place(2 * host, cpu, "always", 0.5) == cpu


@pytest.mark.parametrize("override, problem", [
    ("train.resident=sometimes", "config key 'train.resident' must be one of auto, always, never, got 'sometimes'"),
    ("train.resident_memory_fraction=0", "config key 'train.resident_memory_fraction' must be a finite number "
                                         "in (0, 1], got 0.0"),
    ("train.resident_memory_fraction=1.5", "config key 'train.resident_memory_fraction' must be a finite "
                                           "number in (0, 1], got 1.5"),
    ("train.compile=1", "config key 'train.compile' must be bool, got 1"),
])
def test_resident_settings_are_checked(override, problem, tmp_path, capsys):
    code = main(["train", "demo", "--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "run"),
                 "--set", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("gsmt: error: ") and err[0].endswith(problem), err
    assert list(tmp_path.iterdir()) == []


def test_jittered_windows_are_not_held_resident(window_data):
    from gsmt.engine.resolve import resolve_config, subset_videos

    cfg = load_config("demo", [*RUN, "data.window_jitter=0.5"])
    source = open_data(window_data, cfg)
    cfg = resolve_config(cfg, source.annotations)
    videos = subset_videos(source.annotations, cfg.data.train_subset, "data")
    dataset = make_dataset(videos, source.features, cfg, source.annotations.num_classes, train=True)
    assert dataset.max_shift == 4  # 0.5 * stride 16 / 2
    assert load_resident(dataset, torch.device("cpu"), "auto", 0.5) is None  # the DataLoader then
    with pytest.raises(GsmtError, match="'always' cannot hold samples redrawn every epoch"):
        load_resident(dataset, torch.device("cpu"), "always", 0.5)


def test_training_with_jittered_windows_is_seeded_and_differs(window_data, tmp_path):
    cfg = load_config("demo", [*RUN, "data.window_jitter=1.0"])
    a = train(cfg, window_data, tmp_path / "a", progress=False)
    b = train(cfg, window_data, tmp_path / "b", progress=False)
    train(load_config("demo", RUN), window_data, tmp_path / "plain", progress=False)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")  # the offsets are seeded
    assert losses(tmp_path / "a")[0]["loss"] != losses(tmp_path / "plain")[0]["loss"]  # and drawn
    for name, weight in a.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[name], weight), name
