import csv
import gzip
import multiprocessing
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gsmt.data.features import FeatureStore, read_features
from gsmt.errors import GsmtError

# mmaction2's BSN feature CSV, gzip-compressed in the repository (tests/fixtures/README.md).
BSN_CSV_GZ = Path(__file__).resolve().parents[1] / "fixtures" / "mmaction2" / "bsn_feature_v_test1.csv.gz"


def feats(T=6, D=4, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).normal(size=(T, D)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_npy_dtypes_become_float32(tmp_path, dtype):
    x = feats(dtype=dtype)
    np.save(tmp_path / "a.npy", x)
    out = read_features(tmp_path / "a.npy")
    assert out.dtype == np.float32 and out.shape == (6, 4)
    np.testing.assert_array_equal(out, x.astype(np.float32))


def test_layouts_explicit_and_auto(tmp_path):
    x = feats()
    np.save(tmp_path / "dt.npy", x.T)
    np.testing.assert_array_equal(read_features(tmp_path / "dt.npy", layout="DT"), x)
    np.testing.assert_array_equal(read_features(tmp_path / "dt.npy", feature_dim=4), x)
    np.testing.assert_array_equal(read_features(tmp_path / "dt.npy", expected_length=6), x)
    # no hint: rows are snippets
    assert read_features(tmp_path / "dt.npy").shape == (4, 6)
    np.testing.assert_array_equal(read_features(tmp_path / "dt.npy", layout="TD"), x.T)


def test_square_array_needs_a_layout(tmp_path):
    np.save(tmp_path / "sq.npy", feats(T=4, D=4))
    for kw in ({}, {"feature_dim": 4}, {"expected_length": 4}):
        with pytest.raises(GsmtError, match="cannot resolve layout, pass layout"):
            read_features(tmp_path / "sq.npy", **kw)
    assert read_features(tmp_path / "sq.npy", layout="DT").shape == (4, 4)


def test_feature_dim_mismatch(tmp_path):
    np.save(tmp_path / "a.npy", feats())
    with pytest.raises(GsmtError, match="feature dimension") as err:
        read_features(tmp_path / "a.npy", feature_dim=5)
    assert err.value.where == str(tmp_path / "a.npy")
    with pytest.raises(GsmtError, match="feature dimension 4 differs from expected 6"):
        read_features(tmp_path / "a.npy", layout="TD", feature_dim=6)


def test_npz_key_choice(tmp_path):
    x, y = feats(seed=1), feats(seed=2)
    np.savez(tmp_path / "a.npz", other=y, feats=x)
    np.savez(tmp_path / "b.npz", features=x, zzz=y)
    np.savez(tmp_path / "c.npz", first=x)
    for name in ("a", "b", "c"):
        np.testing.assert_array_equal(read_features(tmp_path / f"{name}.npz"), x)


def test_pt_tensor_and_non_tensor(tmp_path):
    x = feats()
    torch.save(torch.from_numpy(x).half(), tmp_path / "a.pt")
    np.testing.assert_array_equal(read_features(tmp_path / "a.pt"), x.astype(np.float16).astype(np.float32))
    torch.save([1, 2, 3], tmp_path / "b.pt")
    with pytest.raises(GsmtError, match="must hold a tensor"):
        read_features(tmp_path / "b.pt")


def test_pt_refuses_pickled_objects(tmp_path):
    with open(tmp_path / "evil.pt", "wb") as f:
        torch.save({"x": Path("/etc")}, f, _use_new_zipfile_serialization=True)
    with pytest.raises(GsmtError, match="refused: not a plain tensor file") as err:
        read_features(tmp_path / "evil.pt")
    assert err.value.where == str(tmp_path / "evil.pt")


def test_bsn_csv_fixture(tmp_path):
    bsn_csv = tmp_path / "v_test1.csv"
    bsn_csv.write_bytes(gzip.decompress(BSN_CSV_GZ.read_bytes()))
    out = read_features(bsn_csv)
    assert out.shape == (5, 400) and out.dtype == np.float32
    with open(bsn_csv) as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "f0"
    np.testing.assert_allclose(out[2, 7], float(rows[3][7]), rtol=1e-6)
    np.testing.assert_allclose(out[4, 399], float(rows[5][399]), rtol=1e-6)


def test_csv_without_header(tmp_path):
    (tmp_path / "a.csv").write_text("1,2,3\n4,5,6\n")
    np.testing.assert_array_equal(read_features(tmp_path / "a.csv"), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("a.npy", None, "feature file not found"),
        ("a.npy", "truncated", "truncated or corrupt"),
        ("a.npz", b"PK\x03\x04garbage", "corrupt"),
        ("a.pt", b"not a zip at all", "corrupt"),
        ("a.csv", "f0,f1\n1,2\n3\n", "corrupt"),
        ("a.txt", b"1", "unsupported feature file type"),
    ],
)
def test_unreadable_files(tmp_path, name, content, problem):
    path = tmp_path / name
    if content == "truncated":
        np.save(path, feats(T=50, D=20))
        path.write_bytes(path.read_bytes()[:300])
    elif isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(GsmtError, match=problem) as err:
        read_features(path)
    assert err.value.where == str(path)


