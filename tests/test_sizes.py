"""The size axis (issue 17): what has to hold once the matrix runs at the sizes people train.

* The carried bounds stay rigorous when the errors are not small. After a few float32 Adam
  steps a parameter's error can be as large as the step itself (a gradient near zero flips
  the step's sign), so the next step's bounds must cover what *any* parameters within the
  carried E_P do to every stage, not only the first-order part: relu units whose branch
  flips, softmax's exponential, Adam's 1/sqrt(v). Checked against exact (float64) runs
  from perturbed parameters and optimiser state.
* The literal cost that the float32 formula itself overflows is a named outcome, and the
  reference's own overflow must still be reproduced.
* ULPs are reported only where the reference value is known to its leading bit.
* Planted bugs are caught at medium size (784-256-256-1, 8000 examples, full batch), with
  the first diverging stage named: the bounds of 8000-long reductions do not hide them.
"""
import math
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import reference as R
from conftest import user_threads
from netparity.compare import compare_stage, compare_stages
from netparity.runner import run_case
from netparity.stages import OPTIMIZER_CONFIGS, Case, expected_for, step_stages
from netparity.tolerance import Precision, Unbounded, _act_bounds, adam_step_limit, adam_update_change

# ------------------------------------------------- the carry is rigorous beyond first order

# relative size of the initial parameters' error: a few percent, as a few float32 Adam
# steps can leave at medium size; large enough that first-order propagation undercounts
CARRIED = 0.2
CONFIGS = [("relu", "softmax", "adam"), ("leaky_relu", "sigmoid", "momentum"),
           ("tanh", "softmax", "adam"), ("sigmoid", "sigmoid", "gd")]


@pytest.mark.parametrize("hidden,output,opt", CONFIGS, ids=["-".join(c) for c in CONFIGS])
@given(seed=st.integers(0, 2**31 - 1))
def test_carried_bounds_cover_exact_runs_from_perturbed_parameters(hidden, output, opt, seed):
    """Three exact (float64) steps from initial parameters moved to a corner of the box
    |p' - p0| <= E_p0 (where a monotone map is worst) land within the bounds carried from
    E_p0 through the same three steps, at every stage of the last one. float64 rounding is
    negligible next to E_p0: the bounds are here (almost) pure propagation."""
    rng = np.random.RandomState(seed)
    n_y = 1 if output == "sigmoid" else 3
    X = rng.randn(5, 40) * 2
    Y = ((rng.rand(1, 40) > 0.5) * 1.0 if n_y == 1 else R.one_hot(rng.randint(0, n_y, 40), n_y))
    optimizer = OPTIMIZER_CONFIGS[opt]
    p0 = R.initialize_network([5, 8, 8, n_y], init="xavier", seed=seed % 1000)
    E_p0 = {k: CARRIED * np.abs(v) + 1e-3 for k, v in p0.items()}
    batches = [np.arange(40)] * 3
    exp = expected_for(p0, X, Y, batches, hidden, output, optimizer, "float64", E_p0=E_p0)
    p = {k: v + E_p0[k] * rng.choice([-1.0, 1.0], size=v.shape) for k, v in p0.items()}
    s = R.init_optimizer_state(p, optimizer)
    for idx in batches:
        moved, p, s = step_stages(R, "manual", None, p, s, X[:, idx], Y[:, idx], hidden, output,
                                  optimizer)
    order = [k for k in exp.order if not isinstance(exp.bounds.get(k), Unbounded)]
    bad = [r.line() for r in compare_stages(exp.oracle, moved, exp.bounds, order, None, factor=1.0)
           if not r.ok]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("EZ", [1e-12, 1e-3, 1.0, 30.0])
