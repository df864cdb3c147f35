"""Weight files on every backend: truncated, corrupted and mismatched files give a clear
ValueError; a failed save leaves neither the file nor a temporary file behind."""
import os

import numpy as np
import pytest

from netparity.backends import get_backend

R = get_backend("numpy")
BACKENDS = ["numpy", "torch", "jax"]
DIMS = [2, 3, 1]


def saved(B, tmp_path):
    path = tmp_path / "w.npz"
    B.save_weights(path, B.tree_from_numpy(R.initialize_network(DIMS)))
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_roundtrip_with_layer_dims(backend, tmp_path):
    B = get_backend(backend)
    loaded = B.load_weights(saved(B, tmp_path), layer_dims=DIMS)
    want = R.initialize_network(DIMS)
    assert list(loaded) == list(want)
    for k in want:
        np.testing.assert_array_equal(B.to_numpy(loaded[k]), want[k])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("keep", [0, 10, 100, -30, -1])
def test_truncated_file(backend, keep, tmp_path):
    B = get_backend(backend)
    path = saved(B, tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:keep])
    with pytest.raises(ValueError, match="unreadable weight file|not a netparity weight file"):
        B.load_weights(path)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes(backend, seed, tmp_path):
    B = get_backend(backend)
    path = tmp_path / "junk.npz"
    path.write_bytes(np.random.RandomState(seed).bytes(2000))
    with pytest.raises(ValueError, match="unreadable weight file"):
        B.load_weights(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupted_payload(backend, tmp_path):
    """Flip bytes inside the archive (after the header): still a clear ValueError."""
    B = get_backend(backend)
    path = saved(B, tmp_path)
    raw = bytearray(path.read_bytes())
    for i in range(60, len(raw) - 60, 7):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="unreadable weight file|not a netparity weight file"):
        B.load_weights(path)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims, phrase", [
    ([2, 4, 1], r"W1 has shape \(3, 2\), expected \(4, 2\)"),
    ([2, 3, 1, 1], "missing W3 b3"),
    ([2, 1], "unexpected W2 b2"),
])
def test_mismatched_layer_dims(backend, dims, phrase, tmp_path):
    B = get_backend(backend)
    path = saved(B, tmp_path)
    with pytest.raises(ValueError, match="weights do not match layer_dims") as e:
        B.load_weights(path, layer_dims=dims)
    assert e.match(phrase)
    assert str(e.value) == _ref_message(path, dims)


def _ref_message(path, dims):
    try:
        R.load_weights(path, layer_dims=dims)
    except ValueError as e:
        return str(e)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_keys(backend, tmp_path):
    B = get_backend(backend)
    path = tmp_path / "w.npz"
    B.save_weights(path, B.tree_from_numpy({"W1": np.ones((3, 2)), "foo": np.ones((3, 1))}))
    with pytest.raises(ValueError, match="missing b1 W2 b2; unexpected foo"):
        B.load_weights(path, layer_dims=DIMS)


def test_foreign_npz(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, W1=np.ones((3, 2)))
    with pytest.raises(ValueError, match="not a netparity weight file"):
        R.load_weights(path)


def leftovers(folder):
    return sorted(p for p in os.listdir(folder))


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_save_to_directory_leaves_nothing(backend, tmp_path):
    B = get_backend(backend)
    target = tmp_path / "adir"
    target.mkdir()
    with pytest.raises(OSError):
        B.save_weights(target, B.tree_from_numpy(R.initialize_network(DIMS)))
    assert leftovers(tmp_path) == ["adir"] and leftovers(target) == []


def test_failed_save_unserialisable_leaves_nothing(tmp_path):
    path = tmp_path / "w.npz"
    with pytest.raises(TypeError, match="not a float array"):
        R.save_weights(path, {"W1": np.array([object()]), "b1": np.zeros((1, 1))})
    with pytest.raises(TypeError, match="not a float array"):
        R.save_weights(path, {"W1": np.array(["text"])})
    assert leftovers(tmp_path) == []


def test_failed_save_mid_write_leaves_nothing(tmp_path, monkeypatch):
    """An error while writing (disk full, ...) removes the temporary file and keeps an
    existing file intact."""
    path = tmp_path / "w.npz"
    R.save_weights(path, R.initialize_network(DIMS))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        R.save_weights(path, R.initialize_network([2, 5, 1]))
    assert leftovers(tmp_path) == ["w.npz"] and path.read_bytes() == before
