"""The article's two-layer network (tanh hidden, sigmoid output): the torch mirror of
reference/article.py, same names, signatures, defaults and quirks (see its docstring
and docs/spec.md). Weights are the reference's draws, converted.
"""
import numpy as np
import torch

from reference.article import initialize_parameters as _reference_initialize_parameters
from ._convert import from_numpy


def layer_sizes(X, Y, n_h=4):
    """(n_x, n_h, n_y) from the data."""
    return X.shape[0], n_h, Y.shape[0]


def initialize_parameters(n_x, n_h, n_y, dtype=torch.float64, device="cpu"):
    """The reference's seed-1 float64 draws, converted (dtype/device: the mirror's addition,
    so that ``model`` can follow the data)."""
    return {k: from_numpy(v, dtype, device)
            for k, v in _reference_initialize_parameters(n_x, n_h, n_y).items()}


def sigmoid(Z):
    """A = 1 / (1 + e^-Z); returns (A, cache) with cache = Z."""
    A = 1 / (1 + torch.exp(-Z))
    return A, Z


def forward_propagation(X, parameters):
    """X (n_x, m) -> (A2 (1, m), cache with Z1 A1 Z2 A2)."""
    W1, b1, W2, b2 = (parameters[k] for k in ("W1", "b1", "W2", "b2"))
    Z1 = torch.matmul(W1, X) + b1
    A1 = torch.tanh(Z1)
    Z2 = torch.matmul(W2, A1) + b2
    A2, _ = sigmoid(Z2)
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def compute_cost(A2, Y):
    """-(1/m) sum(Y log A2 + (1 - Y) log(1 - A2)) as a Python float (nan/inf once A2
    saturates, as in the article)."""
    m = Y.shape[1]
    logprobs = torch.mul(torch.log(A2), Y) + torch.mul(torch.log(1 - A2), 1 - Y)
    return float(-torch.sum(logprobs) / m)


def backward_propagation(parameters, cache, X, Y):
    """Gradients dW1 db1 dW2 db2 of the cost, the article's formulas."""
    m = X.shape[1]
    W2 = parameters["W2"]
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y
    dW2 = torch.matmul(dZ2, A1.T) / m
    db2 = torch.sum(dZ2, dim=1, keepdim=True) / m
    dZ1 = torch.matmul(W2.T, dZ2) * (1 - torch.pow(A1, 2))
    dW1 = torch.matmul(dZ1, X.T) / m
    db1 = torch.sum(dZ1, dim=1, keepdim=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def update_parameters(parameters, grads, learning_rate=1.2):
    """One gradient-descent step; returns a new dict."""
    return {k: parameters[k] - learning_rate * grads["d" + k] for k in ("W1", "b1", "W2", "b2")}


def optimize(parameters, X, Y, num_iterations=10000, learning_rate=1.2, print_cost=False,
             compiled=False):
    """Batch gradient descent; returns (parameters, costs), the cost recorded (and printed)
    every 1000 iterations only when print_cost is on, as in the article.

    compiled=True (the mirror's addition): the iterations between two printed costs run as
    one compiled program (``training.compiled_updates``: torch.compile of a torch.scan, the
    fastest correct path at this size on a CPU, ~10 us per iteration against ~200 us
    eager), after a compile per shape and dtype in each process: 10-25 s cold, 2-5 s once
    torch's on-disk cache holds the C++ kernels (training.train_scan)."""
    if compiled:
        return _optimize_compiled(parameters, X, Y, num_iterations, learning_rate, print_cost)
    costs = []
    # inference_mode: no graph and no version-counter bookkeeping, the cheapest eager
    # dispatch (planar 2-4-1 x 400 float64, 1 thread: 198 us/step against 236 under
    # no_grad, measured). A whole compiled loop is compiled=True (above).
    with torch.inference_mode():
        for i in range(num_iterations):
            A2, cache = forward_propagation(X, parameters)
            if print_cost and i % 1000 == 0:
                # the cost is only ever read here: computing it (and syncing) every
                # iteration would be wasted work, unlike in NumPy where it is cheap
                cost = compute_cost(A2, Y)
                costs.append(cost)
                print(f"Cost after iteration {i}: {cost:f}")
            grads = backward_propagation(parameters, cache, X, Y)
            parameters = update_parameters(parameters, grads, learning_rate)
    # inference tensors cannot enter autograd later; plain copies can (4 small tensors)
    return {k: v.clone() for k, v in parameters.items()}, costs


PRINT_EVERY = 1000


def _optimize_compiled(parameters, X, Y, num_iterations, learning_rate, print_cost):
    """optimize's iterations in compiled runs between the printed costs: the network of
    ``training.compiled_updates`` with tanh hidden units, a sigmoid output and plain GD is
    the article's (the same formulas: A1 * A1 for A1 ** 2, (1 - A1^2) dA1 for dZ1)."""
    from reference.optim import Optimizer
    from .training import compiled_updates
    gd = Optimizer("gd", learning_rate=learning_rate)
    state, costs, i = {"t": 0}, [], 0
    while i < num_iterations:
        if print_cost and i % PRINT_EVERY == 0:
            with torch.no_grad():
                cost = compute_cost(forward_propagation(X, parameters)[0], Y)
            costs.append(cost)
            print(f"Cost after iteration {i}: {cost:f}")
        n = min(num_iterations - i, PRINT_EVERY if print_cost else num_iterations)
        if n == 1:  # nothing to loop over: one eager update
            with torch.no_grad():
                A2, cache = forward_propagation(X, parameters)
                parameters = update_parameters(parameters,
                                               backward_propagation(parameters, cache, X, Y),
                                               learning_rate)
        else:
            parameters, state, _ = compiled_updates(parameters, state, X, Y, "tanh", "sigmoid",
                                                    gd, "literal", n, record=False)
        i += n
    return {k: v.clone() for k, v in parameters.items()}, costs  # never the caller's tensors


def model(X_train, Y_train, X_test, Y_test, n_h=4, num_iterations=10000, learning_rate=1.2,
          print_cost=True):
    """Initialise (the reference's seed-1 draws, in X_train's dtype and device) and
    optimise; returns (parameters, costs). The test set is unused, as in the article."""
    np.random.RandomState(3)  # the article's np.random.seed(3): no draw depends on it
    n_x, n_y = X_train.shape[0], Y_train.shape[0]
    parameters = initialize_parameters(n_x, n_h, n_y, X_train.dtype, X_train.device)
    return optimize(parameters, X_train, Y_train, num_iterations, learning_rate, print_cost)


def predict(parameters, X):
    """A2 > 0.5, a boolean (1, m) tensor."""
    A2, _ = forward_propagation(X, parameters)
    return A2 > 0.5
