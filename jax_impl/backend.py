"""What makes the JAX mirror a backend: conversions, devices, gradient paths, the step
factory (optionally jax.jit-compiled) and the portable weight file (the reference's)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

import reference.backend as _ref
from reference.validate import Ops

# the jit-compiled step lives with train, which uses it too: one compile cache for both
# (bench/ counts the traces of backend._step_jit)
from .training import COSTS, _in_order, _step, _step_jit

GRAD_PATHS = ("manual", "autodiff")
_PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}  # netparity name -> jax platform


def devices():
    names = ["cpu"]
    try:
        if jax.devices("gpu"):
            names.append("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib / on this machine
        pass
    return names


@functools.lru_cache(maxsize=None)  # asked on every from_numpy: jax.devices("gpu") raises each time
def _usable_device_names():
    # the names from_numpy accepts now: "cuda" is an alias of "gpu"
    return ("cpu", "gpu", "cuda") if "gpu" in devices() else ("cpu",)


def _known(x):
    return not isinstance(x, jax.core.Tracer)


# what reference/validate.py needs to check JAX inputs (same checks, same messages); a
# tracer's values are unknown (None) inside jax.jit: only its shape and dtype are checked
OPS = Ops(all_finite=lambda x: bool(jnp.isfinite(x).all()) if _known(x) else None,
          host=lambda x: np.asarray(x) if _known(x) else None,
          backend="jax", array_kind="jax.Array", native=lambda x: isinstance(x, jax.Array),
          devices=_usable_device_names, devices_known=tuple(_PLATFORMS))


def compile_status():
    try:
        jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.zeros((1,), dtype=jnp.float32)))
    except Exception as e:  # any failure means: do not use compiled=True
        return False, f"jax.jit failed: {e}"
    return True, "jax.jit"


def _device(device):
    if device not in _PLATFORMS:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(_PLATFORMS)}")
    try:
        return jax.devices(_PLATFORMS[device])[0]
    except RuntimeError as e:
        raise ValueError(f"device {device!r} is not available: {e}") from e


def from_numpy(x, dtype=None, device="cpu"):
    # a host copy first, as the reference does: the jax array never aliases caller memory
    return jax.device_put(np.array(x, dtype=dtype, copy=True), _device(device))


def to_numpy(x):
    """A NumPy copy (np.asarray of a jax CPU array would be a read-only view of its
    buffer), the same on every backend."""
    return np.array(x, copy=True)


def tree_from_numpy(d, dtype=None, device="cpu"):
    return {k: v if isinstance(v, (int, float)) else from_numpy(v, dtype, device)
            for k, v in d.items()}


def tree_to_numpy(d):
    return {k: v if isinstance(v, (int, float)) else to_numpy(v) for k, v in d.items()}


def make_train_step(hidden, output, optimizer, cost="stable", grad_path="manual",
                    compiled=False):
    """fn(parameters, state, X, Y) -> (parameters, state, cost, grads). compiled=True:
    jax.jit with hidden/output/optimizer/cost static and state["t"] traced (an int32
    array), so new t values reuse the compiled step; only new shapes/dtypes retrace."""
    if grad_path not in GRAD_PATHS:
        raise ValueError(f"the JAX mirror has no gradient path {grad_path!r}; it has {GRAD_PATHS}")
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")
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
