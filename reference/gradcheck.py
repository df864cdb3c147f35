"""Central finite differences of the cost, to check backprop independently.

dJ/dtheta_i ~ (J(theta + h e_i) - J(theta - h e_i)) / 2h, truncation error O(h^2 J''')
and rounding error O(u J / h); h = 1e-6 in float64 balances them near 1e-10 relative.
Only meaningful in float64.
"""
import numpy as np

from .costs import cross_entropy, cross_entropy_from_logits
from .network import network_forward, num_layers


def cost_of(parameters, X, Y, hidden="tanh", output="sigmoid", cost="stable"):
    AL, cache = network_forward(X, parameters, hidden, output)
    if cost == "stable":
        return float(cross_entropy_from_logits(cache[f"Z{num_layers(parameters)}"], Y, output))
    return float(cross_entropy(AL, Y, output))


def numerical_gradients(parameters, X, Y, hidden="tanh", output="sigmoid", cost="stable", h=1e-6):
    """dict ``dW1 db1 ...`` of central differences, one entry at a time."""
    grads = {}
    for k, p in parameters.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            plus = {**parameters, k: p.copy()}
            minus = {**parameters, k: p.copy()}
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (cost_of(plus, X, Y, hidden, output, cost)
                      - cost_of(minus, X, Y, hidden, output, cost)) / (2 * h)
        grads[f"d{k}"] = g
    return grads


def relative_difference(grads, numerical):
    """||g - g_fd|| / (||g|| + ||g_fd||) over all dW, db stacked into one vector."""
    keys = sorted(numerical)
    a = np.concatenate([grads[k].ravel() for k in keys])
    b = np.concatenate([numerical[k].ravel() for k in keys])
    return float(np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b)))
