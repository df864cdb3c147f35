"""The idiomatic PyTorch path (torch_impl/idiomatic.py: nn.Module of nn.Linear, torch
losses, torch.optim, lr_scheduler) against the reference, and one test per convention
difference of torch_impl/conventions.py that MEASURES it.

(a) conformance: run_idiomatic's stages of the last step against the reference through
    netparity.compare with the tolerance policy's bounds (as tests/test_conformance.py),
    a small set here; the lead's matrix adds the path everywhere.
(b) conventions: each test prints "MEASURED <key>: ..." (run with -s to see them; the
    numbers of docs/framework_differences.md come from there) and asserts the measured
    value against an independent, hand-derived expectation, so it fails if torch's
    behaviour changes.

Tolerances: per-step stages use netparity.tolerance (bounds E, |x_b - x_r| <= 2E).
100-step trajectories use the shadow model of netparity.trajectory (a reference run from
weights perturbed by one ulp measures the dynamics' amplification D of one rounding; a
run with different roundings at each of n steps may be SAFETY * n * D apart, plus twice
the one-step bound as a floor). Other bounds are derived next to their test.
"""
from fractions import Fraction
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reference as R
from netparity.compare import (assert_conforms, compare_stage, compare_stages, failure_message)
from netparity.stages import (ARCHS, Case, OPTIMIZER_CONFIGS, batch_sequence, dataset, expected,
                              initial_parameters, step_stages)
from netparity.tolerance import UNIT_ROUNDOFF, Precision, input_bounds, stage_bounds
from netparity.trajectory import SAFETY, perturb
from torch_impl import conventions as C
from torch_impl.idiomatic import (HIDDEN, Net, linear_layers, load_reference_parameters, make_loss,
                                  run_idiomatic, run_steps)

U64 = UNIT_ROUNDOFF["float64"]


def emitted(order, optimizer_name):
    """The reference's stage order less what torch cannot have: "t'" where torch keeps no
    counter (SGD: gd, momentum)."""
    return [s for s in order if s != "t'" or optimizer_name == "adam"]


def reference_run(p0, X, Y, batches, hidden, output, optimizers, dtype="float64"):
    """The reference over ``batches`` (optimizers[k] for update k) with the tolerance
    policy's bounds, like netparity.stages.expected but for any reference.Optimizer.
    Returns (stages of the last step in dtype, the float64 oracle's, bounds)."""
    prec = Precision(dtype)
    p_ref, p64 = R.tree_from_numpy(p0, dtype), p0
    s_ref = R.init_optimizer_state(p_ref, optimizers[0])
    s64 = R.init_optimizer_state(p0, optimizers[0])
    E_P = input_bounds(p0, prec)
    E_S = {k: 0.0 if k == "t" else np.zeros_like(v) for k, v in s64.items()}
    for idx, opt in zip(batches, optimizers):
        Xb, Yb = X[:, idx], Y[:, idx]
        ref, p_ref, s_ref = step_stages(R, "manual", None, p_ref, s_ref, Xb.astype(dtype),
                                        Yb.astype(dtype), hidden, output, opt)
        oracle, new64, news64 = step_stages(R, "manual", None, p64, s64, Xb, Yb, hidden, output, opt)
        _, cache64 = R.network_forward(Xb, p64, hidden, output)
        grads64 = {k: v for k, v in oracle.items() if k.startswith("d")}
        bounds, E_P, E_S = stage_bounds(p64, s64, Xb, Yb, cache64, grads64, new64, news64,
                                        E_P, E_S, hidden, output, opt, prec)
        p64, s64 = new64, news64
    return ref, oracle, bounds


# ---------------------------------------------------------------- (a) conformance

def _conformance_cases():
    """gd/momentum/adam x sigmoid/softmax x float64/float32 x (full, 1 step | mini, 3
    steps), hidden activation and architecture rotating; plus the literal costs and SGD."""
    hidden, arch = itertools.cycle(R.HIDDEN_ACTIVATIONS), itertools.cycle(ARCHS)
    cases = [(Case("torch", "idiomatic", "cpu", dtype, next(hidden), output, next(arch), opt, batch, steps),
              "stable")
             for opt, output, dtype, (batch, steps) in itertools.product(
                 OPTIMIZER_CONFIGS, R.OUTPUT_ACTIVATIONS, ("float64", "float32"), (("full", 1), ("mini", 3)))]
    cases += [(Case("torch", "idiomatic", "cpu", "float64", "tanh", "sigmoid", "shallow", "momentum", "sgd", 3),
               "literal"),
              (Case("torch", "idiomatic", "cpu", "float32", "relu", "softmax", "deep", "adam", "mini", 3),
               "literal")]
    return cases


CONFORMANCE = _conformance_cases()


def _check(got, ref, oracle, bounds, order, dtype, ctx):
    # structure first: exactly the stages the path can produce, in the reference's order
    assert list(got) == order, f"{ctx}: stages {list(got)} != {order}"
    assert_conforms(compare_stages(ref, got, bounds, order, dtype), ctx)
    if dtype != "float64":
        assert_conforms(compare_stages(oracle, got, bounds, order, dtype, factor=1.0), ctx,
                        against="the float64 oracle (bound E, not 2E)")


