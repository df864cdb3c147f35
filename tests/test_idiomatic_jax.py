"""The idiomatic JAX path (jax_impl/idiomatic.py: flax.nnx + optax + jax.value_and_grad +
jax.jit) and its convention table (jax_impl/conventions.py).

(a) Conformance: run_idiomatic and the generic adapter run_steps (a user's nnx module
    without intermediates, a pure apply with a params dict, a linen model) against the
    reference, every stage they emit, through netparity.compare with the bounds of
    netparity.stages.expected (same dtype: 2E; float32 also against the float64 oracle: E).
(b) One test per convention difference, measuring it (printed; run with -s) and asserting
    it against an independent hand-derived expectation, so a change in flax/optax fails:
    heavy-ball vs EMA momentum, optax.ema's debiasing, the .mean() normalisation of the
    sigmoid loss, exponential_decay's float32 rate under x64, the FMA of a jitted update,
    the kernel layout and load errors, jax.nn.leaky_relu'(0).

Multi-step comparisons use the shadow-trajectory model of netparity.trajectory (the
suite's policy for trajectories). Compile time: every configuration is one jitted step
(~0.5 s cold on the 2-core CI machine); the 100-step tests reuse the conformance cases'
configurations, so their steps are compiled once.
"""
from fractions import Fraction
from functools import partial
import warnings

import numpy as np
import pytest

pytest.importorskip("flax")
pytest.importorskip("optax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

import jax_impl  # noqa: E402,F401  (x64 on)
import reference as R  # noqa: E402
from jax_impl import conventions as C  # noqa: E402
from jax_impl.idiomatic import (Net, load_reference_parameters, make_loss, run_idiomatic,  # noqa: E402
                                run_steps)
from netparity.compare import assert_conforms, compare_stages, failure_message  # noqa: E402
from netparity.stages import (OPTIMIZER_CONFIGS, Case, batch_sequence, dataset, expected,  # noqa: E402
                              initial_parameters)
from netparity.tolerance import Precision, UNIT_ROUNDOFF  # noqa: E402
from netparity.trajectory import reference_trajectory  # noqa: E402
from conftest import require_device  # noqa: E402

# ------------------------------------------------------------------ (a) conformance

# optimiser x output x dtype, every one, with full/mini batch, 1/3 steps, every hidden
# activation, both architectures and every schedule spread over them (each compiled
# configuration costs ~0.7 s cold, so schedules and Adam's epsilon forms are variants of
# these twelve, not extra cases). Some are chosen so that a convention test below reuses
# their compiled step (marked <-). The leaky_relu/softmax/deep cases run on spirals, whose
# examples at the origin have Z = 0 exactly in every layer at the first step: they pass
# only with the reference's leaky_relu'(0).
EXTRA_OPTIMIZERS = {  # not in OPTIMIZER_CONFIGS: added there by the fixture below
    "gd-exponential": R.Optimizer("gd", learning_rate=1.2, schedule="exponential",
                                  decay_rate=0.99),
    "momentum-step": R.Optimizer("momentum", learning_rate=0.5, beta=0.9, schedule="step",
                                 decay_rate=0.5, decay_steps=2),
    "adam-inverse_time": R.Optimizer("adam", learning_rate=0.01, schedule="inverse_time",
                                     decay_rate=0.5),
    "adam-uncorrected": R.Optimizer("adam", learning_rate=0.01, adam_epsilon="uncorrected"),
    "momentum-heavy_ball": R.Optimizer("momentum", learning_rate=0.5, beta=0.9,
                                       momentum_form="heavy_ball"),
}
_CONF = [  # optimizer, output, dtype, batch, steps, hidden, arch[, cost: default stable]
    ("gd-exponential", "sigmoid", "float64", "full", 1, "tanh", "shallow"),  # <- exponential_decay, FMA
    ("gd", "sigmoid", "float32", "mini", 3, "tanh", "shallow", "literal"),
    ("gd", "softmax", "float64", "full", 1, "relu", "deep"),               # <- square kernel bug
    ("gd", "softmax", "float32", "full", 1, "leaky_relu", "deep"),
    ("momentum", "sigmoid", "float64", "full", 1, "tanh", "shallow"),      # <- 100-step EMA
    ("momentum", "sigmoid", "float32", "mini", 3, "relu", "deep"),
    ("momentum", "softmax", "float64", "full", 1, "leaky_relu", "deep"),
    ("momentum-step", "softmax", "float32", "mini", 3, "tanh", "shallow"),
    ("adam", "sigmoid", "float64", "full", 1, "leaky_relu", "shallow"),
    ("adam-uncorrected", "sigmoid", "float32", "mini", 3, "sigmoid", "deep"),
    ("adam", "softmax", "float64", "mini", 3, "relu", "shallow", "literal"),
    ("adam-inverse_time", "softmax", "float32", "mini", 3, "tanh", "deep"),
    ("momentum-heavy_ball", "sigmoid", "float64", "full", 1, "tanh", "shallow"),  # <- heavy-ball
]
# (case, cost): with the literal cost, jax.grad differentiates log(sigmoid(z)) / log(softmax(z))
CONF = [(Case("jax", "idiomatic", "cpu", dt, h, out, arch, opt, b, st), cost[0] if cost else "stable")
        for opt, out, dt, b, st, h, arch, *cost in _CONF]


def expected_missing(optimizer):
    """Stages the idiomatic path cannot emit: t' where optax keeps no count (gd and
    momentum at a constant rate: a float learning rate has no state)."""
    counted = optimizer.name == "adam" or optimizer.schedule != "constant"
    return set() if counted else {"t'"}


def optimizer_of(case):
    return EXTRA_OPTIMIZERS.get(case.optimizer) or OPTIMIZER_CONFIGS[case.optimizer]


@pytest.fixture
def extra_optimizers(monkeypatch):
    """The extra optimisers as keys of OPTIMIZER_CONFIGS, for netparity.stages.expected."""
    for k, v in EXTRA_OPTIMIZERS.items():
        monkeypatch.setitem(OPTIMIZER_CONFIGS, k, v)


def run_case(case, cost="stable"):
    X, Y = dataset(case.data)
    return run_idiomatic(initial_parameters(case), X, Y, batch_sequence(case), case.hidden,
                         case.output, optimizer_of(case), case.dtype, case.device, cost)


def assert_case_conforms(case, got, missing=None):
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
                 case.steps)
    missing = expected_missing(optimizer_of(case)) if missing is None else missing
    assert set(e.order) - set(got) == missing, f"{case.id}: stages not emitted"
    assert set(got) <= set(e.order), f"{case.id}: unknown stages {set(got) - set(e.order)}"
    order = [s for s in e.order if s in got]
    assert_conforms(compare_stages(e.ref, got, e.bounds, order, case.dtype), case.context())
    if case.dtype != "float64":
        assert_conforms(compare_stages(e.oracle, got, e.bounds, order, case.dtype, factor=1.0),
                        case.context(), against="the float64 oracle (bound E, not 2E)")


