"""The remedies' mirrors (torch_impl/remedies.py, jax_impl/remedies.py): what the
conformance matrix does not reach.

tests/test_remedies_conformance.py runs every mirror's ``remedy_step`` (manual, autodiff,
compiled, idiomatic) through ``netparity.runner`` against the reference, stage by stage,
with the a-priori bounds of netparity/tolerance_remedies.py and its dtype check. This file
does not repeat that; it covers, for each mirror:

- eval mode (``remedy_forward(train=False)``): Zn from the running estimates, no dropout
  even with masks given, no mu/var, bn_state returned unchanged, against the reference;
- ``remedy_backward_autodiff`` against ``remedy_backward`` of the same mirror, every
  remedy alone and together, every hidden activation somewhere;
- the public ``remedy_forward`` (its whole cache, A0 and the internal G{l} included, and
  the running estimates), ``remedy_cost`` and ``remedy_backward`` against the reference
  (the matrix calls remedy_step only), in the two configurations holding every remedy;
- ``Remedies()`` is the plain network: the mirror's own network_forward /
  network_backward / network_backward_autodiff and cost, bit for bit, and the core's
  stage names;
- float32 in, float32 out for the functions the matrix does not call;
- the reference's draws converted (weights, masks); the compiled step compiling once;
- input validation: a one-line ValueError naming the problem (the shared validation of
  reference/validate.py, and the mirrors' own two checks).

Tolerance of the float64 comparisons: |mirror - reference| <= RTOL * max|reference stage|
per stage, RTOL = 1e-12 (about 4500 float64 ulps of the stage's largest element). Both
sides evaluate the same formulas in the same order except for the order of the sums
inside reductions (BLAS / XLA / torch kernels), XLA's fusion, and for the autodiff
backward the chain rule's own arrangement of the same derivatives; the nets are small
(widths <= 6, m = 9: every reduction has <= 9 terms) and every stage a short composition
of them, so the rounding differences are a few tens of ulps of the stage's magnitude
(measured: worst 6.5e-15 of the stage's max, a db, a column sum that cancels: 0.0065 of
the tolerance). An
error in a formula (a missing 1/m, the unbiased variance normalising, the skip added
after g instead of before, a mask not divided by keep_prob, an unscaled autodiff dA) is
of the order of the stage itself, ~1e11 times the tolerance; each was planted in each
mirror and failed these tests (the report of the commit that added them lists which).
"""
import re

import numpy as np
import pytest

import reference as R
from conftest import backend_params
from netparity.backends import get_backend
from netparity.compare import assert_conforms, compare_stage
from netparity.stagenames import stage_order
from reference.remedies import Remedies

RTOL = 1e-12
# L = 6: hidden layers 1..5; skips into 3 (from A1, equal widths: identity) and into 5
# (from A3, 6 != 5: projected by Ws5)
DIMS = (3, 5, 4, 5, 4, 6, 1)
DIMS_SOFTMAX = DIMS[:-1] + (3,)
M = 9
OPT = R.Optimizer("adam", learning_rate=0.01)

CONFIGS = {
    "bn": Remedies(batch_norm=True),
    "bn_unbiased": Remedies(batch_norm=True, bn_running_var="unbiased", bn_momentum=0.7),
    "res_before": Remedies(residual="before"),
    "res_after": Remedies(residual="after"),
    "l2": Remedies(l2=0.7),
    "dropout": Remedies(keep_prob=0.8),
    "all_before": Remedies(batch_norm=True, residual="before", l2=0.7, keep_prob=0.8),
    "all_after": Remedies(batch_norm=True, residual="after", l2=0.3, keep_prob=0.6,
                          bn_running_var="unbiased"),
}
# (hidden, output) per configuration: every hidden activation is exercised somewhere
ACTIVATIONS = {"bn": ("relu", "sigmoid"), "bn_unbiased": ("tanh", "softmax"),
               "res_before": ("leaky_relu", "sigmoid"), "res_after": ("sigmoid", "softmax"),
               "l2": ("tanh", "sigmoid"), "dropout": ("relu", "softmax"),
               "all_before": ("tanh", "sigmoid"), "all_after": ("leaky_relu", "softmax")}
ALL = ("all_before", "all_after")  # the configurations holding every remedy

MIRRORS = backend_params(reference=False)


@pytest.fixture
def B(backend):
    return get_backend(backend)


# ------------------------------------------------------------------ data and helpers

