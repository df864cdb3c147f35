"""The remedies in the conformance matrix (docs/remedies.md): every stage of every backend's
remedy step against the reference, through ``netparity.runner.run_case`` and the bounds
of ``netparity.tolerance_remedies``; and those bounds themselves: the float32 reference
sits inside them with a margin, and planted bugs fall outside.

Default slice (not slow): each remedy alone and "all", on the reference ("numpy", the
spec's own manual path: real from the start) in float64 (1 and 3 steps) and float32, with
varied activations, outputs, optimisers and nets; and on every registered mirror's paths
(manual, autodiff, compiled, idiomatic), one shape and one dtype per path (MIRROR_FAST,
~50 s cold on 2 busy cores); a backend (or idiomatic path) without the remedies'
interface, or a convention its framework cannot express, is a skip naming what it lacks
(runner.skip_reason, ConventionUnsupported). ``--full-matrix``: the product, marked slow.

float32 with batch norm runs one step, and its third step as a ``resync`` case (from the
reference's own state after two: Case.resync): carried from the first step, the a-priori
bound of a batch-normalised net saturates in float32 by the second (docs/tolerances.md,
"Remedies"), and such a case would be a skip; float64 carries them over 3 steps on the
3-BN-layer net, and the 5-BN-layer one runs resync. ``test_slice_bounds_are_finite`` holds
the slice to configurations whose bounds are finite everywhere.
"""
import itertools
import os

import numpy as np
import pytest

import reference as R
import reference.remedies as RR
import netparity.stages as ST
from netparity.backends import REGISTRY, mirrors
from netparity.compare import compare_stages
from netparity.runner import run_case
from netparity.stages import OPTIMIZER_CONFIGS, Case, expected

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REMEDIES = ("bn", "res", "l2", "drop", "all")
# the architecture of each remedy's cases: skips need >= 3 hidden layers ("deep" 2-4-4-3-1
# has a projected one, "res" 2-8-8-8-8-8-1 two identity ones, "proj" both kinds)
ARCH = {"bn": "deep", "res": "res", "resafter": "proj", "l2": "deep", "drop": "proj",
        "drophalf": "res", "bntorch": "deep", "all": "deep", "alltorch": "deep"}
HIDDEN = {"bn": "tanh", "res": "relu", "resafter": "sigmoid", "l2": "leaky_relu", "drop": "tanh",
          "drophalf": "relu", "bntorch": "tanh", "all": "tanh", "alltorch": "tanh"}
OUTPUT = {"bn": "sigmoid", "res": "softmax", "resafter": "sigmoid", "l2": "softmax", "drop": "sigmoid",
          "drophalf": "sigmoid", "bntorch": "sigmoid", "all": "sigmoid", "alltorch": "sigmoid"}
OPTIMIZER = {"bn": "adam", "res": "momentum", "resafter": "gd", "l2": "gd", "drop": "adam",
             "drophalf": "momentum", "bntorch": "adam", "all": "adam", "alltorch": "adam"}
PATHS = ("manual", "autodiff", "compiled", "idiomatic")


def has_bn(remedy):
    return ST.REMEDY_CONFIGS[remedy].batch_norm


def remedy_case(backend, path, dtype, remedy, steps, resync=False, arch=None):
    batch = "full" if steps == 1 else "mini"
    return Case(backend, path, "cpu", dtype, HIDDEN[remedy], OUTPUT[remedy], arch or ARCH[remedy],
                OPTIMIZER[remedy], batch, steps, remedy=remedy, resync=resync)


def reference_slice():
    """The reference's own cases: float64 1 and 3 steps, float32 1 step and (with batch norm)
    the third as a resync case, or 3 steps (without); batch norm on the 5-BN-layer "res"
    net, resync, in both dtypes."""
    return ([remedy_case("numpy", "manual", dtype, r, steps, resync)
             for r in REMEDIES for dtype, steps, resync in (
                 ("float64", 1, False), ("float64", 3, False),
                 *((("float32", 1, False), ("float32", 3, True)) if has_bn(r) else (("float32", 3, False),)))]
            + [remedy_case("numpy", "manual", dtype, "bn", 3, True, arch="res") for dtype in ("float64", "float32")])


