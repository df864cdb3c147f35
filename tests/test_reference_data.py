"""Seeded data sets and the portable weight file."""
import os
import zipfile

import numpy as np
import pytest

import reference as ref

EXPECTED = {  # name: (m, n_x, n_y) with default arguments
    "planar": (400, 2, 1), "xor": (400, 2, 1), "circles": (400, 2, 1),
    "spirals": (300, 2, 3), "blobs": (300, 2, 3),
    "blobs784": (8000, 784, 10), "blobs784_binary": (8000, 784, 1),
}


def test_the_documented_datasets_exist():
    assert sorted(ref.DATASETS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_dataset_shapes_and_labels(name):
    m, n_x, n_y = EXPECTED[name]
    X, Y = ref.load_dataset(name)
    assert X.shape == (n_x, m) and Y.shape == (n_y, m)
    assert X.dtype == Y.dtype == np.float64
    assert np.isfinite(X).all()
    assert set(np.unique(Y).tolist()) == {0.0, 1.0}
    if n_y > 1:
        assert (Y.sum(axis=0) == 1).all(), "one-hot columns"
        assert (Y.sum(axis=1) == m // n_y).all(), "balanced classes"
    else:
        assert 0.3 * m < Y.sum() < 0.7 * m, "both classes well represented"


def test_planar_has_200_points_per_class_in_order():
    _, Y = ref.load_planar_dataset()
    assert Y[0, :200].sum() == 0 and Y[0, 200:].sum() == 200


@pytest.mark.parametrize("name", EXPECTED)
def test_dataset_is_deterministic_per_seed(name):
    X1, Y1 = ref.load_dataset(name, seed=21)
    X2, Y2 = ref.load_dataset(name, seed=21)
    X3, _ = ref.load_dataset(name, seed=22)
    assert np.array_equal(X1, X2) and np.array_equal(Y1, Y2)
    assert not np.allclose(X1, X3)


@pytest.mark.parametrize("name", EXPECTED)
def test_dataset_leaves_global_rng_alone(name):
    np.random.seed(99)
    before = np.random.get_state()
    ref.load_dataset(name)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_blobs784_binary_is_the_parity_of_the_blobs784_class():
    X10, Y10 = ref.load_dataset("blobs784", m=200)
    X2, Y2 = ref.load_dataset("blobs784_binary", m=200)
    assert np.array_equal(X10, X2) and X2.shape == (784, 200)
    assert np.array_equal(Y2[0], np.argmax(Y10, axis=0) % 2)


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        ref.load_dataset("moons")


def test_one_hot():
    assert ref.one_hot(np.array([2, 0, 1, 2]), 3).tolist() == [[0, 1, 0, 0], [0, 0, 1, 0],
                                                               [1, 0, 0, 1]]

# ---------------------------------------------------------------------- weight files


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_weights_round_trip_bit_exactly(tmp_path, dtype):
    params = ref.initialize_network([3, 4, 2], init="he", seed=8, dtype=dtype)
    params["b1"] = params["b1"] + np.array([[1e-3], [-2.5], [np.pi], [7.0]], dtype=dtype)
    path = tmp_path / "w.npz"
    ref.save_weights(path, params)
    loaded = ref.load_weights(path)
    assert list(loaded) == list(params)
    for k in params:
        assert loaded[k].dtype == params[k].dtype and loaded[k].shape == params[k].shape, k
        assert loaded[k].tobytes() == params[k].tobytes(), k
    assert os.listdir(tmp_path) == ["w.npz"], "no temporary file left behind"


def test_load_weights_casts_on_request(tmp_path):
    params = ref.initialize_network([2, 3, 1])
    ref.save_weights(tmp_path / "w.npz", params)
    loaded = ref.load_weights(tmp_path / "w.npz", dtype="float32")
    assert all(v.dtype == np.float32 for v in loaded.values())
    assert np.array_equal(loaded["W1"], params["W1"].astype(np.float32))


def test_weight_file_is_plain_npz_without_pickle(tmp_path):
    params = ref.initialize_network([2, 3, 1])
    ref.save_weights(tmp_path / "w.npz", params)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(["__format__", *params])
        assert all(f[k].dtype != object for k in f.files)
        assert np.array_equal(f["W2"], params["W2"])


def test_truncated_weight_file_raises_value_error(tmp_path):
    path = tmp_path / "w.npz"
    ref.save_weights(path, ref.initialize_network([2, 3, 1]))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="unreadable weight file"):
        ref.load_weights(path)


def test_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "x.npz", W1=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="not a netparity weight file"):
        ref.load_weights(tmp_path / "x.npz")


def test_pickled_content_is_refused(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, __format__=np.array("netparity-weights-v1"),
             W1=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError, match="unreadable weight file"):
        ref.load_weights(path)


def test_missing_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="unreadable weight file"):
        ref.load_weights(tmp_path / "nope.npz")


def test_weight_file_is_a_zip_of_npy(tmp_path):
    ref.save_weights(tmp_path / "w.npz", ref.initialize_network([2, 3, 1]))
    assert zipfile.is_zipfile(tmp_path / "w.npz")
