"""One training step and the training loop: JAX mirror of ``reference.training``.

``train`` replays ``reference.batch_order`` epoch by epoch, step by step, each step one
jax.jit-compiled ``train_step``; ``train_scan`` is the whole-loop-compiled batch-GD variant for speed.
"""
from functools import partial

import jax
import jax.numpy as jnp

from reference.data import batch_order
from reference.training import NonFiniteError  # the same class: one except clause

from .costs import cross_entropy, cross_entropy_from_logits
from .network import (_grad_keys, cost_and_gradients_autodiff, network_backward,
                      network_forward)
from reference.optim import Optimizer
from .optim import init_optimizer_state, optimizer_step
from reference.costs import unknown_cost


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
    return {k: float(jnp.linalg.norm(v)) for k, v in grads.items() if k[:2] in ("dW", "db")}


def first_non_finite(arrays):
    """Name of the first entry of a dict holding a nan/inf, else None."""
    for k, v in arrays.items():
        if not bool(jnp.all(jnp.isfinite(v))):
            return k
    return None


def _step(parameters, state, X, Y, hidden, output, optimizer, cost, grad_path):
    if grad_path == "manual":
        return train_step(parameters, state, X, Y, hidden, output, optimizer, cost)
    J, grads = cost_and_gradients_autodiff(parameters, X, Y, hidden, output, cost)
    parameters, state = optimizer_step(parameters, grads, state, optimizer)
    return parameters, state, J, grads


# One jit for ``train`` and every ``make_train_step(compiled=True)``: equal static
# arguments share its compile cache. ``train`` uses it (the fastest correct path): eager,
# each new shape compiles every primitive of the step separately (20 Adam steps: ~9 s
# the first time); jitted, one compile per batch shape (full batches, the shorter last).
_step_jit = jax.jit(_step, static_argnames=("hidden", "output", "optimizer", "cost",
                                            "grad_path"))


def _in_order(out, parameters, state):
    """jit returns dicts with sorted keys; restore the eager (reference) key order."""
    new_params, new_state, J, grads = out
    return ({k: new_params[k] for k in parameters}, {k: new_state[k] for k in state}, J,
            {k: grads[k] for k in _grad_keys(len(parameters) // 2)})


def train(parameters, X, Y, hidden="tanh", output="sigmoid", optimizer=Optimizer(),
          num_epochs=1, batch_size=None, seed=0, cost="stable", callback=None,
          check_finite=True):
    """Runs num_epochs epochs; returns (parameters, state, costs) with costs[k] the cost
    of the batch seen by update k (before that update), a 1-D array in the data's dtype.
    ``callback(k, cost, grads)`` is called after each update (progress, norms)."""
    state = init_optimizer_state(parameters, optimizer)
    costs = []
    k = 0  # state["t"] is a jax array; a Python count avoids a device sync per step
    for epoch in range(num_epochs):
        for idx in batch_order(X.shape[1], batch_size, seed, epoch):
            if len(idx) == X.shape[1]:
                Xb, Yb = X, Y  # batch GD: the natural order, no gather needed
            else:
                Xb, Yb = X[:, idx], Y[:, idx]
            parameters, state, J, grads = _in_order(
                _step_jit(parameters, state, Xb, Yb, hidden=hidden, output=output,
                          optimizer=optimizer, cost=cost, grad_path="manual"),
                parameters, state)
            if check_finite:
                bad = ("cost" if not bool(jnp.isfinite(J)) else first_non_finite(grads)
                       or first_non_finite(parameters))
                if bad:
                    raise NonFiniteError(k, bad)
            costs.append(J)
            if callback is not None:
                callback(k, J, grads)
            k += 1
    return parameters, state, jnp.asarray(costs, dtype=X.dtype)


@partial(jax.jit, static_argnames=("hidden", "output", "optimizer", "num_steps", "cost"))
def _train_scan(parameters, X, Y, hidden, output, optimizer, num_steps, cost):
    def body(carry, _):
        parameters, state = carry
        parameters, state, J, _ = train_step(parameters, state, X, Y, hidden, output,
                                             optimizer, cost)
        return (parameters, state), J

    state = init_optimizer_state(parameters, optimizer)
    (parameters, state), costs = jax.lax.scan(body, (parameters, state), None,
                                              length=num_steps)
    return parameters, state, costs


def train_scan(parameters, X, Y, hidden="tanh", output="sigmoid", optimizer=Optimizer(),
               num_steps=1, cost="stable"):
    """num_steps batch-GD updates on all of (X, Y), the whole loop compiled (jax.jit
    around lax.scan, parameters and optimiser state as the carry). Returns
    (parameters, state, costs), costs[k] the cost before update k, like ``train`` with
    batch_size None. Compiled once per shapes/dtypes and static arguments."""
    new_params, state, costs = _train_scan(parameters, X, Y, hidden, output, optimizer,
                                           num_steps, cost)
    # jit returns dicts with sorted keys; restore the reference's order
    order = init_optimizer_state(parameters, optimizer)
    return ({k: new_params[k] for k in parameters}, {k: state[k] for k in order}, costs)
