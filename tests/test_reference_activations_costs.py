"""Activations (values, derivative conventions at 0), the two cross-entropy costs and
the dtype the reference computes in.

Tolerances: derivative vs central difference h = 1e-6 in float64: 1e-8 absolute
(truncation O(h^2 g''') ~ 1e-12, rounding O(u/h) ~ 1e-10). Literal vs stable cost
in float64 for |z| <= 4: 1e-12 relative (both are a few correctly rounded ops).
float32 costs vs the exact value: 1e-6 relative (a few float32 ulps).
"""
import math

import numpy as np
import pytest

import reference as ref

# ------------------------------------------------------------------------ activations


def test_leaky_slope_is_one_hundredth():
    assert ref.LEAKY_SLOPE == 0.01


@pytest.mark.parametrize("name, z, want", [
    ("relu", -2.0, 0.0), ("relu", 0.0, 0.0), ("relu", 3.0, 3.0),
    ("leaky_relu", -2.0, -0.02), ("leaky_relu", 0.0, 0.0), ("leaky_relu", 3.0, 3.0),
    ("sigmoid", 0.0, 0.5), ("sigmoid", 2.0, 1 / (1 + math.exp(-2.0))),
    ("tanh", 0.0, 0.0), ("tanh", -1.5, math.tanh(-1.5)),
], ids=lambda v: str(v))
def test_activation_value(name, z, want):
    a = ref.activation(name, np.array([[z]]))
    assert a[0, 0] == pytest.approx(want, rel=1e-15, abs=0)


@pytest.mark.parametrize("name, z, want", [
    ("relu", 0.0, 0.0),         # convention: the z < 0 branch at exactly 0
    ("relu", -1e-300, 0.0),
    ("relu", 1e-300, 1.0),
    ("relu", -3.0, 0.0),
    ("relu", 3.0, 1.0),
    ("leaky_relu", 0.0, 0.01),  # convention: the z < 0 branch at exactly 0
    ("leaky_relu", -1e-300, 0.01),
    ("leaky_relu", 1e-300, 1.0),
    ("leaky_relu", -3.0, 0.01),
    ("leaky_relu", 3.0, 1.0),
    ("sigmoid", 0.0, 0.25),
    ("tanh", 0.0, 1.0),
], ids=lambda v: str(v))
def test_activation_derivative_convention(name, z, want):
    zz = np.array([[z]])
    assert ref.activation_grad(name, zz, ref.activation(name, zz))[0, 0] == want


Z_GRID = np.array([[-4.0, -1.3, -0.2, 0.05, 0.7, 2.5]])


@pytest.mark.parametrize("name", ref.HIDDEN_ACTIVATIONS)
def test_activation_derivative_matches_central_difference(name):
    h = 1e-6
    fd = (ref.activation(name, Z_GRID + h) - ref.activation(name, Z_GRID - h)) / (2 * h)
    got = ref.activation_grad(name, Z_GRID, ref.activation(name, Z_GRID))
    np.testing.assert_allclose(got, fd, rtol=0, atol=1e-8)


def test_softmax_columns_sum_to_one_and_match_exp_ratio():
    Z = np.array([[1.0, -2.0, 800.0, 0.0],
                  [2.0, -2.0, 799.0, 0.0],
                  [-1.0, -2.0, 0.0, 0.0]])
    A = ref.softmax(Z)
    np.testing.assert_allclose(A.sum(axis=0), 1.0, rtol=0, atol=1e-15)
    col0 = [math.exp(1.0), math.exp(2.0), math.exp(-1.0)]
    np.testing.assert_allclose(A[:, 0], [v / sum(col0) for v in col0], rtol=1e-15)
    np.testing.assert_allclose(A[:, 1], 1 / 3, rtol=1e-15)
    # column 2 would overflow exp without the shift: e^0 / (e^0 + e^-1 + e^-800)
    np.testing.assert_allclose(A[:2, 2], [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))],
                               rtol=1e-15)
    assert ref.activation("softmax", Z).tolist() == A.tolist()


@pytest.mark.parametrize("name", ["swish", "softmax"])
def test_unknown_hidden_activation_gradient_is_refused(name):
    with pytest.raises(ValueError, match="unknown activation"):
        ref.activation_grad(name, np.zeros((1, 1)), np.zeros((1, 1)))

