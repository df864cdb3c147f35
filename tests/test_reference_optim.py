"""Optimisers and schedules against two-step examples computed with Python floats.

Tolerance: the hand computations use the same float64 operations, sometimes in another
order: 1e-14 relative.
"""
import copy
import math

import numpy as np
import pytest

import reference as ref

RTOL = 1e-14
P0 = {"W1": [0.5, -1.5], "b1": [2.0]}                   # a 2x1 and a 1x1 parameter
G = [{"W1": [0.2, -0.4], "b1": [1.0]},                    # gradient of update 1
     {"W1": [-0.3, 0.1], "b1": [0.5]}]                    # gradient of update 2


def as_arrays(d, prefix=""):
    return {prefix + k: np.array(v, dtype=np.float64)[:, None] for k, v in d.items()}


def run_two_steps(opt):
    params = as_arrays(P0)
    state = ref.init_optimizer_state(params, opt)
    for g in G:
        params, state = ref.optimizer_step(params, as_arrays(g, "d"), state, opt)
    return params, state


def hand_two_steps(update):
    """Applies ``update(p, g1, g2) -> p2`` to every scalar of every parameter."""
    return {k: [update(p, G[0][k][i], G[1][k][i]) for i, p in enumerate(P0[k])] for k in P0}


def assert_params(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k][:, 0], want[k], rtol=RTOL, atol=1e-300, err_msg=k)


def test_gd_two_steps():
    lr = 0.3

    def update(p, g1, g2):
        return (p - lr * g1) - lr * g2
    params, state = run_two_steps(ref.Optimizer("gd", learning_rate=lr))
    assert_params(params, hand_two_steps(update))
    assert state == {"t": 2}


@pytest.mark.parametrize("form", ["ema", "heavy_ball"])
def test_momentum_two_steps(form):
    lr, beta = 0.3, 0.8
    damp = (1 - beta) if form == "ema" else 1.0

    def update(p, g1, g2):
        v1 = beta * 0.0 + damp * g1
        p1 = p - lr * v1
        v2 = beta * v1 + damp * g2
        return p1 - lr * v2
    params, state = run_two_steps(ref.Optimizer("momentum", learning_rate=lr, beta=beta,
                                                momentum_form=form))
    assert_params(params, hand_two_steps(update))
    assert state["t"] == 2
    np.testing.assert_allclose(state["vdb1"][0, 0], beta * damp * 1.0 + damp * 0.5, rtol=RTOL)


def test_momentum_forms_differ():
    a, _ = run_two_steps(ref.Optimizer("momentum", learning_rate=0.3, momentum_form="ema"))
    b, _ = run_two_steps(ref.Optimizer("momentum", learning_rate=0.3, momentum_form="heavy_ball"))
    assert np.abs(a["W1"] - b["W1"]).max() > 0.1


ADAM = dict(learning_rate=0.1, beta1=0.9, beta2=0.99, epsilon=0.1)


def adam_by_hand(placement):
    lr, b1, b2, eps = ADAM["learning_rate"], ADAM["beta1"], ADAM["beta2"], ADAM["epsilon"]

    def update(p, *gs):
        v = s = 0.0
        for t, g in enumerate(gs, start=1):
            v = b1 * v + (1 - b1) * g
            s = b2 * s + (1 - b2) * g * g
            v_hat, s_hat = v / (1 - b1 ** t), s / (1 - b2 ** t)
            if placement == "corrected":          # eps outside the corrected sqrt
                p = p - lr * v_hat / (math.sqrt(s_hat) + eps)
            else:                                 # eps added to the raw sqrt(s)
                p = p - lr * (math.sqrt(1 - b2 ** t) / (1 - b1 ** t)) * v / (math.sqrt(s) + eps)
        return p
    return update


@pytest.mark.parametrize("placement", ["corrected", "uncorrected"])
def test_adam_two_steps(placement):
    params, state = run_two_steps(ref.Optimizer("adam", adam_epsilon=placement, **ADAM))
    assert_params(params, hand_two_steps(adam_by_hand(placement)))
    assert state["t"] == 2
    g1, g2 = 1.0, 0.5   # b1's gradients
    np.testing.assert_allclose(state["vdb1"][0, 0], 0.9 * 0.1 * g1 + 0.1 * g2, rtol=RTOL)
    np.testing.assert_allclose(state["sdb1"][0, 0], 0.99 * 0.01 * g1 ** 2 + 0.01 * g2 ** 2, rtol=RTOL)


