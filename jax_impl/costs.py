"""Cross-entropy costs, literal (from activations) and stable (from logits): JAX mirror
of ``reference.costs`` (formulas and the nan behaviour of the literal one there).

Both return a 0-d array in the input dtype (``float(J)`` gives the Python scalar).
Both are also differentiated by ``jax.grad`` (``network_backward_autodiff``), so the
stable ones are written to have the exact gradient (A - Y)/m everywhere, z = 0 included.
"""
import jax
import jax.numpy as jnp

from reference.activations import OUTPUT_ACTIVATIONS, check_activation


def cross_entropy(AL, Y, output="sigmoid"):
    """Literal cost from activations AL (n_y, m) and labels Y (n_y, m)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    m = Y.shape[1]
    if output == "sigmoid":
        loss = Y * jnp.log(AL) + (1 - Y) * jnp.log(1 - AL)
    else:
        loss = Y * jnp.log(AL)
    return -jnp.sum(loss) / m


def cross_entropy_from_logits(ZL, Y, output="sigmoid"):
    """Stable cost from logits ZL (n_y, m) and labels Y (n_y, m)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    m = Y.shape[1]
    if output == "sigmoid":
        # softplus(z) = max(z, 0) + log1p(exp(-|z|)): jnp.logaddexp(z, 0) evaluates
        # exactly that expression, with a custom JVP exp(z - out) = sigmoid(z). The
        # reference's spelled-out expression differentiates wrongly at z = 0 under JAX:
        # d max(z, 0) = 0.5 (tie split) and d|z| = +1 at 0, so 0.5 - 0.5 = 0, not
        # sigmoid(0) = 0.5. Only the summation order differs from the reference's
        # (max - zy) + log1p(...): at most an ulp per element.
        loss = jnp.logaddexp(ZL, 0) - ZL * Y
    else:
        # the max shift is a constant for autodiff (see activations.softmax)
        zmax = jax.lax.stop_gradient(ZL.max(axis=0, keepdims=True))
        lse = zmax + jnp.log(jnp.sum(jnp.exp(ZL - zmax), axis=0, keepdims=True))
        loss = lse - jnp.sum(Y * ZL, axis=0, keepdims=True)
    return jnp.sum(loss) / m