@pytest.mark.parametrize("case,cost", CONFORMANCE, ids=[f"{c.id}-{cost}" for c, cost in CONFORMANCE])
def test_idiomatic_stages_match_reference(case, cost):
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch, case.steps)
    X, Y = dataset(case.data)
    got = run_idiomatic(initial_parameters(case), X, Y, batch_sequence(case), case.hidden, case.output,
                        OPTIMIZER_CONFIGS[case.optimizer], case.dtype, cost=cost)
    _check(got, e.ref, e.oracle, e.bounds, emitted(e.order, case.optimizer), case.dtype,
           {"case": f"{case.id}-{cost}"})


SCHEDULED = [("exponential", "gd", "float64"), ("exponential", "adam", "float32"),
             ("step", "momentum", "float64"), ("step", "gd", "float32"),
             ("inverse_time", "adam", "float64"), ("inverse_time", "momentum", "float32")]


@pytest.mark.parametrize("schedule,opt,dtype", SCHEDULED, ids=["-".join(s) for s in SCHEDULED])
def test_idiomatic_schedules_match_reference(schedule, opt, dtype):
    """Every schedule through its torch scheduler (conventions.torch_optimizer_for), 5
    mini-batch updates with a decay every 2: the rate changes at updates 1..4."""
    case = Case("torch", "idiomatic", "cpu", dtype, "tanh", "sigmoid", "deep", opt, "mini", 5)
    optimizer = OPTIMIZER_CONFIGS[opt].with_(schedule=schedule, decay_rate=0.5, decay_steps=2)
    X, Y = dataset(case.data)
    p0, batches = initial_parameters(case), batch_sequence(case)
    ref, oracle, bounds = reference_run(p0, X, Y, batches, "tanh", "sigmoid", [optimizer] * 5, dtype)
    got = run_idiomatic(p0, X, Y, batches, "tanh", "sigmoid", optimizer, dtype)
    order = emitted(list(ref), opt)
    _check(got, ref, oracle, bounds, order, dtype, {"case": f"{case.id}-{schedule}"})


@pytest.mark.parametrize("cost", ["stable", "literal"])
def test_idiomatic_multi_output_sigmoid_matches_reference(cost):
    """Sigmoid with n_y = 3 (the spirals' one-hot labels): the only setting where the
    reference's 1/m and BCEWithLogitsLoss's default 1/(n_y m) differ (the matrix's sigmoid
    cases have n_y = 1)."""
    X, Y = dataset("spirals")
    p0 = initial_parameters(Case("torch", output="softmax", arch="deep"))   # 2-4-4-3-3
    optimizer = OPTIMIZER_CONFIGS["adam"]
    batches = batch_sequence(Case("torch", output="softmax", batch="mini", steps=2))
    ref, oracle, bounds = reference_run(p0, X, Y, batches, "tanh", "sigmoid", [optimizer] * 2)
    got = run_idiomatic(p0, X, Y, batches, "tanh", "sigmoid", optimizer, cost=cost)
    _check(got, ref, oracle, bounds, list(ref), "float64", {"case": f"torch-idiomatic-sigmoid-n_y=3-{cost}"})


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the bound of an inf cost
def test_adapter_reports_the_literal_cost_at_saturation_as_the_reference_does():
    """At a saturated output (weights scaled so that sigmoid(z) rounds to exactly 1 for
    some examples) the reference's literal cost is not finite: -log(1 - a) = inf where
    y = 0 and 0 * log(0) = nan where y = 1. The adapter computes cost_literal from the
    logits with the same formula (no clamp), so it agrees; with nn.BCELoss as the loss the
    captured cost_literal is BCELoss's clamped, finite value and the comparison parts there."""
    X, Y = dataset("planar")
    p0 = R.initialize_network((2, 4, 1))
    p0["W1"], p0["W2"] = p0["W1"] * 100, p0["W2"] * 1e4      # |z2| up to ~600: no A = 0
    opt = R.Optimizer("gd", learning_rate=0.5)
    ref, _, bounds = reference_run(p0, X, Y, [np.arange(400)], "tanh", "sigmoid", [opt])
    assert not np.isfinite(ref["cost_literal"]) and np.isfinite(ref["cost_stable"])
    order = emitted(list(ref), "gd")
    stable = run_idiomatic(p0, X, Y, [np.arange(400)], "tanh", "sigmoid", opt, cost="stable")
    assert_conforms(compare_stages(ref, stable, bounds, order, "float64"), {"case": "saturated-stable"})
    literal = run_idiomatic(p0, X, Y, [np.arange(400)], "tanh", "sigmoid", opt, cost="literal")
    results = compare_stages(ref, literal, bounds, order, "float64")
    msg = failure_message(results, {"case": "saturated-BCELoss"})
    print(f"MEASURED loss.bce_clamp: saturated planar case, BCELoss cost_literal = "
          f"{float(literal['cost_literal']):.6g} where the reference's is {ref['cost_literal']}")
    assert "first diverging stage 'cost_literal'" in msg and np.isfinite(literal["cost_literal"]), msg


