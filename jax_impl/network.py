"""The L-layer network: initialisation, forward (caching every stage), backward by the
manual formulas and by ``jax.grad``. JAX mirror of ``reference.network`` (keys, shapes
and formulas in its docstring).

Everything computes in the dtype of its inputs; nothing is upcast (x64 is enabled so
that float64 exists at all, and float32 inputs stay float32). Initial weights are the
reference's float64 draws, cast and moved: this module never draws random numbers.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import reference.network as _ref
from reference.network import num_layers

from reference.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from ._convert import tree_from_numpy
from .activations import activation, activation_grad, check_activation
from .costs import cross_entropy, cross_entropy_from_logits
from reference.costs import check_cost, unknown_cost


def initialize_network(layer_dims, init="article", seed=1, dtype=np.float64, device="cpu"):
    """The reference's draws (``reference.initialize_network``) as jax arrays."""
    return tree_from_numpy(_ref.initialize_network(layer_dims, init, seed, dtype),
                           device=device)


def network_forward(X, parameters, hidden="tanh", output="sigmoid"):
    """Z^[l] = W^[l] A^[l-1] + b^[l], A^[l] = g(Z^[l]); returns (AL, cache)."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    L = num_layers(parameters)
    cache = {"A0": X}
    A = X
    for l in range(1, L + 1):
        Z = parameters[f"W{l}"] @ A + parameters[f"b{l}"]
        A = activation(output if l == L else hidden, Z)
        cache[f"Z{l}"], cache[f"A{l}"] = Z, A
    return A, cache


def _matmul_nt(a, b):
    """a @ b.T as one dot_general contracting both operands' last axis (m). The same sums
    as ``a @ b.T``, but XLA:CPU runs ``dZ @ A.T`` with a one-row dZ (the output layer's
    dW) as a strided matrix-vector product: 375 ms against 18 ms this way for a 1 x 100 000
    by 1024 x 100 000 float32 product (measured), the slowest op of a 2-1024-1 step."""
    return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())))


def network_backward(parameters, cache, X, Y, hidden="tanh", output="sigmoid"):
    """Backprop by the formulas of ``reference.network.network_backward``; same keys,
    dZ = m dJ/dZ, dA = m dJ/dA, dW = dJ/dW, db = dJ/db."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    L = num_layers(parameters)
    m = X.shape[1]
    grads = {}
    dZ = cache[f"A{L}"] - Y
    for l in range(L, 0, -1):
        A_prev = cache[f"A{l - 1}"]
        grads[f"dZ{l}"] = dZ
        grads[f"dW{l}"] = _matmul_nt(dZ, A_prev) / m
        grads[f"db{l}"] = jnp.sum(dZ, axis=1, keepdims=True) / m
        dA = parameters[f"W{l}"].T @ dZ
        grads[f"dA{l - 1}"] = dA
        if l > 1:
            dZ = dA * activation_grad(hidden, cache[f"Z{l - 1}"], cache[f"A{l - 1}"])
    return grads


def _probed_cost(parameters, probes, X, Y, hidden, output, cost):
    """The cost, with a zero probe added to A0 and to every Z^[l], A^[l] (l < L): the
    gradient w.r.t. a probe is the gradient w.r.t. that stage (x + 0 == x, so the
    value is unchanged)."""
    L = num_layers(parameters)
    A = X + probes["A0"]
    for l in range(1, L + 1):
        Z = parameters[f"W{l}"] @ A + parameters[f"b{l}"] + probes[f"Z{l}"]
        A = activation(output if l == L else hidden, Z)
        if l < L:
            A = A + probes[f"A{l}"]
    if cost == "stable":
        return cross_entropy_from_logits(Z, Y, output)
    if cost == "literal":
        return cross_entropy(A, Y, output)
    raise unknown_cost(cost)


def cost_and_gradients_autodiff(parameters, X, Y, hidden="tanh", output="sigmoid",
                                cost="stable"):
    """(J, grads) with grads as in ``network_backward_autodiff``."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    check_cost(cost)
    J, grads = _cost_and_gradients(parameters, X, Y, hidden, output, cost)
    # jit returns dicts with sorted keys; restore network_backward's order
    return J, {k: grads[k] for k in _grad_keys(num_layers(parameters))}


def _grad_keys(L):
    return [k for l in range(L, 0, -1) for k in (f"dZ{l}", f"dW{l}", f"db{l}", f"dA{l - 1}")]


# Under jit: eager jax.grad re-traces the cost on every call and compiles each of its
# ~130 primitives separately for every new shape/dtype (8.8 s for the first 2-4-3 Adam
# step, measured); jitted, it is traced and compiled once per shapes/dtypes/activations.
# The numerics are XLA's fused ones, as inside any user's jax.jit.
@partial(jax.jit, static_argnames=("hidden", "output", "cost"))
def _cost_and_gradients(parameters, X, Y, hidden, output, cost):
    L = num_layers(parameters)
    m = X.shape[1]
    probes = {"A0": jnp.zeros_like(X)}
    for l in range(1, L + 1):
        shape = (parameters[f"W{l}"].shape[0], m)
        probes[f"Z{l}"] = jnp.zeros(shape, dtype=X.dtype)
        if l < L:
            probes[f"A{l}"] = jnp.zeros(shape, dtype=X.dtype)
    J, (dP, dprobe) = jax.value_and_grad(_probed_cost, argnums=(0, 1))(
        parameters, probes, X, Y, hidden, output, cost)
    grads = {}
    for l in range(L, 0, -1):
        grads[f"dZ{l}"] = m * dprobe[f"Z{l}"]
        grads[f"dW{l}"] = dP[f"W{l}"]
        grads[f"db{l}"] = dP[f"b{l}"]
        grads[f"dA{l - 1}"] = m * dprobe[f"A{l - 1}"]
    return J, grads


def network_backward_autodiff(parameters, X, Y, hidden="tanh", output="sigmoid",
                              cost="stable"):
    """``jax.grad`` of the chosen cost (stable: from the logits Z^[L]; literal: from
    A^[L]), in ``network_backward``'s keys and scaling: dWl, dbl = dJ/dW, dJ/db;
    dZl = m dJ/dZ^[l]; dA{l-1} = m dJ/dA^[l-1] (dA0 = m dJ/dX)."""
    return cost_and_gradients_autodiff(parameters, X, Y, hidden, output, cost)[1]


def predict(parameters, X, hidden="tanh", output="sigmoid"):
    """Binary: A^[L] > 0.5 (bool, (1, m)); softmax: argmax over rows (int, (m,))."""
    AL, _ = network_forward(X, parameters, hidden, output)
    if output == "sigmoid":
        return AL > 0.5
    return jnp.argmax(AL, axis=0)
