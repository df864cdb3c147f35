"""The mirrors' whole-loop compiled paths against the reference: ``train_scan`` (many
full-batch updates as one compiled program) and ``optimize(compiled=True)`` where a
mirror's optimize offers it (torch's torch.compile'd torch.scan; JAX's optimize is one
program already).

These paths are where the speed comes from (bench/), and they run different code from
the eager step - fused loops, another summation order, per-update scalars computed on
the host - so each is checked here value by value: the costs of every update and the
final parameters against the reference's ``train`` under the shadow-trajectory bound of
netparity.trajectory (as tests/test_trajectories.py does for ``train``), the optimiser
state's counter exactly, and the article run's printed costs.

Each compiled configuration costs one compile (torch: 10-25 s on the shared 2-core
machine), so the default run holds one case per path and the rest are marked slow.
"""
import inspect
import re

import numpy as np
import pytest

import reference as R
from netparity.backends import REGISTRY, get_backend, import_error
from netparity.compare import assert_conforms, compare_stage
from netparity.stages import expected, expected_for
from netparity.trajectory import reference_trajectory

OPTIMIZERS = {
    "gd": R.Optimizer("gd", learning_rate=1.2),
    "momentum": R.Optimizer("momentum", learning_rate=0.5, beta=0.9),
    "adam": R.Optimizer("adam", learning_rate=0.01, schedule="inverse_time", decay_rate=0.01),
}
STEPS = 150  # full-batch updates, as in test_trajectories
DEFAULT = {("float32", "adam")}  # scalars per update, buffers and costs: the most code


def _mirrors_with(attr, keyword=None):
    """Mirrors offering ``attr`` (and ``keyword`` among its parameters); one that does not
    import is a skip that says why."""
    out = []
    for name, spec in REGISTRY.items():
        if not spec.mirror:
            continue
        reason = import_error(name)
        if reason:
            out.append(pytest.param(name, marks=pytest.mark.skip(
                reason=f"backend {name!r} does not import here: {reason}")))
            continue
        fn = getattr(get_backend(name), attr, None)
        if fn is None or (keyword and keyword not in inspect.signature(fn).parameters):
            continue
        out.append(name)
    return out


def _cases():
    return [pytest.param(d, o, marks=[] if (d, o) in DEFAULT else [pytest.mark.slow], id=f"{d}-{o}")
            for d in ("float64", "float32") for o in OPTIMIZERS]


@pytest.mark.compiled
@pytest.mark.parametrize("dtype, opt", _cases())
@pytest.mark.parametrize("backend", _mirrors_with("train_scan"))
def test_train_scan_follows_the_reference(backend, dtype, opt):
    B = get_backend(backend)
    optimizer = OPTIMIZERS[opt]
    tr = reference_trajectory((2, 4, 1), "article", "planar", dtype, "tanh", "sigmoid", opt,
                              optimizer, STEPS, None)
    X, Y = R.load_planar_dataset()
    params = B.tree_from_numpy(R.initialize_network([2, 4, 1]), dtype)
    params, state, costs = B.train_scan(params, B.from_numpy(X, dtype), B.from_numpy(Y, dtype),
                                        "tanh", "sigmoid", optimizer, num_steps=STEPS)
    assert_follows_trajectory(B, tr, params, state, costs, dtype,
                              f"{backend}-{dtype}-{opt}-train_scan-{STEPS}steps")


def assert_follows_trajectory(B, tr, params, state, costs, dtype, case):
    """Every update's cost and the final parameters within the shadow-trajectory bound of
    the reference's run ``tr``, and the step counter exactly."""
    one_step = expected(dtype, "tanh", "sigmoid", "shallow", "gd", "full", 1).bounds
    got = B.tree_to_numpy(params)
    results = [compare_stage("costs", tr.costs.astype(dtype), B.to_numpy(costs),
                             tr.cost_bound(2 * one_step["cost_stable"]), dtype, factor=1.0),
               compare_stage("t'", len(tr.costs), int(B.to_numpy(state["t"])), 0.0, None)]
    results += [compare_stage(k + "'", tr.params[k], got[k], tr.param_bound(k, 2 * one_step[k + "'"]),
                              dtype, factor=1.0) for k in ("W1", "b1", "W2", "b2")]
    assert list(got) == ["W1", "b1", "W2", "b2"]
    assert_conforms(results, {"case": case}, against="the reference trajectory (shadow model)")


