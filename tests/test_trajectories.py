"""Multi-step training on every mirror against the reference, with the shadow-trajectory
model of netparity.trajectory, and the article's 10 000-step result across backends.

Unlike the conformance matrix, these run each mirror's own ``train`` loop, so they also
check that a mirror replays the reference's mini-batch order."""
import itertools

import numpy as np
import pytest

import reference as R
from conftest import backend_params
from netparity.backends import get_backend
from netparity.compare import assert_conforms, compare_stage
from netparity.stages import expected
from netparity.trajectory import reference_trajectory

OPTIMIZERS = {
    "gd": R.Optimizer("gd", learning_rate=1.2),
    "momentum": R.Optimizer("momentum", learning_rate=0.5, beta=0.9),
    "adam": R.Optimizer("adam", learning_rate=0.01, schedule="inverse_time", decay_rate=0.01),
}
# (epochs, batch size): 150 full-batch updates, or 15 epochs of 7 mini-batches of <= 64
BATCHES = {"full": (150, None), "mini": (15, 64)}


@pytest.mark.parametrize("dtype,opt,batch", list(itertools.product(("float64", "float32"), OPTIMIZERS, BATCHES)),
                         ids=lambda v: v)
@pytest.mark.parametrize("backend", backend_params(reference=False))
def test_training_trajectory_follows_reference(backend, dtype, opt, batch):
    B = get_backend(backend)
    optimizer = OPTIMIZERS[opt]
    epochs, batch_size = BATCHES[batch]
    tr = reference_trajectory((2, 4, 1), "article", "planar", dtype, "tanh", "sigmoid", opt,
                              optimizer, epochs, batch_size)
    X, Y = R.load_planar_dataset()
    params = B.tree_from_numpy(R.initialize_network([2, 4, 1]), dtype)
    params, _, costs = B.train(params, B.from_numpy(X, dtype), B.from_numpy(Y, dtype), "tanh",
                               "sigmoid", optimizer, epochs, batch_size, seed=0, check_finite=False)
    one_step = expected(dtype, "tanh", "sigmoid", "shallow", "gd", "full", 1).bounds
    ctx = {"case": f"{backend}-{dtype}-{opt}-{batch}-train-{len(tr.costs)}steps"}
    results = [compare_stage("costs", tr.costs.astype(dtype), B.to_numpy(costs),
                             tr.cost_bound(2 * one_step["cost_stable"]), dtype, factor=1.0)]
    got = B.tree_to_numpy(params)
    results += [compare_stage(k + "'", tr.params[k], got[k], tr.param_bound(k, 2 * one_step[k + "'"]),
                              dtype, factor=1.0) for k in ("W1", "b1", "W2", "b2")]
    assert_conforms(results, ctx, against="the reference trajectory (shadow model)")


@pytest.mark.parametrize("backend", backend_params(reference=False))
def test_article_model_predictions_equal_reference(backend):
    """The article's headline run (n_h = 4, 10 000 iterations, lr 1.2, float64) through
    each mirror's article API: same predictions and accuracy as the reference."""
    B = get_backend(backend)
    X, Y = R.load_planar_dataset()
    ref_params, _ = R.model(X, Y, X, Y, print_cost=False)
    ref_pred = R.predict(ref_params, X)
    Xb, Yb = B.from_numpy(X), B.from_numpy(Y)
    params, _ = B.model(Xb, Yb, Xb, Yb, print_cost=False)
    pred = B.to_numpy(B.predict(params, Xb))
    assert pred.dtype == np.bool_ and pred.shape == (1, 400)
    acc, ref_acc = float((pred == Y).mean()), float((ref_pred == Y).mean())
    assert ref_acc >= 0.89
    assert acc == ref_acc, f"{backend}: accuracy {acc} vs reference {ref_acc}"
    assert np.array_equal(pred, ref_pred), f"{backend}: {np.sum(pred != ref_pred)} predictions differ"


def test_torch_optimize_returns_parameters_autograd_can_use():
    """torch's optimize runs under inference_mode (its fastest eager path); what it returns
    must still be ordinary tensors: a gradient through them equals the manual one."""
    import torch
    T = get_backend("torch")
    X, Y = R.load_planar_dataset(m=40)
    Xt, Yt = T.from_numpy(X), T.from_numpy(Y)
    params, _ = T.optimize(T.initialize_parameters(2, 4, 1), Xt, Yt, num_iterations=3)
    assert not any(v.is_inference() for v in params.values())
    W1 = params["W1"].clone().requires_grad_(True)
    A2, _ = T.forward_propagation(Xt, {**params, "W1": W1})
    m = X.shape[1]
    J = -(Yt * torch.log(A2) + (1 - Yt) * torch.log(1 - A2)).sum() / m
    J.backward()
    _, cache = T.forward_propagation(Xt, params)
    manual = T.backward_propagation(params, cache, Xt, Yt)["dW1"]
    np.testing.assert_allclose(W1.grad.numpy(), manual.numpy(), rtol=1e-12, atol=1e-15)
