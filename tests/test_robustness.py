"""Numerical robustness of the stable cost: for logits deep in saturation, where the
article's literal cost is already nan/inf, the stable cost of every backend stays finite
and equals the exact cost of the same (rounded) logits, in float32, float16 and bfloat16
(where the backend has the dtype). The exact cost is computed here independently, in
Python floats with math.log1p / math.exp, from the logits as the dtype stores them."""
import math

import numpy as np
import pytest

from conftest import backend_params
from netparity.backends import get_backend

# unit roundoff per dtype (half an ulp of 1)
U = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
# |z| well past saturation in every dtype here (float16: 1 - sigmoid(z) rounds to 0 for
# z > ~8; float32: for z > ~17), yet small enough that the cost itself is representable
SIGMOID_Z = np.array([[12.0, -12.0, 30.0, -30.0, 100.0, -100.0, 250.0, -250.0]])
SIGMOID_Y = np.array([[1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]])
SOFTMAX_Z = np.array([[100.0, 0.0, -100.0, 30.0],
                      [0.0, 100.0, 100.0, -30.0],
                      [-100.0, -100.0, 0.0, 0.0]])
SOFTMAX_Y = np.array([[1.0, 0.0, 1.0, 0.0],
                      [0.0, 1.0, 0.0, 0.0],
                      [0.0, 0.0, 0.0, 1.0]])


def to_backend(B, x, dtype):
    try:
        return B.from_numpy(x, dtype)
    except TypeError as e:  # NumPy has no bfloat16 without ml_dtypes
        pytest.skip(f"{B.NAME} cannot hold {dtype}: {e}")


def exact_cost(z, y, output):
    """The stable cost's exact value for float64 copies of the stored logits."""
    m = z.shape[1]
    if output == "sigmoid":
        return sum(max(a, 0.0) - a * b + math.log1p(math.exp(-abs(a)))
                   for a, b in zip(z.ravel().tolist(), y.ravel().tolist())) / m
    total = 0.0
    for j in range(m):
        col = z[:, j].tolist()
        zmax = max(col)
        lse = zmax + math.log(sum(math.exp(c - zmax) for c in col))
        total += lse - sum(c * t for c, t in zip(col, y[:, j].tolist()))
    return total / m


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("backend", backend_params())
def test_stable_cost_is_finite_and_exact_when_saturated(backend, dtype, output):
    B = get_backend(backend)
    z, y = (SIGMOID_Z, SIGMOID_Y) if output == "sigmoid" else (SOFTMAX_Z, SOFTMAX_Y)
    Z, Y = to_backend(B, z, dtype), to_backend(B, y, dtype)
    stored = np.asarray(B.to_numpy(Z), dtype=np.float64)  # the logits as the dtype holds them
    A = B.activation(output, Z)
    # the saturation is real: the literal (article) cost has broken down
    literal = float(np.asarray(B.to_numpy(B.cross_entropy(A, Y, output)), dtype=np.float64))
    assert not math.isfinite(literal), f"literal cost {literal}: the logits do not saturate"
    J = B.cross_entropy_from_logits(Z, Y, output)
    assert str(np.asarray(B.to_numpy(J)).dtype) == dtype  # computed in the dtype, not upcast
    got = float(np.asarray(B.to_numpy(J), dtype=np.float64))
    want = exact_cost(stored, y, output)
    assert math.isfinite(got)
    # every per-column loss is >= 0, so rounding in the (<= 6) elementwise operations and
    # the m-term sum is bounded relative to the result: |J - J*| <= (6 + m) u J*
    m = z.shape[1]
    assert abs(got - want) <= (6 + m) * U[dtype] * want, (got, want)


def deep_gradients(B, hidden, scale):
    """Gradients of an 8-layer network whose weights are Xavier draws times ``scale``."""
    R = get_backend("numpy")
    X, Y = R.load_planar_dataset(m=64)
    dims = [2] + [16] * 7 + [1]
    P = {k: v * scale if k[0] == "W" else v
         for k, v in R.initialize_network(dims, "xavier", seed=2).items()}
    Pb, Xb, Yb = B.tree_from_numpy(P), B.from_numpy(X), B.from_numpy(Y)
    _, cache = B.network_forward(Xb, Pb, hidden, "sigmoid")
    return B.network_backward(Pb, cache, Xb, Yb, hidden, "sigmoid")


@pytest.mark.parametrize("backend", backend_params())
def test_gradient_norms_expose_vanishing_and_exploding_gradients(backend):
    """gradient_norms gives the Frobenius norm of every dW/db (checked against
    np.linalg.norm of the same arrays), and it shows the textbook failures of a deep
    network: sigmoid hidden layers (vanishing: |dW1| far below |dW8|) and relu layers with
    weights 4x too large (exploding: |dW1| far above the well-scaled network's)."""
    B = get_backend(backend)
    grads = deep_gradients(B, "sigmoid", 1.0)
    norms = B.gradient_norms(grads)
    assert list(norms) == [k for k in grads if k[:2] in ("dW", "db")]
    for k, v in norms.items():
        assert v == pytest.approx(float(np.linalg.norm(B.to_numpy(grads[k]))), rel=1e-12)
    # vanishing: each sigmoid layer scales the backward signal by sigma' <= 1/4
    assert norms["dW1"] / norms["dW8"] < 1e-3
    # exploding: relu weights 4x too large multiply the backward signal by ~4 per layer
    # (dZ8 = A8 - Y stays bounded), so |dW1| grows ~4^7 over the well-scaled network's
    well = B.gradient_norms(deep_gradients(B, "relu", 1.0))["dW1"]
    assert B.gradient_norms(deep_gradients(B, "relu", 4.0))["dW1"] / well > 1e3