def test_activation_bound_covers_the_interval_also_in_the_tails(name, EZ):
    """|g(z') - g(z)| for z' on a grid over z +- E_Z, against the bound, for z from -120 to 120:
    in the tails (sigmoid(-90) = 8e-40) the change is tiny but relative to A it is E_Z,
    and the bound must not round the slope to 0 there (it did: a float64 false alarm)."""
    z = np.linspace(-120, 120, 2401)
    exact = {"sigmoid": lambda x: np.exp(-np.logaddexp(0.0, -x)), "tanh": np.tanh}[name]
    A = exact(z)
    E = _act_bounds(name, z, A, np.full_like(z, EZ), Precision("float64"))
    moved = [z + s * EZ for s in np.linspace(-1, 1, 21)]
    # z + s E_Z rounds; count only points that are inside the interval after rounding
    worst = np.max([np.where(np.abs(zs - z) <= EZ, np.abs(exact(zs) - A), 0.0) for zs in moved], axis=0)
    assert np.all(worst <= E), (z[np.argmax(worst / E)], np.max(worst / E))
    if EZ <= 1e-3:  # and not vacuous: within a factor 2 where the rounding term is small
        tail = worst > 1e3 * Precision("float64").f * np.abs(A)
        assert np.all(E[tail] <= 2 * worst[tail])


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_output_gradient_bound_covers_the_log_space_formula(output):
    """dZL = A - Y as autodiff of the stable cost forms it, exp(z - lse(z)) - Y (JAX's
    logaddexp JVP, log_softmax), against the direct A - Y, for logits up to +-200 in
    float64: both within E of the exact value (at z = 33, exp(z - lse) rounds to 1.0
    where sigmoid(z) = 1 - 3.4e-15: 30 ulps, a float64 false alarm before)."""
    rng = np.random.RandomState(3)
    n_y, m = (1, 400) if output == "sigmoid" else (4, 400)
    X = rng.randn(3, m)
    Y = ((rng.rand(1, m) > 0.5) * 1.0 if n_y == 1 else R.one_hot(rng.randint(0, n_y, m), n_y))
    p = {"W1": rng.randn(n_y, 3) * 60, "b1": rng.randn(n_y, 1)}
    gd = OPTIMIZER_CONFIGS["gd"]
    exp = expected_for(p, X, Y, [np.arange(m)], "tanh", output, gd, "float64")
    Z = exp.oracle["Z1"]
    assert np.abs(Z).max() > 100
    if output == "sigmoid":
        logspace = np.exp(Z - np.logaddexp(Z, 0.0)) - Y
    else:
        top = Z.max(axis=0, keepdims=True)
        logspace = np.exp(Z - (top + np.log(np.sum(np.exp(Z - top), axis=0, keepdims=True)))) - Y
    assert np.abs(logspace - exp.oracle["dZ1"]).max() > 1e-15  # the formulas do differ
    r = compare_stage("dZ1", exp.oracle["dZ1"], logspace, exp.bounds["dZ1"], "float64")
    assert r.ok, r.line()


@pytest.mark.parametrize("placement", ["corrected", "uncorrected"])
def test_adam_update_change_covers_every_point_of_the_box(placement):
    """K v / (sqrt(q s) + eps) on a 9 x 9 grid over [v - Ev, v + Ev] x [max(s - Es, 0), s + Es]
    (its extremes are on the edges: it is monotone in each argument), for moments from tiny
    to large next to their errors, where s - Es < 0 included (a sign flip)."""
    rng = np.random.RandomState(1 if placement == "corrected" else 2)
    n = 400
    v = rng.randn(n) * 10.0 ** rng.uniform(-9, -1, n)
    s = v * v * rng.uniform(0.5, 50, n)
    Ev, Es = np.abs(v) * 10.0 ** rng.uniform(-6, 1, n), s * 10.0 ** rng.uniform(-6, 1, n)
    t, lr, eps = 3, 0.01, 1e-8
    c1, c2 = 1 - 0.9 ** t, 1 - 0.999 ** t
    K, q = (lr / c1, 1 / c2) if placement == "corrected" else (lr * np.sqrt(c2) / c1, 1.0)
    E, upd = adam_update_change(v, s, Ev, Es, K, q, eps)
    f = lambda vv, ss: K * vv / (np.sqrt(q * ss) + eps)  # noqa: E731
    assert np.allclose(upd, np.abs(f(v, s)), rtol=1e-14)
    grid = np.linspace(-1, 1, 9)
    worst = np.zeros(n)
    for a in grid:
        for b in grid:
            worst = np.maximum(worst, np.abs(f(v + a * Ev, np.maximum(s + b * Es, 0.0)) - f(v, s)))
    # the bound is attained at a corner: allow the rounding of the two f's difference
    assert np.all(worst <= E * (1 + 1e-9) + 1e-13 * upd), np.max(worst / E)
    assert np.median(worst / E) > 0.3  # and not vacuous: the grid's worst is near the bound


