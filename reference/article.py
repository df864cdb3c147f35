"""The article's two-layer network (tanh hidden layer, sigmoid output), verbatim in
names, signatures, defaults and quirks, so that its float64 numbers are bit-identical
to the article's own code on the same inputs.

One deliberate difference: the article seeds NumPy's global legacy generator
(``np.random.seed``); here a local ``np.random.RandomState`` with the same seed draws the
same numbers and leaves the global state alone (tested).
"""
import numpy as np

from .activations import tanh


def layer_sizes(X, Y, n_h=4):
    """(n_x, n_h, n_y) from the data."""
    return X.shape[0], n_h, Y.shape[0]


def initialize_parameters(n_x, n_h, n_y):
    """Seed 1; W1 = randn(n_h, n_x) * 0.01, b1 = 0, W2 = randn(n_y, n_h) * 0.01, b2 = 0."""
    rng = np.random.RandomState(1)
    W1 = rng.randn(n_h, n_x) * 0.01
    b1 = np.zeros((n_h, 1))
    W2 = rng.randn(n_y, n_h) * 0.01
    b2 = np.zeros((n_y, 1))
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


def sigmoid(Z):
    """A = 1 / (1 + e^-Z); returns (A, cache) with cache = Z."""
    with np.errstate(over="ignore"):
        A = 1 / (1 + np.exp(-Z))
    return A, Z


def forward_propagation(X, parameters):
    """X (n_x, m) -> (A2 (1, m), cache with Z1 A1 Z2 A2)."""
    W1, b1, W2, b2 = (parameters[k] for k in ("W1", "b1", "W2", "b2"))
    Z1 = np.dot(W1, X) + b1
    A1 = tanh(Z1)
    Z2 = np.dot(W2, A1) + b2
    A2, _ = sigmoid(Z2)
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def compute_cost(A2, Y):
    """-(1/m) sum(Y log A2 + (1 - Y) log(1 - A2)) as a Python float.
    Literal formula: nan/inf once A2 saturates to exactly 0 or 1."""
    m = Y.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logprobs = np.multiply(np.log(A2), Y) + np.multiply(np.log(1 - A2), 1 - Y)
    return float(np.squeeze(-np.sum(logprobs) / m))


def backward_propagation(parameters, cache, X, Y):
    """Gradients dW1 db1 dW2 db2 of the cost, the article's formulas."""
    m = X.shape[1]
    W2 = parameters["W2"]
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y
    dW2 = np.dot(dZ2, A1.T) / m
    db2 = np.sum(dZ2, axis=1, keepdims=True) / m
    dZ1 = np.dot(W2.T, dZ2) * (1 - np.power(A1, 2))
    dW1 = np.dot(dZ1, X.T) / m
    db1 = np.sum(dZ1, axis=1, keepdims=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def update_parameters(parameters, grads, learning_rate=1.2):
    """One gradient-descent step; returns a new dict."""
    return {k: parameters[k] - learning_rate * grads["d" + k] for k in ("W1", "b1", "W2", "b2")}


def optimize(parameters, X, Y, num_iterations=10000, learning_rate=1.2, print_cost=False):
    """Batch gradient descent; returns (parameters, costs). As in the article, the cost is
    recorded (and printed) every 1000 iterations only when print_cost is on."""
    costs = []
    for i in range(num_iterations):
        A2, cache = forward_propagation(X, parameters)
        cost = compute_cost(A2, Y)
        grads = backward_propagation(parameters, cache, X, Y)
        parameters = update_parameters(parameters, grads, learning_rate)
        if print_cost and i % 1000 == 0:
            costs.append(cost)
            print(f"Cost after iteration {i}: {cost:f}")
    return parameters, costs


def model(X_train, Y_train, X_test, Y_test, n_h=4, num_iterations=10000, learning_rate=1.2,
          print_cost=True):
    """Initialise (seed 1) and optimise; returns (parameters, costs). As in the article
    the test set is not used, and its seed-3 draw is overridden by initialisation's seed 1."""
    np.random.RandomState(3)  # the article's np.random.seed(3): no draw depends on it
    n_x, n_y = X_train.shape[0], Y_train.shape[0]
    parameters = initialize_parameters(n_x, n_h, n_y)
    return optimize(parameters, X_train, Y_train, num_iterations, learning_rate, print_cost)


def predict(parameters, X):
    """A2 > 0.5, a boolean (1, m) array."""
    A2, _ = forward_propagation(X, parameters)
    return A2 > 0.5