@pytest.mark.parametrize("device", ["cpu-replayed", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("dtype, opt", [pytest.param(d, o, id=f"{d}-{o}", marks=[] if o == "adam" else [pytest.mark.slow])
                                        for d in ("float64", "float32") for o in OPTIMIZERS])
def test_graphed_updates_follow_the_reference(dtype, opt, device):
    """torch's CUDA-graph loop (training.graphed_updates: one captured update replayed):
    on a CUDA device the real capture; on the CPU the same static-tensor code with the
    update replayed eagerly (the counter, the scalar table, the in-place write-back)."""
    torch = pytest.importorskip("torch", reason="torch not installed")
    B = get_backend("torch")
    from torch_impl.training import graphed_updates
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dev, capture = ("cuda", None) if device == "cuda" else ("cpu", lambda fn: fn)
    optimizer = OPTIMIZERS[opt]
    tr = reference_trajectory((2, 4, 1), "article", "planar", dtype, "tanh", "sigmoid", opt,
                              optimizer, STEPS, None)
    X, Y = R.load_planar_dataset()
    params = B.tree_from_numpy(R.initialize_network([2, 4, 1]), dtype, dev)
    state = B.init_optimizer_state(params, optimizer)
    params, state, costs = graphed_updates(params, state, B.from_numpy(X, dtype, dev),
                                           B.from_numpy(Y, dtype, dev), "tanh", "sigmoid",
                                           optimizer, num_steps=STEPS, capture=capture)
    assert_follows_trajectory(B, tr, params, state, costs, dtype,
                              f"torch-{device}-{dtype}-{opt}-graphed-{STEPS}steps")


def test_graphed_updates_refuse_cpu_tensors_without_a_capture():
    torch = pytest.importorskip("torch", reason="torch not installed")
    from torch_impl.training import graphed_updates
    p = {"W1": torch.zeros(4, 2, dtype=torch.float64)}
    with pytest.raises(ValueError, match="CUDA graphs need CUDA tensors; X is on cpu"):
        graphed_updates(p, {"t": 0}, torch.zeros(2, 3, dtype=torch.float64),
                        torch.zeros(1, 3, dtype=torch.float64))


ITERATIONS = 1001  # printed at 0 and 1000; compiled in a run of 1000 and a single update


@pytest.mark.compiled
@pytest.mark.parametrize("backend", _mirrors_with("optimize", keyword="compiled"))
def test_compiled_optimize_follows_the_reference(backend, capsys):
    """optimize(compiled=True, print_cost=True): the printed costs (0, 1000) and the final
    parameters against the reference's optimize, under the shadow-trajectory bound; the
    parameters come back as fresh tensors in the article's key order."""
    B = get_backend(backend)
    X, Y = R.load_planar_dataset()
    ref_params, ref_costs = R.optimize(R.initialize_parameters(2, 4, 1), X, Y, ITERATIONS,
                                       print_cost=True)
    capsys.readouterr()
    start = B.initialize_parameters(2, 4, 1)
    params, costs = B.optimize(start, B.from_numpy(X), B.from_numpy(Y), ITERATIONS,
                               print_cost=True, compiled=True)
    printed = capsys.readouterr().out
    assert list(params) == ["W1", "b1", "W2", "b2"]
    assert all(params[k] is not start[k] for k in params)
    tr = reference_trajectory((2, 4, 1), "article", "planar", "float64", "tanh", "sigmoid", "gd",
                              R.Optimizer("gd", learning_rate=1.2), ITERATIONS, None)
    one_step = expected("float64", "tanh", "sigmoid", "shallow", "gd", "full", 1).bounds
    steps = [0, 1000]
    cost_bound = tr.cost_bound(2 * one_step["cost_literal"])[steps]
    got = B.tree_to_numpy(params)
    results = [compare_stage("costs", np.array(ref_costs), np.array(costs), cost_bound, "float64",
                             factor=1.0)]
    results += [compare_stage(k + "'", ref_params[k], got[k],
                              tr.param_bound(k, 2 * one_step[k + "'"]), "float64", factor=1.0)
                for k in ("W1", "b1", "W2", "b2")]
    lines = re.findall(r"^Cost after iteration (\d+): (-?\d+\.\d{6})$", printed, re.M)
    results.append(compare_stage("printed iterations", np.array(steps),
                                 np.array([int(i) for i, _ in lines]), 0.0, None))
    assert_conforms(results, {"case": f"{backend}-optimize-compiled-{ITERATIONS}"},
                    against="the reference's optimize (shadow-trajectory bound)")


@pytest.mark.compiled
@pytest.mark.parametrize("backend", _mirrors_with("train_scan"))
def test_train_scan_with_a_wide_layer_follows_the_reference(backend):
    """2-160-1: W1 has 320 elements, more than torch's network.SMALL_WEIGHTS, so inside the
    compiled loop its products are BLAS calls, one of them on the data X itself (dW1 =
    dZ1 X^T); three float64 updates against the reference under the a-priori bounds of
    tolerance.py carried through the steps (netparity.stages.expected_for)."""
    B = get_backend(backend)
    dims, steps = (2, 160, 1), 3
    X, Y = R.load_planar_dataset()
    p0 = R.initialize_network(list(dims), init="xavier")
    gd = R.Optimizer("gd", learning_rate=0.1)
    exp = expected_for(p0, X, Y, [np.arange(X.shape[1])] * steps, "tanh", "sigmoid", gd, "float64")
    params, state, costs = B.train_scan(B.tree_from_numpy(p0), B.from_numpy(X), B.from_numpy(Y),
                                        "tanh", "sigmoid", gd, num_steps=steps)
    got = B.tree_to_numpy(params)
    results = [compare_stage("costs", np.array(exp.costs_ref), B.to_numpy(costs),
                             np.array(exp.costs_bound), "float64")]
    results += [compare_stage(k + "'", exp.ref[k + "'"], got[k], exp.bounds[k + "'"], "float64")
                for k in ("W1", "b1", "W2", "b2")]
    assert_conforms(results, {"case": f"{backend}-float64-2x160x1-gd-train_scan-{steps}steps"})


@pytest.mark.parametrize("compiling", [True, False])
def test_torch_fused_products_up_to_small_weights(compiling, monkeypatch):
    """torch's network.weight_product / weight_t_product: while torch.compile traces
    (torch.compiler.is_compiling()), a W of up to SMALL_WEIGHTS = 256 elements is
    multiplied as a broadcast product and a sum, a larger one (and every W outside a
    compile) by W @ A; both give W A and W^T dZ, to float64 rounding (hand-written sums)."""
    if import_error("torch"):
        pytest.skip(f"torch does not import here: {import_error('torch')}")
    import torch
    from torch_impl import network
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: compiling)
    assert network._fuse(torch.zeros(16, 16)) is compiling  # 256 elements
    assert network._fuse(torch.zeros(257, 1)) is False
    rng = np.random.RandomState(0)
    W, A, dZ = rng.randn(4, 4), rng.randn(4, 3), rng.randn(4, 3)
    want = [[sum(W[i, k] * A[k, j] for k in range(4)) for j in range(3)] for i in range(4)]
    want_t = [[sum(W[k, i] * dZ[k, j] for k in range(4)) for j in range(3)] for i in range(4)]
    t = lambda x: torch.from_numpy(x)  # noqa: E731
    np.testing.assert_allclose(network.weight_product(t(W), t(A)).numpy(), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(network.weight_t_product(t(W), t(dZ)).numpy(), want_t, rtol=1e-12,
                               atol=1e-15)