def test_activation_names_refused_are_exactly_the_unlisted_ones():
    """activation() takes the four hidden activations and softmax, activation_grad() the
    four hidden ones (and returns g and g' for them); every other name is refused with
    ValueError naming it."""
    z = np.array([[0.5, -1.5]])
    a = 1 / (1 + np.exp(-z))
    for name in ("sigmoid", "tanh", "relu", "leaky_relu", "softmax"):
        try:
            g = ref.activation(name, z)
            dg = ref.activation_grad(name, z, a) if name != "softmax" else None
        except ValueError as e:
            pytest.fail(f"{name} refused: {e}")
        assert g.shape == z.shape and (dg is None or dg.shape == z.shape)
    for name in ("swish", "gelu", "Sigmoid", ""):
        with pytest.raises(ValueError, match=f"^unknown activation {name!r}"):
            ref.activation(name, z)
    with pytest.raises(ValueError, match="^unknown activation 'softmax'"):
        ref.activation_grad("softmax", z, a)


# ----------------------------------------------------------------------------- costs


def exact_sigmoid_loss(z, y):
    """-(y log s(z) + (1 - y) log(1 - s(z))) without cancellation, Python floats:
    -log s(z) = log(1 + e^-z), -log(1 - s(z)) = log(1 + e^z)."""
    softplus = lambda t: max(t, 0.0) + math.log1p(math.exp(-abs(t)))
    return y * softplus(-z) + (1 - y) * softplus(z)


def exact_softmax_loss(zcol, ycol):
    top = max(zcol)
    lse = top + math.log(sum(math.exp(v - top) for v in zcol))
    return sum(y * (lse - z) for z, y in zip(zcol, ycol))


MODERATE_Z = np.array([[-4.0, -1.0, -0.1, 0.0, 0.3, 2.0, 3.9]])
MODERATE_Y = np.array([[1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]])
MODERATE_ZS = np.array([[-1.0, 2.0, 0.5, 3.0],
                        [0.5, -1.5, 0.5, -2.0],
                        [2.0, 0.0, -0.5, 1.0]])
MODERATE_YS = ref.one_hot(np.array([0, 1, 2, 2]), 3)


def test_sigmoid_costs_literal_equals_stable_equals_exact():
    A = ref.activation("sigmoid", MODERATE_Z)
    literal = ref.cross_entropy(A, MODERATE_Y, "sigmoid")
    stable = ref.cross_entropy_from_logits(MODERATE_Z, MODERATE_Y, "sigmoid")
    exact = sum(exact_sigmoid_loss(z, y) for z, y in zip(MODERATE_Z[0], MODERATE_Y[0])) / 7
    assert float(literal) == pytest.approx(float(stable), rel=1e-12)
    assert float(stable) == pytest.approx(exact, rel=1e-12)


def test_softmax_costs_literal_equals_stable_equals_exact():
    A = ref.softmax(MODERATE_ZS)
    literal = ref.cross_entropy(A, MODERATE_YS, "softmax")
    stable = ref.cross_entropy_from_logits(MODERATE_ZS, MODERATE_YS, "softmax")
    exact = sum(exact_softmax_loss(MODERATE_ZS[:, i], MODERATE_YS[:, i]) for i in range(4)) / 4
    assert float(literal) == pytest.approx(float(stable), rel=1e-12)
    assert float(stable) == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_cost_divides_by_m(output):
    """Duplicating every example leaves a mean unchanged."""
    Z, Y = (MODERATE_Z, MODERATE_Y) if output == "sigmoid" else (MODERATE_ZS, MODERATE_YS)
    Z2, Y2 = np.hstack([Z, Z]), np.hstack([Y, Y])
    assert float(ref.cross_entropy_from_logits(Z2, Y2, output)) == pytest.approx(
        float(ref.cross_entropy_from_logits(Z, Y, output)), rel=1e-14)
    A, A2 = ref.activation(output, Z), ref.activation(output, Z2)
    assert float(ref.cross_entropy(A2, Y2, output)) == pytest.approx(
        float(ref.cross_entropy(A, Y, output)), rel=1e-14)


# (output, z column, y column, what the literal cost gives in float32)
SATURATED = [
    # s(30) rounds to exactly 1.0 in float32: log(1 - A) = -inf
    pytest.param("sigmoid", [30.0], [0.0], "inf", id="sigmoid-z30-y0-inf"),
    # ... and with y = 1 the unused term is 0 * log(0) = 0 * -inf = nan
    pytest.param("sigmoid", [30.0], [1.0], "nan", id="sigmoid-z30-y1-nan"),
    # s(-120) = e^-120 underflows to exactly 0 in float32: log(A) = -inf
    pytest.param("sigmoid", [-120.0], [1.0], "inf", id="sigmoid-z-120-y1-inf"),
    pytest.param("softmax", [0.0, 120.0], [1.0, 0.0], "inf", id="softmax-wrong-class-inf"),
    pytest.param("softmax", [0.0, 120.0], [0.0, 1.0], "nan", id="softmax-right-class-nan"),
]


