"""What makes the reference a backend like the mirrors: conversions, devices, paths,
the step factory and the portable weight file."""
import os
import tempfile
import zipfile

import numpy as np

from .training import train_step

GRAD_PATHS = ("manual",)


def devices():
    return ["cpu"]


def compile_status():
    return False, "NumPy has no compiler"


def from_numpy(x, dtype=None, device="cpu"):
    if device != "cpu":
        raise ValueError(f"the NumPy reference runs on cpu only, not {device!r}")
    return np.array(x, dtype=dtype, copy=True)


def to_numpy(x):
    return np.asarray(x)


def tree_from_numpy(d, dtype=None, device="cpu"):
    return {k: v if isinstance(v, (int, float)) else from_numpy(v, dtype, device)
            for k, v in d.items()}


def tree_to_numpy(d):
    return {k: v if isinstance(v, (int, float)) else to_numpy(v) for k, v in d.items()}


def make_train_step(hidden, output, optimizer, cost="stable", grad_path="manual", compiled=False):
    if grad_path not in GRAD_PATHS:
        raise ValueError(f"the NumPy reference has no gradient path {grad_path!r}; it has {GRAD_PATHS}")
    if compiled:
        raise ValueError(compile_status()[1])

    def step(parameters, state, X, Y):
        return train_step(parameters, state, X, Y, hidden, output, optimizer, cost)
    return step


WEIGHT_FORMAT = "netparity-weights-v1"


def save_weights(path, parameters):
    """Writes ``parameters`` (NumPy arrays) to an .npz without pickle, atomically:
    a temporary file in the same folder, then ``os.replace``."""
    path = os.fspath(path)
    arrays = {k: np.asarray(v) for k, v in parameters.items()}
    for k, v in arrays.items():  # before any file exists: nothing to clean up
        if v.dtype.kind != "f":
            raise TypeError(f"cannot save {k}: dtype {v.dtype.name} is not a float array "
                            "(weight files hold float parameters only, never pickles)")
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __format__=np.array(WEIGHT_FORMAT), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_weights(path, params, layer_dims):
    """The keys and shapes a network of ``layer_dims`` has: W1 b1 ... WL bL exactly,
    W^[l] (n_l, n_{l-1}), b^[l] (n_l, 1); ValueError naming the first difference."""
    from .validate import check_layer_dims
    check_layer_dims(layer_dims)
    L = len(layer_dims) - 1
    want = {}
    for l in range(1, L + 1):
        want[f"W{l}"] = (int(layer_dims[l]), int(layer_dims[l - 1]))
        want[f"b{l}"] = (int(layer_dims[l]), 1)
    missing = [k for k in want if k not in params]
    extra = [k for k in params if k not in want]
    if missing or extra:
        parts = ([f"missing {' '.join(missing)}"] if missing else []) + \
                ([f"unexpected {' '.join(extra)}"] if extra else [])
        raise ValueError(f"{path}: weights do not match layer_dims {list(layer_dims)}: "
                         f"{'; '.join(parts)}")
    for k, shape in want.items():
        if tuple(params[k].shape) != shape:
            raise ValueError(f"{path}: weights do not match layer_dims {list(layer_dims)}: "
                             f"{k} has shape {tuple(params[k].shape)}, expected {shape}")


def load_weights(path, dtype=None, device="cpu", layer_dims=None):
    """Reads a file written by any backend's ``save_weights``; never unpickles.
    With ``layer_dims`` the keys and shapes are checked against that network."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as f:
            if "__format__" not in f.files or str(f["__format__"]) != WEIGHT_FORMAT:
                raise ValueError(f"{path}: not a netparity weight file ({WEIGHT_FORMAT})")
            params = {k: f[k] for k in f.files if k != "__format__"}
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: unreadable weight file ({e})") from e
    except ValueError as e:
        if "netparity" in str(e):
            raise
        raise ValueError(f"{path}: unreadable weight file ({e})") from e
    for k, v in params.items():
        if v.dtype.kind != "f":
            raise ValueError(f"{path}: {k} has dtype {v.dtype.name}, not a float array")
    if layer_dims is not None:
        check_weights(path, params, layer_dims)
    return tree_from_numpy(params, dtype, device)
