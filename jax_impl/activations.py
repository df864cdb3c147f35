"""Hidden-layer activations g and their derivatives g', side by side (JAX mirror of
``reference.activations``; see its docstring for the formulas and the z = 0 convention).

Every function computes in the dtype of its input: Python scalars such as 0.01 are
weakly typed in JAX and never promote a float32 array, even with x64 enabled.

The derivative at z = 0 follows the reference, relu'(0) = 0 and leaky_relu'(0) = 0.01,
on BOTH gradient paths: the manual ``*_grad`` functions below, and ``jax.grad`` through
the forward functions, which is why these are written with ``jnp.where(z > 0, ...)``:
``jax.nn.leaky_relu`` tests ``x >= 0`` (jax.grad gives 1.0 at 0) and
``jnp.maximum(z, 0)`` splits a tie (jax.grad gives 0.5 at 0); ``jnp.where(z > 0, ...)``
gives 0 and 0.01 (checked numerically with jax 0.10.2).
"""
import jax
import jax.numpy as jnp

from reference.activations import (LEAKY_SLOPE, HIDDEN_ACTIVATIONS, check_activation)


def sigmoid(z):
    # jax.nn.sigmoid (lax.logistic) gives bit-for-bit the values of 1 / (1 + exp(-z))
    # (checked over [-800, 800] in float64 and float32), but its JVP is a (1 - a): the
    # literal formula differentiates to inf / inf = nan once exp(-z) overflows
    # (z < -709 in float64), which would break the autodiff path on saturated units.
    return jax.nn.sigmoid(z)


def sigmoid_grad(z, a):
    # g' = g (1 - g), from the cached activation
    return a * (1 - a)


def tanh(z):
    return jnp.tanh(z)


def tanh_grad(z, a):
    # g' = 1 - g^2
    return 1 - a * a


def relu(z):
    # not jnp.maximum(z, 0): its gradient at the tie z = 0 is 0.5, not the convention's 0
    return jnp.where(z > 0, z, jnp.zeros_like(z))


def relu_grad(z, a):
    # 1 for z > 0, else 0 (convention: 0 at z = 0)
    return (z > 0).astype(z.dtype)


def leaky_relu(z):
    # not jax.nn.leaky_relu: it tests z >= 0, so its gradient at 0 is 1, not 0.01
    return jnp.where(z > 0, z, LEAKY_SLOPE * z)


def leaky_relu_grad(z, a):
    # 1 for z > 0, else 0.01 (convention: 0.01 at z = 0)
    return jnp.where(z > 0, jnp.ones_like(z), jnp.full_like(z, LEAKY_SLOPE))


def softmax(z):
    # column-wise e^z_j / sum_k e^z_k; shifting by the column max changes nothing in
    # exact arithmetic and keeps exp from overflowing. The shift is a constant for
    # autodiff (stop_gradient): its exact derivative is zero, and without it jax.grad
    # would route rounding noise through max (split among tied maxima).
    e = jnp.exp(z - jax.lax.stop_gradient(z.max(axis=0, keepdims=True)))
    return e / e.sum(axis=0, keepdims=True)


_FORWARD = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu,
            "softmax": softmax}
_BACKWARD = {"sigmoid": sigmoid_grad, "tanh": tanh_grad, "relu": relu_grad,
             "leaky_relu": leaky_relu_grad}


def activation(name, z):
    """g(z) for a named activation."""
    check_activation(name, HIDDEN_ACTIVATIONS + ("softmax",))
    return _FORWARD[name](z)


def activation_grad(name, z, a):
    """g'(z) for a hidden activation, given z and a = g(z)."""
    check_activation(name)
    return _BACKWARD[name](z, a)