@pytest.mark.parametrize("output, z, y, literal_gives", SATURATED)
def test_float32_saturation_literal_breaks_stable_is_exact(output, z, y, literal_gives):
    Z = np.array(z, dtype=np.float32)[:, None]
    Y = np.array(y, dtype=np.float32)[:, None]
    A = ref.activation(output, Z)
    assert A.dtype == np.float32
    assert ((A == 1.0) | (A == 0.0)).all(), "precondition: A has saturated in float32"
    literal = ref.cross_entropy(A, Y, output)
    if literal_gives == "inf":
        assert np.isposinf(literal)
    else:
        assert np.isnan(literal)
    stable = ref.cross_entropy_from_logits(Z, Y, output)
    assert stable.dtype == np.float32 and np.isfinite(stable)
    exact = (exact_sigmoid_loss(z[0], y[0]) if output == "sigmoid"
             else exact_softmax_loss(z, y))
    assert float(stable) == pytest.approx(exact, rel=1e-6, abs=1e-30)


def test_float64_stable_cost_finite_at_extreme_logits():
    Z = np.array([[800.0, -800.0]])
    Y = np.array([[0.0, 1.0]])
    assert float(ref.cross_entropy_from_logits(Z, Y)) == pytest.approx(800.0, rel=1e-15)

# ----------------------------------------------------------------------------- dtypes

DTYPE_CASES = [(dt, h, o) for dt in ("float64", "float32") for h in ref.HIDDEN_ACTIVATIONS
               for o in ref.OUTPUT_ACTIVATIONS]


def dtype_problem(dtype, output, dims=(3, 4, 3)):
    rng = np.random.RandomState(7)
    X = rng.randn(dims[0], 5).astype(dtype)
    Y = (ref.one_hot(rng.randint(0, dims[-1], 5), dims[-1]) if output == "softmax"
         else (rng.rand(dims[-1], 5) > 0.5)).astype(dtype)
    return X, Y, ref.initialize_network(dims, init="xavier", seed=3, dtype=dtype)


@pytest.mark.parametrize("dtype, hidden, output", DTYPE_CASES, ids="-".join)
def test_forward_backward_costs_stay_in_input_dtype(dtype, hidden, output):
    X, Y, params = dtype_problem(dtype, output)
    assert {v.dtype for v in params.values()} == {np.dtype(dtype)}
    AL, cache = ref.network_forward(X, params, hidden, output)
    assert {k: v.dtype for k, v in cache.items()} == {k: np.dtype(dtype) for k in cache}
    grads = ref.network_backward(params, cache, X, Y, hidden, output)
    assert {k: v.dtype for k, v in grads.items()} == {k: np.dtype(dtype) for k in grads}
    assert ref.cross_entropy(AL, Y, output).dtype == dtype
    assert ref.cross_entropy_from_logits(cache["Z2"], Y, output).dtype == dtype


@pytest.mark.parametrize("name", ref.OPTIMIZERS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_stays_in_input_dtype(dtype, name):
    X, Y, params = dtype_problem(dtype, "sigmoid", dims=(3, 4, 1))
    opt = ref.Optimizer(name=name, learning_rate=0.1, schedule="exponential", decay_rate=0.9)
    new, state, costs = ref.train(params, X, Y, "relu", "sigmoid", opt, num_epochs=2,
                                  batch_size=2, seed=0)
    assert costs.dtype == dtype and costs.shape == (6,)
    assert {v.dtype for v in new.values()} == {np.dtype(dtype)}
    buffers = {k: v for k, v in state.items() if k != "t"}
    assert len(buffers) == {"gd": 0, "momentum": 4, "adam": 8}[name]
    assert all(v.dtype == dtype for v in buffers.values())
    assert state["t"] == 6 and type(state["t"]) is int


@pytest.mark.parametrize("output", ref.OUTPUT_ACTIVATIONS)
@pytest.mark.parametrize("hidden", ref.HIDDEN_ACTIVATIONS)
def test_float16_forward_stays_float16_and_tracks_float64(hidden, output):
    X, Y, p64 = dtype_problem("float64", output)
    p16 = {k: v.astype(np.float16) for k, v in p64.items()}
    AL16, cache16 = ref.network_forward(X.astype(np.float16), p16, hidden, output)
    assert {v.dtype for v in cache16.values()} == {np.dtype(np.float16)}
    AL64, _ = ref.network_forward(X, p64, hidden, output)
    # float16 has 11 significant bits (u ~ 4.9e-4); a few ops on O(1) values
    np.testing.assert_allclose(AL16.astype(np.float64), AL64, rtol=0, atol=1e-2)
    assert ref.cross_entropy_from_logits(cache16["Z2"], Y.astype(np.float16), output).dtype == np.float16
