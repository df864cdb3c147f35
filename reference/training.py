"""One training step and the training loop, the same on every backend.

A step on a batch (Xb, Yb): forward, cost (literal or stable), backward, optimiser.
The loop replays ``data.batch_order`` epoch by epoch, so every backend sees the same
batches in the same order.
"""
import numpy as np

from .costs import COSTS, cross_entropy, cross_entropy_from_logits  # noqa: F401  COSTS: re-exported
from .data import batch_order
from .network import network_backward, network_forward
from .optim import Optimizer, init_optimizer_state, optimizer_step
from .costs import unknown_cost



class NonFiniteError(FloatingPointError):
    """Training produced nan/inf; names the update number and the stage."""

    def __init__(self, step, stage):
        super().__init__(f"non-finite value at update {step} in stage {stage!r} "
                         "(pass check_finite=False to continue anyway)")
        self.step, self.stage = step, stage


def compute_stage_cost(AL, cache, Y, output, cost):
    if cost == "stable":
        # the cache holds A0 and (Z, A) per layer, so it has 2L + 1 entries
        return cross_entropy_from_logits(cache[f"Z{len(cache) // 2}"], Y, output)
    if cost == "literal":
        return cross_entropy(AL, Y, output)
    raise unknown_cost(cost)


def train_step(parameters, state, X, Y, hidden="tanh", output="sigmoid",
               optimizer=Optimizer(), cost="stable"):
    """Returns (parameters, state, cost, grads) after one update on (X, Y)."""
    AL, cache = network_forward(X, parameters, hidden, output)
    J = compute_stage_cost(AL, cache, Y, output, cost)
    grads = network_backward(parameters, cache, X, Y, hidden, output)
    parameters, state = optimizer_step(parameters, grads, state, optimizer)
    return parameters, state, J, grads


def gradient_norms(grads):
    """Frobenius norm of every dW/db, to spot exploding or vanishing gradients."""
    return {k: float(np.linalg.norm(v)) for k, v in grads.items() if k[:2] in ("dW", "db")}


def first_non_finite(arrays):
    """Name of the first entry of a dict holding a nan/inf, else None."""
    for k, v in arrays.items():
        if not np.all(np.isfinite(v)):
            return k
    return None


def train(parameters, X, Y, hidden="tanh", output="sigmoid", optimizer=Optimizer(),
          num_epochs=1, batch_size=None, seed=0, cost="stable", callback=None,
          check_finite=True):
    """Runs num_epochs epochs; returns (parameters, state, costs) with costs[k] the cost
    of the batch seen by update k (before that update), a 1-D array in the data's dtype.
    ``callback(k, cost, grads)`` is called after each update (progress, norms)."""
    state = init_optimizer_state(parameters, optimizer)
    costs = []
    for epoch in range(num_epochs):
        for idx in batch_order(X.shape[1], batch_size, seed, epoch):
            k = state["t"]
            parameters, state, J, grads = train_step(parameters, state, X[:, idx], Y[:, idx],
                                                     hidden, output, optimizer, cost)
            if check_finite:
                bad = ("cost" if not np.isfinite(J) else first_non_finite(grads)
                       or first_non_finite(parameters))
                if bad:
                    raise NonFiniteError(k, bad)
            costs.append(J)
            if callback is not None:
                callback(k, J, grads)
    return parameters, state, np.array(costs, dtype=X.dtype)
