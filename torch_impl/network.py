"""The L-layer network: initialisation, forward (caching every stage), backward by the
formulas, and backward by autograd; the torch mirror of reference/network.py (keys,
shapes and conventions as documented there).

Everything computes in the dtype of its inputs; nothing is upcast. Initial weights are
the reference's float64 draws, converted: this module never draws random numbers.
"""
import numpy as np
import torch

from reference.network import initialize_network as _reference_initialize_network
from ._convert import from_numpy
from reference.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .activations import activation, activation_grad, check_activation
from .costs import cross_entropy, cross_entropy_from_logits
from reference.costs import check_cost


def num_layers(parameters):
    return len(parameters) // 2


# The three products of a layer, W A_prev, W^T dZ and dZ A_prev^T. Eager, each is one BLAS
# call (A @ B). Inside torch.compile, a product with a small weight matrix is written as a
# broadcast multiply and a sum instead: inductor then fuses it with the elementwise work
# around it into one C++ loop, where A @ B stays a separate BLAS call of its own (at
# planar 2-4-1 x 400 the five calls of a step cost more than the step's arithmetic). The
# sum runs over the contraction axis in a different order from BLAS: a rounding
# difference within the a-priori bounds (any order is, tolerance.py).
SMALL_WEIGHTS = 256  # elements of W up to which a compiled product is a fused loop


def _fuse(W):
    return torch.compiler.is_compiling() and W.numel() <= SMALL_WEIGHTS


def weight_product(W, A):
    """W (n, p) @ A (p, m) -> (n, m)."""
    if _fuse(W):
        return (W[:, :, None] * A[None, :, :]).sum(1)
    return W @ A


def weight_t_product(W, dZ):
    """W^T (p, n) @ dZ (n, m) -> (p, m)."""
    if _fuse(W):
        return (W.T[:, :, None] * dZ[None, :, :]).sum(1)
    return W.T @ dZ


def outer_product(dZ, A, W):
    """dZ (n, m) @ A^T (m, p) -> (n, p), shaped like W (the sum over the m examples runs
    along the contiguous axis of both, so the fused loop vectorises)."""
    if _fuse(W):
        return (dZ[:, None, :] * A[None, :, :]).sum(-1)
    if torch.compiler.is_compiling():
        # inside a torch.scan body A may be the data X, an input of the loop: ``X.T`` would
        # be lifted as a second input aliasing X, which torch's loop ops refuse
        return torch.matmul(dZ, A.transpose(0, 1))
    return dZ @ A.T


def initialize_network(layer_dims, init="article", seed=1, dtype=torch.float64, device="cpu"):
    """The reference's draws (float64, ``RandomState(seed)``) cast to ``dtype`` (torch or
    NumPy dtype, or a name) on ``device``."""
    parameters = _reference_initialize_network(layer_dims, init, seed, np.float64)
    return {k: from_numpy(v, dtype, device) for k, v in parameters.items()}