def test_adam_epsilon_placements_differ_with_large_epsilon():
    a, _ = run_two_steps(ref.Optimizer("adam", adam_epsilon="corrected", **ADAM))
    b, _ = run_two_steps(ref.Optimizer("adam", adam_epsilon="uncorrected", **ADAM))
    assert np.abs(a["W1"] - b["W1"]).max() > 1e-3


def test_adam_first_step_is_lr_times_sign_when_epsilon_tiny():
    """Bias correction makes the first step lr * g / |g| regardless of beta1, beta2."""
    opt = ref.Optimizer("adam", learning_rate=0.01, beta1=0.5, beta2=0.9, epsilon=1e-12)
    params = as_arrays(P0)
    new, _ = ref.optimizer_step(params, as_arrays(G[0], "d"), ref.init_optimizer_state(params, opt), opt)
    np.testing.assert_allclose(new["W1"][:, 0], [0.5 - 0.01, -1.5 + 0.01], rtol=1e-9)


LR_TABLE = {  # lr0 = 1, decay_rate = 0.5, decay_steps = 2
    "constant":     {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 5: 1.0, 10: 1.0},
    "inverse_time": {0: 1.0, 1: 1.0, 2: 1 / 1.5, 3: 1 / 1.5, 5: 1 / 2.0, 10: 1 / 3.5},
    "exponential":  {0: 1.0, 1: math.sqrt(0.5), 2: 0.5, 3: 0.5 * math.sqrt(0.5),
                     5: 0.25 * math.sqrt(0.5), 10: 0.03125},
    "step":         {0: 1.0, 1: 1.0, 2: 0.5, 3: 0.5, 5: 0.25, 10: 0.03125},
}


@pytest.mark.parametrize("schedule, k, want",
                         [(s, k, v) for s, row in LR_TABLE.items() for k, v in row.items()],
                         ids=lambda v: str(v))
def test_learning_rate_schedule(schedule, k, want):
    opt = ref.Optimizer(learning_rate=1.0, schedule=schedule, decay_rate=0.5, decay_steps=2)
    got = ref.learning_rate_at(opt, k)
    assert type(got) is float
    assert got == pytest.approx(want, rel=1e-15)


def test_schedule_uses_the_update_number_before_the_update():
    """Update 0 at lr0, update 1 at lr0 * 0.5 (step schedule, decay_steps 1)."""
    opt = ref.Optimizer("gd", learning_rate=0.4, schedule="step", decay_rate=0.5)
    params, _ = run_two_steps(opt)
    assert_params(params, hand_two_steps(lambda p, g1, g2: p - 0.4 * g1 - 0.2 * g2))


OPTIMIZER_CASES = {
    "gd": ref.Optimizer("gd", learning_rate=0.1),
    "momentum-ema": ref.Optimizer("momentum", learning_rate=0.1),
    "momentum-heavy_ball": ref.Optimizer("momentum", learning_rate=0.1, momentum_form="heavy_ball"),
    "adam-corrected": ref.Optimizer("adam", learning_rate=0.1),
    "adam-uncorrected": ref.Optimizer("adam", learning_rate=0.1, adam_epsilon="uncorrected"),
}


@pytest.mark.parametrize("opt", OPTIMIZER_CASES.values(), ids=OPTIMIZER_CASES.keys())
def test_optimizer_step_does_not_mutate_inputs(opt):
    params = as_arrays(P0)
    grads = as_arrays(G[0], "d")
    state = ref.init_optimizer_state(params, opt)
    params, state = ref.optimizer_step(params, grads, state, opt)  # non-zero buffers
    before = copy.deepcopy((params, grads, state))
    new_params, new_state = ref.optimizer_step(params, grads, state, opt)
    for got, want in zip((params, grads, state), before):
        assert sorted(got) == sorted(want)
        for k in want:
            assert np.array_equal(got[k], want[k]), k
    assert new_state is not state and new_params is not params
    assert not np.array_equal(new_params["W1"], params["W1"])


@pytest.mark.parametrize("bad", [
    dict(name="sgd"), dict(schedule="cosine"), dict(momentum_form="nesterov"),
    dict(adam_epsilon="inside"), dict(learning_rate=-0.1), dict(learning_rate=0.0),
    dict(learning_rate=float("nan")), dict(decay_steps=0)], ids=lambda d: str(d))
def test_bad_hyper_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        ref.Optimizer(**bad)