def problem(name, steps=2):
    """NumPy float64 (remedies, hidden, output, parameters, bn_state, X, Y, masks per
    step); masks are the reference's draws (step_masks), None without dropout."""
    r = CONFIGS[name]
    hidden, output = ACTIVATIONS[name]
    dims = DIMS_SOFTMAX if output == "softmax" else DIMS
    rng = np.random.RandomState(7)
    X = rng.randn(dims[0], M)
    if output == "softmax":
        Y = R.one_hot(rng.randint(0, dims[-1], M), dims[-1])
    else:
        Y = (rng.rand(1, M) < 0.5).astype(np.float64)
    p = R.initialize_remedy_network(dims, r, init="xavier", seed=3)
    bn = R.init_bn_state(p)
    masks = [R.step_masks(dims, M, r.keep_prob, k) for k in range(steps)]
    return r, hidden, output, p, bn, X, Y, masks


def to_backend(B, tree, dtype="float64"):
    return None if tree is None else B.tree_from_numpy(tree, dtype)


def to_np(B, tree):
    return {k: v if isinstance(v, int) else B.to_numpy(v) for k, v in tree.items()}


def bound(ref):
    """RTOL times the stage's largest magnitude (module docstring)."""
    return RTOL * float(np.max(np.abs(np.asarray(ref, np.float64)), initial=0.0))


def assert_same_stages(ref, got, what, dtype="float64", keys=None):
    """Same keys in the same order (``keys``: those of ref expected in got), every value
    within ``bound`` of the reference's, in ``dtype``."""
    keys = list(ref) if keys is None else keys
    assert list(got) == keys, f"{what}: keys {list(got)} != {keys}"
    results = [compare_stage(k, ref[k], got[k], bound(ref[k]), None if k == "t" else dtype, 1.0)
               for k in keys]
    assert_conforms(results, {"case": what}, against=f"the reference within {RTOL:g} of each stage's max")


# ------------------------------------------------------------------ the public functions

@pytest.mark.parametrize("backend", MIRRORS)
@pytest.mark.parametrize("name", ALL)
def test_public_functions_match_reference(B, name):
    """The public remedy_forward (train: its cache, A0 and the internal G{l} included, and
    the new running estimates), remedy_cost (cost_stable, cost_l2) and remedy_backward,
    each on the reference's own inputs. The matrix compares remedy_step's stages (the same
    formulas) for every remedy; this is the public functions' wiring, in the two
    configurations that hold every remedy (skip before / after the activation)."""
    r, hidden, output, p, bn, X, Y, masks = problem(name, steps=1)
    D = masks[0]
    AL, cache, new_bn = R.remedy_forward(X, p, bn, r, hidden, output, D, train=True)
    pb, Xb, Yb, Db = to_backend(B, p), B.from_numpy(X), B.from_numpy(Y), to_backend(B, D)
    ALb, cacheb, new_bnb = B.remedy_forward(Xb, pb, to_backend(B, bn), r, hidden, output, Db,
                                            train=True)
    what = f"{B.NAME}-{name}"
    assert_same_stages(cache, to_np(B, cacheb), what + " forward cache")
    assert_same_stages({"AL": AL}, {"AL": B.to_numpy(ALb)}, what + " AL")
    assert_same_stages(new_bn, to_np(B, new_bnb), what + " new bn_state")
    J, J_l2 = R.remedy_cost(cache, p, Y, r, output)
    Jb, J_l2b = B.remedy_cost(cacheb, pb, Yb, r, output)
    assert_same_stages({"cost_stable": J, "cost_l2": J_l2},
                       {"cost_stable": B.to_numpy(Jb), "cost_l2": B.to_numpy(J_l2b)}, what + " costs")
    grads = R.remedy_backward(p, cache, X, Y, r, hidden, output, D)
    gradsb = B.remedy_backward(pb, cacheb, Xb, Yb, r, hidden, output, Db)
    assert_same_stages(grads, to_np(B, gradsb), what + " backward")