def network_forward(X, parameters, hidden="tanh", output="sigmoid"):
    """Z^[l] = W^[l] A^[l-1] + b^[l], A^[l] = g(Z^[l]); returns (AL, cache)."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    L = num_layers(parameters)
    cache = {"A0": X}
    A = X
    for l in range(1, L + 1):
        Z = weight_product(parameters[f"W{l}"], A) + parameters[f"b{l}"]
        A = activation(output if l == L else hidden, Z)
        cache[f"Z{l}"], cache[f"A{l}"] = Z, A
    return A, cache


def network_backward(parameters, cache, X, Y, hidden="tanh", output="sigmoid"):
    """Backprop by the formulas (reference.network.network_backward's docstring):
    dZ^[L] = A^[L] - Y, dW = dZ A_prev^T / m, db = row sums / m, dA_prev = W^T dZ,
    dZ_prev = dA_prev * g'(Z_prev). dZ and dA are m * dJ/dZ, m * dJ/dA."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    L = num_layers(parameters)
    m = X.shape[1]
    grads = {}
    dZ = cache[f"A{L}"] - Y
    for l in range(L, 0, -1):
        A_prev = cache[f"A{l - 1}"]
        grads[f"dZ{l}"] = dZ
        W = parameters[f"W{l}"]
        grads[f"dW{l}"] = outer_product(dZ, A_prev, W) / m
        grads[f"db{l}"] = torch.sum(dZ, dim=1, keepdim=True) / m
        dA = weight_t_product(W, dZ)
        grads[f"dA{l - 1}"] = dA
        if l > 1:
            dZ = dA * activation_grad(hidden, cache[f"Z{l - 1}"], cache[f"A{l - 1}"])
    return grads


def network_backward_autodiff(parameters, X, Y, hidden="tanh", output="sigmoid", cost="stable"):
    """The same dict as ``network_backward``, by torch.autograd on the chosen cost
    (stable: from ZL; literal: from AL). dZl, dA{l-1} are scaled by m to match the
    formulas' convention (dA0 = m dJ/dX); dWl, dbl are dJ/dW, dJ/db. Results detached."""
    return cost_and_autodiff_grads(parameters, X, Y, hidden, output, cost)[1]


def cost_and_autodiff_grads(parameters, X, Y, hidden="tanh", output="sigmoid", cost="stable"):
    """(J, grads) of ``network_backward_autodiff``, J detached: the step needs both."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    check_cost(cost)
    L = num_layers(parameters)
    m = X.shape[1]
    with torch.enable_grad():
        # fresh leaves: the caller's tensors are neither modified nor given a graph
        params = {k: v.detach().requires_grad_(True) for k, v in parameters.items()}
        A0 = X.detach().requires_grad_(True)
        AL, cache = network_forward(A0, params, hidden, output)
        if cost == "stable":
            J = cross_entropy_from_logits(cache[f"Z{L}"], Y, output)
        else:
            J = cross_entropy(AL, Y, output)
        names, inputs = [], []
        for l in range(L, 0, -1):
            names += [f"dZ{l}", f"dW{l}", f"db{l}", f"dA{l - 1}"]
            inputs += [cache[f"Z{l}"], params[f"W{l}"], params[f"b{l}"], cache[f"A{l - 1}"]]
        values = torch.autograd.grad(J, inputs)
    return J.detach(), {k: m * g if k[:2] in ("dZ", "dA") else g for k, g in zip(names, values)}


def cost_and_func_grads(parameters, X, Y, hidden="tanh", output="sigmoid", cost="stable"):
    """(J, grads) as ``cost_and_autodiff_grads``, by ``torch.func.grad_and_value``, which
    torch.compile traces whole (autograd.grad on intermediates breaks the graph, and the
    intermediates of a compiled region are not autograd nodes of each other). dJ/dZl and
    dJ/dA{l-1} are the gradients of zero "taps" added to Zl and A{l-1}: x + 0 is exactly x,
    so forward values are unchanged."""
    L = num_layers(parameters)
    m = X.shape[1]
    cols = (m,)
    taps = {"dA0": torch.zeros_like(X)}
    for l in range(1, L + 1):
        shape = (parameters[f"W{l}"].shape[0],) + cols
        taps[f"dZ{l}"] = X.new_zeros(shape)
        if l < L:
            taps[f"dA{l}"] = X.new_zeros(shape)

    def J_of(params, taps):
        A = X + taps["dA0"]
        for l in range(1, L + 1):
            Z = params[f"W{l}"] @ A + params[f"b{l}"] + taps[f"dZ{l}"]
            A = activation(output if l == L else hidden, Z)
            if l < L:
                A = A + taps[f"dA{l}"]
        return cross_entropy_from_logits(Z, Y, output) if cost == "stable" else cross_entropy(A, Y, output)

    (gp, gt), J = torch.func.grad_and_value(J_of, argnums=(0, 1))(parameters, taps)
    grads = {}
    for l in range(L, 0, -1):
        grads[f"dZ{l}"], grads[f"dW{l}"] = m * gt[f"dZ{l}"], gp[f"W{l}"]
        grads[f"db{l}"], grads[f"dA{l - 1}"] = gp[f"b{l}"], m * gt[f"dA{l - 1}"]
    return J, grads


def predict(parameters, X, hidden="tanh", output="sigmoid"):
    """Binary: A^[L] > 0.5 (bool, (1, m)); softmax: argmax over rows (int64, (m,))."""
    AL, _ = network_forward(X, parameters, hidden, output)
    if output == "sigmoid":
        return AL > 0.5
    return torch.argmax(AL, dim=0)