class UserNet(nn.Module):
    """What a user writes: named layers, F.relu in forward, nn.Linear's own initialiser."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():  # nn.Linear draws; leave torch's global RNG as it was
            self.fc1 = nn.Linear(2, 4, dtype=torch.float64)
            self.fc2 = nn.Linear(4, 3, dtype=torch.float64)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def test_adapter_runs_a_user_module_with_class_index_targets():
    """The generic adapter on a user's nn.Module, nn.CrossEntropyLoss with class indices
    (``targets``), Adam: all stages match the reference (dA0 included)."""
    case = Case("torch", "idiomatic", "cpu", "float64", "relu", "softmax", "shallow", "adam", "mini", 3)
    e = expected("float64", "relu", "softmax", "shallow", "adam", "mini", 3)
    X, Y = dataset("spirals")
    model = UserNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    got, costs = run_steps(model, opt, nn.CrossEntropyLoss(), initial_parameters(case), X, Y,
                           batch_sequence(case), "softmax", targets=lambda y: y.argmax(1))
    _check(got, e.ref, e.oracle, e.bounds, e.order, "float64", {"case": "user-module-" + case.id})
    np.testing.assert_allclose(costs, e.costs_ref, rtol=0, atol=2 * max(e.costs_bound))


def _no_hooks_left(model, opt):
    return (all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
            and not opt._optimizer_step_pre_hooks)


def test_user_step_function_is_observed_and_hooks_are_removed():
    """A user's own loop body (zero_grad(set_to_none=False), a second forward for
    logging) plugs in as step_fn and gives the default step's stages; no hook is left
    on the model or the optimiser, also when the step raises."""
    case = Case("torch", "idiomatic", "cpu", "float64", "tanh", "sigmoid", "deep", "momentum", "mini", 3)
    X, Y = dataset(case.data)
    p0, batches = initial_parameters(case), batch_sequence(case)
    optimizer = OPTIMIZER_CONFIGS["momentum"]

    def my_step(model, opt, loss_fn, x, y):
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model(x)          # e.g. the cost after the update, for a progress bar: not captured
        return loss

    model = Net((2, 4, 4, 3, 1))
    opt, _ = C.torch_optimizer_for(optimizer, model.parameters())
    got, _ = run_steps(model, opt, make_loss("sigmoid"), p0, X, Y, batches, "sigmoid", step_fn=my_step,
                       reference_optimizer=optimizer)
    want = run_idiomatic(p0, X, Y, batches, "tanh", "sigmoid", optimizer)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)  # same ops, same order: bitwise
    assert _no_hooks_left(model, opt)

    def broken(model, opt, loss_fn, x, y):
        model(x)
        raise RuntimeError("user bug")
    with pytest.raises(RuntimeError, match="user bug"):
        run_steps(model, opt, make_loss("sigmoid"), p0, X, Y, batches[:1], "sigmoid", step_fn=broken,
                  reference_optimizer=optimizer)
    assert _no_hooks_left(model, opt)


def test_run_steps_rejects_a_model_in_another_dtype():
    model = Net((2, 4, 1), dtype=torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    X, Y = dataset("planar")
    with pytest.raises(ValueError, match=r"parameters are \['torch.float32'\] but dtype is torch.float64"):
        run_steps(model, opt, make_loss("sigmoid"), initial_parameters(Case("torch")), X, Y,
                  [np.arange(10)], "sigmoid")


# ---------------------------------------------------------------- (b) conventions, measured

def test_relu_and_leaky_relu_derivative_at_zero_is_the_reference_s():
    """conventions 'activation.relu_at_0': torch.relu'(0) = 0, F.leaky_relu'(0) = 0.01,
    at +0 and -0, as reference.activation_grad (strict z > 0)."""
    z = np.array([-1.0, -0.0, 0.0, 1.0])
    for name in R.HIDDEN_ACTIVATIONS:
        zt = torch.tensor(z, requires_grad=True)
        HIDDEN[name](zt).sum().backward()
        want = R.activation_grad(name, z, R.activation(name, z))
        if name in ("relu", "leaky_relu"):
            print(f"MEASURED activation.relu_at_0: torch {name}'(-1, -0, +0, 1) = {zt.grad.tolist()}")
            np.testing.assert_array_equal(zt.grad.numpy(), want, err_msg=name)
        else:  # smooth: a few roundings of the same formula
            np.testing.assert_allclose(zt.grad.numpy(), want, rtol=4 * U64, atol=0, err_msg=name)
    assert R.activation_grad("relu", z, z)[2] == 0.0 and R.activation_grad("leaky_relu", z, z)[2] == 0.01


def test_linear_weight_is_W_and_examples_are_rows():
    """conventions 'layout.*': nn.Linear(n_in, n_out).weight is (n_out, n_in) = W's shape,
    bias (n_out,); with weight = W, bias = b[:, 0] the layer maps rows x = X.T to Z.T.
    Bound (Higham 3.5): each side is within gamma_{K+1} (|W||X| + |b|) of exact."""
    X, _ = dataset("planar")
    W = R.initialize_network((2, 4), init="xavier", seed=1)["W1"]
    b = W[:, :1] * 0.5                       # a nonzero bias, from the reference's draws
    lin = nn.utils.skip_init(nn.Linear, 2, 4, dtype=torch.float64)
    assert tuple(lin.weight.shape) == W.shape == (4, 2) and tuple(lin.bias.shape) == (4,)
    load_reference_parameters(lin, {"W1": W, "b1": b})
    got = lin(torch.from_numpy(X.T.copy())).detach().numpy().T
    Z = W @ X + b
    bound = 2 * Precision("float64").gamma(3) * (np.abs(W) @ np.abs(X) + np.abs(b))
    r = compare_stage("Z1", Z, got, bound, "float64", factor=1.0)
    print(f"MEASURED layout.weight: |Linear(X.T).T - (W X + b)| max {r.max_abs:.3g} ({r.ratio:.3g} x bound)")
    assert r.ok, r.line()
    # a transposed weight of a square layer keeps its shape and is caught by the values
    W2 = R.initialize_network((4, 4), init="xavier", seed=1)["W1"]
    lin2 = nn.utils.skip_init(nn.Linear, 4, 4, dtype=torch.float64)
    load_reference_parameters(lin2, {"W1": W2.T, "b1": b})
    A = np.tanh(Z)
    wrong = lin2(torch.from_numpy(A.T.copy())).detach().numpy().T
    bad = compare_stage("Z2", W2 @ A + b, wrong, 2 * Precision("float64").gamma(5)
                        * (np.abs(W2) @ np.abs(A) + np.abs(b)), "float64", factor=1.0)
    assert not bad.ok and bad.ratio > 1e10, bad.line()


def test_load_reference_parameters_errors_name_the_layer():
    model = UserNet()                                   # 2 -> 4 -> 3
    p = R.initialize_network((2, 4, 1))                 # W2 is (1, 4)
    with pytest.raises(ValueError) as e:
        load_reference_parameters(model, p)
    assert str(e.value) == "layer 2 (model.fc2: Linear(4->3)) has weight (3, 4) but W2 is (1, 4)"
    with pytest.raises(ValueError, match=r"the model has 2 nn.Linear layers \(layer 1 \(model.fc1: "
                                         r"Linear\(2->4\)\), layer 2 \(model.fc2: Linear\(4->3\)\)\) "
                                         r"but the reference parameters are W1, b1, W2, b2, W3, b3"):
        load_reference_parameters(model, R.initialize_network((2, 4, 4, 3)))
    with torch.random.fork_rng():
        model.fc1 = nn.Linear(2, 4, bias=False, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"layer 1 \(model.fc1: Linear\(2->4\)\) has no bias \(bias=False\)"):
        load_reference_parameters(model, R.initialize_network((2, 4, 3)))
    # a bias the wrong length for its layer is named too
    p = R.initialize_network((2, 4, 3))
    p["b2"] = np.zeros((4, 1))
    with pytest.raises(ValueError, match=r"layer 2 \(model.layers.1: Linear\(4->3\)\) has bias \(3,\) "
                                         r"but b2 is \(4, 1\)"):
        load_reference_parameters(Net((2, 4, 3)), p)
    # what it loads: module order = the reference's layer order, bias = b[:, 0]
    net, p = Net((2, 4, 3)), R.initialize_network((2, 4, 3), init="xavier", seed=2)
    p["b1"] = p["W1"][:, :1]
    load_reference_parameters(net, p)
    assert [n for n, _ in linear_layers(net)] == ["layers.0", "layers.1"]
    np.testing.assert_array_equal(net.layers[0].bias.detach().numpy(), p["W1"][:, 0])
    np.testing.assert_array_equal(net.layers[1].weight.detach().numpy(), p["W2"])


# -- momentum: 100 full-batch updates at lr 1.2, beta 0.9 on the planar data (float64)

LR, BETA, N = 1.2, 0.9, 100
EMA = R.Optimizer("momentum", learning_rate=LR, beta=BETA)
HEAVY = EMA.with_(momentum_form="heavy_ball")
MOMENTUM_STAGES = ["W1'", "b1'", "W2'", "b2'", "vdW1'", "vdb1'", "vdW2'", "vdb2'"]


def _reference_momentum(p0, X, Y, optimizers):
    p, s = p0, R.init_optimizer_state(p0, optimizers[0])
    for opt in optimizers:
        p, s, _, _ = R.train_step(p, s, X, Y, "tanh", "sigmoid", opt)
    return {**{k + "'": v for k, v in p.items()}, **{k + "'": v for k, v in s.items() if k != "t"}}


def _trajectory(optimizers):
    """(reference after len(optimizers) full-batch updates, shadow-model bounds)."""
    X, Y = dataset("planar")
    p0 = R.initialize_network((2, 4, 1))
    ref = _reference_momentum(p0, X, Y, optimizers)
    shadow = _reference_momentum(perturb(p0, "float64"), X, Y, optimizers)
    _, _, one = reference_run(p0, X, Y, [np.arange(400)], "tanh", "sigmoid", optimizers[:1])
    n = len(optimizers)
    bounds = {k: SAFETY * n * np.max(np.abs(ref[k] - shadow[k])) + 2 * one[k] for k in ref}
    return ref, bounds


def _torch_sgd(read_as, n=N, seed_zero_buffer=False, **sgd):
    X, Y = dataset("planar")
    model = Net((2, 4, 1))
    opt = torch.optim.SGD(model.parameters(), **sgd)
    if seed_zero_buffer:
        for p in model.parameters():
            opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    stages, _ = run_steps(model, opt, make_loss("sigmoid"), R.initialize_network((2, 4, 1)), X, Y,
                          [np.arange(400)] * n, "sigmoid", reference_optimizer=read_as)
    return stages


def _max_diff(a, b, keys):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in keys)


def _conforms(ref, got, bounds, ctx):
    assert_conforms([compare_stage(k, ref[k], got[k], bounds[k], "float64", factor=1.0)
                     for k in MOMENTUM_STAGES], {"case": ctx}, against="the reference trajectory (shadow model)")


def test_heavy_ball_is_ema_only_with_lr_times_one_minus_beta():
    """conventions 'momentum.ema' / 'momentum.heavy_ball'. torch.optim.SGD(momentum=beta)
    is heavy-ball: with lr (1 - beta) it is the course's EMA (buffer = v / (1 - beta));
    with lr it is momentum_form='heavy_ball', so its distance from EMA is the reference's
    own heavy-ball - EMA distance (predicted, not fitted)."""
    ref_ema, bounds_ema = _trajectory([EMA] * N)
    scaled = _torch_sgd(EMA, lr=LR * (1 - BETA), momentum=BETA)
    _conforms(ref_ema, scaled, bounds_ema, "SGD(lr*(1-beta), momentum=beta) vs EMA")
    ref_hb, bounds_hb = _trajectory([HEAVY] * N)
    plain = _torch_sgd(HEAVY, lr=LR, momentum=BETA)
    _conforms(ref_hb, plain, bounds_hb, "SGD(lr, momentum=beta) vs heavy_ball")
    params = MOMENTUM_STAGES[:4]
    agree, measured, predicted = (_max_diff(scaled, ref_ema, params), _max_diff(plain, ref_ema, params),
                                  _max_diff(ref_hb, ref_ema, params))
    print(f"MEASURED momentum.ema: after {N} updates (lr {LR}, beta {BETA}) SGD(lr*(1-beta)) is {agree:.3g} "
          f"from EMA; SGD(lr) is {measured:.6g} from EMA (predicted by the reference's heavy-ball: {predicted:.6g})")
    assert abs(measured - predicted) <= max(bounds_hb[k].max() for k in params)
    assert measured > 1e6 * max(bounds_ema[k].max() for k in params)   # a real difference, not rounding


def test_dampening_beta_is_not_ema_because_the_first_step_is_undampened():
    """conventions 'momentum.dampening'. SGD(momentum=beta, dampening=beta) starts its buffer
    at g_1 (undampened) and then follows the EMA: predicted = the reference's heavy-ball for
    update 1 (v = 0 beta + g) and its EMA after. After one update the buffer is 1/(1 - beta)
    times the course's; after 100 the parameters have parted. Pre-seeding a zero buffer
    makes it the course's EMA exactly."""
    one = _torch_sgd(HEAVY, n=1, lr=LR, momentum=BETA, dampening=BETA)
    p0 = R.initialize_network((2, 4, 1))
    ref_hb, _, bounds1 = reference_run(p0, *dataset("planar"), [np.arange(400)], "tanh", "sigmoid", [HEAVY])
    ref_ema, _, _ = reference_run(p0, *dataset("planar"), [np.arange(400)], "tanh", "sigmoid", [EMA])
    for k in ("W1", "b1", "W2", "b2"):
        # the buffer after update 1 is that update's gradient itself, undampened
        np.testing.assert_array_equal(one[f"vd{k}'"], one[f"d{k}"])
    assert_conforms(compare_stages(ref_hb, one, bounds1, MOMENTUM_STAGES, "float64"),
                    {"case": "SGD(dampening=beta) update 1 vs heavy_ball"})
    ratio = one["vdW1'"] / ref_ema["vdW1'"]
    print(f"MEASURED momentum.dampening: buffer after update 1 / course's v = {np.median(ratio):.15g} "
          f"(1/(1-beta) = {1 / (1 - BETA):.15g})")

    predicted, bounds = _trajectory([HEAVY] + [EMA] * (N - 1))
    damp = _torch_sgd(HEAVY, lr=LR, momentum=BETA, dampening=BETA)
    _conforms(predicted, damp, bounds, "SGD(dampening=beta) vs heavy-ball step then EMA")
    ref_ema, bounds_ema = _trajectory([EMA] * N)
    params = MOMENTUM_STAGES[:4]
    gap = _max_diff(damp, ref_ema, params)
    print(f"MEASURED momentum.dampening: after {N} updates SGD(lr, momentum=beta, dampening=beta) is "
          f"{gap:.3g} from the course's EMA")
    assert gap > 1e6 * max(bounds_ema[k].max() for k in params)
    seeded = _torch_sgd(HEAVY, seed_zero_buffer=True, lr=LR, momentum=BETA, dampening=BETA)
    _conforms(ref_ema, seeded, bounds_ema, "SGD(dampening=beta) with a zero buffer vs EMA")