@pytest.mark.parametrize("backend", MIRRORS)
@pytest.mark.parametrize("name", [n for n, r in CONFIGS.items() if r.batch_norm or r.dropout])
def test_eval_mode(B, name):
    """train=False: Zn from the running estimates (non-trivial ones here), no dropout even
    with masks given, no mu/var in the cache, bn_state returned with the same values."""
    r, hidden, output, p, bn, X, Y, masks = problem(name, steps=1)
    rng = np.random.RandomState(11)
    bn = {k: (rng.randn(*v.shape) * 0.3 if k.startswith("mu") else rng.rand(*v.shape) + 0.2)
          for k, v in bn.items()}
    # eval after training: a step's parameters (gamma, beta no longer 1 and 0)
    _, p, _, _ = R.remedy_step("manual", p, R.init_bn_state(p), R.init_optimizer_state(p, OPT),
                               X, Y, r, hidden, output, OPT, masks[0])
    AL, cache, same_bn = R.remedy_forward(X, p, bn, r, hidden, output, masks[0], train=False)
    ALb, cacheb, same_bnb = B.remedy_forward(B.from_numpy(X), to_backend(B, p), to_backend(B, bn),
                                             r, hidden, output, to_backend(B, masks[0]), train=False)
    what = f"{B.NAME}-{name}-eval"
    assert not any(k.startswith(("mu", "var")) for k in cacheb)
    assert_same_stages(cache, to_np(B, cacheb), what + " cache")
    assert_same_stages({"AL": AL}, {"AL": B.to_numpy(ALb)}, what + " AL")
    assert to_np(B, same_bnb).keys() == bn.keys()
    for k in bn:
        np.testing.assert_array_equal(B.to_numpy(same_bnb[k]), bn[k], err_msg=f"{what}: {k}")


