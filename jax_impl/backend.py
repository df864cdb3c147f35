"""What makes the JAX mirror a backend: conversions, devices, gradient paths, the step
factory (optionally jax.jit-compiled) and the portable weight file (the reference's)."""
import jax
import jax.numpy as jnp

import reference.backend as _ref
from ._convert import tree_from_numpy, tree_to_numpy

# the jit-compiled step lives with train, which uses it too: one compile cache for both
# (bench/ counts the traces of backend._step_jit)
from .training import _in_order, _step, _step_jit
from reference.costs import check_cost

GRAD_PATHS = ("manual", "autodiff")


def compile_status():
    try:
        jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.zeros((1,), dtype=jnp.float32)))
    except Exception as e:  # any failure means: do not use compiled=True
        return False, f"jax.jit failed: {e}"
    return True, "jax.jit"


def make_train_step(hidden, output, optimizer, cost="stable", grad_path="manual",
                    compiled=False):
    """fn(parameters, state, X, Y) -> (parameters, state, cost, grads). compiled=True:
    jax.jit with hidden/output/optimizer/cost static and state["t"] traced (an int32
    array), so new t values reuse the compiled step; only new shapes/dtypes retrace."""
    if grad_path not in GRAD_PATHS:
        raise ValueError(f"the JAX mirror has no gradient path {grad_path!r}; it has {GRAD_PATHS}")
    check_cost(cost)
    run = _step_jit if compiled else _step

    def step(parameters, state, X, Y):
        if compiled:
            # a Python int t (a converted reference state) would trace as int64 and
            # compile a second variant; always hand the jit an int32 array
            t = state["t"]
            if not isinstance(t, jax.Array):
                t = jnp.full_like(X, t, dtype=jnp.int32, shape=())  # on X's device
            state = {**state, "t": t}
        out = run(parameters, state, X, Y, hidden=hidden, output=output,
                  optimizer=optimizer, cost=cost, grad_path=grad_path)
        return _in_order(out, parameters, state) if compiled else out
    return step


WEIGHT_FORMAT = _ref.WEIGHT_FORMAT


def save_weights(path, parameters):
    """The reference's writer of the NumPy copies (.npz, no pickle, atomic; bfloat16
    arrays are ml_dtypes' bfloat16 in NumPy, written as their bit patterns)."""
    _ref.save_weights(path, tree_to_numpy(parameters))


def load_weights(path, dtype=None, device="cpu", layer_dims=None):
    """Reads a file written by any backend's ``save_weights`` (checked from the headers
    before any data is read; never unpickles); bfloat16 comes back as bfloat16."""
    return tree_from_numpy(_ref.load_weights(path, layer_dims=layer_dims), dtype, device)
