"""Backprop of the NumPy reference, checked independently of its own formulas:
(1) against central finite differences of the cost for every hidden x output x cost x
architecture, (2) against a tiny network whose every number is written out by hand.

Tolerances: finite differences with h = 1e-6 in float64 agree with exact gradients to
~1e-9 relative (truncation O(h^2), rounding O(u/h)); 1e-7 leaves margin yet any formula
error (missing 1/m, wrong derivative, transposed matrix) is O(1). Hand-computed values
use the same float64 operations in a different order: 1e-12 relative.
"""
import itertools
import math

import numpy as np
import pytest

import reference as ref
from reference.gradcheck import numerical_gradients, relative_difference

FD_H = 1e-6
FD_TOL = 1e-7
HAND_RTOL = 1e-12

ARCHITECTURES = ([2, 3, 1], [2, 3, 2], [3, 2, 3], [3, 4, 3, 2])
GRAD_CASES = [
    (hidden, output, dims, cost)
    for hidden, output, dims, cost in itertools.product(
        ref.HIDDEN_ACTIVATIONS, ref.OUTPUT_ACTIVATIONS, ARCHITECTURES, ("stable", "literal"))
    if not (output == "softmax" and dims[-1] == 1)  # softmax over one row is constant 1
]


def case_id(case):
    hidden, output, dims, cost = case
    return f"{hidden}-[{','.join(map(str, dims))}]-{output}-{cost}"


def make_problem(dims, output, m=6, seed=0):
    """Seeded X, Y and O(1) parameters (xavier weights, non-zero biases)."""
    rng = np.random.RandomState(seed)
    X = rng.randn(dims[0], m)
    if output == "sigmoid":
        Y = (rng.rand(dims[-1], m) > 0.5).astype(np.float64)
    else:
        Y = ref.one_hot(rng.randint(0, dims[-1], size=m), dims[-1])
    params = ref.initialize_network(dims, init="xavier", seed=seed + 1)
    for k in params:
        if k.startswith("b"):
            params[k] = 0.3 * rng.randn(*params[k].shape)
    return X, Y, params


@pytest.mark.parametrize("grad_case", GRAD_CASES, ids=case_id)
def test_backprop_matches_central_differences(grad_case):
    hidden, output, dims, cost = grad_case
    X, Y, params = make_problem(dims, output)
    _, cache = ref.network_forward(X, params, hidden, output)
    # Precondition: relu/leaky_relu are not differentiable at 0; perturbing a
    # parameter by h moves Z by at most ~h * max|A|, so no hidden Z may lie that close.
    min_abs_z = min(np.abs(cache[f"Z{l}"]).min() for l in range(1, len(dims) - 1))
    assert min_abs_z > 1e-3, f"a hidden Z is {min_abs_z:g} from the kink: pick another seed"
    grads = ref.network_backward(params, cache, X, Y, hidden, output)
    numerical = numerical_gradients(params, X, Y, hidden, output, cost, h=FD_H)
    assert sorted(numerical) == sorted(k for k in grads if k[:2] in ("dW", "db"))
    for k in numerical:
        assert grads[k].shape == params[k[1:]].shape, k
    diff = relative_difference(grads, numerical)
    assert diff < FD_TOL, f"relative difference {diff:.3e} >= {FD_TOL:g}"


# ---------------------------------------------------------------- hand-computed network

SCALAR_G = {
    "tanh": (math.tanh, lambda z: 1 - math.tanh(z) ** 2),
    "sigmoid": (lambda z: 1 / (1 + math.exp(-z)),
                lambda z: math.exp(-z) / (1 + math.exp(-z)) ** 2),
    "relu": (lambda z: z if z > 0 else 0.0, lambda z: 1.0 if z > 0 else 0.0),
    "leaky_relu": (lambda z: z if z > 0 else 0.01 * z, lambda z: 1.0 if z > 0 else 0.01),
}

# a 2-2-n_y network on m = 3 examples; hidden pre-activations take both signs
HAND_X = [[0.5, -1.0, 2.0],
          [1.5, 0.25, -0.5]]
HAND_W1 = [[0.3, -0.7],
           [-0.4, 0.2]]
HAND_B1 = [0.1, -0.2]
HAND_W2 = {"sigmoid": [[0.8, -1.1]], "softmax": [[0.8, -1.1], [-0.5, 0.9]]}
HAND_B2 = {"sigmoid": [0.05], "softmax": [0.05, -0.15]}
HAND_Y = {"sigmoid": [[1.0, 0.0, 1.0]], "softmax": [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]}