@pytest.mark.parametrize("backend", MIRRORS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_autodiff_matches_manual(B, name):
    """remedy_backward_autodiff (torch.autograd / jax.grad through the forward, in the
    m dJ/dZ convention) equals remedy_backward of the same mirror: same keys, same
    order, every value within the float64 tolerance of the manual one."""
    r, hidden, output, p, bn, X, Y, masks = problem(name, steps=1)
    pb, bnb, Db = to_backend(B, p), to_backend(B, bn), to_backend(B, masks[0])
    Xb, Yb = B.from_numpy(X), B.from_numpy(Y)
    _, cacheb, _ = B.remedy_forward(Xb, pb, bnb, r, hidden, output, Db)
    manual = to_np(B, B.remedy_backward(pb, cacheb, Xb, Yb, r, hidden, output, Db))
    auto = to_np(B, B.remedy_backward_autodiff(pb, bnb, Xb, Yb, r, hidden, output, Db))
    assert_same_stages(manual, auto, f"{B.NAME}-{name} autodiff vs manual")


@pytest.mark.parametrize("backend", MIRRORS)
def test_float32_in_float32_out(B):
    """float32 parameters, running estimates, data and masks: what the functions the matrix
    does not call return (eval-mode forward, the public cost and backward, the autodiff
    backward) is float32 throughout: eps, momentum, lambda and keep_prob (Python floats)
    upcast nothing. (remedy_step's float32 stages: the matrix, with its dtype check.)"""
    r, hidden, output, p, bn, X, Y, masks = problem("all_after", steps=1)
    f = "float32"
    pb, bnb, Db = to_backend(B, p, f), to_backend(B, bn, f), to_backend(B, masks[0], f)
    Xb, Yb = B.from_numpy(X, f), B.from_numpy(Y, f)
    out = {}
    for train in (True, False):
        AL, cache, new_bn = B.remedy_forward(Xb, pb, bnb, r, hidden, output, Db, train=train)
        out.update({f"{k} (train={train})": v for k, v in {"AL": AL, **cache, **new_bn}.items()})
    J, J_l2 = B.remedy_cost(cache, pb, Yb, r, output)
    _, cache, _ = B.remedy_forward(Xb, pb, bnb, r, hidden, output, Db)
    out.update({"cost_stable": J, "cost_l2": J_l2})
    out.update({f"{k} (manual)": v for k, v in B.remedy_backward(pb, cache, Xb, Yb, r, hidden, output, Db).items()})
    out.update({f"{k} (autodiff)": v for k, v in
                B.remedy_backward_autodiff(pb, bnb, Xb, Yb, r, hidden, output, Db).items()})
    wrong = {k: B.to_numpy(v).dtype.name for k, v in out.items() if B.to_numpy(v).dtype.name != f}
    assert len(out) > 60 and not wrong, wrong


@pytest.mark.parametrize("backend", MIRRORS)
@pytest.mark.parametrize("hidden, output", [("tanh", "sigmoid"), ("relu", "softmax")])
def test_no_remedy_is_the_plain_network(B, hidden, output):
    """Remedies(): the mirror's own network_forward cache, network_backward and
    network_backward_autodiff, bit for bit, and its stable cost with cost_l2 = 0; the
    step's stages are exactly the core's stage names."""
    dims = (3, 5, 4, 5, 4) + ((1,) if output == "sigmoid" else (3,))
    r = Remedies()
    rng = np.random.RandomState(5)
    X = rng.randn(dims[0], M)
    Y = ((rng.rand(1, M) < 0.5).astype(float) if output == "sigmoid"
         else R.one_hot(rng.randint(0, dims[-1], M), dims[-1]))
    p0 = R.initialize_remedy_network(dims, r)
    np.testing.assert_equal(p0, R.initialize_network(dims, "xavier"))
    p, Xb, Yb = to_backend(B, p0), B.from_numpy(X), B.from_numpy(Y)
    AL, cache, bn = B.remedy_forward(Xb, p, B.init_bn_state(p), r, hidden, output)
    AL0, cache0 = B.network_forward(Xb, p, hidden, output)
    assert bn == {} and list(cache) == list(cache0)
    for k in cache0:
        np.testing.assert_array_equal(B.to_numpy(cache[k]), B.to_numpy(cache0[k]), err_msg=k)
    J, J_l2 = B.remedy_cost(cache, p, Yb, r, output)
    assert B.to_numpy(J) == B.to_numpy(B.cross_entropy_from_logits(cache0[f"Z{len(dims) - 1}"], Yb, output))
    assert B.to_numpy(J_l2) == 0.0
    for got, want in ((B.remedy_backward(p, cache, Xb, Yb, r, hidden, output),
                       B.network_backward(p, cache0, Xb, Yb, hidden, output)),
                      (B.remedy_backward_autodiff(p, {}, Xb, Yb, r, hidden, output),
                       B.network_backward_autodiff(p, Xb, Yb, hidden, output))):
        assert list(got) == list(want)
        for k in want:
            np.testing.assert_array_equal(B.to_numpy(got[k]), B.to_numpy(want[k]), err_msg=k)
    stages, _, _, new_s = B.remedy_step("manual", p, {}, B.init_optimizer_state(p, OPT), Xb, Yb, r,
                                        hidden, output, OPT)
    assert list(stages) == stage_order(len(dims) - 1, list(new_s))


# ------------------------------------------------------------------ dtypes, draws, compile

@pytest.mark.parametrize("backend", MIRRORS)
def test_reference_draws_converted(B):
    """initialize_remedy_network, dropout_masks and step_masks are the reference's draws,
    converted (same values, requested dtype); the mirrors draw nothing themselves."""
    r = CONFIGS["all_after"]
    for dtype in ("float64", "float32"):
        want = R.initialize_remedy_network(DIMS, r, "he", 4, dtype)
        got = to_np(B, B.initialize_remedy_network(DIMS, r, "he", 4, dtype))
        assert list(got) == list(want) and all(got[k].dtype.name == dtype for k in got)
        np.testing.assert_equal(got, want)
        want = R.dropout_masks(DIMS, M, 0.6, 1003, dtype)
        got = to_np(B, B.dropout_masks(DIMS, M, 0.6, 1003, dtype))
        assert list(got) == list(want) and all(got[k].dtype.name == dtype for k in got)
        np.testing.assert_equal(got, want)
        np.testing.assert_equal(to_np(B, B.step_masks(DIMS, M, 0.6, 3, dtype)), want)
    assert B.step_masks(DIMS, M, 1.0, 3) is None


def _compile_count(B):
    """Programs compiled so far by the mirror's compiled remedy step."""
    if B.NAME == "torch":
        from torch_impl.backend import compiled_graphs
        return compiled_graphs()
    from jax_impl.remedies import _step_jit
    return _step_jit._cache_size()


@pytest.mark.parametrize("backend", MIRRORS)
def test_compiled_step_compiles_once(B):
    """A second compiled step (new t, new masks, new parameters) reuses the first one's
    program: the counter t and the masks are inputs, not constants."""
    r, hidden, output, p, bn, X, Y, masks = problem("all_before", steps=3)
    pb, bnb = to_backend(B, p), to_backend(B, bn)
    sb = B.init_optimizer_state(pb, OPT)
    Xb, Yb = B.from_numpy(X), B.from_numpy(Y)
    counts = []
    for M_k in masks:
        _, pb, bnb, sb = B.remedy_step("compiled", pb, bnb, sb, Xb, Yb, r, hidden, output, OPT,
                                       to_backend(B, M_k))
        counts.append(_compile_count(B))
    assert counts[0] >= 1 and counts[1] == counts[0] == counts[2], counts
    assert int(sb["t"]) == 3


# ------------------------------------------------------------------ input validation

def _bad_inputs():
    """(id, remedies name, mutate(args) -> args, message regex): args holds remedy_step's
    arguments in NumPy, mutated before conversion. The messages are the shared validation's
    (reference/validate.py, the reference's own) except the mirrors' two (_check)."""
    def drop_key(tree, k):
        return {n: v for n, v in tree.items() if n != k}
    return [
        ("mask_shape", "dropout", lambda a: {**a, "masks": {**a["masks"], "D2": a["masks"]["D2"][:, :-1]}},
         r"masks: D2 has shape \(4, 8\), expected \(4, 9\)"),
        ("mask_missing_layer", "dropout", lambda a: {**a, "masks": drop_key(a["masks"], "D3")},
         r"masks: missing D3"),
        ("mask_extra_layer", "dropout", lambda a: {**a, "masks": {**a["masks"], "D9": a["masks"]["D2"]}},
         r"masks: unexpected D9 \(the hidden layers' masks are D1 \.\.\. D5\)"),
        ("masks_without_dropout", "bn", lambda a: {**a, "masks": R.dropout_masks(DIMS, M, 0.5, 0)},
         r"dropout masks were given but keep_prob is 1"),
        ("params_missing_gamma", "bn", lambda a: {**a, "p": drop_key(a["p"], "gamma2")},
         r"parameters: missing gamma2 for these remedies"),
        ("params_bias_on_bn_layer", "bn", lambda a: {**a, "p": {**a["p"], "b2": np.zeros((4, 1))}},
         r"parameters: unexpected b2 for these remedies"),
        ("params_of_other_remedies", "res_before",
         lambda a: {**a, "p": R.initialize_remedy_network(DIMS, Remedies())},
         r"parameters: missing Ws5 for these remedies"),
        ("params_wrong_shape", "res_before",
         lambda a: {**a, "p": {**a["p"], "Ws5": a["p"]["Ws5"].T.copy()}},
         r"parameters: Ws5 has shape \(5, 6\), expected \(6, 5\)"),
        ("bn_state_missing_layer", "bn", lambda a: {**a, "bn": drop_key(a["bn"], "var_run4")},
         r"bn_state: missing var_run4"),
        ("unbiased_single_example", "bn_unbiased",
         lambda a: {**a, "X": a["X"][:, :1], "Y": a["Y"][:, :1]}, r"needs a batch of m >= 2"),
        ("unknown_path", "bn", lambda a: {**a, "path": "eager"}, r"unknown remedy path 'eager'|the reference has the 'manual' path only, not 'eager'"),
    ]


BAD = _bad_inputs()


@pytest.mark.parametrize("backend", backend_params(reference=True))
@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_one_line_value_error(B, case):
    """Each bad input raises the same one-line ValueError naming the problem in every
    backend, the reference included, from remedy_step (every path checks before
    computing) and, where the function takes the argument, from remedy_forward and the
    autodiff backward (the mirrors') too."""
    _, name, mutate, message = case
    r, hidden, output, p, bn, X, Y, masks = problem(name, steps=1)
    a = mutate({"path": "manual", "p": p, "bn": bn, "X": X, "Y": Y, "masks": masks[0]})
    pb, bnb = to_backend(B, a["p"]), to_backend(B, a["bn"])
    Xb, Yb, Db = B.from_numpy(a["X"]), B.from_numpy(a["Y"]), to_backend(B, a["masks"])
    calls = [lambda: B.remedy_step(a["path"], pb, bnb, B.init_optimizer_state(pb, OPT), Xb, Yb, r,
                                   hidden, output, OPT, Db)]
    if a["path"] == "manual":
        calls += [lambda: B.remedy_forward(Xb, pb, bnb, r, hidden, output, Db)]
        if hasattr(B, "remedy_backward_autodiff"):
            calls += [lambda: B.remedy_backward_autodiff(pb, bnb, Xb, Yb, r, hidden, output, Db)]
    for call in calls:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("backend", MIRRORS)
def test_backward_of_an_eval_cache_is_a_value_error(B):
    """remedy_backward needs the batch statistics of a train-mode forward."""
    r, hidden, output, p, bn, X, Y, _ = problem("bn", steps=1)
    pb, Xb, Yb = to_backend(B, p), B.from_numpy(X), B.from_numpy(Y)
    _, cache, _ = B.remedy_forward(Xb, pb, to_backend(B, bn), r, hidden, output, train=False)
    with pytest.raises(ValueError, match=re.escape("cache: missing var1 ")) as info:
        B.remedy_backward(pb, cache, Xb, Yb, r, hidden, output)
    assert "train-mode remedy_forward" in str(info.value) and "\n" not in str(info.value)
