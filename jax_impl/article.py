"""The article's two-layer network (tanh hidden layer, sigmoid output): JAX mirror of
``reference.article`` (names, signatures, defaults and quirks as documented there).

``initialize_parameters`` converts the reference's float64 draws. ``optimize`` takes
JAX's fastest correct path: the whole loop is one compiled program (jax.jit around
lax.scan, parameters as the carry), compiled once per shapes/dtypes/num_iterations/
print_cost and cached, so no Python runs per iteration.
"""
from functools import partial

import jax
import jax.numpy as jnp

import reference.article as _ref

from ._convert import tree_from_numpy
from .activations import sigmoid as _sigmoid, tanh


def layer_sizes(X, Y, n_h=4):
    """(n_x, n_h, n_y) from the data."""
    return X.shape[0], n_h, Y.shape[0]


def initialize_parameters(n_x, n_h, n_y):
    """The reference's seed-1 draws (float64), as jax arrays on the cpu."""
    return tree_from_numpy(_ref.initialize_parameters(n_x, n_h, n_y))


def sigmoid(Z):
    """A = 1 / (1 + e^-Z); returns (A, cache) with cache = Z."""
    return _sigmoid(Z), Z


def forward_propagation(X, parameters):
    """X (n_x, m) -> (A2 (1, m), cache with Z1 A1 Z2 A2)."""
    W1, b1, W2, b2 = (parameters[k] for k in ("W1", "b1", "W2", "b2"))
    Z1 = jnp.dot(W1, X) + b1
    A1 = tanh(Z1)
    Z2 = jnp.dot(W2, A1) + b2
    A2, _ = sigmoid(Z2)
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def _cost(A2, Y):
    # compute_cost as a 0-d array, usable inside jit
    m = Y.shape[1]
    logprobs = jnp.multiply(jnp.log(A2), Y) + jnp.multiply(jnp.log(1 - A2), 1 - Y)
    return jnp.squeeze(-jnp.sum(logprobs) / m)


def compute_cost(A2, Y):
    """-(1/m) sum(Y log A2 + (1 - Y) log(1 - A2)) as a Python float.
    Literal formula: nan/inf once A2 saturates to exactly 0 or 1."""
    return float(_cost(A2, Y))


def backward_propagation(parameters, cache, X, Y):
    """Gradients dW1 db1 dW2 db2 of the cost, the article's formulas."""
    m = X.shape[1]
    W2 = parameters["W2"]
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y
    dW2 = jnp.dot(dZ2, A1.T) / m
    db2 = jnp.sum(dZ2, axis=1, keepdims=True) / m
    dZ1 = jnp.dot(W2.T, dZ2) * (1 - jnp.power(A1, 2))
    dW1 = jnp.dot(dZ1, X.T) / m
    db1 = jnp.sum(dZ1, axis=1, keepdims=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}


def update_parameters(parameters, grads, learning_rate=1.2):
    """One gradient-descent step; returns a new dict."""
    return {k: parameters[k] - learning_rate * grads["d" + k] for k in ("W1", "b1", "W2", "b2")}


PRINT_EVERY = 1000


@partial(jax.jit, static_argnames=("num_iterations", "record"))
def _optimize(parameters, X, Y, learning_rate, num_iterations, record):
    # learning_rate is traced (a new rate does not recompile); cast once to the data's
    # dtype, which is what NumPy does with a Python float next to a float32 array
    lr = learning_rate.astype(X.dtype)

    def body(parameters, i):
        A2, cache = forward_propagation(X, parameters)
        if record:
            # the literal cost only where it is printed: 1 iteration in 1000
            cost = jax.lax.cond(i % PRINT_EVERY == 0, lambda: _cost(A2, Y),
                                lambda: jnp.zeros((), dtype=X.dtype))
        else:
            cost = None
        grads = backward_propagation(parameters, cache, X, Y)
        return update_parameters(parameters, grads, lr), cost

    parameters, costs = jax.lax.scan(body, parameters,
                                     jnp.arange(num_iterations, dtype=jnp.int32))
    return parameters, (costs[::PRINT_EVERY] if record else None)


def optimize(parameters, X, Y, num_iterations=10000, learning_rate=1.2, print_cost=False):
    """Batch gradient descent; returns (parameters, costs). As in the article, the cost is
    recorded (and printed) every 1000 iterations only when print_cost is on; here the
    loop runs compiled and the costs are printed after it."""
    parameters, recorded = _optimize(parameters, X, Y,
                                     jnp.asarray(learning_rate, dtype=jnp.float64),
                                     num_iterations, bool(print_cost))
    parameters = {k: parameters[k] for k in ("W1", "b1", "W2", "b2")}  # jit sorts keys
    costs = []
    if print_cost:
        for i, cost in zip(range(0, num_iterations, PRINT_EVERY), recorded.tolist()):
            costs.append(cost)
            print(f"Cost after iteration {i}: {cost:f}")
    return parameters, costs


def model(X_train, Y_train, X_test, Y_test, n_h=4, num_iterations=10000, learning_rate=1.2,
          print_cost=True):
    """Initialise (seed 1) and optimise; returns (parameters, costs). As in the article
    the test set is not used, and its seed-3 draw is overridden by initialisation's seed 1."""
    n_x, n_y = X_train.shape[0], Y_train.shape[0]
    parameters = initialize_parameters(n_x, n_h, n_y)
    return optimize(parameters, X_train, Y_train, num_iterations, learning_rate, print_cost)


def predict(parameters, X):
    """A2 > 0.5, a boolean (1, m) array."""
    A2, _ = forward_propagation(X, parameters)
    return A2 > 0.5
