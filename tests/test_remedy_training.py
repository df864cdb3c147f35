"""netparity.remedy_training: the remedies' training loop on every backend, and the
report's vanishing-gradient demonstration.

- The reference's loop is a hand-unrolled sequence of ``remedy_step`` calls (bit for bit):
  the batches of ``batch_order`` epoch by epoch, the masks of ``step_masks`` with the step
  counted over the whole run, the norms of the stages' dW.
- Every mirror's trajectory (costs, per-layer gradient norms, final parameters and running
  estimates) is the reference's in float64 within a stated 1e-10 of each quantity's scale
  (the bounds of docs/tolerances.md for these few steps are ~1e-14 relative; 1e-10 leaves
  room for the chains of several steps yet catches any formula or draw that differs).
- The demonstration's claims, with numbers: the first-layer gradient vanishes without
  remedies, not with batch norm or a residual after g, and the cost moves only with them.
"""
import math

import numpy as np
import pytest

import reference as R
from netparity.backends import available_backends
from netparity.remedy_training import (DEMO, RemedyRun, remedies_from_flags, skip_problem,
                                       train_remedies, vanishing_demo, remedy_predict)

ALL = R.Remedies(batch_norm=True, residual="before", l2=0.7, keep_prob=0.8)
DIMS = (2, 8, 6, 4, 4, 4, 1)        # a projected skip into 3, an identity one into 5
OPT = R.Optimizer("adam", learning_rate=0.01)
MIRRORS = [b for b in ("torch", "jax") if b in available_backends()]


@pytest.fixture(scope="module")
def planar():
    return R.load_dataset("planar")


def unrolled(X, Y, dims, remedies, hidden, output, optimizer, epochs, batch_size, seed):
    """The loop written out: parameters, bn_state, costs, norms."""
    p = R.initialize_remedy_network(dims, remedies, "xavier", seed)
    bn = R.init_bn_state(p)
    s = R.init_optimizer_state(p, optimizer)
    costs, norms, k = [], [], 0
    for e in range(epochs):
        for idx in R.batch_order(X.shape[1], batch_size, seed, e):
            D = R.step_masks(dims, len(idx), remedies.keep_prob, k)
            st, p, bn, s = R.remedy_step("manual", p, bn, s, X[:, idx], Y[:, idx], remedies,
                                         hidden, output, optimizer, D)
            costs.append(float(st["cost_stable"]))
            norms.append([math.sqrt(float(np.sum(st[f"dW{l}"] ** 2))) for l in range(1, len(dims))])
            k += 1
    return p, bn, np.array(costs), np.array(norms)


def test_reference_loop_is_the_hand_unrolled_steps(planar):
    X, Y = planar
    # 400 examples in batches of 150: 150, 150, 100 per epoch, 2 epochs = 6 updates
    run = train_remedies("numpy", DIMS, X, Y, ALL, "tanh", "sigmoid", OPT, 2, 150, 3)
    p, bn, costs, norms = unrolled(X, Y, DIMS, ALL, "tanh", "sigmoid", OPT, 2, 150, 3)
    assert isinstance(run, RemedyRun)
    assert run.costs.shape == (6,) and run.grad_norms.shape == (6, 6)
    np.testing.assert_array_equal(run.costs, costs)
    np.testing.assert_allclose(run.grad_norms, norms, rtol=1e-15)
    assert set(run.parameters) == set(p) and set(run.bn_state) == set(bn) == {
        f"{k}{l}" for k in ("mu_run", "var_run") for l in range(1, 6)}
    for k in p:
        np.testing.assert_array_equal(run.parameters[k], p[k])
    for k in bn:
        np.testing.assert_array_equal(run.bn_state[k], bn[k])
    assert run.opt_state["t"] == 6
    # it trains: the mean cost of the second epoch is below the first's
    assert costs[3:].mean() < costs[:3].mean()


