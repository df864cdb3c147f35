"""Hidden-layer activations g and their derivatives g', side by side.

Every function computes in the dtype of its input (NumPy 2 / NEP 50: Python scalars
such as 0.01 are "weak" and never promote a float32 array to float64).

Derivative convention at exactly z = 0 (the article leaves it open):
    relu'(0) = 0          leaky_relu'(0) = LEAKY_SLOPE = 0.01
i.e. the derivative is the one of the branch z < 0, because the backward test is the
strict ``z > 0``. This is also what ``torch.relu`` / ``F.leaky_relu`` autograd do;
``jax.nn.leaky_relu`` differs (it takes 1 at 0), so the JAX mirror writes its own.
"""
import numpy as np

LEAKY_SLOPE = 0.01
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax")


def sigmoid(z):
    # 1 / (1 + e^-z); e^-z overflows to inf for z < -709 (float64) and the result is
    # then an exact 0, which is the correctly rounded value, so the warning is noise.
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def sigmoid_grad(z, a):
    # g' = g (1 - g), from the cached activation
    return a * (1 - a)


def tanh(z):
    return np.tanh(z)


def tanh_grad(z, a):
    # g' = 1 - g^2
    return 1 - a * a


def relu(z):
    return np.maximum(z, 0)


def relu_grad(z, a):
    # 1 for z > 0, else 0 (convention: 0 at z = 0)
    return (z > 0).astype(z.dtype)


def leaky_relu(z):
    return np.where(z > 0, z, LEAKY_SLOPE * z)


def leaky_relu_grad(z, a):
    # 1 for z > 0, else 0.01 (convention: 0.01 at z = 0)
    return np.where(z > 0, np.ones_like(z), np.full_like(z, LEAKY_SLOPE))


def softmax(z):
    # column-wise e^z_j / sum_k e^z_k; shifting by the column max changes nothing in
    # exact arithmetic and keeps exp from overflowing.
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


_FORWARD = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu,
            "softmax": softmax}
_BACKWARD = {"sigmoid": sigmoid_grad, "tanh": tanh_grad, "relu": relu_grad,
             "leaky_relu": leaky_relu_grad}


def check_activation(name, allowed=HIDDEN_ACTIVATIONS):
    if name not in allowed:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(allowed)}")


def activation(name, z):
    """g(z) for a named activation."""
    check_activation(name, HIDDEN_ACTIVATIONS + ("softmax",))
    return _FORWARD[name](z)


def activation_grad(name, z, a):
    """g'(z) for a hidden activation, given z and a = g(z)."""
    check_activation(name)
    return _BACKWARD[name](z, a)