@pytest.mark.parametrize(
    "array, problem",
    [
        (np.zeros(5, np.float32), "must be 2-D"),
        (np.zeros((2, 3, 4), np.float32), "must be 2-D"),
        (np.arange(12).reshape(3, 4), "float16/32/64"),
        (np.array([[0.0, np.nan], [1.0, 2.0], [3, 4]]), "contains NaN/Inf"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3, 4]], np.float16), "contains NaN/Inf"),
        (np.array([[1e300, 0.0], [1.0, 2.0], [3, 4]]), "contains NaN/Inf"),  # overflows float32
    ],
)
def test_bad_arrays(tmp_path, array, problem):
    np.save(tmp_path / "a.npy", array)
    with pytest.raises(GsmtError, match=problem):
        read_features(tmp_path / "a.npy")


@pytest.mark.parametrize("vid", ["../x", "..", "/etc/passwd", "a/b", "a\\b", "a\x00b", "", "C:x"])
def test_unsafe_ids_are_refused(tmp_path, vid):
    store = FeatureStore(tmp_path)
    with pytest.raises(GsmtError, match="unsafe video id"):
        store.load(vid)
    with pytest.raises(GsmtError, match="unsafe video id"):
        store.missing([vid])


def test_folder_store_detects_extensions_and_is_lazy(tmp_path):
    x = feats()
    np.save(tmp_path / "v1.npy", x)
    np.savez(tmp_path / "v2.npz", feats=x[:3])
    torch.save(torch.from_numpy(x[:2]), tmp_path / "v3.pt")
    (tmp_path / "bad.npy").write_bytes(b"corrupt")  # never loaded: must not matter
    store = FeatureStore(tmp_path)
    assert store.feature_dim is None
    assert store.missing(["v3", "nope", "v1", "v2", "v4.npy"]) == ["nope", "v4.npy"]
    assert store.feature_dim is None  # missing() reads nothing
    np.testing.assert_array_equal(store.load("v2"), x[:3])
    assert store.feature_dim == 4
    assert store.load("v3").shape == (2, 4)
    with pytest.raises(GsmtError, match="no feature file"):
        store.load("nope")
    with pytest.raises(GsmtError, match="corrupt"):
        store.load("bad")


def test_store_feature_dim_resolves_and_checks_later_files(tmp_path):
    np.save(tmp_path / "a.npy", feats(T=6, D=4))
    np.save(tmp_path / "b.npy", feats(T=9, D=4).T)  # stored [D, T]
    np.save(tmp_path / "c.npy", feats(T=6, D=5))
    store = FeatureStore(tmp_path)
    store.load("a")
    assert store.load("b").shape == (9, 4)  # layout found from the first file's D
    with pytest.raises(GsmtError, match="feature dimension"):
        store.load("c")
    assert FeatureStore(tmp_path, feature_dim=5).load("c").shape == (6, 5)


def test_store_suffix_option(tmp_path):
    np.save(tmp_path / "a.npy", feats(T=3))
    np.savez(tmp_path / "a.npz", feats=feats(T=7))
    assert FeatureStore(tmp_path).load("a").shape == (3, 4)  # .npy is probed first
    assert FeatureStore(tmp_path, suffix="npz").load("a").shape == (7, 4)
    assert FeatureStore(tmp_path, suffix=".npz").missing(["a", "b"]) == ["b"]
    with pytest.raises(GsmtError, match="unsupported feature suffix"):
        FeatureStore(tmp_path, suffix=".mp4")


def test_store_root_errors(tmp_path):
    with pytest.raises(GsmtError, match="feature path not found"):
        FeatureStore(tmp_path / "none")
    (tmp_path / "x.npy").write_bytes(b"")
    with pytest.raises(GsmtError, match="folder of per-video files or one .h5"):
        FeatureStore(tmp_path / "x.npy")
    with pytest.raises(GsmtError, match="unknown feature layout"):
        FeatureStore(tmp_path, layout="TxD")


def _write_h5(path):
    x = feats(T=5, D=3)
    with h5py.File(path, "w") as f:
        f["v_a"] = x
        f["v_b"] = x[:2].T.astype(np.float16)
        f.create_group("grp")
    return x


def _load_in_child(store, queue):
    queue.put(store.load("v_a").tolist())


def test_h5_store(tmp_path):
    x = _write_h5(tmp_path / "f.h5")
    store = FeatureStore(tmp_path / "f.h5", feature_dim=3)
    assert store._h5 is None  # opened lazily
    assert store.missing(["v_b", "zz", "v_a"]) == ["zz"]
    np.testing.assert_array_equal(store.load("v_a"), x)
    np.testing.assert_allclose(store.load("v_b"), x[:2].astype(np.float16), rtol=0)
    with pytest.raises(GsmtError, match="no features for this video"):
        store.load("zz")
    with pytest.raises(GsmtError, match="found a group"):
        store.load("grp")
    # pickled (spawned worker) and forked (DataLoader worker) copies open their own handle
    copy = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(copy.load("v_a"), x)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_load_in_child, args=(store, queue))
    child.start()
    got = queue.get(timeout=30)
    child.join(timeout=30)
    np.testing.assert_array_equal(np.array(got, np.float32), x)


def test_corrupt_h5(tmp_path):
    (tmp_path / "f.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    store = FeatureStore(tmp_path / "f.h5")  # nothing read yet
    with pytest.raises(GsmtError, match="truncated or corrupt"):
        store.load("a")
