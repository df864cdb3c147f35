"""The L-layer network: initialisation, forward (caching every stage), backward.

Parameters: dict ``W1 b1 ... WL bL``; W^[l] is (n^[l], n^[l-1]), b^[l] is (n^[l], 1).
Cache:      dict ``A0 Z1 A1 ... ZL AL`` (A0 = X).
Gradients:  dict ``dZL dA{L-1} dWL dbL ... dZ1 dA0 dW1 db1``.
Examples are columns: X is (n_x, m), Y is (n_y, m).

Everything computes in the dtype of its inputs (float64, float32, float16); nothing is
upcast. Initial weights are always drawn in float64 from ``np.random.RandomState(seed)``
and then cast, so all dtypes and all backends start from the same draws.
"""
import numpy as np

from .activations import (activation, activation_grad, check_activation,
                          HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS)

INITIALIZERS = ("article", "xavier", "he")


def num_layers(parameters):
    return len(parameters) // 2


def init_scale(init, fan_in, fan_out):
    """Standard deviation of the normal draw for W^[l] (n^[l] = fan_out, n^[l-1] = fan_in).

    article: 0.01 (the article's ``randn * 0.01``)
    xavier:  sqrt(2 / (fan_in + fan_out))  (Glorot & Bengio 2010, normal variant)
    he:      sqrt(2 / fan_in)               (He et al. 2015, for ReLU-like layers)
    """
    if init == "article":
        return 0.01
    if init == "xavier":
        return np.sqrt(2.0 / (fan_in + fan_out))
    if init == "he":
        return np.sqrt(2.0 / fan_in)
    raise ValueError(f"unknown initializer {init!r}; expected one of {', '.join(INITIALIZERS)}")


def initialize_network(layer_dims, init="article", seed=1, dtype=np.float64):
    """Draw W^[l] ~ N(0, scale^2) and b^[l] = 0 for l = 1..L, in that order, from one
    ``RandomState(seed)``. With init="article", seed=1 and layer_dims (n_x, n_h, n_y)
    this gives exactly the article's ``initialize_parameters``.
    """
    rng = np.random.RandomState(seed)
    parameters = {}
    for l in range(1, len(layer_dims)):
        fan_in, fan_out = layer_dims[l - 1], layer_dims[l]
        scale = init_scale(init, fan_in, fan_out)
        parameters[f"W{l}"] = (rng.randn(fan_out, fan_in) * scale).astype(dtype)
        parameters[f"b{l}"] = np.zeros((fan_out, 1), dtype=dtype)
    return parameters


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


def network_backward(parameters, cache, X, Y, hidden="tanh", output="sigmoid"):
    """Backprop for sigmoid/softmax + cross-entropy (either cost: same gradient).

    dZ^[L] = A^[L] - Y;  dW^[l] = dZ^[l] A^[l-1]^T / m;  db^[l] = sum_cols dZ^[l] / m;
    dA^[l-1] = W^[l]^T dZ^[l];  dZ^[l-1] = dA^[l-1] * g'(Z^[l-1]).
    Note dZ here is m * dJ/dZ (the article's convention); dW, db are dJ/dW, dJ/db.
    """
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    L = num_layers(parameters)
    m = X.shape[1]
    grads = {}
    dZ = cache[f"A{L}"] - Y
    for l in range(L, 0, -1):
        A_prev = cache[f"A{l - 1}"]
        grads[f"dZ{l}"] = dZ
        grads[f"dW{l}"] = dZ @ A_prev.T / m
        grads[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) / m
        dA = parameters[f"W{l}"].T @ dZ
        grads[f"dA{l - 1}"] = dA
        if l > 1:
            dZ = dA * activation_grad(hidden, cache[f"Z{l - 1}"], cache[f"A{l - 1}"])
    return grads


def predict(parameters, X, hidden="tanh", output="sigmoid"):
    """Binary: A^[L] > 0.5 (bool, (1, m)); softmax: argmax over rows (int, (m,))."""
    AL, _ = network_forward(X, parameters, hidden, output)
    if output == "sigmoid":
        return AL > 0.5
    return np.argmax(AL, axis=0)