def test_bce_with_logits_mean_is_the_reference_cost_over_n_y():
    """conventions 'loss.bce_mean'. For multi-output sigmoid (spirals, n_y = 3)
    nn.BCEWithLogitsLoss()'s mean divides by n_y m, the reference by m: the ratio is
    exactly n_y, and so is the ratio of the gradients; run through the adapter, the
    first stage to part is cost_stable.
    Bound: both sum the same n_y m terms in float64, each within gamma_{n_y m + 2} sum|terms| / m."""
    X, Y = dataset("spirals")
    p0 = initial_parameters(Case("torch", output="softmax", arch="shallow"))  # 2-4-3
    model = Net((2, 4, 3), "tanh", "sigmoid")
    load_reference_parameters(model, p0)
    logits = model(torch.from_numpy(X.T.copy())).detach()
    mean = float(nn.BCEWithLogitsLoss()(logits, torch.from_numpy(Y.T.copy())))
    _, cache = R.network_forward(X, p0, "tanh", "sigmoid")
    ref = float(R.cross_entropy_from_logits(cache["Z2"], Y, "sigmoid"))
    n_y, m = Y.shape
    Z = cache["Z2"]
    terms = np.maximum(Z, 0) + np.abs(Z * Y) + np.log1p(np.exp(-np.abs(Z)))
    bound = 2 * Precision("float64").gamma(n_y * m + 2) * terms.sum() / m
    print(f"MEASURED loss.bce_mean: reference cost / BCEWithLogitsLoss() mean = {ref / mean:.15g} (n_y = {n_y})")
    assert abs(n_y * mean - ref) <= n_y * bound

    opt = R.Optimizer("gd", learning_rate=0.5)
    case = Case("torch", "idiomatic", "cpu", "float64", "tanh", "sigmoid", "shallow", "gd", "full", 1)
    ref_st, _, bounds = reference_run(p0, X, Y, [np.arange(m)], "tanh", "sigmoid", [opt])
    model = Net((2, 4, 3), "tanh", "sigmoid")
    got, _ = run_steps(model, torch.optim.SGD(model.parameters(), lr=0.5), nn.BCEWithLogitsLoss(), p0, X, Y,
                       [np.arange(m)], "sigmoid")
    results = compare_stages(ref_st, got, bounds, emitted(list(ref_st), "gd"), "float64")
    msg = failure_message(results, {"case": case.id + "-BCEWithLogitsLoss-mean"})
    assert "first diverging stage 'cost_stable'" in msg, msg
    r = compare_stage("dZ2", ref_st["dZ2"], n_y * got["dZ2"], n_y * bounds["dZ2"], "float64")
    assert r.ok, r.line()   # dZ2 (mean) = dZ2 (reference) / n_y