@pytest.mark.parametrize("case,cost", CONF,
                         ids=[c.id + ("" if cost == "stable" else f"-{cost}") for c, cost in CONF])
def test_idiomatic_stages_match_reference(case, cost, extra_optimizers):
    assert_case_conforms(case, run_case(case, cost))


GPU_CASES = [Case("jax", "idiomatic", "gpu", dt, "tanh", out, "deep", "adam", "mini", 2)
             for dt in ("float64", "float32") for out in ("sigmoid", "softmax")]


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: c.id)
def test_idiomatic_stages_match_reference_gpu(case):
    require_device(jax_impl, "gpu")
    assert_case_conforms(case, run_case(case))


# -- the generic adapter on modules/functions that are not Net

class TwoLayer(nnx.Module):
    """A user's module: named attributes, no sow/perturb (only the logits are tapped)."""

    def __init__(self, n_x, n_h, n_y, rngs):
        self.fc1 = nnx.Linear(n_x, n_h, param_dtype=jnp.float64, rngs=rngs)
        self.fc2 = nnx.Linear(n_h, n_y, param_dtype=jnp.float64, rngs=rngs)

    def __call__(self, x):
        return self.fc2(jnp.tanh(self.fc1(x)))


def apply_dict(params, x):
    """A pure apply over a list of {"kernel", "bias"} dicts (tanh hidden layers)."""
    a = x
    for i, layer in enumerate(params["layers"]):
        z = a @ layer["kernel"] + layer["bias"]
        a = jnp.tanh(z) if i < len(params["layers"]) - 1 else z
    return a


def every_model_stages(L, state_keys):
    """The stages the adapter emits for any model (module docstring of idiomatic.py)."""
    s = {f"Z{L}", f"A{L}", "cost_literal", "cost_stable", f"dZ{L}", "dA0"}
    s |= {f"{p}{l}" for l in range(1, L + 1) for p in ("dW", "db")}
    s |= {f"{p}{l}'" for l in range(1, L + 1) for p in ("W", "b")}
    return s | {f"{k}'" for k in state_keys}


