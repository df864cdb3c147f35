"""Bit-identical reruns, and a suite that leaves global numeric state as it found it.

Determinism: a slice of the default conformance computation (planar data, CPU,
float64 and float32, on every backend: network_forward + network_backward, then 20
mini-batch training steps with Adam) is run twice in the same process; the SHA-256 of
every output byte must be the same both times. CPU only (GPU reductions may legally
differ between runs unless deterministic algorithms are forced).
"""
import hashlib

import numpy as np
import pytest

from conftest import JAX_FLAGS, backend_params, suite_numeric_state
from netparity.backends import get_backend

R = get_backend("numpy")


def digest(backend, dtype):
    B = get_backend(backend)
    X, Y = R.load_planar_dataset(m=120)
    P = R.initialize_network([2, 5, 1], "xavier", seed=3)
    Xb, Yb, Pb = B.from_numpy(X, dtype), B.from_numpy(Y, dtype), B.tree_from_numpy(P, dtype)
    h = hashlib.sha256()

    def feed(name, x):
        a = np.ascontiguousarray(B.to_numpy(x))
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())

    AL, cache = B.network_forward(Xb, Pb, "relu", "sigmoid")
    grads = B.network_backward(Pb, cache, Xb, Yb, "relu", "sigmoid")
    for k, v in {**cache, **grads}.items():
        feed(k, v)
    opt = R.Optimizer("adam", 0.01)
    params, state, costs = B.train(Pb, Xb, Yb, "tanh", "sigmoid", opt, num_epochs=1,
                                   batch_size=6, seed=7)  # 120 / 6 = 20 steps
    assert len(B.to_numpy(costs)) == 20
    feed("costs", costs)
    for k, v in {**params, **state}.items():
        feed(k, v)
    return h.hexdigest()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", backend_params())
def test_rerun_is_bit_identical(backend, dtype):
    assert digest(backend, dtype) == digest(backend, dtype)


def flags():
    import jax
    import torch
    return {"torch_default_dtype": torch.get_default_dtype(),
            "torch_threads": torch.get_num_threads(),
            **{k: getattr(jax.config, k) for k in JAX_FLAGS}}


def test_suite_state_in_effect():
    """Inside every test: one torch thread, JAX's "highest" matmul precision, x64 on."""
    import jax
    import torch
    get_backend("jax")
    assert torch.get_num_threads() == 1
    assert jax.config.jax_default_matmul_precision == "highest"
    assert jax.config.jax_enable_x64


def test_suite_state_restored_after_a_test_that_changes_it():
    """What the autouse fixture does around every test, done around a test body that
    changes every global it can: all of it is back afterwards."""
    import jax
    import torch
    get_backend("jax")
    before = flags()
    with suite_numeric_state():
        torch.set_default_dtype(torch.float16 if before["torch_default_dtype"] != torch.float16
                                else torch.float32)
        torch.set_num_threads(2)
        jax.config.update("jax_enable_x64", not before["jax_enable_x64"])
        jax.config.update("jax_default_matmul_precision", "bfloat16")
        assert flags() != before
    assert flags() == before


def test_suite_state_restored_after_a_failing_test():
    import torch
    before = flags()
    with pytest.raises(RuntimeError):
        with suite_numeric_state():
            torch.set_num_threads(3)
            torch.set_default_dtype(torch.float32 if before["torch_default_dtype"] != torch.float32
                                    else torch.float64)
            raise RuntimeError("test body failed")
    assert flags() == before


def test_this_run_is_in_random_order(pytestconfig):
    """CI's command (the README's) must shuffle the tests: pytest-randomly is installed
    (requirements-ci.txt), loaded and reorganising, with a seed that reruns one order
    (``--randomly-seed=N``). Runs with ``-p no:randomly`` skip this check, saying so."""
    import importlib.util
    assert importlib.util.find_spec("pytest_randomly"), "pytest-randomly is not installed"
    if not pytestconfig.pluginmanager.hasplugin("randomly"):
        pytest.skip("pytest-randomly disabled for this run (-p no:randomly)")
    assert pytestconfig.getoption("randomly_reorganize") is True
    assert isinstance(pytestconfig.getoption("randomly_seed"), int)