def test_cross_entropy_mean_divides_by_m_with_either_target_form():
    """conventions 'loss.ce': nn.CrossEntropyLoss()'s mean divides by m, with probability
    targets (make_loss) and class indices alike, for one-hot Y. Same bound as above."""
    X, Y = dataset("spirals")
    p0 = initial_parameters(Case("torch", output="softmax", arch="shallow"))
    _, cache = R.network_forward(X, p0, "tanh", "softmax")
    Z = cache["Z2"]
    z, y = torch.from_numpy(Z.T.copy()), torch.from_numpy(Y.T.copy())
    probs, idx = float(nn.CrossEntropyLoss()(z, y)), float(nn.CrossEntropyLoss()(z, y.argmax(1)))
    ref = float(R.cross_entropy_from_logits(Z, Y, "softmax"))
    n_y, m = Y.shape
    lse = np.log(np.exp(Z).sum(axis=0))
    bound = 2 * Precision("float64").gamma(n_y * m + 4) * (np.abs(lse).sum() + np.abs(Z * Y).sum()) / m
    print(f"MEASURED loss.ce: |probabilities - reference| = {abs(probs - ref):.3g}, "
          f"|indices - reference| = {abs(idx - ref):.3g} (bound {bound:.3g})")
    assert abs(probs - ref) <= bound and abs(idx - ref) <= bound


