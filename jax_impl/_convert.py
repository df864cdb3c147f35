"""Conversions between NumPy and JAX arrays, devices, and what validation knows of JAX
(torch_impl/_convert.py is the torch counterpart). Every module of the package that
converts imports from here; nothing here imports the rest of the package."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from reference.validate import Ops

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