# the mirrors' fast slice: per path, "all" (batch norm, a projected skip added before g,
# L2 and dropout at once) and the single remedies spread over the paths, every fast case
# of one shape: tanh/sigmoid on the toy "deep" net (2-4-4-3-1, a projected skip into 3),
# Adam, 3 mini-batch steps of 64 (one in float32 with batch norm), one dtype per path.
# JAX compiles every eager op once per shape and dtype (cold: ~5-15 s a new case on this
# CPU): sharing both keeps the slice near a minute cold. The identity skips, the other
# activations, outputs and optimisers are the reference slice's and the slow product's.
MIRROR_FAST = {"manual": ("float32", ("all", "bn", "res")), "autodiff": ("float64", ("all", "l2", "drop")),
               "compiled": ("float32", ("all",)),
               # both running-variance conventions ("bn"/"all" the course's and flax's,
               # "bntorch"/"alltorch" torch's): each framework's layer has one, the other is
               # a skip (reference.remedies.ConventionUnsupported)
               "idiomatic": ("float64", ("all", "alltorch", "bn", "bntorch"))}


def mirror_case(backend, path, dtype, remedy):
    """3 steps; float32 with batch norm: the third as a resync case (its carried bound
    overflows), or on the idiomatic path (which cannot start from the reference's state)
    the first alone."""
    bn32 = dtype == "float32" and has_bn(remedy)
    steps = 1 if bn32 and path == "idiomatic" else 3
    return Case(backend, path, "cpu", dtype, "tanh", "sigmoid", "deep", "adam", "mini", steps,
                remedy=remedy, resync=bn32 and path != "idiomatic")


def mirror_slice():
    """(case, slow) for every mirror x path x remedy x dtype: MIRROR_FAST not slow, except
    on a slow compiler (torch.compile: ~20 s a graph on this CPU) whose cases are all slow;
    the rest (the other dtype, the other remedies) marked slow."""
    out = []
    for backend in mirrors():
        for path in (p for p in PATHS if p in REGISTRY[backend].paths):
            fast_dtype, fast = MIRROR_FAST[path]
            names = REMEDIES + (("bntorch", "alltorch") if path == "idiomatic" else ())
            for r, dtype in itertools.product(names, ("float64", "float32")):
                slow = not (r in fast and dtype == fast_dtype) or (
                    path == "compiled" and REGISTRY[backend].slow_compile)
                out.append((mirror_case(backend, path, dtype, r), slow))
    return out


def full_cases():
    backends = ["numpy"] + list(mirrors())
    return [Case(b, p, "cpu", dt, h, o, a, opt, batch, st, remedy=r)
            for b in backends for p in REGISTRY[b].paths
            for r, a, dt, h, o, opt, (batch, st) in itertools.product(
                [r for r in ST.REMEDY_CONFIGS if r != "none"], ("deep", "res", "proj"),
                ("float64", "float32"), R.HIDDEN_ACTIVATIONS, R.OUTPUT_ACTIVATIONS,
                tuple(OPTIMIZER_CONFIGS), (("full", 1), ("mini", 3)))]


def pytest_generate_tests(metafunc):
    if "remedy_case" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("--full-matrix"):
        cases = [pytest.param(c, marks=pytest.mark.slow) for c in full_cases()]
    else:
        cases = ([pytest.param(c) for c in reference_slice()]
                 + [pytest.param(c, marks=[pytest.mark.slow] if slow else []) for c, slow in mirror_slice()])
    metafunc.parametrize("remedy_case", cases, ids=lambda c: c.id)


def test_remedy_stages_match_reference(remedy_case):
    result = run_case(remedy_case)
    if not result.ran:
        pytest.skip(result.skipped)
    result.raise_if_failed()
    assert result.rows(), "no stage compared"


def test_remedy_ids_extend_the_core_ids():
    """The core cases keep their ids; a remedy case appends its name."""
    core = Case("torch", "manual", "cpu", "float32", "tanh", "sigmoid", "deep", "adam", "mini", 3)
    assert core.id == "torch-manual-cpu-float32-tanh-sigmoid-2x4x4x3x1-adam-mini-3step"
    assert Case(**{**core.__dict__, "remedy": "bn"}).id == core.id + "-bn"
    res = Case("numpy", arch="res", remedy="res")
    assert res.layer_dims() == (2, 8, 8, 8, 8, 8, 1) and res.id.endswith("-2x8x8x8x8x8x1-gd-full-1step-res")


def test_backend_without_remedies_is_a_skip(monkeypatch):
    """A backend lacking remedy_step (or its idiomatic path lacking run_idiomatic_remedies)
    is a skip with the reason, not a crash."""
    monkeypatch.delattr(R, "remedy_step")
    res = run_case(remedy_case("numpy", "manual", "float64", "bn", 1))
    assert not res.ran and "remedy_step" in res.skipped and "docs/remedies.md" in res.skipped


# ---------------------------------------------------------------- the bounds: margin on correct code

