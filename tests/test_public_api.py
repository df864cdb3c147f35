"""Every public path of every mirror, value by value against the reference.

The conformance matrix drives the L-layer functions stage by stage; this file covers what
it does not reach: the article's nine functions (``compute_cost`` and ``predict``
included, the latter exactly on its 0.5 boundary), ``optimize``'s recorded and printed
costs, ``model``, ``network_predict`` on ties, ``make_train_step`` on every gradient path
(the compiled autodiff one too), ``train``'s costs and callback, ``gradient_norms``,
``learning_rate_at`` for every schedule, the public signatures and their defaults, and
weight files written by one backend and read by another.

Backends come from the registry (a mirror that does not import is a skip naming the
error; ``--backend`` selects as in the conformance matrix). Every comparison goes
through ``netparity.compare.compare_stage`` with a bound from ``netparity.tolerance`` (one
step), from ``netparity.trajectory``'s shadow model (many steps) or, where neither
applies, derived next to the test. Comparisons are against the reference in the same
dtype, so the pass criterion is |x_b - x_r| <= 2E (both sides within E of exact).
"""
import functools
import inspect
import math
import re

import numpy as np
import pytest

from conftest import call_ok
import reference as R
from netparity.backends import REGISTRY, get_backend
from netparity.compare import assert_conforms, compare_stage
from netparity.tolerance import (ULPS_ELEMENTWISE, ULPS_TRANSCENDENTAL, Precision, input_bounds, optimizer_bounds,
                                 stage_bounds)
from netparity.trajectory import Trajectory, perturb

DTYPES = ("float64", "float32")
ARTICLE_KEYS = ("W1", "b1", "W2", "b2")


def _mirror_params(config):
    """Every registered backend except the reference itself; one that fails to import is
    a skip that says why, not a silent absence."""
    chosen = config.getoption("--backend")
    params = []
    for name in REGISTRY:
        if chosen is not None and name not in chosen:
            continue
        try:
            module = get_backend(name)
        except ImportError as e:
            params.append(pytest.param(name, marks=pytest.mark.skip(
                reason=f"backend {name!r} does not import here: {e}")))
            continue
        if module is not R:
            params.append(name)
    return params


def pytest_generate_tests(metafunc):
    if "grad_path" in metafunc.fixturenames:
        metafunc.parametrize("backend, grad_path, compiled", _step_params(metafunc.config))
    elif "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _mirror_params(metafunc.config))


@pytest.fixture
def B(backend):
    return get_backend(backend)


def conforms(results, what):
    assert_conforms(results, {"case": what})


def to_np(B, tree):
    return {k: B.to_numpy(v) for k, v in tree.items()}


# ------------------------------------------------------------------ the article's data

@functools.lru_cache(maxsize=None)
def planar():
    X, Y = R.load_planar_dataset()
    X.setflags(write=False)
    Y.setflags(write=False)
    return X, Y


@functools.lru_cache(maxsize=None)
def article_parameters():
    """A 2-4-1 network with O(1) weights and non-zero biases (the article's own start,
    0.01-scale weights and zero biases, would hide a sign error on b or a wrong factor
    in tanh'): xavier draws from the reference, biases from a seeded draw."""
    P = R.initialize_network([2, 4, 1], "xavier", seed=3)
    rng = np.random.RandomState(7)
    return {k: v if k[0] == "W" else 0.5 * rng.randn(*v.shape) for k, v in P.items()}


@functools.lru_cache(maxsize=None)
def article_step(dtype):
    """One article step on the reference in ``dtype`` and its bounds: (ref, bounds).
    The article's formulas are the L-layer network's for tanh/sigmoid, its cost the
    literal cross-entropy and its update plain gradient descent, so the tolerance
    policy's stage bounds apply as they are."""
    X, Y = planar()
    P64 = article_parameters()
    gd = R.Optimizer("gd", learning_rate=1.2)
    prec = Precision(dtype)
    _, cache64 = R.network_forward(X, P64, "tanh", "sigmoid")
    grads64 = R.network_backward(P64, cache64, X, Y, "tanh", "sigmoid")
    state64 = R.init_optimizer_state(P64, gd)
    new64, newstate64 = R.optimizer_step(P64, grads64, state64, gd)
    bounds, _, _ = stage_bounds(P64, state64, X, Y, cache64, grads64, new64, newstate64,
                                input_bounds(P64, prec), {"t": 0.0}, "tanh", "sigmoid", gd, prec)
    Xd, Yd, Pd = X.astype(dtype), Y.astype(dtype), R.tree_from_numpy(P64, dtype)
    A2, cache = R.forward_propagation(Xd, Pd)
    grads = R.backward_propagation(Pd, cache, Xd, Yd)
    ref = {**cache, "cost_literal": R.compute_cost(A2, Yd), **grads,
           **{f"{k}'": v for k, v in R.update_parameters(Pd, grads, 1.2).items()}}
    return ref, bounds


def article_inputs(B, dtype):
    X, Y = planar()
    return B.from_numpy(X, dtype), B.from_numpy(Y, dtype), B.tree_from_numpy(article_parameters(), dtype)