@pytest.mark.parametrize("t", [1, 2, 3, 10, 100])
def test_adam_step_limit_is_the_largest_step(t):
    """The limit against the reference's own updates: no gradient sequence (the one of
    Cauchy-Schwarz equality, g_i proportional to a_i / w_i, a constant one, random ones)
    makes the t-th step larger, and the first attains it."""
    # epsilon must be positive (Optimizer validates it); 1e-300 next to sqrt(v) ~ |g| ~ 1
    # changes no step by a representable amount, so the limit is attained as with eps = 0
    opt = OPTIMIZER_CONFIGS["adam"].with_(epsilon=1e-300)
    b1, b2 = opt.beta1, opt.beta2
    i = np.arange(1, t + 1)
    a, w = (1 - b1) * b1 ** (t - i), (1 - b2) * b2 ** (t - i + 0.0)
    rng = np.random.RandomState(t)
    candidates = np.vstack([a / w, np.ones(t), rng.randn(50, t)])

    def last_step(g):  # |W_t - W_{t-1}| / lr after the gradients g_1 .. g_t from zero state
        p = {"W": np.zeros((1, 1))}
        s = R.init_optimizer_state(p, opt)
        for gi in g:
            before = float(p["W"][0, 0])
            p, s = R.optimizer_step(p, {"dW": np.full((1, 1), gi)}, s, opt)
        return abs(float(p["W"][0, 0]) - before) / opt.learning_rate

    steps = np.array([last_step(g) for g in candidates])
    limit = adam_step_limit(opt, t)
    assert steps.max() <= limit * (1 + 1e-12)
    assert steps[0] == pytest.approx(limit, rel=1e-9)
    if t == 1:
        assert limit == pytest.approx(1.0)  # one step of Adam moves by lr exactly (eps = 0)


# ------------------------------------------------------------------------ named outcomes

def _saturating_softmax_case():
    """A 1-4-3 relu/softmax net whose logits differ by ~200: exp(-200) underflows to 0 in
    float32 (below ~1e-45) but not in float64 (1e-87), so the float32 literal cost has
    0 * log 0 = nan where the float64 one is finite."""
    X = np.array([[1.0, 2.0, -1.0, 0.5]])
    Y = R.one_hot(np.array([0, 1, 2, 0]), 3)
    p0 = {"W1": np.array([[30.0], [-30.0], [10.0], [-10.0]]), "b1": np.zeros((4, 1)),
          "W2": np.array([[3.0, -3.0, 1.0, 0.0], [-3.0, 3.0, 0.0, 1.0], [0.0, 0.0, 0.5, 0.5]]),
          "b2": np.zeros((3, 1))}
    return X, Y, p0


def test_literal_cost_overflow_in_float32_is_a_named_outcome():
    X, Y, p0 = _saturating_softmax_case()
    exp = expected_for(p0, X, Y, [np.arange(4)], "relu", "softmax", OPTIMIZER_CONFIGS["gd"], "float32")
    assert not np.isfinite(exp.ref["cost_literal"]) and np.isfinite(exp.oracle["cost_literal"])
    assert isinstance(exp.bounds["cost_literal"], Unbounded)
    # a backend that reproduces the float32 formula (the float32 reference itself)
    got = dict(exp.ref)
    against_oracle = compare_stage("cost_literal", exp.oracle["cost_literal"], got["cost_literal"],
                                   exp.bounds["cost_literal"], "float32", factor=1.0)
    assert against_oracle.ok and against_oracle.named
    assert against_oracle.note == ("literal cost overflows in float32 (A = 0 exactly); "
                                   "the stable cost is compared")
    assert "literal cost overflows in float32" in against_oracle.line()
    # ... and the stable cost still is compared, with a ratio
    stable = compare_stage("cost_stable", exp.oracle["cost_stable"], got["cost_stable"],
                           exp.bounds["cost_stable"], "float32", factor=1.0)
    assert stable.ok and not stable.named and math.isfinite(stable.ratio)
    # a backend that clamps the log (finite where the float32 formula overflows) differs
    # from the reference's own overflow: not a named outcome, a failure
    clamped = compare_stage("cost_literal", exp.ref["cost_literal"], np.float32(1.25),
                            exp.bounds["cost_literal"], "float32")
    assert not clamped.ok and "non-finite mismatch" in clamped.note


def test_literal_cost_without_saturation_keeps_its_numeric_bound():
    X, Y, p0 = _saturating_softmax_case()
    p0 = {k: v / 30 for k, v in p0.items()}  # logits within a few units: nothing saturates
    exp = expected_for(p0, X, Y, [np.arange(4)], "relu", "softmax", OPTIMIZER_CONFIGS["gd"], "float32")
    bound = exp.bounds["cost_literal"]
    assert not isinstance(bound, Unbounded) and 0 < float(bound) < 1e-5
    r = compare_stage("cost_literal", exp.oracle["cost_literal"], exp.ref["cost_literal"], bound,
                      "float32", factor=1.0)
    assert r.ok and not r.named and 0 < r.ratio < 1


# ------------------------------------------------------------------ error measures near 0