MARGIN_CONFIGS = [  # (remedy, arch, hidden, output, optimizer, batch, steps)
    ("bn", "deep", "tanh", "sigmoid", "gd", "full", 1),
    ("bn", "deep", "sigmoid", "softmax", "adam", "mini", 1),
    ("bntorch", "deep", "relu", "sigmoid", "momentum", "full", 1),
    ("res", "res", "tanh", "sigmoid", "adam", "mini", 3),
    ("resafter", "proj", "relu", "softmax", "gd", "full", 3),
    ("l2", "proj", "sigmoid", "sigmoid", "momentum", "mini", 3),
    ("drop", "res", "leaky_relu", "softmax", "adam", "mini", 3),
    ("drophalf", "proj", "tanh", "sigmoid", "gd", "full", 3),
    ("all", "deep", "tanh", "softmax", "adam", "full", 1),
]
NEW_STAGES = ("mu", "var", "Zn", "Zt", "S", "H", "dH", "dZt", "dgamma", "dbeta", "dWs", "cost_l2",
              "gamma'", "beta'", "Ws'", "mu_run'", "var_run'")
# the worst float32-reference / oracle ratio any new stage may reach on correct code: the
# measured worst is ~0.3 (docs/tolerances.md); a bound that correct code comes near 1 on
# is a bound waiting to fail on another machine
MARGIN = 0.5


def kind(stage):
    """The stage without its layer number (cost_l2 is not a layer's)."""
    if stage.startswith("cost_"):
        return stage
    return stage.rstrip("'").rstrip("0123456789") + ("'" if stage.endswith("'") else "")