# ------------------------------------------------------------------ signatures

def _same_default(a, b):
    """Equal, or the same dtype spelled by two frameworks (np.float64, torch.float64)."""
    if a is b or (type(a) is type(b) and a == b):
        return True

    def dtype_name(d):
        if isinstance(d, type) or "dtype" in type(d).__name__.lower():
            return getattr(d, "__name__", None) or str(d).rsplit(".", 1)[-1]
        return None
    return dtype_name(a) is not None and dtype_name(a) == dtype_name(b)


def _public_functions(module):
    return sorted(n for n, f in vars(module).items()
                  if not n.startswith("_") and inspect.isfunction(f))


def test_reference_has_the_documented_article_api():
    """The list the signature test walks is not empty by accident."""
    names = _public_functions(R)
    for n in ("initialize_parameters", "sigmoid", "forward_propagation", "compute_cost",
              "backward_propagation", "update_parameters", "optimize", "model", "predict",
              "network_predict", "train", "make_train_step", "learning_rate_at", "gradient_norms"):
        assert n in names


def test_signatures_and_defaults_match_the_reference(B):
    """Every public function of the reference exists in the mirror with the same
    parameters, in the same order, of the same kind and with equal defaults (a default
    such as ``model``'s learning_rate=1.2 or ``train``'s seed=0 is part of the API);
    a mirror may only add parameters after them, each with a default."""
    differences = []
    for name in _public_functions(R):
        if not callable(getattr(B, name, None)):
            differences.append(f"{name}: missing")
            continue
        want = list(inspect.signature(getattr(R, name)).parameters.values())
        got = list(inspect.signature(getattr(B, name)).parameters.values())
        for w, g in zip(want, got):
            if (w.name, w.kind) != (g.name, g.kind) or not _same_default(w.default, g.default):
                differences.append(f"{name}: {g} where the reference has {w}")
        for extra in got[len(want):]:
            if extra.default is inspect.Parameter.empty:
                differences.append(f"{name}: extra parameter {extra} without a default")
        if len(got) < len(want):
            differences.append(f"{name}: lacks {[w.name for w in want[len(got):]]}")
    assert not differences, "\n".join(differences)


# ------------------------------------------------------------------ the nine article functions

def test_layer_sizes_and_initialize_parameters(B):
    """Exactly the reference's seed-1 draws (converted, not re-drawn), for two shapes."""
    X, Y = planar()
    assert B.layer_sizes(B.from_numpy(X), B.from_numpy(Y)) == R.layer_sizes(X, Y) == (2, 4, 1)
    assert B.layer_sizes(B.from_numpy(X), B.from_numpy(Y), n_h=7) == (2, 7, 1)
    for dims in ((2, 4, 1), (3, 5, 2)):
        want = R.initialize_parameters(*dims)
        got = to_np(B, B.initialize_parameters(*dims))
        assert list(got) == list(want)
        conforms([compare_stage(k, want[k], got[k], 0.0, "float64") for k in want],
                 f"{B.NAME}-initialize_parameters{dims}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid(B, dtype):
    """A = 1 / (1 + e^-Z) within the rounding of one transcendental and a few
    elementwise operations (Precision.f |A|, per side), including saturation; the cache
    is Z itself."""
    z = np.concatenate([np.linspace(-30, 30, 61), [-800.0, -100.0, 0.0, 100.0, 800.0]])[None, :]
    Z = z.astype(dtype)
    A_ref, cache_ref = R.sigmoid(Z)
    A, cache = B.sigmoid(B.from_numpy(Z))
    E = Precision(dtype).f * np.abs(A_ref.astype(np.float64))
    conforms([compare_stage("A", A_ref, B.to_numpy(A), E, dtype),
              compare_stage("cache", cache_ref, B.to_numpy(cache), 0.0, dtype)],
             f"{B.NAME}-{dtype}-sigmoid")


@pytest.mark.parametrize("dtype", DTYPES)
def test_article_step_function_by_function(B, dtype):
    """forward_propagation, compute_cost, backward_propagation and update_parameters, each
    fed the mirror's own previous results, against the reference's step."""
    ref, bounds = article_step(dtype)
    X, Y, P = article_inputs(B, dtype)
    A2, cache = B.forward_propagation(X, P)
    assert list(cache) == ["Z1", "A1", "Z2", "A2"]
    cost = B.compute_cost(A2, Y)
    assert type(cost) is float
    grads = B.backward_propagation(P, cache, X, Y)
    assert list(grads) == ["dW1", "db1", "dW2", "db2"]
    new = B.update_parameters(P, grads, 1.2)
    assert list(new) == list(ARTICLE_KEYS)
    got = {**to_np(B, cache), "cost_literal": cost, **to_np(B, grads),
           **{f"{k}'": v for k, v in to_np(B, new).items()}}
    conforms([compare_stage("A2 (returned)", ref["A2"], B.to_numpy(A2), bounds["A2"], dtype)]
             + [compare_stage(k, ref[k], got[k], bounds[k], None if k.startswith("cost") else dtype)
                for k in ref], f"{B.NAME}-{dtype}-article-step")


def test_article_backward_with_as_many_examples_as_hidden_units(B):
    """m = n_h = 4: a product with its operands swapped or a transpose dropped (dZ2 W2^T
    for W2^T dZ2) still has matching shapes here, so the values must tell. Against the
    reference's gradients in float64 (four-term sums: a few u of the largest term)."""
    X, Y = R.load_planar_dataset()
    X, Y = X[:, 98:102], Y[:, 98:102]  # two examples of each class
    P = R.initialize_parameters(2, 4, 1)
    P = {k: v * 40 for k, v in P.items()}  # weights of order 1, so that every term counts
    A2, cache = R.forward_propagation(X, P)
    want = R.backward_propagation(P, cache, X, Y)
    got = to_np(B, B.backward_propagation(B.tree_from_numpy(P), B.tree_from_numpy(cache),
                                          B.from_numpy(X), B.from_numpy(Y)))
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-15, err_msg=k)