def test_masks_are_counted_over_the_whole_run(planar):
    """Step k of epoch 2 uses step_masks(..., k) with k counted from the run's start: an
    epoch-local count (the same masks every epoch) gives another trajectory."""
    X, Y = planar
    rem = R.Remedies(keep_prob=0.5)
    dims = (2, 6, 6, 1)
    run = train_remedies("numpy", dims, X, Y, rem, "tanh", "sigmoid", R.Optimizer("gd", learning_rate=0.5),
                         2, None, 1)
    p = R.initialize_remedy_network(dims, rem, "xavier", 1)
    s = R.init_optimizer_state(p, R.Optimizer("gd", learning_rate=0.5))
    st0 = R.remedy_step("manual", p, {}, s, X, Y, rem, "tanh", "sigmoid", R.Optimizer("gd", learning_rate=0.5),
                        R.step_masks(dims, 400, 0.5, 0))
    same_mask = R.remedy_step("manual", st0[1], {}, st0[3], X, Y, rem, "tanh", "sigmoid",
                              R.Optimizer("gd", learning_rate=0.5), R.step_masks(dims, 400, 0.5, 0))
    right = R.remedy_step("manual", st0[1], {}, st0[3], X, Y, rem, "tanh", "sigmoid",
                          R.Optimizer("gd", learning_rate=0.5), R.step_masks(dims, 400, 0.5, 1))
    assert run.costs[0] == float(st0[0]["cost_stable"])
    assert run.costs[1] == float(right[0]["cost_stable"]) != float(same_mask[0]["cost_stable"])


@pytest.mark.parametrize("backend, path", [(b, p) for b in MIRRORS for p in ("manual", "autodiff")]
                         + ([("jax", "compiled")] if "jax" in MIRRORS else []))
def test_every_mirror_follows_the_reference_trajectory(backend, path, planar):
    X, Y = planar
    args = (DIMS, X, Y, ALL, "tanh", "sigmoid", OPT, 1, 150, 3)
    want = train_remedies("numpy", *args)
    calls = []
    got = train_remedies(backend, *args, path=path, callback=lambda k, J, n: calls.append((k, J, n)))
    assert [k for k, _, _ in calls] == [0, 1, 2]
    np.testing.assert_array_equal([J for _, J, _ in calls], got.costs)
    np.testing.assert_array_equal(np.array([n for _, _, n in calls]), got.grad_norms)
    tol = 1e-10
    assert np.max(np.abs(got.costs - want.costs)) <= tol * np.max(np.abs(want.costs))
    for l in range(len(DIMS) - 1):
        col = want.grad_norms[:, l]
        assert np.max(np.abs(got.grad_norms[:, l] - col)) <= tol * np.max(col), l
    for tree_got, tree_want in ((got.parameters, want.parameters), (got.bn_state, want.bn_state)):
        assert set(tree_got) == set(tree_want)
        for k, v in tree_want.items():
            assert tree_got[k].dtype == np.float64
            assert np.max(np.abs(tree_got[k] - v)) <= tol * max(1.0, np.max(np.abs(v))), k


@pytest.mark.parametrize("backend", ["numpy"] + MIRRORS)
def test_float32_runs_in_float32_near_the_float64_trajectory(backend, planar):
    X, Y = planar
    rem = R.Remedies(batch_norm=True, residual="after")
    args = ((2, 6, 6, 6, 1), X, Y, rem, "tanh", "sigmoid", R.Optimizer("gd", learning_rate=0.5), 3, None, 1)
    run32 = train_remedies(backend, *args, dtype="float32")
    run64 = train_remedies("numpy", *args)
    assert all(v.dtype == np.float32 for v in run32.parameters.values())
    # three full-batch steps: float32 rounding (~6e-8) amplified by a few steps, far from 1e-4
    assert np.max(np.abs(run32.costs - run64.costs)) < 1e-4
    assert not np.array_equal(run32.costs, run64.costs)  # it did run in float32


def test_literal_cost_and_eval_predictions(planar):
    X, Y = planar
    rem = R.Remedies(batch_norm=True)
    opt = R.Optimizer("gd", learning_rate=0.5)
    stable = train_remedies("numpy", (2, 5, 5, 1), X, Y, rem, "tanh", "sigmoid", opt, 2, None, 1)
    literal = train_remedies("numpy", (2, 5, 5, 1), X, Y, rem, "tanh", "sigmoid", opt, 2, None, 1,
                             cost="literal")
    # the same updates (the backward is the logits'); the two costs agree to rounding
    np.testing.assert_array_equal(stable.parameters["W1"], literal.parameters["W1"])
    np.testing.assert_allclose(literal.costs, stable.costs, rtol=1e-12)
    # predictions use the running estimates: after 2 steps they are far from the batch's
    pred = remedy_predict(stable.parameters, stable.bn_state, X, rem, "tanh", "sigmoid")
    AL = R.remedy_forward(X, stable.parameters, stable.bn_state, rem, "tanh", "sigmoid",
                          train=False)[0]
    np.testing.assert_array_equal(pred, AL > 0.5)
    AL_train = R.remedy_forward(X, stable.parameters, stable.bn_state, rem, "tanh", "sigmoid")[0]
    assert not np.allclose(AL, AL_train)