def test_bce_loss_clamps_log_at_minus_100_and_kills_the_saturated_gradient():
    """conventions 'loss.bce_clamp'. Two examples, z = (40, 0), y = (0, 1): sigmoid(40)
    rounds to exactly 1 in float64 (e^-40 = 4e-18 < u), so the literal cost's
    -log(1 - a) is inf; nn.BCELoss clamps that log at -100: J = (100 + ln 2) / 2. Its
    gradient through torch.sigmoid is a (1 - a) * (a - y) / max(a (1 - a), 1e-12) = 0 at
    the saturated example, where the reference's dZ = A - Y = 1."""
    z = torch.tensor([[40.0], [0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    loss = make_loss("sigmoid", "literal")(z, y)
    loss.backward()
    Z, Y = z.detach().numpy().T, y.numpy().T
    A = R.activation("sigmoid", Z)
    ref = float(R.cross_entropy(A, Y, "sigmoid"))
    dZ_ref = A - Y                          # reference.network_backward's dZ^[L]
    dZ_torch = 2 * z.grad.numpy().T         # m dJ/dZ
    print(f"MEASURED loss.bce_clamp: BCELoss J = {float(loss.detach()):.6g} where the literal cost is {ref}; "
          f"m dJ/dZ = {dZ_torch.ravel().tolist()} where the reference's dZ = {dZ_ref.ravel().tolist()}")
    assert A[0, 0] == 1.0 and ref == math.inf
    assert float(loss.detach()) == pytest.approx((100 + math.log(2)) / 2, rel=4 * U64)
    assert dZ_torch[0, 0] == 0.0 and dZ_ref[0, 0] == 1.0
    assert dZ_torch[0, 1] == pytest.approx(-0.5, rel=4 * U64) and dZ_ref[0, 1] == -0.5
    # the stable loss has neither problem: BCEWithLogitsLoss gives the finite true cost
    stable = float(make_loss("sigmoid", "stable")(z.detach(), y))
    assert stable == pytest.approx((40 + math.log1p(math.exp(-40)) + math.log(2)) / 2, rel=4 * U64)


def _lrs(scheduler_factory, n, lr0=1.2):
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr0)
    sched = scheduler_factory(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()        # no gradient: nothing moves; keeps the scheduler's call order valid
        sched.step()
    return out


def _ulps(a, b):
    # |a - b| in units in the last place of b; spacing(b) >= u |b|, so a relative
    # bound c u converts to at most c ulp
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b) / np.spacing(np.abs(b))


@pytest.mark.parametrize("schedule", ["exponential", "step", "inverse_time"])
def test_schedulers_against_the_closed_form(schedule):
    """conventions 'schedule.*'. ExponentialLR and StepLR multiply the previous rate by
    gamma (a recursive product: torch's rates equal this test's own Python loop bit for
    bit), so they drift from the reference's closed form lr0 rate^(k/steps) by up to one
    rounding per product: <= 3k ulp (gamma itself carries <= 2u). LambdaLR (inverse
    time) is lr0 * factor: <= 3 ulp from lr0 / (1 + ...)."""
    n, rate, steps, lr0 = 1000, 0.96, 10, 1.2
    o = R.Optimizer("gd", learning_rate=lr0, schedule=schedule, decay_rate=rate, decay_steps=steps)
    closed = [R.learning_rate_at(o, k) for k in range(n)]
    _, sched = C.torch_optimizer_for(o, [nn.Parameter(torch.zeros(1, dtype=torch.float64))])
    got = _lrs(lambda opt: type(sched)(opt, **_sched_args(sched)), n, lr0)
    own, lr = [], lr0
    for k in range(n):
        if schedule == "inverse_time":
            lr = lr0 * (1 / (1 + rate * (k // steps)))
        elif k > 0 and (schedule == "exponential" or k % steps == 0):
            lr = lr * (C.exponential_gamma(rate, steps) if schedule == "exponential" else rate)
        own.append(lr)
    assert got == own, "torch's schedule is no longer the recursive product / lr0 * factor"
    ulps = _ulps(got, closed)
    k = np.arange(n)
    allowed = 3 * k + 3 if schedule != "inverse_time" else np.full(n, 3.0)
    print(f"MEASURED schedule.{schedule}: torch rate vs closed form after {n} updates: max {ulps.max():.3g} ulp "
          f"(at update {int(ulps.argmax())}); at update 100: {ulps[100]:.3g} ulp")
    assert np.all(ulps <= allowed)


def _sched_args(s):
    S = torch.optim.lr_scheduler
    if isinstance(s, C.InverseTimeLR):
        return {"decay_rate": s.decay_rate, "decay_steps": s.decay_steps}
    if isinstance(s, S.StepLR):
        return {"step_size": s.step_size, "gamma": s.gamma}
    return {"gamma": s.gamma}


@pytest.mark.parametrize("schedule", ["exponential", "step"])
def test_recursive_schedule_parameter_drift_after_100_updates(schedule):
    """The recursive product's effect on the parameters: 100 full-batch gd updates at
    lr 1.2 (rate 0.96, every 10), torch against the reference, shadow-model bound."""
    o = R.Optimizer("gd", learning_rate=1.2, schedule=schedule, decay_rate=0.96, decay_steps=10)
    X, Y = dataset("planar")
    p0 = R.initialize_network((2, 4, 1))
    ref, shadow = ({k + "'": v for k, v in R.train(p, X, Y, "tanh", "sigmoid", o, 100)[0].items()}
                   for p in (p0, perturb(p0, "float64")))
    _, _, one = reference_run(p0, X, Y, [np.arange(400)], "tanh", "sigmoid", [o])
    got = run_idiomatic(p0, X, Y, [np.arange(400)] * 100, "tanh", "sigmoid", o)
    keys = ["W1'", "b1'", "W2'", "b2'"]
    results = [compare_stage(k, ref[k], got[k], SAFETY * 100 * np.max(np.abs(ref[k] - shadow[k])) + 2 * one[k],
                             "float64", factor=1.0) for k in keys]
    print(f"MEASURED schedule.{schedule}: parameters after 100 updates differ by {_max_diff(ref, got, keys):.3g}")
    assert_conforms(results, {"case": f"torch-idiomatic-gd-{schedule}-100steps"}, "the reference trajectory")


def _fma(p, lr, g):
    # the exactly rounded p - lr g (what one fused multiply-add returns): Fractions are
    # exact and int / int true division rounds correctly to float64
    return np.array([float(Fraction(a) - Fraction(lr) * Fraction(b)) for a, b in zip(p.ravel(), g.ravel())]
                    ).reshape(p.shape)


def test_sgd_update_is_one_fused_multiply_add():
    """conventions 'sgd.fma'. torch.optim.SGD's param.add_(g, alpha=-lr) rounds once
    (p - lr g exactly rounded, float64), the reference's p - lr * g twice; so plain gd
    is never bitwise equal to the reference. Measured on 10 000 + 13 values (vectorised
    loop and scalar tail) drawn from the reference's initialiser."""
    lr = 1.2
    for shape, dims in (((100, 100), (100, 100)), ((13,), (1, 13))):
        p = R.initialize_network(dims, "xavier", seed=3)["W1"].reshape(shape)
        g = R.initialize_network(dims, "xavier", seed=4)["W1"].reshape(shape)
        P = nn.Parameter(torch.from_numpy(p.copy()))
        P.grad = torch.from_numpy(g.copy())
        torch.optim.SGD([P], lr=lr).step()
        got, two = P.detach().numpy(), p - lr * g
        np.testing.assert_array_equal(got, _fma(p, lr, g))
        differ = got != two
        # exact x = p - lr g: |fma - x| <= u|x|, |two - x| <= u|lr g| + u|two|
        assert np.all(np.abs(got - two) <= U64 * (np.abs(lr * g) + 2 * np.abs(two)))
        print(f"MEASURED sgd.fma: {shape}: torch == fma(p, -lr, g) everywhere; != p - lr*g in "
              f"{differ.sum()} of {differ.size} ({differ.mean():.1%}), by up to "
              f"{np.max(np.abs(got - two) / np.spacing(np.abs(two))):.0f} ulp of the result")
        assert differ.any()


def test_zero_grad_missing_accumulates_gradients():
    """conventions 'grad.zero_grad'. Without optimizer.zero_grad() the gradient used by
    update 2 is .grad = g(step 1) + g(step 2); the adapter does not zero it for the user
    (verify must see the bug). Tensor hooks still see the step's own dZ."""
    X, Y = dataset("planar")
    p0, opt = R.initialize_network((2, 4, 1)), R.Optimizer("gd", learning_rate=1.2)
    batches = [np.arange(400)] * 2
    ref1, _, b1 = reference_run(p0, X, Y, batches[:1], "tanh", "sigmoid", [opt])
    ref2, _, b2 = reference_run(p0, X, Y, batches, "tanh", "sigmoid", [opt] * 2)
    model = Net((2, 4, 1))
    got, _ = run_steps(model, torch.optim.SGD(model.parameters(), lr=1.2), make_loss("sigmoid"), p0, X, Y,
                       batches, "sigmoid", zero_grad=False)
    for k in ("dW1", "db1", "dW2", "db2"):
        # a sum of two values within E1, E2 of exact, rounded once: E1 + E2 + u|sum|
        summed = ref1[k] + ref2[k]
        r = compare_stage(k, summed, got[k], b1[k] + b2[k] + U64 * np.abs(summed), "float64")
        assert r.ok, r.line()
    detected = compare_stage("dW1", ref2["dW1"], got["dW1"], b2["dW1"], "float64")
    print(f"MEASURED grad.zero_grad: without zero_grad, dW1 of update 2 is {detected.ratio:.3g} x its bound "
          f"from the reference's and equals the sum of updates 1 and 2")
    assert not detected.ok
    for k in ("dZ2", "dZ1"):
        assert compare_stage(k, ref2[k], got[k], b2[k], "float64").ok


# ---------------------------------------------------------------- the mapping functions

ROUND_TRIP = [R.Optimizer("gd", learning_rate=0.5),
              R.Optimizer("momentum", learning_rate=0.5, beta=0.8, momentum_form="heavy_ball"),
              R.Optimizer("adam", learning_rate=0.01, beta1=0.8, beta2=0.99, epsilon=1e-7),
              R.Optimizer("gd", learning_rate=0.5, schedule="exponential", decay_rate=0.9),
              R.Optimizer("adam", learning_rate=0.01, schedule="step", decay_rate=0.5, decay_steps=3),
              R.Optimizer("gd", learning_rate=0.5, schedule="inverse_time", decay_rate=0.1, decay_steps=2)]


@pytest.mark.parametrize("optimizer", ROUND_TRIP, ids=lambda o: f"{o.name}-{o.momentum_form}-{o.schedule}")
def test_reference_optimizer_for_reads_back_torch_optimizer_for(optimizer):
    """Also after some updates: a scheduler has changed group["lr"] by then, the
    reference optimiser still starts from the base rate (initial_lr)."""
    params = [nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    opt, sched = C.torch_optimizer_for(optimizer, params)
    assert C.reference_optimizer_for(opt, sched) == optimizer
    for _ in range(4):
        opt.step()
        if sched is not None:
            sched.step()
    assert C.reference_optimizer_for(opt, sched) == optimizer


def test_reference_optimizer_for_reads_sgd_momentum_as_heavy_ball():
    params = [nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    opt, _ = C.torch_optimizer_for(EMA, params)   # the course's EMA, expressed in torch
    assert opt.param_groups[0]["lr"] == LR * (1 - BETA)
    assert C.reference_optimizer_for(opt) == HEAVY.with_(learning_rate=LR * (1 - BETA))


UNSUPPORTED = [
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), "nesterov=True"),
    (lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=1e-4), "weight_decay=0.0001"),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.9), "first step is undampened"),
    (lambda p: torch.optim.Adam(p, lr=0.1, amsgrad=True), "amsgrad=True"),
    (lambda p: torch.optim.AdamW(p, lr=0.1), "weight_decay=0.01"),
    (lambda p: torch.optim.RMSprop(p, lr=0.1), "RMSprop has no reference equivalent"),
]


@pytest.mark.parametrize("make,message", UNSUPPORTED, ids=[m for _, m in UNSUPPORTED])
def test_reference_optimizer_for_rejects_what_the_reference_lacks(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        C.reference_optimizer_for(make([nn.Parameter(torch.zeros(2, dtype=torch.float64))]))


def test_unexpressible_settings_raise():
    p = [nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    with pytest.raises(ValueError, match="'uncorrected'.*no torch.optim equivalent"):
        C.torch_optimizer_for(R.Optimizer("adam", adam_epsilon="uncorrected"), p)
    opt = torch.optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="LambdaLR has no reference schedule"):
        C.reference_optimizer_for(opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0))


def test_conventions_table_is_complete_and_keyed():
    keys = [c.key for c in C.CONVENTIONS]
    assert len(keys) == len(set(keys))
    for key in ("layout.weight", "layout.bias", "layout.examples", "momentum.ema", "momentum.heavy_ball",
                "momentum.dampening", "adam.state", "adam.uncorrected", "loss.bce_mean", "loss.ce",
                "loss.bce_clamp", "schedule.exponential", "schedule.step", "schedule.inverse_time",
                "schedule.constant", "sgd.fma", "grad.zero_grad", "grad.dZ_scale"):
        row = C.convention(key)
        assert row.reference and row.library and row.mapping
    assert C.markdown_table().count("\n") == len(keys) + 1
    with pytest.raises(KeyError, match="no convention 'nope'"):
        C.convention("nope")