def test_ulps_only_where_the_value_is_known_and_relative_error_at_the_stage_scale():
    # one value of the stage's size, one formed by cancellation (1e-30, below its bound)
    ref = np.array([1.0, 1e-30])
    got = np.array([1.0 + 2.0 ** -23, 1e-30 + 1e-9], dtype=np.float32)
    r = compare_stage("Z", ref, got, np.array([1e-6, 1e-8]), "float32", factor=1.0)
    assert r.ok
    assert r.max_ulp == 1.0          # 2^-23 at 1.0 is one float32 ulp; 1e-30 has none
    # relative to |1.0| for the first, to the stage's magnitude (1.0) for the second
    assert r.max_rel == pytest.approx(max(float(np.float32(1.0 + 2.0 ** -23)) - 1.0, 1e-9), rel=1e-6)
    only_tiny = compare_stage("Z", np.array([1e-30, 2e-30]), np.array([1e-9, 0.0], dtype=np.float32),
                              np.array([1e-8, 1e-8]), "float32", factor=1.0)
    assert math.isnan(only_tiny.max_ulp) and "- ulp" in only_tiny.line()


# ------------------------------------------------------------ planted bugs at medium size

def _torch():
    return pytest.importorskip("torch_impl", reason="torch is not installed here")


def _dw_without_one_over_m(real):
    def buggy(parameters, cache, X, Y, hidden="tanh", output="sigmoid"):
        grads = dict(real(parameters, cache, X, Y, hidden, output))
        m = X.shape[1]
        return {k: g * m if k.startswith("dW") else g for k, g in grads.items()}
    return buggy


def _w2_untransposed(real):
    # dA1 = W2 dZ2 instead of W2^T dZ2 (W2 is 256x256: the shapes still fit)
    def buggy(parameters, cache, X, Y, hidden="tanh", output="sigmoid"):
        return real({**parameters, "W2": parameters["W2"].T}, cache, X, Y, hidden, output)
    return buggy


PLANTED = {  # name -> (what to patch, how, first diverging stage)
    "dW without 1/m": ("network_backward", _dw_without_one_over_m, "dW3"),
    "W2 untransposed in backward": ("network_backward", _w2_untransposed, "dA1"),
    "tanh' = 1 - a": ("activation_grad",
                      lambda real: lambda name, z, a: 1 - a if name == "tanh" else real(name, z, a),
                      "dZ2"),
}
# the medium default slice's full-batch configuration: 8000-long reductions in float32,
# whose bounds are the loosest the matrix has for tanh/sigmoid
PLANTED_CASE = Case("torch", "manual", "cpu", "float32", "tanh", "sigmoid", "deep", "gd", "full", 1,
                    size="medium")


@pytest.mark.parametrize("bug", PLANTED)
def test_planted_bug_is_caught_at_medium_size(bug, monkeypatch):
    tm = _torch()
    where, make, stage = PLANTED[bug]
    module = tm if where == "network_backward" else sys.modules["torch_impl.network"]
    monkeypatch.setattr(module, where, make(getattr(module, where)))
    with user_threads():
        result = run_case(PLANTED_CASE)
    assert result.ran and not result.ok, f"{bug}: not caught"
    against, first = result.first_divergence()
    assert first.stage == stage, result.failure_message()
    assert first.ratio > 10, first.line()  # caught by a margin, not at the edge of the bound
    assert f"first diverging stage '{stage}'" in result.failure_message()


@pytest.mark.slow
def test_precision_bug_hides_in_float32_at_medium_size_but_not_in_float64(monkeypatch):
    """dW from bfloat16-rounded operands (autocast left on): 2^-9 relative, inside the
    float32 bounds of 8000-long reductions (E ~ 6 % of dW3's scale here), far outside the
    float64 ones (1e-10): the float64 leg of every medium configuration is what catches
    precision bugs there (docs/tolerances.md, "Resolution at medium size")."""
    tm = _torch()
    import torch
    real = tm.network_backward

    def bf16_dw(parameters, cache, X, Y, hidden="tanh", output="sigmoid"):
        grads = dict(real(parameters, cache, X, Y, hidden, output))
        m = X.shape[1]
        for k in range(1, len(parameters) // 2 + 1):
            dZ, A = grads[f"dZ{k}"], cache[f"A{k - 1}"]
            grads[f"dW{k}"] = (dZ.to(torch.bfloat16) @ A.T.to(torch.bfloat16)).to(dZ.dtype) / m
        return grads

    monkeypatch.setattr(tm, "network_backward", bf16_dw)
    with user_threads():
        f32 = run_case(PLANTED_CASE)
        f64 = run_case(Case(**{**PLANTED_CASE.__dict__, "dtype": "float64"}))
    assert f32.ok, f32.failure_message()
    assert not f64.ok and f64.first_divergence()[1].stage == "dW3", f64.failure_message()