def hand_network(hidden, output):
    """Every Z, A, the cost and every gradient, one scalar at a time."""
    g, dg = SCALAR_G[hidden]
    W2, b2, Y = HAND_W2[output], HAND_B2[output], HAND_Y[output]
    n_y, m = len(W2), 3
    x = lambda q, i: HAND_X[q][i]
    Z1 = [[HAND_W1[j][0] * x(0, i) + HAND_W1[j][1] * x(1, i) + HAND_B1[j] for i in range(m)]
          for j in range(2)]
    A1 = [[g(Z1[j][i]) for i in range(m)] for j in range(2)]
    Z2 = [[W2[r][0] * A1[0][i] + W2[r][1] * A1[1][i] + b2[r] for i in range(m)]
          for r in range(n_y)]
    if output == "sigmoid":
        A2 = [[1 / (1 + math.exp(-Z2[0][i])) for i in range(m)]]
        cost = -sum(Y[0][i] * math.log(A2[0][i]) + (1 - Y[0][i]) * math.log(1 - A2[0][i])
                    for i in range(m)) / m
    else:
        den = [math.exp(Z2[0][i]) + math.exp(Z2[1][i]) for i in range(m)]
        A2 = [[math.exp(Z2[r][i]) / den[i] for i in range(m)] for r in range(n_y)]
        cost = -sum(Y[r][i] * math.log(A2[r][i]) for r in range(n_y) for i in range(m)) / m
    dZ2 = [[A2[r][i] - Y[r][i] for i in range(m)] for r in range(n_y)]
    dW2 = [[sum(dZ2[r][i] * A1[j][i] for i in range(m)) / m for j in range(2)]
           for r in range(n_y)]
    db2 = [[sum(dZ2[r]) / m] for r in range(n_y)]
    dZ1 = [[sum(W2[r][j] * dZ2[r][i] for r in range(n_y)) * dg(Z1[j][i]) for i in range(m)]
           for j in range(2)]
    dW1 = [[sum(dZ1[j][i] * x(q, i) for i in range(m)) / m for q in range(2)] for j in range(2)]
    db1 = [[sum(dZ1[j]) / m] for j in range(2)]
    return {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2, "cost": cost,
            "dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def hand_inputs(output):
    params = {"W1": np.array(HAND_W1), "b1": np.array(HAND_B1)[:, None],
              "W2": np.array(HAND_W2[output]), "b2": np.array(HAND_B2[output])[:, None]}
    return np.array(HAND_X), np.array(HAND_Y[output]), params


def test_hand_network_has_hidden_units_on_both_sides_of_zero():
    Z1 = np.array(hand_network("tanh", "sigmoid")["Z1"])
    assert (Z1 > 0).any() and (Z1 < 0).any()


@pytest.mark.parametrize("output", ref.OUTPUT_ACTIVATIONS)
@pytest.mark.parametrize("hidden", ref.HIDDEN_ACTIVATIONS)
def test_network_matches_hand_computation(hidden, output):
    X, Y, params = hand_inputs(output)
    want = hand_network(hidden, output)
    AL, cache = ref.network_forward(X, params, hidden, output)
    grads = ref.network_backward(params, cache, X, Y, hidden, output)
    for k in ("Z1", "A1", "Z2", "A2"):
        np.testing.assert_allclose(cache[k], want[k], rtol=HAND_RTOL, atol=0, err_msg=k)
    np.testing.assert_allclose(AL, want["A2"], rtol=HAND_RTOL, atol=0)
    for k in ("dW1", "db1", "dW2", "db2"):
        np.testing.assert_allclose(grads[k], want[k], rtol=HAND_RTOL, atol=1e-16, err_msg=k)
    assert float(ref.cross_entropy(AL, Y, output)) == pytest.approx(want["cost"], rel=HAND_RTOL)
    assert float(ref.cross_entropy_from_logits(cache["Z2"], Y, output)) == pytest.approx(
        want["cost"], rel=HAND_RTOL)


def test_article_matches_hand_computation():
    X, Y, params = hand_inputs("sigmoid")
    want = hand_network("tanh", "sigmoid")
    A2, cache = ref.forward_propagation(X, params)
    assert sorted(cache) == ["A1", "A2", "Z1", "Z2"]
    for k in ("Z1", "A1", "Z2", "A2"):
        np.testing.assert_allclose(cache[k], want[k], rtol=HAND_RTOL, atol=0, err_msg=k)
    assert ref.compute_cost(A2, Y) == pytest.approx(want["cost"], rel=HAND_RTOL)
    grads = ref.backward_propagation(params, cache, X, Y)
    for k in ("dW1", "db1", "dW2", "db2"):
        np.testing.assert_allclose(grads[k], want[k], rtol=HAND_RTOL, atol=1e-16, err_msg=k)
    new = ref.update_parameters(params, grads, learning_rate=0.5)
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(new[k], params[k] - 0.5 * np.array(want["d" + k]),
                                   rtol=HAND_RTOL, atol=0, err_msg=k)


def test_one_one_one_network_by_hand():
    """1-1-1, tanh/sigmoid, one example, numbers written out in full."""
    w1, b1, w2, b2, x, y = 0.5, 0.1, -2.0, 0.3, 2.0, 1.0
    z1 = w1 * x + b1                  # 1.1
    a1 = math.tanh(z1)
    z2 = w2 * a1 + b2
    a2 = 1 / (1 + math.exp(-z2))
    cost = -math.log(a2)              # y = 1
    dz2 = a2 - y
    dw2, db2 = dz2 * a1, dz2
    dz1 = w2 * dz2 * (1 - a1 ** 2)
    dw1, db1 = dz1 * x, dz1
    params = {"W1": np.array([[w1]]), "b1": np.array([[b1]]),
              "W2": np.array([[w2]]), "b2": np.array([[b2]])}
    X, Y = np.array([[x]]), np.array([[y]])
    A2, cache = ref.forward_propagation(X, params)
    assert cache["Z1"][0, 0] == pytest.approx(1.1, rel=1e-15)
    assert A2[0, 0] == pytest.approx(a2, rel=HAND_RTOL)
    assert ref.compute_cost(A2, Y) == pytest.approx(cost, rel=HAND_RTOL)
    grads = ref.backward_propagation(params, cache, X, Y)
    got = {k: grads[k][0, 0] for k in ("dW1", "db1", "dW2", "db2")}
    assert got == pytest.approx({"dW1": dw1, "db1": db1, "dW2": dw2, "db2": db2}, rel=HAND_RTOL)
