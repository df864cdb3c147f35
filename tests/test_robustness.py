"""Numerical robustness of the stable cost: for logits deep in saturation, where the
article's literal cost is already nan/inf, the stable cost of every backend stays finite
and equals the exact cost of the same (rounded) logits, in float32, float16 and bfloat16
(where the backend has the dtype). The exact cost is computed here independently, in
Python floats with math.log1p / math.exp, from the logits as the dtype stores them."""
import math

import numpy as np
import pytest

from netparity.backends import get_backend

BACKENDS = ["numpy", "torch", "jax"]
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
@pytest.mark.parametrize("backend", BACKENDS)
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