def test_adapter_on_a_user_module_without_intermediates():
    case = Case("jax", "idiomatic", "cpu", "float64", "tanh", "sigmoid", "shallow", "adam", "full", 1)
    X, Y = dataset(case.data)
    opt = OPTIMIZER_CONFIGS["adam"]
    model = TwoLayer(2, 4, 1, nnx.Rngs(0))
    got, costs = run_steps(model, optax.adam(opt.learning_rate), make_loss("sigmoid"),
                           initial_parameters(case), X, Y, batch_sequence(case), "sigmoid")
    keys = ["t"] + [f"{b}{p}{l}" for b in ("vd", "sd") for l in (1, 2) for p in ("W", "b")]
    assert set(got) == every_model_stages(2, keys)
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch, 1)
    assert costs.shape == (1,) and costs.dtype == np.float64
    assert float(costs[0]) == float(got["cost_stable"])
    assert_case_conforms(case, got, missing=set(e.order) - every_model_stages(2, keys))


def test_adapter_on_a_pure_apply_with_a_params_dict():
    case = Case("jax", "idiomatic", "cpu", "float32", "tanh", "sigmoid", "deep", "momentum", "mini", 3)
    X, Y = dataset(case.data)
    dims = case.layer_dims()
    params = {"layers": [{"kernel": np.zeros((a, b), np.float32), "bias": np.zeros(b, np.float32)}
                         for a, b in zip(dims[:-1], dims[1:])]}
    opt = OPTIMIZER_CONFIGS["momentum"]
    got, _ = run_steps(apply_dict, C.optax_transform_for(opt, "float32"), make_loss("sigmoid"),
                       initial_parameters(case), X, Y, batch_sequence(case), "sigmoid",
                       dtype="float32", params=params, optimizer=opt)
    L = len(dims) - 1
    keys = [f"vd{p}{l}" for l in range(1, L + 1) for p in ("W", "b")]
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch, 3)
    assert set(got) == every_model_stages(L, keys)
    assert_case_conforms(case, got, missing=set(e.order) - every_model_stages(L, keys))


def test_adapter_on_a_linen_model():
    linen = pytest.importorskip("flax.linen")

    class Mlp(linen.Module):
        @linen.compact
        def __call__(self, x):
            x = jnp.tanh(linen.Dense(4, param_dtype=jnp.float64)(x))
            return linen.Dense(1, param_dtype=jnp.float64)(x)

    case = Case("jax", "idiomatic", "cpu", "float64", "tanh", "sigmoid", "shallow", "gd", "full", 1)
    X, Y = dataset(case.data)
    model = Mlp()
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 2)))
    got, _ = run_steps(model.apply, C.optax_transform_for(OPTIMIZER_CONFIGS["gd"]),
                       make_loss("sigmoid"), initial_parameters(case), X, Y,
                       batch_sequence(case), "sigmoid", params=params)
    assert set(got) == every_model_stages(2, [])
    assert_case_conforms(case, got, missing={"Z1", "A1", "dZ1", "dA1", "t'"})