@pytest.mark.parametrize("config", MARGIN_CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_float32_reference_within_bounds_with_margin(config):
    remedy, arch, hidden, output, opt, batch, steps = config
    e = expected("float32", hidden, output, arch, opt, batch, steps, False, "toy", remedy)
    results = compare_stages(e.oracle, e.ref, e.bounds, e.order, "float32", 1.0)
    assert [r.stage for r in results] == e.order      # every stage compared
    bad = [r.line() for r in results if not r.ok]
    assert not bad, "\n".join(bad)
    # the new stages (dropout has none: it rescales A and dA, checked with every stage above)
    new = [r for r in results if kind(r.stage) in NEW_STAGES]
    assert new or remedy.startswith("drop"), "no new stage in this configuration"
    worst = max(new + [r for r in results if kind(r.stage) in ("A", "dA")], key=lambda r: r.ratio)
    assert worst.ratio < MARGIN, worst.line()
    # and the bounds compare something: finite everywhere
    for s in e.order:
        b = e.bounds[s]
        assert hasattr(b, "overflowed") or np.all(np.isfinite(b)), s


def test_slice_bounds_are_finite():
    """Every configuration of the default slice has finite bounds on every stage."""
    seen = set()
    for case in reference_slice() + [c for c, _ in mirror_slice()]:
        key = (case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
               case.steps, case.remedy, case.resync)
        if key in seen:
            continue
        seen.add(key)
        e = expected(*key[:7], False, "toy", key[7], key[8])
        for s in e.order:
            b = e.bounds[s]
            assert hasattr(b, "overflowed") or np.all(np.isfinite(b)), (case.id, s)


# ---------------------------------------------------------------- the bounds: planted bugs fail

class _EpsOutsideSqrt:
    """numpy with sqrt(v) replaced by sqrt(v - eps) + eps: the remedies' only roots are
    sqrt(var + eps), so this moves eps outside the root (bug: 1 / (sqrt(var) + eps))."""
    def __init__(self, eps):
        self.eps = eps

    def __getattr__(self, name):
        return getattr(np, name)

    def sqrt(self, v):
        return np.sqrt(v - self.eps) + self.eps


def _transposed_ws(initial):
    def wrapped(case):
        p = initial(case)
        # the projection stored (in, out) and read as (out, in): the same draws, reshaped
        return {k: (v.reshape(v.shape[::-1]).T.copy() if k.startswith("Ws") else v) for k, v in p.items()}
    return wrapped


def _with_remedies(step, **changes):
    def wrapped(path, params, bn, state, X, Y, remedies, *args, **kw):
        return step(path, params, bn, state, X, Y, RR.Remedies(**{**remedies.__dict__, **changes}), *args, **kw)
    return wrapped


def _dgamma_without_1_over_m(backward):
    def wrapped(params, cache, X, Y, *args, **kw):
        g = backward(params, cache, X, Y, *args, **kw)
        return {k: (v * X.shape[1] if k.startswith("dgamma") else v) for k, v in g.items()}
    return wrapped


def _unscaled_dropout(mask):
    def wrapped(masks, remedies, l, like):
        D = mask(masks, remedies, l, like)
        return None if D is None else D * remedies.keep_prob   # A D kp / kp = A D
    return wrapped


# bug -> (remedy, arch, the stage where it must show, how to plant it)
BUGS = {
    "dgamma_missing_1_over_m": ("bn", "deep", "dgamma1",
                                lambda mp: mp.setattr(RR, "remedy_backward", _dgamma_without_1_over_m(RR.remedy_backward))),
    "running_var_biased_unbiased_swap": ("bn", "deep", "var_run1'",
                                         lambda mp: mp.setattr(R, "remedy_step", _with_remedies(R.remedy_step, bn_running_var="unbiased"))),
    "eps_outside_sqrt": ("bn", "deep", "Zn1",
                         lambda mp: mp.setattr(RR, "np", _EpsOutsideSqrt(ST.REMEDY_CONFIGS["bn"].bn_eps))),
    "skip_after_instead_of_before": ("res", "res", "A3",
                                     lambda mp: mp.setattr(R, "remedy_step", _with_remedies(R.remedy_step, residual="after"))),
    "transposed_Ws": ("resafter", "proj", "S3",
                      lambda mp: mp.setattr(ST, "initial_parameters", _transposed_ws(ST.initial_parameters))),
    "dropout_not_rescaled": ("drop", "proj", "A1",
                             lambda mp: mp.setattr(RR, "_mask", _unscaled_dropout(RR._mask))),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_bug_exceeds_the_bound(bug, dtype, monkeypatch):
    """The reference with a planted bug, run as a backend, fails at the stage where the bug
    enters (compared with the correct reference in the same dtype, |x - x_r| <= 2E), by
    a clear factor. eps outside the root moves Zn by ~eps/sqrt(var) relative (1e-5 here):
    far outside float64's bound, inside float32's (a bug float32 cannot tell from rounding;
    the float64 cases catch it)."""
    remedy, arch, stage, plant = BUGS[bug]
    case = Case("numpy", "manual", "cpu", dtype, "tanh", "sigmoid", arch, "gd", "full", 1, remedy=remedy)
    exp = expected(dtype, "tanh", "sigmoid", arch, "gd", "full", 1, False, "toy", remedy)  # before planting
    plant(monkeypatch)
    got = ST.run_backend(case)
    results = {r.stage: r for r in compare_stages(exp.ref, got, exp.bounds, exp.order, dtype, 2.0)}
    r = results[stage]
    if bug == "eps_outside_sqrt" and dtype == "float32":
        assert r.ratio > 0.01, r.line()      # visible, but within float32's rounding
        return
    assert not r.ok and r.ratio > 10, r.line()
    first = next(s for s in exp.order if not results[s].ok)
    if bug != "skip_after_instead_of_before":     # there H3 (the stage itself) goes missing first
        assert first == stage or exp.order.index(first) <= exp.order.index(stage), first


def test_a_case_without_finite_bounds_is_a_skip_that_says_why_never_a_pass():
    """float32 batch norm over several steps: the a-priori bounds compound through the
    normalised layers until they overflow (docs/tolerances.md, "Remedies"). A comparison
    against an infinite bound passes anything, so the runner does not make it: the case
    is a skip naming the first unbounded stage, and compare_stage itself refuses such a
    bound (a wrong value is not a pass)."""
    import numpy as np
    from netparity.compare import NO_FINITE_BOUND, compare_stage
    from netparity.runner import run_case
    case = Case("numpy", "manual", "cpu", "float32", "tanh", "sigmoid", "deep", "adam", "mini", 3,
                remedy="bn")
    result = run_case(case)
    assert result.skipped and "no finite a-priori bound" in result.skipped
    assert "its resync twin checks the last update" in result.skipped
    # the twin: the third update alone, from the reference's float32 state, is compared
    twin = run_case(Case(**{**case.__dict__, "resync": True}))
    assert twin.ok and len(twin.rows()) > 100, twin.failure_message()
    r = compare_stage("Zn2", np.ones(3, np.float32), np.full(3, 7.0, np.float32),
                      np.array([1e-7, np.inf, 1e-7]), "float32")
    assert not r.ok and r.note == NO_FINITE_BOUND
    finite = compare_stage("Zn2", np.ones(3, np.float32), np.ones(3, np.float32),
                           np.full(3, 1e-7), "float32")
    assert finite.ok


# ---------------------------------------------------------------- resync: the last update from the reference's state

@pytest.mark.parametrize("remedy,dtype", [("bn", "float32"), ("none", "float32"), ("all", "float64")])
def test_resync_expected_is_the_chains_last_update(remedy, dtype):
    """A resync case's reference is the chained run's last update, bit for bit (its start
    is the reference's own state after steps - 1 updates, t included), while its bounds
    are one update's: finite everywhere, where the float32 batch-norm chain's overflow."""
    args = (dtype, "tanh", "sigmoid", "deep", "adam", "mini", 3, False, "toy", remedy)
    chain, resync = expected(*args, False), expected(*args, True)
    assert chain.order == resync.order
    for s in chain.order:
        np.testing.assert_array_equal(resync.ref[s], chain.ref[s], err_msg=s)
        b = resync.bounds[s]
        assert not hasattr(b, "overflowed") and np.all(np.isfinite(b)), s
    if remedy == "bn" and dtype == "float32":
        assert any(hasattr(chain.bounds[s], "overflowed") or not np.all(np.isfinite(chain.bounds[s]))
                   for s in chain.order)
    assert resync.ref["t'"] == 3
    # the oracle starts from the same state: its first stage differs from the reference's
    # by one float32 update's rounding, not by two steps of drift
    assert np.max(np.abs(resync.oracle["Z1"] - resync.ref["Z1"])) < 1e-5


def _running_estimates_reset(step):
    """bug: the step ignores the running estimates it is given (starts from 0 and 1)"""
    def wrapped(path, params, bn, state, *args, **kw):
        return step(path, params, {k: (np.zeros_like(v) if k.startswith("mu") else np.ones_like(v))
                                   for k, v in bn.items()}, state, *args, **kw)
    return wrapped


def _adam_counter_reset(step):
    """bug: the step restarts Adam's counter (bias corrections of t = 1 at every update)"""
    def wrapped(path, params, bn, state, *args, **kw):
        return step(path, params, bn, {**state, "t": 0}, *args, **kw)
    return wrapped


@pytest.mark.parametrize("bug,stage", [(_running_estimates_reset, "mu_run1'"), (_adam_counter_reset, "W1'")],
                         ids=["running_estimates_reset", "adam_counter_reset"])
def test_resync_catches_what_only_a_later_update_shows(bug, stage, monkeypatch):
    """Two bugs invisible at the first update (its running estimates are 0 and 1 and its
    counter 0 anyway) and in a float32 batch-norm chain (its bound overflows: a skip):
    the resync case of update 3 fails at the stage where each enters, by a clear factor."""
    case = Case("numpy", "manual", "cpu", "float32", "tanh", "sigmoid", "deep", "adam", "mini", 3,
                remedy="bn", resync=True)
    one = Case(**{**case.__dict__, "steps": 1, "resync": False})
    assert run_case(case).ok and run_case(one).ok          # the control: correct code passes
    monkeypatch.setattr(R, "remedy_step", bug(R.remedy_step))
    assert run_case(one).ok, "the first update cannot show this bug"
    result = run_case(case)
    r = result.worst_per_stage()[stage]
    assert not r.ok and r.ratio > 10, r.line()
    # docs/tolerances.md quotes this measurement ("Resync cases")
    quoted = f"`{stage}` at {f'{r.ratio:.2g}'.replace('e+0', 'e')} ×"
    assert quoted in " ".join(open(os.path.join(ROOT, "docs", "tolerances.md")).read().split()), quoted


@pytest.mark.parametrize("backend", ["numpy"] + list(mirrors()))
@pytest.mark.parametrize("remedy", ["none", "bn"])
def test_resync_runs_on_every_backend(backend, remedy):
    """Every backend's manual path starts from the reference's state (its own optimiser
    state types: torch's t an int, JAX's a device integer) and matches the reference."""
    case = Case(backend, "manual", "cpu", "float32", "tanh", "sigmoid", "deep", "adam", "mini", 3,
                remedy=remedy, resync=True)
    result = run_case(case)
    if not result.ran:
        pytest.skip(result.skipped)
    result.raise_if_failed()
    assert any(r.stage == "t'" for _, r in result.rows())


def test_resync_on_the_idiomatic_path_is_a_skip_that_says_why():
    for backend in mirrors():
        if "idiomatic" in REGISTRY[backend].paths:
            res = run_case(Case(backend, "idiomatic", "cpu", "float64", "tanh", "sigmoid", "deep",
                                "adam", "mini", 3, remedy="bn", resync=True))
            assert not res.ran and "cannot start an update from the reference's state" in res.skipped
            # and run directly it is refused, never silently run from a fresh start
            with pytest.raises(ValueError, match="cannot start from the reference's state"):
                ST.run_backend(res.case)