def test_update_parameters_uses_the_rate_it_is_given(B):
    """learning_rate 0.3, not the default, on the reference's gradients: P - 0.3 dP has
    two roundings (the product and the difference), |error| <= 2u (|P| + 0.3 |dP|)."""
    ref, _ = article_step("float64")
    grads = {f"d{k}": ref[f"d{k}"] for k in ARTICLE_KEYS}
    want = R.update_parameters(article_parameters(), grads, 0.3)
    got = to_np(B, B.update_parameters(B.tree_from_numpy(article_parameters()), B.tree_from_numpy(grads),
                                       learning_rate=0.3))
    u = Precision("float64").u
    conforms([compare_stage(k, want[k], got[k], 2 * u * (np.abs(article_parameters()[k])
                                                          + 0.3 * np.abs(grads["d" + k])), "float64")
              for k in ARTICLE_KEYS], f"{B.NAME}-update_parameters-lr0.3")


def _prediction_results(ref, got, what):
    """Exact equality of predictions (bound 0), in the reference's dtype."""
    return [compare_stage(what, ref, got, 0.0, ref.dtype.name)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_away_from_the_boundary(B, dtype):
    """Where |A2 - 0.5| exceeds both sides' error bound, A2 > 0.5 has one answer: the
    predictions must be identical (precondition asserted, not assumed)."""
    X, _, P = article_inputs(B, dtype)
    ref, bounds = article_step(dtype)
    assert np.all(np.abs(ref["A2"].astype(np.float64) - 0.5) > 2 * bounds["A2"]), "a point sits on the boundary"
    want = R.predict(R.tree_from_numpy(article_parameters(), dtype), planar()[0].astype(dtype))
    assert want.any() and not want.all()
    conforms(_prediction_results(want, B.to_numpy(B.predict(P, X)), "predict"), f"{B.NAME}-{dtype}-predict")


def zero_network(dims):
    return {k: np.zeros_like(v) for k, v in R.initialize_network(dims).items()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_exactly_on_the_boundary(B, dtype):
    """All-zero weights: Z2 = 0 and A2 = 1 / (1 + e^0) = 0.5 exactly in any dtype, and
    the article predicts A2 > 0.5, i.e. False everywhere (a mirror testing >= says True)."""
    X = planar()[0].astype(dtype)
    P = zero_network([2, 4, 1])
    A2, _ = R.forward_propagation(X, R.tree_from_numpy(P, dtype))
    assert np.all(A2 == 0.5)
    want = R.predict(R.tree_from_numpy(P, dtype), X)
    assert not want.any()
    got = B.to_numpy(B.predict(B.tree_from_numpy(P, dtype), B.from_numpy(X)))
    conforms(_prediction_results(want, got, "predict on A2 = 0.5"), f"{B.NAME}-{dtype}-predict-boundary")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_of_logits_beyond_exp_range(B, dtype):
    """softmax subtracts each column's maximum before exp (the reference's formula):
    logits of 1000 (exp overflows in both dtypes) give the exact ratios, by hand:
    column 0 (1000, 999): 1 / (1 + e^-1), e^-1 / (1 + e^-1); column 1 (-1000, 1000):
    e^-2000 (0 in both dtypes), 1."""
    z = np.array([[1000.0, -1000.0], [999.0, 1000.0]])
    got = B.to_numpy(B.softmax(B.from_numpy(z, dtype)))
    e = math.exp(-1)
    want = np.array([[1 / (1 + e), 0.0], [e / (1 + e), 1.0]])
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, rtol=8 * float(np.finfo(dtype).eps), atol=0)


@pytest.mark.parametrize("output, dims", [("sigmoid", [2, 4, 3, 1]), ("softmax", [2, 4, 3])])
def test_network_predict_on_ties(B, output, dims):
    """L-layer predict on all-zero weights: sigmoid outputs are exactly 0.5 (False, as
    the strict A > 0.5); softmax outputs are all 1/K, a K-way tie that argmax breaks
    towards the first class (class 0), as NumPy does."""
    X = planar()[0]
    P = zero_network(dims)
    want = R.network_predict(P, X, "tanh", output)
    assert not want.any()
    got = B.to_numpy(B.network_predict(B.tree_from_numpy(P), B.from_numpy(X), "tanh", output))
    # class indices: any integer dtype (int64 in NumPy and torch, int32 possible in JAX)
    assert got.dtype.kind == want.dtype.kind
    conforms([compare_stage("prediction on a tie", want, got, 0.0, want.dtype.name if output == "sigmoid" else None)],
             f"{B.NAME}-network_predict-{output}-tie")


@pytest.mark.parametrize("output, dims", [("sigmoid", [2, 5, 1]), ("softmax", [2, 5, 3])])
def test_network_predict_away_from_ties(B, output, dims):
    """Random weights: where no two candidate answers are within the error bounds of
    each other (asserted), the predictions are identical."""
    X, Y = R.load_dataset("planar" if output == "sigmoid" else "blobs")
    P = R.initialize_network(dims, "xavier", seed=5)
    AL, cache = R.network_forward(X, P, "tanh", output)
    grads = R.network_backward(P, cache, X, Y, "tanh", output)
    gd = R.Optimizer("gd", 0.1)
    state = R.init_optimizer_state(P, gd)
    new, newstate = R.optimizer_step(P, grads, state, gd)
    E = stage_bounds(P, state, X, Y, cache, grads, new, newstate, input_bounds(P, Precision("float64")),
                     {"t": 0.0}, "tanh", output, gd, Precision("float64"))[0][f"A{len(dims) - 1}"]
    # AL here and the backend's are each within E of exact: |AL - 0.5| > 2E puts the exact
    # value more than E from 0.5, so both sides answer alike; for argmax, a computed gap
    # > 4E between the top two leaves an exact gap > 2E, which neither side can close
    if output == "sigmoid":
        assert np.all(np.abs(AL - 0.5) > 2 * E)
    else:
        top2 = np.sort(AL, axis=0)[-2:]
        assert np.all(top2[1] - top2[0] > 4 * E.max())
    want = R.network_predict(P, X, "tanh", output)
    got = B.to_numpy(B.network_predict(B.tree_from_numpy(P), B.from_numpy(X), "tanh", output))
    assert got.dtype.kind == want.dtype.kind
    conforms([compare_stage("prediction", want, got, 0.0, want.dtype.name if output == "sigmoid" else None)],
             f"{B.NAME}-network_predict-{output}")


# ------------------------------------------------------------------ optimize and model

ITERATIONS = 1001  # the costs of iterations 0 and 1000 are recorded


@functools.lru_cache(maxsize=None)
def article_trajectory():
    """The reference's run from the article's start (seed-1 draws, lr 1.2) and its shadow
    run (weights one ulp off, netparity.trajectory): the cost after k updates may differ
    between two correct implementations by SAFETY (k + 1) D(k) + floor."""
    X, Y = planar()
    gd = R.Optimizer("gd", learning_rate=1.2)
    p0 = R.initialize_parameters(2, 4, 1)
    runs = [R.train(p, X, Y, "tanh", "sigmoid", gd, ITERATIONS, None, check_finite=False)
            for p in (p0, perturb(p0, "float64"))]
    tr = Trajectory(runs[0][2], runs[1][2], runs[0][0], runs[1][0])
    assert tr.parting_step() is None, "the shadow run parted: the bound would say nothing"
    return tr


def check_article_run(B, params, costs, printed, what):
    """The mirror's (parameters, costs) and printed lines after ITERATIONS iterations
    against the reference's optimize from the same start, under the shadow-trajectory
    bound; the floor is the one-step bound of the stage, both sides (2E)."""
    X, Y = planar()
    ref_params, ref_costs = R.optimize(R.initialize_parameters(2, 4, 1), X, Y, ITERATIONS, 1.2, False)
    _, want_costs = _reference_costs()
    tr = article_trajectory()
    _, one_step = article_step("float64")
    steps = list(range(0, ITERATIONS, 1000))
    cost_bound = tr.cost_bound(2 * one_step["cost_literal"])[steps]
    results = [compare_stage("costs", np.array(want_costs), np.array(costs), cost_bound, "float64", factor=1.0)]
    got = to_np(B, params)
    results += [compare_stage(f"{k}'", ref_params[k], got[k], tr.param_bound(k, 2 * one_step[f"{k}'"]),
                              "float64", factor=1.0) for k in ARTICLE_KEYS]
    # printed as the article does, "Cost after iteration i: %f": the recorded cost to 6 decimals
    lines = re.findall(r"^Cost after iteration (\d+): (-?\d+\.\d{6})$", printed, re.M)
    assert len(lines) == len(printed.strip().splitlines()), printed
    results.append(compare_stage("printed iterations", np.array(steps), np.array([int(i) for i, _ in lines]), 0.0, None))
    results.append(compare_stage("printed costs", np.array(want_costs), np.array([float(c) for _, c in lines]),
                                 cost_bound + 5e-7, None, factor=1.0))
    conforms(results, what)


@functools.lru_cache(maxsize=None)
def _reference_costs():
    X, Y = planar()
    return R.optimize(R.initialize_parameters(2, 4, 1), X, Y, ITERATIONS, 1.2, print_cost=True)


def test_optimize_records_and_prints_the_costs(B, capsys):
    X, Y = planar()
    params, costs = B.optimize(B.initialize_parameters(2, 4, 1), B.from_numpy(X), B.from_numpy(Y),
                               num_iterations=ITERATIONS, learning_rate=1.2, print_cost=True)
    assert list(params) == list(ARTICLE_KEYS) and all(type(c) is float for c in costs)
    check_article_run(B, params, costs, capsys.readouterr().out, f"{B.NAME}-optimize-{ITERATIONS}")


def test_optimize_without_print_cost_records_nothing(B, capsys):
    """print_cost=False (the default): no costs and no output, the same parameters."""
    X, Y = planar()
    P = B.initialize_parameters(2, 4, 1)
    params, costs = B.optimize(P, B.from_numpy(X), B.from_numpy(Y), 3)
    assert costs == [] and capsys.readouterr().out == ""
    want, _ = R.optimize(R.initialize_parameters(2, 4, 1), X, Y, 3)
    _, one_step = article_step("float64")
    # three steps of the article's tiny start: the one-step bounds, tripled, still hold
    conforms([compare_stage(k, want[k], B.to_numpy(params[k]), 3 * one_step[f"{k}'"], "float64")
              for k in ARTICLE_KEYS], f"{B.NAME}-optimize-3")


def test_model_with_its_defaults(B, capsys):
    """model(X, Y, X, Y) with n_h and learning_rate at their defaults and print_cost on
    (its default): the reference's initialisation and optimize."""
    X, Y = planar()
    Xb, Yb = B.from_numpy(X), B.from_numpy(Y)
    params, costs = B.model(Xb, Yb, Xb, Yb, num_iterations=ITERATIONS)
    check_article_run(B, params, costs, capsys.readouterr().out, f"{B.NAME}-model-{ITERATIONS}")


# ------------------------------------------------------------------ step factory

def _step_params(config):
    """(backend, grad_path, compiled) for every gradient path the mirror declares, eager
    and compiled. The compiled manual path is in the conformance matrix already (slow
    here); the compiled autodiff path is only here, and stays in the default run."""
    params = []
    for p in _mirror_params(config):
        if not isinstance(p, str):  # a mirror that does not import: keep its skip
            params.append(pytest.param(p.values[0], "manual", False, marks=p.marks, id=p.values[0]))
            continue
        for path in get_backend(p).GRAD_PATHS:
            for compiled in (False, True):
                marks = [pytest.mark.compiled] + ([pytest.mark.slow] if path == "manual" else []) if compiled else []
                params.append(pytest.param(p, path, compiled, marks=marks,
                                           id=f"{p}-{path}-{'compiled' if compiled else 'eager'}"))
    return params


ADAM = R.Optimizer("adam", learning_rate=0.05)


@functools.lru_cache(maxsize=None)
def adam_steps(steps=2):
    """The reference's stages after each of ``steps`` full-batch Adam steps on the
    article's network (stable cost) and their bounds, chained through the steps."""
    X, Y = planar()
    prec = Precision("float64")
    P = article_parameters()
    S = R.init_optimizer_state(P, ADAM)
    E_P, E_S = input_bounds(P, prec), {k: 0.0 if k == "t" else np.zeros_like(v) for k, v in S.items()}
    out = []
    for _ in range(steps):
        _, cache = R.network_forward(X, P, "tanh", "sigmoid")
        grads = R.network_backward(P, cache, X, Y, "tanh", "sigmoid")
        J = R.cross_entropy_from_logits(cache["Z2"], Y)
        newP, newS = R.optimizer_step(P, grads, S, ADAM)
        bounds, E_P, E_S = stage_bounds(P, S, X, Y, cache, grads, newP, newS, E_P, E_S, "tanh",
                                        "sigmoid", ADAM, prec)
        out.append(({"cost_stable": J, **grads, **{f"{k}'": v for k, v in {**newP, **newS}.items()}}, bounds))
        P, S = newP, newS
    return out


def test_make_train_step_on_every_path(backend, grad_path, compiled):
    """make_train_step(grad_path, compiled): two Adam steps, each with its cost, every
    gradient (dZ, dW, db, dA), the new parameters and the optimiser state."""
    B = get_backend(backend)
    if compiled:
        ok, reason = B.compile_status()
        assert type(ok) is bool and isinstance(reason, str) and reason
        # "unavailable" (no compiler, unsupported platform) is a skip; a compiler that ran
        # its probe and got a wrong number is broken, which must fail, not hide as a skip
        # (the torch probe says "returned a wrong result")
        assert ok or "wrong result" not in reason, f"{backend}'s compiler is broken, not unavailable: {reason}"
        if not ok:
            pytest.skip(f"{backend} cannot compile here: {reason}")
    X, Y, P = article_inputs(B, "float64")
    S = B.init_optimizer_state(P, ADAM)
    step = B.make_train_step("tanh", "sigmoid", ADAM, "stable", grad_path, compiled)
    for k, (ref, bounds) in enumerate(adam_steps()):
        P, S, J, grads = call_ok(step, P, S, X, Y)
        got = {"cost_stable": B.to_numpy(J), **to_np(B, grads),
               **{f"{n}'": v for n, v in to_np(B, {**P, **S}).items()}}
        got["t'"] = int(got["t'"])
        conforms([compare_stage(s, ref[s], got.get(s), bounds.get(s, 0.0), None if s == "t'" else "float64")
                  for s in ref], f"{backend}-{grad_path}-{'compiled' if compiled else 'eager'}-adam-step{k + 1}")


# ------------------------------------------------------------------ train, gradient_norms, schedules

@functools.lru_cache(maxsize=None)
def train_trajectory(dtype):
    """The reference's train (2 epochs of two mini-batches of 200 in the order of seed 3,
    Adam with an exponential schedule) and its shadow run. (One batch shape: JAX compiles
    its step once per shape; uneven last batches are in the trajectory tests.)"""
    X, Y = planar()
    opt = R.Optimizer("adam", 0.02, schedule="exponential", decay_rate=0.5, decay_steps=2)
    p0 = R.tree_from_numpy(article_parameters(), dtype)
    runs = [R.train(p, X.astype(dtype), Y.astype(dtype), "tanh", "sigmoid", opt, 2, 200, seed=3)
            for p in (p0, perturb(p0, dtype))]
    return opt, Trajectory(runs[0][2].astype(np.float64), runs[1][2].astype(np.float64), runs[0][0], runs[1][0]), runs[0][1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_costs_state_and_callback(B, dtype):
    """train's per-update costs, final parameters and state against the reference's (the
    shadow-trajectory bound over 4 updates, floored by twice the one-step bound), and its
    callback: called once per update with k = 0, 1, ..., the cost train returns for that
    update, and the gradients of every layer."""
    opt, tr, ref_state = train_trajectory(dtype)
    _, one_step = article_step(dtype)
    X, Y, P = article_inputs(B, dtype)
    seen = []
    params, state, costs = B.train(P, X, Y, "tanh", "sigmoid", opt, num_epochs=2, batch_size=200, seed=3,
                                   callback=lambda k, J, grads: seen.append((k, float(J), sorted(grads))))
    costs = B.to_numpy(costs)
    got = to_np(B, params)
    results = [compare_stage("costs", tr.costs.astype(dtype), costs, tr.cost_bound(2 * one_step["cost_stable"]),
                             dtype, factor=1.0)]
    results += [compare_stage(f"{k}'", tr.params[k], got[k], tr.param_bound(k, 2 * one_step[f"{k}'"]), dtype,
                              factor=1.0) for k in ARTICLE_KEYS]
    results.append(compare_stage("t'", ref_state["t"], int(B.to_numpy(state["t"])), 0.0, None))
    conforms(results, f"{B.NAME}-{dtype}-train-adam-exponential-4steps")
    grad_keys = sorted(k for k in adam_steps()[0][0] if k.startswith("d"))
    assert [k for k, _, _ in seen] == list(range(4))
    assert [J for _, J, _ in seen] == costs.tolist()
    assert all(keys == grad_keys for _, _, keys in seen)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_norms(B, dtype):
    """Frobenius norms of the one-step gradients. |(|g_b| - |g_r|)| <= |g_b - g_r| <= |2E|
    (triangle inequality, E the elementwise bound), plus each side's rounding of the norm
    itself, a sum of n squares and a square root: (gamma_n + 2u) |g| per side."""
    ref, bounds = article_step(dtype)
    X, Y, P = article_inputs(B, dtype)
    _, cache = B.network_forward(X, P, "tanh", "sigmoid")
    grads = B.network_backward(P, cache, X, Y, "tanh", "sigmoid")
    want = R.gradient_norms({k: ref[k] for k in ("dW1", "db1", "dW2", "db2")})
    got = B.gradient_norms(grads)
    assert sorted(got) == sorted(want) and all(type(v) is float for v in got.values())
    prec = Precision(dtype)
    conforms([compare_stage(k, np.array(want[k]), np.array(got[k]),
                            np.linalg.norm(2 * bounds[k]) + 2 * (prec.gamma(ref[k].size) + 2 * prec.u) * want[k],
                            None, factor=1.0) for k in sorted(want)], f"{B.NAME}-{dtype}-gradient_norms")


@pytest.mark.parametrize("schedule", R.SCHEDULES)
def test_learning_rate_at_every_schedule(B, schedule):
    """The rate of update k for k across several decay periods. Bound: the reference
    computes lr0 * r ** y (or lr0 / (1 + r q)) in float64; pow(r, y) = exp(y ln r) has a
    relative error up to (|y ln r| + 1) ULPS_TRANSCENDENTAL u (the exponent's own
    rounding is amplified by |y ln r|), plus ULPS_ELEMENTWISE u for the products, per side."""
    opt = R.Optimizer("gd", 0.3, schedule=schedule, decay_rate=0.7, decay_steps=3)
    u = Precision("float64").u
    ks = [0, 1, 2, 3, 4, 5, 6, 7, 10, 100, 1000]
    want = np.array([R.learning_rate_at(opt, k) for k in ks])
    got = np.array([float(B.learning_rate_at(opt, k)) for k in ks])
    y = np.array(ks, dtype=np.float64) / 3
    E = ((np.abs(y * math.log(0.7)) + 1) * ULPS_TRANSCENDENTAL + ULPS_ELEMENTWISE) * u * np.abs(want)
    conforms([compare_stage("learning rate", want, got, E, None)], f"{B.NAME}-learning_rate_at-{schedule}")


# ------------------------------------------------------------------ weight files

@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_files_between_backends(B, dtype, tmp_path):
    """A file written by the mirror reads back identically in the reference and in every
    importable backend, and one written by the reference reads back in the mirror:
    the stored values are the exact float64/float32 numbers, converted on request."""
    P = R.tree_from_numpy(article_parameters(), dtype)
    mine = tmp_path / "mirror.npz"
    B.save_weights(mine, B.tree_from_numpy(P))
    theirs = tmp_path / "reference.npz"
    R.save_weights(theirs, P)
    results = []
    for name in REGISTRY:
        try:
            other = get_backend(name)
        except ImportError:
            continue
        for path, reader in ((mine, other), (theirs, B)):
            loaded = reader.load_weights(path, layer_dims=[2, 4, 1])
            assert list(loaded) == list(ARTICLE_KEYS)
            results += [compare_stage(f"{k} via {path.stem}->{reader.NAME}", P[k], reader.to_numpy(loaded[k]), 0.0, dtype)
                        for k in ARTICLE_KEYS]
        converted = other.load_weights(mine, dtype="float64")
        results += [compare_stage(f"{k} as float64 in {name}", P[k].astype(np.float64), other.to_numpy(converted[k]),
                                  0.0, "float64") for k in ARTICLE_KEYS]
    conforms(results, f"{B.NAME}-{dtype}-weight-files")


def test_train_without_updates(B):
    """num_epochs=0: no update, an empty 1-D cost array in the data's dtype, the state of
    a fresh optimiser and the parameters unchanged, as in the reference."""
    X, Y, P = article_inputs(B, "float32")
    params, state, costs = B.train(P, X, Y, "tanh", "sigmoid", ADAM, num_epochs=0)
    Pr = R.tree_from_numpy(article_parameters(), "float32")
    ref_params, ref_state, ref_costs = R.train(Pr, *(a.astype("float32") for a in planar()), "tanh", "sigmoid",
                                               ADAM, num_epochs=0)
    got = {"costs": B.to_numpy(costs), **to_np(B, params), **to_np(B, {k: v for k, v in state.items() if k != "t"}),
           "t": int(B.to_numpy(state["t"]))}
    want = {"costs": ref_costs, **ref_params, **{k: v for k, v in ref_state.items() if k != "t"}, "t": ref_state["t"]}
    conforms([compare_stage(k, want[k], got[k], 0.0, None if k == "t" else "float32") for k in want],
             f"{B.NAME}-train-0-epochs")


def test_train_scan_where_offered(B):
    """A mirror's whole-loop compiled variant (``train_scan``, JAX's) is train with
    batch_size None: its costs and parameters after 5 Adam updates, and its default of one
    update, against the reference's train (shadow-trajectory bound, as for train)."""
    if not hasattr(B, "train_scan"):
        pytest.skip(f"{B.NAME} has no train_scan (an optional extra of the API)")
    X, Y, P = article_inputs(B, "float64")
    Pr = article_parameters()
    runs = [R.train(p, *planar(), "tanh", "sigmoid", ADAM, 5, None) for p in (Pr, perturb(Pr, "float64"))]
    tr = Trajectory(runs[0][2], runs[1][2], runs[0][0], runs[1][0])
    _, one_step = adam_steps()[0]
    params, state, costs = B.train_scan(P, X, Y, "tanh", "sigmoid", ADAM, num_steps=5)
    _, _, first = B.train_scan(P, X, Y, "tanh", "sigmoid", ADAM)
    got = to_np(B, params)
    results = [compare_stage("costs", tr.costs, B.to_numpy(costs), tr.cost_bound(2 * one_step["cost_stable"]),
                             "float64", factor=1.0),
               compare_stage("costs (num_steps default)", tr.costs[:1], B.to_numpy(first),
                             2 * one_step["cost_stable"], "float64", factor=1.0),
               compare_stage("t'", runs[0][1]["t"], int(B.to_numpy(state["t"])), 0.0, None)]
    results += [compare_stage(f"{k}'", tr.params[k], got[k], tr.param_bound(k, 2 * one_step[f"{k}'"]), "float64",
                              factor=1.0) for k in ARTICLE_KEYS]
    conforms(results, f"{B.NAME}-train_scan-adam-5steps")


# ------------------------------------------------------------------ every optimiser variant

VARIANTS = {
    "gd-step": R.Optimizer("gd", 0.5, schedule="step", decay_rate=0.5, decay_steps=2),
    "momentum-ema": R.Optimizer("momentum", 0.5, beta=0.8),
    "momentum-heavy_ball-inverse_time": R.Optimizer("momentum", 0.3, beta=0.7, momentum_form="heavy_ball",
                                                    schedule="inverse_time", decay_rate=0.5),
    "adam-corrected-exponential": R.Optimizer("adam", 0.05, beta1=0.8, beta2=0.9, epsilon=1e-3,
                                              schedule="exponential", decay_rate=0.5, decay_steps=2),
    "adam-uncorrected": R.Optimizer("adam", 0.05, beta1=0.8, beta2=0.9, epsilon=1e-3, adam_epsilon="uncorrected"),
}


@functools.lru_cache(maxsize=None)
def gradient_sequence():
    """Three gradients of the article's network, taken along the reference's gd path:
    the same inputs for every backend, so only the optimiser is compared."""
    X, Y = planar()
    P, out = article_parameters(), []
    for _ in range(3):
        _, cache = R.network_forward(X, P)
        g = R.network_backward(P, cache, X, Y)
        out.append({k: g[k] for k in g if k[:2] in ("dW", "db")})
        P = R.update_parameters(P, out[-1], 0.5)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_optimizer_step_every_variant(B, variant, dtype):
    """Three optimizer_step calls of every form (heavy-ball momentum, Adam with the
    uncorrected epsilon, each schedule), fed the same gradients: parameters and state
    after each, under the tolerance policy's optimiser bounds chained through the steps
    (E of the gradients: their rounding to the dtype only)."""
    opt, prec = VARIANTS[variant], Precision(dtype)
    P64 = article_parameters()
    S64 = R.init_optimizer_state(P64, opt)
    Pr, Sr = R.tree_from_numpy(P64, dtype), R.init_optimizer_state(R.tree_from_numpy(P64, dtype), opt)
    Pb = B.tree_from_numpy(P64, dtype)
    Sb = B.init_optimizer_state(Pb, opt)
    E_P, E_S = input_bounds(P64, prec), {k: 0.0 if k == "t" else np.zeros_like(v) for k, v in S64.items()}
    for step, g64 in enumerate(gradient_sequence(), 1):
        new64, newS64 = R.optimizer_step(P64, g64, S64, opt)
        E_P, E_S = optimizer_bounds(P64, g64, S64, new64, newS64, E_P, input_bounds(g64, prec), E_S, opt, prec)
        Pr, Sr = R.optimizer_step(Pr, R.tree_from_numpy(g64, dtype), Sr, opt)
        Pb, Sb = B.optimizer_step(Pb, B.tree_from_numpy(g64, dtype), Sb, opt)
        got = {**to_np(B, Pb), **to_np(B, {k: v for k, v in Sb.items() if k != "t"}), "t": int(B.to_numpy(Sb["t"]))}
        want, E = {**Pr, **Sr}, {**E_P, **E_S}
        assert sorted(got) == sorted(want)
        conforms([compare_stage(k, want[k], got[k], E[k], None if k == "t" else dtype) for k in want],
                 f"{B.NAME}-{dtype}-{variant}-step{step}")
        P64, S64 = new64, newS64


# ------------------------------------------------------------------ the kink convention

@pytest.mark.parametrize("hidden, slope", [("relu", 0.0), ("leaky_relu", R.LEAKY_SLOPE)])
def test_every_gradient_path_takes_the_convention_at_the_kink(B, hidden, slope):
    """W1 = 0 and b1 = 0 make Z1 = 0 exactly (sums of exact zeros) in every dtype and on
    every backend, so g'(Z1) is the convention's g'(0) (relu 0, leaky_relu 0.01, the
    strict z > 0) on the manual path and under autodiff alike: dZ1 = g'(0) dA1 with
    dA1 = W2^T dZ2 compared under its stage bound (times the slope, plus the rounding
    of the product, u |dZ1|); for relu dZ1, dW1 and db1 are exact zeros."""
    X, Y = planar()
    P = {**article_parameters(), "W1": np.zeros((4, 2)), "b1": np.zeros((4, 1))}
    _, cache = R.network_forward(X, P, hidden, "sigmoid")
    assert not cache["Z1"].any()
    grads = R.network_backward(P, cache, X, Y, hidden, "sigmoid")
    gd = R.Optimizer("gd", 0.1)
    state = R.init_optimizer_state(P, gd)
    new, newstate = R.optimizer_step(P, grads, state, gd)
    prec = Precision("float64")
    bounds = stage_bounds(P, state, X, Y, cache, grads, new, newstate, input_bounds(P, prec), {"t": 0.0},
                          hidden, "sigmoid", gd, prec)[0]
    E = {"dA1": bounds["dA1"], "dZ1": slope * bounds["dA1"] + prec.u * np.abs(grads["dZ1"])}  # per side
    if slope == 0.0:
        E.update(dW1=0.0, db1=0.0)
    Pb, Xb, Yb = B.tree_from_numpy(P), B.from_numpy(X), B.from_numpy(Y)
    _, cache_b = B.network_forward(Xb, Pb, hidden, "sigmoid")
    for path, got in (("manual", call_ok(B.network_backward, Pb, cache_b, Xb, Yb, hidden, "sigmoid")),
                      ("autodiff", call_ok(B.network_backward_autodiff, Pb, Xb, Yb, hidden, "sigmoid"))):
        got = to_np(B, got)
        conforms([compare_stage(k, grads[k], got[k], E[k], "float64") for k in E],
                 f"{B.NAME}-{path}-{hidden}-Z1=0")