def test_net_records_nothing_outside_a_capture():
    """flax 0.12.8's sow/perturb outside nnx.capture store the value in the module (a
    deprecated fallback, with a perturbation of a fixed batch size): Net must not."""
    model = Net([2, 4, 4, 1], rngs=nnx.Rngs(0))
    before = jax.tree.structure(nnx.state(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(jnp.ones((5, 2)))
        model(jnp.ones((3, 2)))
    assert jax.tree.structure(nnx.state(model)) == before
    assert set(nnx.state(model, nnx.Param)["layers"][0]) == {"kernel", "bias"}


# ------------------------------------------------------------------ (b) conventions

def test_conventions_table_is_scannable_data():
    keys = [c.key for c in C.CONVENTIONS]
    assert len(keys) == len(set(keys))
    for c in C.CONVENTIONS:
        assert all(isinstance(v, str) and v for v in (c.key, c.concept, c.reference, c.library, c.mapping))
    assert C.convention("layout.weight").library.startswith("nnx.Linear")
    with pytest.raises(KeyError, match="unknown convention 'nope'; known: layout.weight"):
        C.convention("nope")
    assert C.markdown_table().count("\n") == len(keys) + 1


def _ulps(a, b, dtype):
    return np.max(np.abs(np.asarray(a, np.float64) - b) / np.spacing(np.abs(np.asarray(b, dtype))))


# 100 full-batch updates of the conformance configuration momentum (lr 0.5, beta 0.9),
# 2-4-1 tanh/sigmoid, float64: the same jitted step as its conformance case
MOMENTUM = OPTIMIZER_CONFIGS["momentum"]
FULL_100 = [np.arange(400)] * 100


def _net(dims=(2, 4, 1), hidden="tanh", dtype="float64"):
    return nnx.eval_shape(lambda: Net(list(dims), hidden, dtype=dtype))


def test_heavy_ball_with_lr_times_one_minus_beta_is_the_course_ema():
    """optax.sgd(lr (1 - beta), momentum=beta) follows the reference's EMA momentum for 100
    steps within the shadow-trajectory bound; optax.sgd(lr, momentum=beta) does not: its
    first update is lr g against lr (1 - beta) g, i.e. W' differs by exactly -lr beta dW."""
    X, Y = R.load_planar_dataset()
    p0 = R.initialize_network([2, 4, 1])
    tr = reference_trajectory((2, 4, 1), "article", "planar", "float64", "tanh", "sigmoid",
                              "momentum", MOMENTUM, 100, None)
    one = expected("float64", "tanh", "sigmoid", "shallow", "momentum", "full", 1)
    tx = C.optax_transform_for(MOMENTUM)
    got, costs = run_steps(_net(), tx, make_loss("sigmoid"), p0, X, Y, FULL_100, "sigmoid",
                           optimizer=MOMENTUM)
    agree = max(np.abs(got[k + "'"] - tr.params[k]).max() for k in p0)
    results = [compare_stages({"costs": tr.costs}, {"costs": costs},
                              {"costs": tr.cost_bound(2 * one.bounds["cost_stable"])}, ["costs"],
                              "float64", factor=1.0)[0]]
    for k in p0:
        results += compare_stages({k + "'": tr.params[k]}, got,
                                  {k + "'": tr.param_bound(k, 2 * one.bounds[k + "'"])}, [k + "'"],
                                  "float64", factor=1.0)
    assert_conforms(results, {"case": "optax.sgd(lr*(1-beta), momentum=beta)-100steps"},
                    against="the reference trajectory (shadow model)")

    # heavy-ball at the unscaled lr (optax.sgd(lr, momentum=beta), as optax_transform_for
    # builds it for momentum_form="heavy_ball"): one step, against the hand-derived gap
    # W'_hb - W'_ema = -lr beta dW (first updates lr g and lr (1 - beta) g)
    hb = EXTRA_OPTIMIZERS["momentum-heavy_ball"]
    tx_hb = C.optax_transform_for(hb)
    assert isinstance(tx_hb.init({"w": jnp.zeros(1)})[0], optax.TraceState)
    got1, _ = run_steps(_net(), tx_hb, make_loss("sigmoid"), p0, X, Y, FULL_100[:1], "sigmoid",
                        optimizer=hb)
    ref1 = one.ref
    u = UNIT_ROUNDOFF["float64"]
    for k in p0:
        gap = got1[k + "'"] - ref1[k + "'"]
        want = -MOMENTUM.learning_rate * MOMENTUM.beta * ref1["d" + k]
        # both W' round (<= 2u |W'| together), the gradients agree within 2E
        slack = 4 * u * np.abs(ref1[k + "'"]) + MOMENTUM.learning_rate * 2 * one.bounds["d" + k]
        assert np.all(np.abs(gap - want) <= slack), k
        # the trace after one step is the gradient itself (vdP = trace for heavy_ball)
        assert np.all(np.abs(got1["vd" + k + "'"] - ref1["d" + k]) <= 2 * one.bounds["d" + k]), k
    gap100, _ = run_steps(_net(), tx_hb, make_loss("sigmoid"), p0, X, Y, FULL_100, "sigmoid",
                          optimizer=hb)
    apart = max(np.abs(gap100[k + "'"] - tr.params[k]).max() for k in p0)
    bound = max(tr.param_bound(k, 2 * one.bounds[k + "'"]).max() for k in p0)
    print(f"\nEMA via optax.sgd(lr*(1-beta), beta): max |P - P_ref| after 100 steps = {agree:.3g}; "
          f"unscaled heavy-ball: {apart:.3g} (shadow bound {bound:.3g})")
    assert apart > 1e6 * bound


def test_optax_ema_debiases_by_default():
    """optax.ema(beta) returns ema / (1 - beta^t); the course's EMA momentum (the
    reference's vdP) is the raw ema, which debias=False gives. With a constant gradient g:
    vdP_t = (1 - beta^t) g, the debiased update is g, the ratio 1 / (1 - beta^t)."""
    beta, u = 0.9, UNIT_ROUNDOFF["float64"]
    g = np.random.RandomState(0).randn(7, 1)
    opt = R.Optimizer("momentum", learning_rate=1.0, beta=beta)
    params, state = {"W1": np.zeros((7, 1))}, R.init_optimizer_state({"W1": np.zeros((7, 1))}, opt)
    debiased, raw = optax.ema(beta), optax.ema(beta, debias=False)
    s_d, s_r = debiased.init(jnp.zeros((7, 1))), raw.init(jnp.zeros((7, 1)))
    ratios = []
    for t in range(1, 6):
        params, state = R.optimizer_step(params, {"dW1": g}, state, opt)
        v_ref = state["vdW1"]
        up_d, s_d = debiased.update(jnp.asarray(g), s_d)
        up_r, s_r = raw.update(jnp.asarray(g), s_r)
        ratio = np.asarray(up_d) / v_ref
        ratios.append(float(np.median(ratio)))
        # a few roundings per update, accumulated over t updates
        np.testing.assert_allclose(ratio, 1 / (1 - beta ** t), rtol=8 * t * u, atol=0)
        np.testing.assert_allclose(np.asarray(up_r), v_ref, rtol=8 * t * u, atol=0)
        np.testing.assert_allclose(np.asarray(s_r.ema), v_ref, rtol=8 * t * u, atol=0)
    print("\noptax.ema(beta) update / reference vdP, t = 1..5: " + ", ".join(f"{r:.4g}" for r in ratios))


def _sum_bound(terms, dtype):
    """Relative bound on a sum of K nonnegative terms, each from a few transcendentals:
    (ULPS_TRANSCENDENTAL + ULPS_ELEMENTWISE) u per term + gamma_K for the sum (tolerance.py)."""
    prec = Precision(dtype)
    return prec.f + prec.gamma(terms)


def test_sigmoid_bce_mean_is_the_reference_cost_over_n_y():
    """optax.sigmoid_binary_cross_entropy(z, y).mean() divides by n_y m, the reference by
    m: the ratio is exactly n_y (here 3); make_loss's sum()/m is the reference's cost.
    softmax_cross_entropy is per example: its .mean() is the reference's."""
    rng = np.random.RandomState(0)
    n_y, m = 3, 50
    Z, Y = rng.randn(n_y, m) * 3, (rng.rand(n_y, m) > 0.5).astype(np.float64)
    ref = float(R.cross_entropy_from_logits(Z, Y, "sigmoid"))
    mean = float(optax.sigmoid_binary_cross_entropy(jnp.asarray(Z.T), jnp.asarray(Y.T)).mean())
    ours = float(make_loss("sigmoid")(jnp.asarray(Z.T), jnp.asarray(Y.T)))
    rel = 2 * _sum_bound(n_y * m, "float64") + 2 * UNIT_ROUNDOFF["float64"]
    print(f"\nsigmoid, n_y = {n_y}: reference / optax .mean() = {ref / mean!r}; "
          f"reference / make_loss = {ref / ours!r}")
    assert abs(ref / mean - n_y) <= n_y * rel
    assert abs(ref / ours - 1) <= rel
    Ys = R.one_hot(rng.randint(0, n_y, m), n_y).astype(np.float64)
    ref_s = float(R.cross_entropy_from_logits(Z, Ys, "softmax"))
    mean_s = float(optax.softmax_cross_entropy(jnp.asarray(Z.T), jnp.asarray(Ys.T)).mean())
    assert abs(ref_s / mean_s - 1) <= 2 * _sum_bound(n_y * m, "float64")
    assert abs(float(make_loss("softmax")(jnp.asarray(Z.T), jnp.asarray(Ys.T))) / ref_s - 1) \
        <= 2 * _sum_bound(n_y * m, "float64")


def test_exponential_decay_rate_is_float32_under_x64_and_drifts():
    """optax's int32 count makes exponential_decay compute in float32 under x64: the rate
    is fl32(lr0) fl32(rate)^k up to a few float32 roundings (relative error ~ k u32, the
    float32 rounding of 0.99 raised to the k), and 100 float64 GD steps at lr 1.2 drift
    from the reference by about sum_k (r32_k - r_k) dW_k (first order, along the reference
    trajectory; within 4x of it, the dynamics' feedback measured at 0.4-2.5x).
    conventions.schedule_for computes in float64 and stays within the shadow bound."""
    opt = EXTRA_OPTIMIZERS["gd-exponential"]
    lr0, rate, n = opt.learning_rate, opt.decay_rate, 100
    sched = optax.exponential_decay(lr0, 1, rate)
    r_optax = np.asarray(sched(jnp.arange(n, dtype=jnp.int32)))  # elementwise in the count
    assert r_optax.dtype == np.float32
    u32 = UNIT_ROUNDOFF["float32"]
    k = np.arange(n)
    predicted = np.float64(np.float32(lr0)) * np.float64(np.float32(rate)) ** k
    r64 = np.array([R.learning_rate_at(opt, int(i)) for i in k])
    assert np.all(np.abs(r_optax - predicted) <= 8 * u32 * predicted)  # pow and products in float32
    worst_rate = np.max(np.abs(r_optax - r64) / r64)

    X, Y = R.load_planar_dataset()
    p0 = R.initialize_network([2, 4, 1])
    p, st = p0, R.init_optimizer_state(p0, opt)
    first_order = {key: np.zeros_like(v) for key, v in p0.items()}
    for i in range(n):
        p, st, _, g = R.train_step(p, st, X, Y, "tanh", "sigmoid", opt)
        for key in first_order:
            first_order[key] += (predicted[i] - r64[i]) * g["d" + key]
    got, _ = run_steps(_net(), optax.sgd(sched), make_loss("sigmoid"), p0, X, Y, FULL_100,
                       "sigmoid", optimizer=opt)
    drift = max(np.abs(got[key + "'"] - p[key]).max() for key in p)
    est = max(np.abs(first_order[key]).max() for key in p)
    ours, _ = run_steps(_net(), C.optax_transform_for(opt), make_loss("sigmoid"), p0, X, Y,
                        FULL_100, "sigmoid", optimizer=opt)
    tr = reference_trajectory((2, 4, 1), "article", "planar", "float64", "tanh", "sigmoid",
                              "gd-exponential-0.99", opt, n, None)
    one = expected("float64", "tanh", "sigmoid", "shallow", "gd", "full", 1)
    ours_drift = max(np.abs(ours[key + "'"] - tr.params[key]).max() for key in p)
    bound = min(tr.param_bound(key, 2 * one.bounds[key + "'"]).min() for key in p)
    print(f"\noptax.exponential_decay: float32 rate, max rel error {worst_rate:.3g} "
          f"({worst_rate / u32:.1f} u32) over 100 steps; float64 parameter drift after 100 "
          f"steps at lr {lr0} (rate {rate}): {drift:.3g} (first-order estimate {est:.3g}); "
          f"schedule_for: {ours_drift:.3g} (shadow bound >= {bound:.3g})")
    assert est / 4 <= drift <= 4 * est
    assert drift > 1e3 * bound
    for key in p:
        assert np.all(np.abs(ours[key + "'"] - tr.params[key])
                      <= tr.param_bound(key, 2 * one.bounds[key + "'"])), key


@pytest.mark.parametrize("schedule", ["constant", "inverse_time", "exponential", "step"])
def test_schedule_for_is_the_documented_rate(schedule):
    """conventions.schedule_for at optax's counts k = 0..9 (the updates done before this
    one), with decay_steps = 3 so that floor(k / steps), k / steps and k differ: the
    docstring's formulas in Python floats (the reference's learning_rate_at), times
    ``factor``, rounded once to the dtype."""
    lr0, rate, steps = 0.3, 0.5, 3
    opt = R.Optimizer("gd", learning_rate=lr0, schedule=schedule,
                      **({} if schedule == "constant" else {"decay_rate": rate, "decay_steps": steps}))
    formula = {"constant": lambda k: lr0, "inverse_time": lambda k: lr0 / (1 + rate * (k // steps)),
               "exponential": lambda k: lr0 * rate ** (k / steps),
               "step": lambda k: lr0 * rate ** (k // steps)}[schedule]
    for dtype in ("float64", "float32"):
        for factor in (None, 0.25):
            s = C.schedule_for(opt, dtype) if factor is None else C.schedule_for(opt, dtype, factor)
            for k in range(10):
                want = formula(k) * (1.0 if factor is None else factor)
                assert R.learning_rate_at(opt, k) == formula(k)
                if schedule == "constant":
                    assert s == want
                    continue
                got = s(jnp.asarray(k, jnp.int32))
                assert got.dtype == np.dtype(dtype)
                # float64: pow and products in float64 (a few u); float32: one rounding
                assert float(got) == pytest.approx(float(np.asarray(want, dtype)),
                                                   rel=4 * UNIT_ROUNDOFF[dtype]), (dtype, factor, k)


def test_jit_fuses_the_update_into_an_fma():
    """optax.sgd + apply_updates: eager JAX rounds lr g and then p - lr g (NumPy's two
    roundings, bit for bit); under jax.jit XLA contracts them into one fused multiply-add,
    the correctly rounded p - lr g (exact rational arithmetic, float64). They differ by at
    most one rounding of lr g on some elements: never bitwise equal to the reference."""
    rng = np.random.RandomState(0)
    n, lr = 2000, 1.2
    p, g = rng.randn(n), rng.randn(n)
    tx = optax.sgd(lr)
    state = tx.init(jnp.asarray(p))

    def update(p, g):
        u, _ = tx.update(g, state, p)
        return optax.apply_updates(p, u)
    eager = np.asarray(update(jnp.asarray(p), jnp.asarray(g)))
    jitted = np.asarray(jax.jit(update)(jnp.asarray(p), jnp.asarray(g)))
    fma = np.array([float(Fraction(a) - Fraction(lr) * Fraction(b)) for a, b in zip(p, g)])
    assert np.array_equal(eager, p - lr * g)
    assert np.array_equal(jitted, fma)
    differ = jitted != eager
    # eager = fl(p - fl(lr g)): |eager - exact| <= u |lr g| + 1/2 ulp; |fma - exact| <= 1/2 ulp
    limit = UNIT_ROUNDOFF["float64"] * np.abs(lr * g) + np.spacing(np.maximum(np.abs(fma), np.abs(eager)))
    assert np.all(np.abs(jitted - eager) <= limit)
    ulps = np.abs(jitted - eager) / np.spacing(np.maximum(np.abs(p), np.abs(lr * g)))
    assert differ.sum() > n // 10

    # inside the adapter's jitted step too: W' is fma(W, -lr, dW) of its own gradient
    # (the gd-exponential configuration: rate 1.2 at the first update, one shared compile)
    X, Y = R.load_planar_dataset()
    p0 = R.initialize_network([2, 4, 1])
    got, _ = run_steps(_net(), C.optax_transform_for(EXTRA_OPTIMIZERS["gd-exponential"]),
                       make_loss("sigmoid"), p0, X, Y, FULL_100[:1], "sigmoid")
    fused = two = 0
    for k in p0:
        exact = np.array([float(Fraction(a) - Fraction(lr) * Fraction(b))
                          for a, b in zip(p0[k].ravel(), got["d" + k].ravel())]).reshape(p0[k].shape)
        assert np.array_equal(got[k + "'"], exact), k
        two += int(np.sum(got[k + "'"] != p0[k] - lr * got["d" + k]))
        fused += p0[k].size
    print(f"\njit vs eager update p - {lr} g (float64): {differ.sum()} of {n} elements differ, "
          f"by at most {ulps.max():.3g} ulp of max(|p|, |lr g|); in the 2-4-1 step, {two} of "
          f"{fused} parameters differ from NumPy's two roundings (all equal the FMA)")
    assert two >= 1


@pytest.mark.slow
def test_eager_adapter_conforms_and_rounds_the_update_twice(extra_optimizers):
    """run_steps(jit=False): eager JAX (every primitive compiled on its own, ~5 s here)
    conforms too, and its update is NumPy's two roundings of its own gradient, bit for bit."""
    case = Case("jax", "idiomatic", "cpu", "float64", "tanh", "sigmoid", "shallow",
                "gd-exponential", "full", 1)
    X, Y = dataset(case.data)
    p0 = initial_parameters(case)
    got, _ = run_steps(_net(), C.optax_transform_for(EXTRA_OPTIMIZERS["gd-exponential"]),
                       make_loss("sigmoid"), p0, X, Y, batch_sequence(case), "sigmoid", jit=False)
    for k in p0:
        assert np.array_equal(got[k + "'"], p0[k] - 1.2 * got["d" + k]), k
    assert_case_conforms(case, got)


def test_loaded_kernels_are_transposed_weights():
    p0 = initial_parameters(Case("jax", arch="deep"))
    model = load_reference_parameters(_net((2, 4, 4, 3, 1)), p0)
    for l in range(1, 5):
        lin = model.layers[l - 1]
        assert np.array_equal(np.asarray(lin.kernel[...]), p0[f"W{l}"].T)
        assert np.array_equal(np.asarray(lin.bias[...]), p0[f"b{l}"][:, 0])
        assert lin.kernel[...].dtype == jnp.float64
    f32 = load_reference_parameters(_net((2, 4, 4, 3, 1), dtype="float32"), p0)
    assert f32.layers[0].kernel[...].dtype == jnp.float32
    layers = C.dense_layers(nnx.state(model, nnx.Param))
    assert [x.name for x in layers] == ["layers/0", "layers/1", "layers/2", "layers/3"]
    # natural order: layers/10 after layers/2
    tree = {"layers": {str(i): {"kernel": np.zeros((1, 1)), "bias": np.zeros(1)} for i in (10, 2, 1)}}
    assert [x.name for x in C.dense_layers(tree)] == ["layers/1", "layers/2", "layers/10"]


@pytest.mark.parametrize("dims,params_arch,transpose,message", [
    ((2, 4, 1), "deep", True,
     r"the model has 2 Linear/Dense layer\(s\) \('layers/0', 'layers/1'\), the reference "
     r"parameters have 4 \(W1..W4\)"),
    ((2, 5, 1), "shallow", True,
     r"layer 'layers/0' \(layer 1 of 2\): kernel shape \(2, 5\) != W1.T shape \(2, 4\)"),
    ((2, 4, 4, 3, 1), "deep", False,
     r"layer 'layers/0' \(layer 1 of 4\): kernel shape \(2, 4\) != W1 \(transpose=False\) shape \(4, 2\)"),
], ids=["layer-count", "layer-shape", "not-transposed-non-square"])
def test_load_errors_name_the_layer(dims, params_arch, transpose, message):
    p0 = initial_parameters(Case("jax", arch=params_arch))
    with pytest.raises(ValueError, match=message):
        load_reference_parameters(_net(dims), p0, transpose=transpose)


def test_load_error_without_kernel_and_bias_leaves():
    with pytest.raises(ValueError, match="found no Linear/Dense layer: expected leaves named "
                       "'kernel'.*the pytree has: b1, w1"):
        load_reference_parameters({"w1": np.zeros((2, 4)), "b1": np.zeros(4)},
                                  R.initialize_network([2, 4, 1]))


# compare.py's ulp column divides a 0.6 error by denormal spacings: inf, harmless here
@pytest.mark.filterwarnings("ignore:overflow encountered in divide:RuntimeWarning")
def test_untransposed_square_kernel_diverges_first_at_its_layer():
    """The classic bug: a square layer (deep net's W2, 4x4) loaded without the transpose
    has the right shape, loads silently, and the first diverging stage is Z2."""
    case = Case("jax", "idiomatic", "cpu", "float64", "relu", "softmax", "deep", "gd", "full", 1)
    X, Y = dataset(case.data)
    p0 = initial_parameters(case)

    def buggy_load(model, parameters):
        load_reference_parameters(model, parameters)
        model.layers[1].kernel[...] = jnp.asarray(parameters["W2"])  # W2, not W2.T
        return model
    model = nnx.eval_shape(lambda: Net(case.layer_dims(), "relu", "softmax"))
    got, _ = run_steps(model, C.optax_transform_for(OPTIMIZER_CONFIGS["gd"]), make_loss("softmax"),
                       p0, X, Y, batch_sequence(case), "softmax", load=buggy_load)
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch, 1)
    results = compare_stages(e.ref, got, e.bounds, [s for s in e.order if s in got], "float64")
    first = next(r for r in results if not r.ok)
    assert first.stage == "Z2", failure_message(results, case.context())
    assert [r.stage for r in results[:2]] == ["Z1", "A1"] and results[0].ok and results[1].ok


class JaxNnLeakyNet(Net):
    """Net with jax.nn.leaky_relu, as a user would write it."""

    def activation(self, z):
        return jax.nn.leaky_relu(z, negative_slope=0.01)


def test_jax_nn_leaky_relu_gradient_at_zero_is_one_not_001():
    """jax.nn.leaky_relu tests x >= 0, so its derivative at 0 is 1.0; the reference's is
    0.01 (Net therefore uses its own). With W1 = 0, b1 = 0 every Z1 is exactly 0: a user's
    net with jax.nn.leaky_relu has dZ1 = dA1 * 1.0, the reference dA1 * 0.01, a ratio of
    exactly 100. jax.nn.relu'(0) = 0 = the reference's."""
    zero = np.zeros(1)
    assert float(jax.grad(jax.nn.relu)(0.0)) == 0.0 == R.activation_grad("relu", zero, zero)[0]
    assert float(jax.grad(partial(jax.nn.leaky_relu, negative_slope=0.01))(0.0)) == 1.0
    assert R.activation_grad("leaky_relu", zero, zero)[0] == 0.01
    X, Y = R.load_planar_dataset()
    p0 = dict(R.initialize_network([2, 4, 1], init="xavier"), W1=np.zeros((4, 2)))
    model = nnx.eval_shape(lambda: JaxNnLeakyNet([2, 4, 1], "leaky_relu"))
    got, _ = run_steps(model, C.optax_transform_for(OPTIMIZER_CONFIGS["gd"]), make_loss("sigmoid"),
                       p0, X, Y, FULL_100[:1], "sigmoid")
    cache = R.network_forward(X, p0, "leaky_relu", "sigmoid")[1]
    ref = R.network_backward(p0, cache, X, Y, "leaky_relu", "sigmoid")
    assert np.all(got["Z1"] == 0)
    np.testing.assert_array_equal(got["dZ1"], got["dA1"])  # g'(0) = 1 exactly
    ratio = got["dZ1"] / ref["dZ1"]
    print(f"\njax.nn.leaky_relu at z = 0: dZ1 / reference dZ1 = {np.median(ratio):.6g}")
    # dA1 = W2^T dZ2 agrees within a few ulps; 0.01 * dA1 rounds once more
    np.testing.assert_allclose(ratio, 100.0, rtol=16 * UNIT_ROUNDOFF["float64"])


def test_reference_optimizer_is_inferred_from_the_optax_state():
    params = {"k": jnp.zeros(2)}
    assert C.reference_optimizer_for(optax.adam(0.01).init(params), learning_rate=0.01) == \
        R.Optimizer("adam", learning_rate=0.01)
    assert C.reference_optimizer_for(optax.sgd(0.1, momentum=0.9).init(params)).name == "momentum"
    assert C.reference_optimizer_for(optax.sgd(0.1).init(params)).name == "gd"
    with pytest.raises(ValueError, match="optimizer 'adam' named, but the optax state .* is 'gd'"):
        C.reference_optimizer_for(optax.sgd(0.1).init(params), name="adam")
