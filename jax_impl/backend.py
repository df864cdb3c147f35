"""What makes the JAX mirror a backend: conversions, devices, gradient paths, the step
factory (optionally jax.jit-compiled) and the portable weight file (the reference's)."""
import jax
import jax.numpy as jnp

import reference.backend as _ref
from ._convert import tree_from_numpy, tree_to_numpy

# the jit-compiled step lives with train, which uses it too: one compile cache for both
from .article import _optimize
from .training import _in_order, _step, _step_jit, _train_scan
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


# the compiled programs of this package, by the public function that runs them
_JITTED = {"train_step": _step_jit,  # make_train_step(compiled=True) and train
           "train_scan": _train_scan, "optimize": _optimize}


def trace_count(name):
    """How many programs the jit of ``name`` ("train_step", "train_scan", "optimize") has
    compiled in this process (one per shapes/dtypes/static arguments), or None where
    jax no longer says (it is a private method of the jit object)."""
    size = getattr(_JITTED[name], "_cache_size", None)
    return size() if size else None


def compiled_cost(name, *args, **kwargs):
    """(flops, bytes accessed) of one call of the compiled program ``name`` on these
    arguments, from XLA's cost analysis of the fused program, or None. A lax.scan body is
    counted once, so for train_scan and optimize this is the cost of one step.
    Lowering traces: read ``trace_count`` after calling this, not before."""
    try:
        ca = _JITTED[name].lower(*args, **kwargs).compile().cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        return float(ca["flops"]), float(ca["bytes accessed"])
    except Exception:  # an API change must not break a benchmark: no XLA figures then
        return None


WEIGHT_FORMAT = _ref.WEIGHT_FORMAT


def save_weights(path, parameters):
    """The reference's writer of the NumPy copies (.npz, no pickle, atomic; bfloat16
    arrays are ml_dtypes' bfloat16 in NumPy, written as their bit patterns)."""
    _ref.save_weights(path, tree_to_numpy(parameters))


def load_weights(path, dtype=None, device="cpu", layer_dims=None):
    """Reads a file written by any backend's ``save_weights`` (checked from the headers
    before any data is read; never unpickles); bfloat16 comes back as bfloat16."""
    return tree_from_numpy(_ref.load_weights(path, layer_dims=layer_dims), dtype, device)