def test_bad_input_is_a_clear_error(planar):
    X, Y = planar
    opt = R.Optimizer("gd", learning_rate=0.5)
    with pytest.raises(ValueError, match="at least 3 hidden layers, the network \\[2, 4, 4, 1\\] has 2"):
        train_remedies("numpy", (2, 4, 4, 1), X, Y, R.Remedies(residual="before"), "tanh", "sigmoid",
                       opt, 1, None, 1)
    with pytest.raises(ValueError, match="do not fit layer_dims"):
        train_remedies("numpy", (3, 4, 1), X, Y, R.Remedies(), "tanh", "sigmoid", opt, 1, None, 1)
    with pytest.raises(ValueError, match="stable cost only"):
        train_remedies("numpy", (2, 4, 1), X, Y, R.Remedies(), "tanh", "sigmoid", opt, 1, None, 1,
                       path="compiled", cost="literal")
    with pytest.raises(ValueError, match="'manual' path only"):
        train_remedies("numpy", (2, 4, 1), X, Y, R.Remedies(), "tanh", "sigmoid", opt, 1, None, 1,
                       path="autodiff")
    assert skip_problem((2, 4, 4, 4, 1), R.Remedies(residual="after")) is None
    assert skip_problem((2, 4, 4, 1), R.Remedies()) is None


def test_remedies_from_flags():
    assert remedies_from_flags() == R.Remedies()
    assert remedies_from_flags(True, "after", 0.5, 0.9) == R.Remedies(
        batch_norm=True, residual="after", l2=0.5, keep_prob=0.9)


# ------------------------------------------------------------------ the demonstration

@pytest.fixture(scope="module")
def demo():
    """The report's configuration (DEMO), 60 updates, three of its runs (~2 s)."""
    configs = {"without": R.Remedies(), "bn": R.Remedies(batch_norm=True),
               "res": R.Remedies(residual="after")}
    return vanishing_demo(configs=configs, steps=60)


def test_demo_first_update_norms_are_the_backward_pass_of_the_initial_network(demo, planar):
    """Independent of the loop: one remedy_forward/remedy_backward of the initial weights."""
    X, Y = planar
    for label, rem in (("without", R.Remedies()), ("bn", R.Remedies(batch_norm=True))):
        p = R.initialize_remedy_network(demo.layer_dims, rem, "xavier", DEMO["seed"])
        _, cache, _ = R.remedy_forward(X, p, R.init_bn_state(p), rem, "sigmoid", "sigmoid")
        grads = R.remedy_backward(p, cache, X, Y, rem, "sigmoid", "sigmoid")
        want = [np.linalg.norm(grads[f"dW{l}"]) for l in range(1, len(demo.layer_dims))]
        np.testing.assert_allclose(demo.runs[label].grad_norms[0], want, rtol=1e-12)


def test_demo_gradient_vanishes_without_remedies_and_not_with_them(demo):
    assert demo.layer_dims == (2,) + (8,) * 12 + (1,)
    without, bn, res = demo.ratio("without"), demo.ratio("bn"), demo.ratio("res")
    assert without < 1e-6           # measured 2.6e-9
    assert bn > 1e-1                # measured 1.2
    assert res > 1e-2               # measured 5.5e-2
    # the norms fall layer by layer without remedies: every step down shrinks them
    n = demo.runs["without"].grad_norms[0]
    assert np.all(np.diff(n) > 0)


def test_demo_cost_stalls_without_remedies_and_falls_with_batch_norm(demo):
    without, bn, res = (demo.runs[k].costs for k in ("without", "bn", "res"))
    assert abs(without[-1] - math.log(2)) < 1e-3      # stuck at log 2 (predicts the mean)
    assert bn[-1] < without[-1] - 0.15                # measured 0.47 vs 0.69 after 60
    assert res[-1] < without[-1] - 1e-3               # starts to move (0.6885)


@pytest.mark.parametrize("backend", MIRRORS)
def test_demo_on_a_mirror_is_the_references(backend):
    """report --demo-backend: the same demonstration trained by a mirror (3 updates)."""
    configs = {"without": R.Remedies(), "bn": R.Remedies(batch_norm=True)}
    ref_demo = vanishing_demo(configs=configs, steps=3)
    got = vanishing_demo(backend, configs, 3)
    assert got.backend == backend and ref_demo.backend == "numpy"
    for label in configs:
        want, run = ref_demo.runs[label], got.runs[label]
        np.testing.assert_allclose(run.costs, want.costs, rtol=1e-10)
        np.testing.assert_allclose(run.grad_norms, want.grad_norms, rtol=1e-9)
