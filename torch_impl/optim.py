"""Optimisers as pure functions; the torch mirror of reference/optim.py, whose docstring
gives the conventions (momentum_form, adam_epsilon, schedules). ``Optimizer`` and
``learning_rate_at`` are the reference's own (shared, not re-implemented).

The update is split in two so that a compiled step can reuse it: ``step_scalars``
computes, in Python floats, everything that depends on the update counter t (a Python
int: tracing it would recompile every step), and ``apply_update`` does the tensor work.
"""
import math

import torch

from reference.optim import learning_rate_at


def parameter_names(parameters):
    return list(parameters.keys())


def init_optimizer_state(parameters, optimizer):
    """Zero buffers shaped like the parameters (same dtype and device), plus t = 0."""
    state = {"t": 0}
    if optimizer.name in ("momentum", "adam"):
        for k, p in parameters.items():
            state[f"vd{k}"] = torch.zeros_like(p)
    if optimizer.name == "adam":
        for k, p in parameters.items():
            state[f"sd{k}"] = torch.zeros_like(p)
    return state


def step_scalars(optimizer, k):
    """Python floats of update number k (0-based): lr, and for Adam the bias
    corrections c1 = 1 - beta1^t, c2 = 1 - beta2^t (t = k + 1) or, uncorrected, the
    folded rate lr_t = lr sqrt(c2) / c1, computed exactly as the reference does."""
    t = k + 1
    lr = learning_rate_at(optimizer, k)
    if optimizer.name != "adam":
        return {"lr": lr}
    c1, c2 = 1 - optimizer.beta1 ** t, 1 - optimizer.beta2 ** t
    if optimizer.adam_epsilon == "corrected":
        return {"lr": lr, "c1": c1, "c2": c2}
    return {"lr_t": lr * math.sqrt(c2) / c1}


def apply_update(parameters, grads, state, optimizer, scalars):
    """The tensor part of ``optimizer_step``: returns (new parameters, new buffers).
    ``scalars`` (from step_scalars) are Python floats, or 0-d tensors in the parameters'
    dtype inside a compiled step; either way no arithmetic is upcast."""
    new_params, new_state = {}, {}
    for k, p in parameters.items():
        g = grads[f"d{k}"]
        if optimizer.name == "gd":
            new_params[k] = p - scalars["lr"] * g
        elif optimizer.name == "momentum":
            beta = optimizer.beta
            if optimizer.momentum_form == "ema":
                v = beta * state[f"vd{k}"] + (1 - beta) * g
            else:
                v = beta * state[f"vd{k}"] + g
            new_state[f"vd{k}"] = v
            new_params[k] = p - scalars["lr"] * v
        else:
            b1, b2, eps = optimizer.beta1, optimizer.beta2, optimizer.epsilon
            v = b1 * state[f"vd{k}"] + (1 - b1) * g
            s = b2 * state[f"sd{k}"] + (1 - b2) * (g * g)
            new_state[f"vd{k}"], new_state[f"sd{k}"] = v, s
            if optimizer.adam_epsilon == "corrected":
                new_params[k] = p - scalars["lr"] * (v / scalars["c1"]) / (torch.sqrt(s / scalars["c2"]) + eps)
            else:
                new_params[k] = p - scalars["lr_t"] * v / (torch.sqrt(s) + eps)
    return new_params, new_state


def optimizer_step(parameters, grads, state, optimizer):
    """One update of every parameter P with ``grads["d" + P]``; new dicts out, inputs
    untouched (reference.optim.optimizer_step)."""
    new_params, buffers = apply_update(parameters, grads, state, optimizer,
                                       step_scalars(optimizer, state["t"]))
    return new_params, {"t": state["t"] + 1, **buffers}
