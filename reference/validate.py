"""Input validation shared by every backend: one set of checks, one set of messages.

Backend-neutral: the checks look at arrays only through duck typing (``.shape``, a dtype
*name*) and ask the backend, through a small ``Ops`` object, for the two things that need
the framework: whether an array is all finite and a NumPy copy of it (for label checks).
Both may answer ``None`` ("values unknown", e.g. a JAX tracer inside ``jax.jit``): the
value checks are then skipped, the shape/dtype checks still run. This module imports
NumPy only.

Exceptions (docs/errors.md): ``TypeError`` for a wrong dtype, a non-array or an array of
another framework (a NumPy array given to torch, a torch tensor given to NumPy, ...),
``ValueError`` for everything else (shapes, keys, values, names, hyper-parameters,
seeds, devices, paths).

``guard_api(namespace, ops)`` wraps a backend's public functions so that each validates
its arguments and then calls the unvalidated implementation. Internal code (train's
loop, compiled steps, lax.scan bodies) calls the implementations directly, so hot paths
pay nothing; ``train``/``optimize`` check X and the parameters for nan/inf once, at entry.
"""
import functools
import inspect
import math
import os
import re

import numpy as np

from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, check_activation
from .costs import COSTS, unknown_cost

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
# what from_numpy converts to (dtype=...): the float dtypes, and the integer/bool ones of
# index arrays and labels
CONVERTIBLE_DTYPES = FLOAT_DTYPES + ("int8", "int16", "int32", "int64", "uint8", "bool")
GRAD_PATHS = ("manual", "autodiff")
SEED_MAX = 2 ** 32 - 1  # NumPy's RandomState takes seeds in [0, 2**32 - 1]
_KEY = re.compile(r"^([Wb])([1-9][0-9]*)$")
# names a weight file can hold (a member "<name>.npy"): no path separators, no dunder names
# (the file's own metadata), nothing a zip tool or a shell would mangle
WEIGHT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def dtype_name(x):
    """'float32' for a NumPy/JAX float32 array (either byte order) and for torch.float32."""
    name = getattr(x.dtype, "name", None)
    return name if isinstance(name, str) else str(x.dtype).rsplit(".", 1)[-1]


def shape_of(x):
    return tuple(int(s) for s in x.shape)


def array_label(x):
    """A reader's name for the type of ``x``: numpy.ndarray, numpy.matrix,
    numpy.ma.MaskedArray, torch.Tensor, jax.Array, list, ..."""
    t = type(x)
    mod = (t.__module__ or "").split(".")
    if mod[0] in ("jax", "jaxlib"):
        return "jax.Array"
    if mod[0] == "numpy" and len(mod) > 1 and mod[1] == "ma":
        return f"numpy.ma.{t.__name__}"
    if mod[0] in ("numpy", "torch"):
        return f"{mod[0]}.{t.__name__}"
    return t.__name__ if mod[0] in ("builtins", "") else f"{mod[0]}.{t.__name__}"


def _numpy_native(x):
    # np.matrix redefines * and ** (matrix products) and keeps results 2-D; a masked
    # array carries a mask every formula here would silently ignore: neither is accepted
    return isinstance(x, np.ndarray) and not isinstance(x, (np.matrix, np.ma.MaskedArray))


class Ops:
    """What validation needs from a backend. ``all_finite(x)`` -> bool or None (unknown);
    ``host(x)`` -> a NumPy array or None (unknown); ``native(x)`` -> whether x is this
    backend's array type (``array_kind`` names it in messages); ``devices()`` -> the
    device names usable now, ``devices_known`` those the backend has at all;
    ``device_name(d)`` -> the name of a device argument ("cuda:0" -> "cuda")."""

    def __init__(self, all_finite, host, dtype_name=dtype_name, backend="numpy",
                 array_kind="numpy.ndarray", native=_numpy_native, devices=lambda: ("cpu",),
                 devices_known=("cpu",), device_name=None):
        self.all_finite, self.host, self.dtype_name = all_finite, host, dtype_name
        self.backend, self.array_kind, self.native = backend, array_kind, native
        self.devices, self.devices_known = devices, tuple(devices_known)
        self.device_name = device_name or _device_name


def _device_name(device):
    return device.split(":", 1)[0] if isinstance(device, str) else None


NUMPY_OPS = Ops(all_finite=lambda x: bool(np.all(np.isfinite(x))), host=np.asarray)


# ---------------------------------------------------------------- names, hyper-parameters

def check_names(hidden=None, output=None, cost=None):
    if hidden is not None:
        check_activation(hidden, HIDDEN_ACTIVATIONS)
    if output is not None:
        check_activation(output, OUTPUT_ACTIVATIONS)
    if cost is not None and cost not in COSTS:
        raise unknown_cost(cost)


def check_optimizer(optimizer):
    from .optim import Optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an Optimizer (reference.Optimizer), got "
                        f"{type(optimizer).__name__}")


def check_learning_rate(lr):
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)) \
            or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning_rate must be a positive finite number, got {lr!r}")


def check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive" if minimum == 1 else "a non-negative"
        raise ValueError(f"{name} must be {what} integer, got {value!r}")


def check_batch_size(batch_size):
    if batch_size is not None:
        check_count("batch_size", batch_size, 1)


def check_batches(batches, masks=None):
    """The column indices of each update, and (the remedies' idiomatic paths) one dropout
    mask set per update: at least one update, as many masks as updates."""
    if len(batches) == 0:
        raise ValueError("batches is empty: give at least one array of column indices")
    if masks is not None and len(masks) != len(batches):
        raise ValueError(f"{len(masks)} dropout masks for {len(batches)} updates")


def check_layer_dims(layer_dims):
    ok = isinstance(layer_dims, (list, tuple)) and len(layer_dims) >= 2 and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in layer_dims)
    if not ok:
        raise ValueError("layer_dims must be a sequence of at least 2 positive integers "
                         f"(n_x, n_1, ..., n_L), got {layer_dims!r}")


def check_initializer(init):
    from .network import INITIALIZERS
    if init not in INITIALIZERS:
        raise ValueError(f"unknown initializer {init!r}; expected one of {', '.join(INITIALIZERS)}")


def dtype_arg_name(dtype):
    """The name of a dtype argument in any spelling: "float32", np.float32,
    np.dtype("float32"), torch.float32, jnp.float32 -> "float32" (else its best name)."""
    name = str(dtype).rsplit(".", 1)[-1]
    if isinstance(dtype, type):
        name = dtype.__name__
    if name not in CONVERTIBLE_DTYPES:
        try:
            name = np.dtype(dtype).name
        except (TypeError, ValueError):
            pass
    return name


def check_dtype_arg(dtype):
    """The ``dtype=`` argument of initialize_network: a float dtype (any spelling)."""
    name = dtype_arg_name(dtype)
    if name not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be a floating-point dtype ({', '.join(FLOAT_DTYPES)}), "
                        f"got {name}")


def check_conversion_dtype(dtype):
    """from_numpy's ``dtype=``: None (keep the array's) or one of CONVERTIBLE_DTYPES."""
    if dtype is None:
        return
    name = dtype_arg_name(dtype)
    if name not in CONVERTIBLE_DTYPES:
        raise TypeError(f"dtype must be None or one of {', '.join(CONVERTIBLE_DTYPES)}, "
                        f"got {name}")


def check_seed(seed, name="seed"):
    """A seed of NumPy's RandomState: an integer in [0, 2**32 - 1]. None is refused: it
    would draw from the operating system, and every call would give other numbers."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{name} must be an integer in [0, 2**32 - 1], got {seed!r}")


def check_device(device, ops):
    """``device`` names a device this backend has (ValueError "unknown device") and that
    is present on this machine (ValueError "not available")."""
    name = ops.device_name(device)
    if name not in ops.devices_known:
        raise ValueError(f"unknown device {device!r}; the {ops.backend} backend has "
                         f"{', '.join(ops.devices_known)}")
    here = ops.devices()
    if name not in here:
        raise ValueError(f"device {device!r} is not available on this machine; the "
                         f"{ops.backend} backend has {', '.join(here)} here")


def check_path(path, name="path"):
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    if os.fspath(path) == "":
        raise ValueError(f"{name} is empty")


def check_step_index(k, ops):
    """learning_rate_at's k: a non-negative integer (or a 0-d integer array, e.g. JAX's
    state["t"]); a traced one is accepted unseen."""
    value = None
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        value = int(k)
    elif hasattr(k, "shape") and hasattr(k, "dtype") and len(k.shape) == 0 and \
            ops.dtype_name(k).startswith(("int", "uint")):
        host = ops.host(k) if ops.native(k) else np.asarray(k)
        if host is None:
            return
        value = int(host)
    if value is None or value < 0:
        raise ValueError(f"k must be a non-negative integer (the update number), got {k!r}")


# ---------------------------------------------------------------- arrays

def check_native(name, x, ops):
    """The documented TypeError for an array of another framework (or a NumPy matrix /
    masked array): every backend computes on its own arrays only."""
    if ops.native(x):
        return
    hint = ("fill its masked entries first: x.filled(value)"
            if isinstance(x, np.ma.MaskedArray) else "convert it with from_numpy")
    raise TypeError(f"{name} is a {array_label(x)}; the {ops.backend} backend takes "
                    f"{ops.array_kind} only ({hint}; nothing is converted implicitly)")


def check_array(name, x, ops, ndim=2):
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    check_native(name, x, ops)
    dt = ops.dtype_name(x)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {dt}; expected a floating-point dtype "
                        f"({', '.join(FLOAT_DTYPES)})")
    if ndim is not None and len(x.shape) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {shape_of(x)}")
    return dt


def check_finite(name, x, ops):
    if ops.all_finite(x) is False:
        raise ValueError(f"{name} contains nan or inf")


def check_parameters(parameters, ops, num_layers=None, finite=True):
    """Keys exactly W1 b1 ... WL bL (L from the keys, or ``num_layers``), 2-D float
    arrays of one dtype, shapes chained W^[l] (n_l, n_{l-1}), b^[l] (n_l, 1).
    Returns (L, dtype name)."""
    if not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict of arrays, got {type(parameters).__name__}")
    idx = [int(m.group(2)) for m in map(_KEY.match, map(str, parameters)) if m]
    L = num_layers if num_layers is not None else max(idx, default=0)
    if L == 0:
        raise ValueError("parameters: no layers (expected keys W1 b1 ... WL bL)")
    expected = [f"{p}{l}" for l in range(1, L + 1) for p in "Wb"]
    missing = [k for k in expected if k not in parameters]
    extra = [str(k) for k in parameters if k not in expected]
    if missing or extra:
        parts = ([f"missing {' '.join(missing)}"] if missing else []) + \
                ([f"unexpected {' '.join(extra)}"] if extra else [])
        raise ValueError(f"parameters: {'; '.join(parts)} (expected exactly "
                         f"{' '.join(expected)} for L = {L})")
    dt0 = None
    for l in range(1, L + 1):
        W, b = parameters[f"W{l}"], parameters[f"b{l}"]
        for k, v in ((f"W{l}", W), (f"b{l}", b)):
            dt = check_array(f"parameters: {k}", v, ops)
            if dt0 is None:
                dt0 = dt
            elif dt != dt0:
                raise TypeError(f"parameters: {k} has dtype {dt} but W1 has {dt0}; all "
                                "parameters must share one dtype")
        n_l, n_prev = shape_of(W)
        if l > 1 and n_prev != parameters[f"W{l - 1}"].shape[0]:
            raise ValueError(f"parameters: W{l} has shape {shape_of(W)} but W{l - 1} has "
                             f"{int(parameters[f'W{l - 1}'].shape[0])} rows; W{l} must be "
                             f"(n_{l}, n_{l - 1}) = ({n_l}, {int(parameters[f'W{l - 1}'].shape[0])})")
        if shape_of(b) != (n_l, 1):
            raise ValueError(f"parameters: b{l} has shape {shape_of(b)}, expected ({n_l}, 1)")
        if 0 in (n_l, n_prev):
            raise ValueError(f"parameters: W{l} has shape {shape_of(W)}; layers need at least one unit")
    if finite:
        for k in expected:
            check_finite(f"parameters: {k}", parameters[k], ops)
    return L, dt0


def check_tree(parameters, ops, required=()):
    """Optimiser inputs: any dict of float arrays (the optimisers are not tied to a
    network's layout), holding at least ``required``."""
    if not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict of arrays, got {type(parameters).__name__}")
    if not parameters:
        raise ValueError("parameters: empty dict")
    missing = [k for k in required if k not in parameters]
    if missing:
        raise ValueError(f"parameters: missing {' '.join(missing)} (expected "
                         f"{' '.join(required)})")
    for k, v in parameters.items():
        check_array(f"parameters: {k}", v, ops, ndim=None)


def check_X(X, parameters, ops, finite=True):
    """X (n_x, m) with n_x = W1.shape[1], m >= 1, in the parameters' dtype."""
    dt = check_array("X", X, ops)
    n_x = int(parameters["W1"].shape[1])
    rows, m = shape_of(X)
    if rows != n_x:
        if m == n_x:
            raise ValueError(f"X has shape {shape_of(X)} but W1 is {shape_of(parameters['W1'])}: "
                             f"examples must be columns: X is (n_x, m) = ({n_x}, m), "
                             "pass X.T")
        raise ValueError(f"X has shape {shape_of(X)} but W1 is {shape_of(parameters['W1'])}: "
                         f"X must have n_x = {n_x} rows (X is (n_x, m))")
    if m == 0:
        raise ValueError(f"X has shape {shape_of(X)}: no examples (m = 0)")
    pdt = ops.dtype_name(parameters["W1"])
    if dt != pdt:
        raise TypeError(f"X has dtype {dt} but the parameters have {pdt}; convert one of "
                        "them (nothing is cast implicitly)")
    if finite:
        check_finite("X", X, ops)
    return m


def check_labels(Y, output, ops, name="Y"):
    Yh = ops.host(Y)
    if Yh is None:
        return
    Yh = np.asarray(Yh, dtype=np.float64)
    if not np.all((Yh == 0) | (Yh == 1)):
        raise ValueError(f"{name} must hold labels in {{0, 1}} (found other values, nan or inf)")
    if output == "softmax" and not np.all(Yh.sum(axis=0) == 1):
        raise ValueError(f"{name} must be one-hot columns for a softmax output "
                         "(exactly one 1 per column)")


def check_Y(Y, expected_shape, dt, output, ops, labels=True, against="(n_y, m)"):
    ydt = check_array("Y", Y, ops)
    if shape_of(Y) != tuple(expected_shape):
        raise ValueError(f"Y has shape {shape_of(Y)}, expected {against} = {tuple(expected_shape)}")
    if ydt != dt:
        raise TypeError(f"Y has dtype {ydt} but X has {dt}; convert one of them "
                        "(nothing is cast implicitly)")
    if labels:
        check_labels(Y, output, ops)


def check_data(parameters, X, Y, output, ops, num_layers=None, finite=True, labels=True):
    L, dt = check_parameters(parameters, ops, num_layers, finite)
    m = check_X(X, parameters, ops, finite)
    n_y = int(parameters[f"W{L}"].shape[0])
    if Y is not None:
        check_Y(Y, (n_y, m), dt, output, ops, labels)
    return L, m


def check_cache(cache, parameters, L, m, ops, keys=None):
    if not isinstance(cache, dict):
        raise TypeError(f"cache must be a dict of arrays, got {type(cache).__name__}")
    if keys is None:
        keys = [f"Z{l}" for l in range(1, L + 1)] + [f"A{l}" for l in range(1, L + 1)]
    missing = [k for k in keys if k not in cache]
    if missing:
        raise ValueError(f"cache: missing {' '.join(missing)} (pass the cache that the "
                         "forward pass returned for these parameters and X)")
    for k in keys:
        l = int(k[1:])
        check_array(f"cache: {k}", cache[k], ops)
        want = (int(parameters[f"W{l}"].shape[0]), m)
        if shape_of(cache[k]) != want:
            raise ValueError(f"cache: {k} has shape {shape_of(cache[k])}, expected {want} "
                             "(was it computed from these parameters and X?)")


def check_prediction_pair(A, Y, output, ops, name="AL", labels=True, probabilities=False):
    """cross_entropy(AL, Y) / compute_cost(A2, Y): A and Y float, same shape, m >= 1;
    with ``probabilities`` A's values in [0, 1] (the literal costs take log A and
    log(1 - A): outside [0, 1] they return nan, silently)."""
    dt = check_array(name, A, ops)
    if shape_of(A)[1] == 0:
        raise ValueError(f"{name} has shape {shape_of(A)}: no examples (m = 0)")
    check_Y(Y, shape_of(A), dt, output, ops, labels, against=f"the shape of {name}")
    if probabilities:
        Ah = ops.host(A)
        if Ah is not None and not np.all((np.asarray(Ah) >= 0) & (np.asarray(Ah) <= 1)):
            raise ValueError(f"{name} must hold probabilities in [0, 1] (found values outside "
                             "[0, 1], or nan); pass the output activation's values, not logits")


def check_grads(grads, parameters, ops):
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict of arrays, got {type(grads).__name__}")
    missing = [f"d{k}" for k in parameters if f"d{k}" not in grads]
    if missing:
        raise ValueError(f"grads: missing {' '.join(missing)} (one gradient dP per parameter P)")
    for k, p in parameters.items():
        g = grads[f"d{k}"]
        check_array(f"grads: d{k}", g, ops)
        if shape_of(g) != shape_of(p):
            raise ValueError(f"grads: d{k} has shape {shape_of(g)}, expected {shape_of(p)} "
                             f"(the shape of {k})")
        if ops.dtype_name(g) != ops.dtype_name(p):
            raise TypeError(f"grads: d{k} has dtype {ops.dtype_name(g)} but {k} has "
                            f"{ops.dtype_name(p)}")


def check_state(state, parameters, optimizer, ops):
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    want = ["t"]
    if optimizer.name in ("momentum", "adam"):
        want += [f"vd{k}" for k in parameters]
    if optimizer.name == "adam":
        want += [f"sd{k}" for k in parameters]
    missing = [k for k in want if k not in state]
    extra = [str(k) for k in state if k not in want]
    if missing or extra:
        parts = ([f"missing {' '.join(missing)}"] if missing else []) + \
                ([f"unexpected {' '.join(extra)}"] if extra else [])
        raise ValueError(f"state: {'; '.join(parts)} for optimizer {optimizer.name!r} "
                         "(make it with init_optimizer_state)")
    for k in want[1:]:
        check_array(f"state: {k}", state[k], ops)
        p = parameters[k[2:]]
        if shape_of(state[k]) != shape_of(p):
            raise ValueError(f"state: {k} has shape {shape_of(state[k])}, expected {shape_of(p)}")


# ---------------------------------------------------------------- per public function

def _v_network_forward(a, ops):
    check_names(a["hidden"], a["output"])
    check_data(a["parameters"], a["X"], None, a["output"], ops)


def _v_network_backward(a, ops):
    check_names(a["hidden"], a["output"])
    L, m = check_data(a["parameters"], a["X"], a["Y"], a["output"], ops)
    check_cache(a["cache"], a["parameters"], L, m, ops)


def _v_autodiff(a, ops):
    check_names(a["hidden"], a["output"], a["cost"])
    check_data(a["parameters"], a["X"], a["Y"], a["output"], ops)


def _v_cross_entropy(a, ops):
    check_names(output=a["output"])
    check_prediction_pair(a["AL"], a["Y"], a["output"], ops, "AL", probabilities=True)


def _v_cross_entropy_from_logits(a, ops):
    check_names(output=a["output"])
    check_prediction_pair(a["ZL"], a["Y"], a["output"], ops, "ZL")


def _v_init_optimizer_state(a, ops):
    check_optimizer(a["optimizer"])
    check_tree(a["parameters"], ops)


def _v_optimizer_step(a, ops):
    check_optimizer(a["optimizer"])
    check_tree(a["parameters"], ops)
    check_grads(a["grads"], a["parameters"], ops)
    check_state(a["state"], a["parameters"], a["optimizer"], ops)


def _v_train_step(a, ops):
    check_names(a["hidden"], a["output"], a["cost"])
    check_optimizer(a["optimizer"])
    check_data(a["parameters"], a["X"], a["Y"], a["output"], ops)
    check_state(a["state"], a["parameters"], a["optimizer"], ops)


def check_epoch_seeds(seed, num_epochs):
    """Epoch e shuffles with RandomState(seed + e): the last one must still be a seed."""
    check_seed(seed)
    if seed + max(int(num_epochs) - 1, 0) > SEED_MAX:
        raise ValueError(f"seed + num_epochs - 1 must be at most 2**32 - 1 (epoch e shuffles "
                         f"with seed + e), got seed {seed} and {num_epochs} epochs")


def _v_train(a, ops):
    check_names(a["hidden"], a["output"], a["cost"])
    check_optimizer(a["optimizer"])
    check_count("num_epochs", a["num_epochs"], 0)
    check_batch_size(a["batch_size"])
    check_epoch_seeds(a["seed"], a["num_epochs"])
    if a["callback"] is not None and not callable(a["callback"]):
        raise TypeError(f"callback must be callable (k, cost, grads) or None, got "
                        f"{type(a['callback']).__name__}")
    if not isinstance(a["check_finite"], bool):
        raise TypeError(f"check_finite must be True or False, got {a['check_finite']!r}")
    check_data(a["parameters"], a["X"], a["Y"], a["output"], ops, finite=a["check_finite"])


def _v_train_scan(a, ops):
    check_names(a["hidden"], a["output"], a["cost"])
    check_optimizer(a["optimizer"])
    check_count("num_steps", a["num_steps"], 0)
    check_data(a["parameters"], a["X"], a["Y"], a["output"], ops)


def _v_initialize_network(a, ops):
    check_layer_dims(a["layer_dims"])
    check_initializer(a["init"])
    check_seed(a["seed"])
    check_dtype_arg(a["dtype"])
    if "device" in a:  # the mirrors' extra argument
        check_device(a["device"], ops)


def _v_predict(a, ops):
    check_names(a["hidden"], a["output"])
    check_data(a["parameters"], a["X"], None, a["output"], ops)


def _v_make_train_step(a, ops):
    check_names(a["hidden"], a["output"], a["cost"])
    check_optimizer(a["optimizer"])
    if a["grad_path"] not in GRAD_PATHS:
        raise ValueError(f"unknown grad_path {a['grad_path']!r}; expected one of "
                         f"{', '.join(GRAD_PATHS)}")


# the article's two-layer network: exactly W1 b1 W2 b2
def _v_forward_propagation(a, ops):
    check_data(a["parameters"], a["X"], None, "sigmoid", ops, num_layers=2)


def _v_compute_cost(a, ops):
    check_prediction_pair(a["A2"], a["Y"], "sigmoid", ops, "A2", probabilities=True)


def _v_backward_propagation(a, ops):
    L, m = check_data(a["parameters"], a["X"], a["Y"], "sigmoid", ops, num_layers=2)
    check_cache(a["cache"], a["parameters"], 2, m, ops, keys=["A1", "A2"])


def _v_update_parameters(a, ops):
    check_tree(a["parameters"], ops, required=("W1", "b1", "W2", "b2"))
    check_grads(a["grads"], a["parameters"], ops)
    check_learning_rate(a["learning_rate"])


def _v_optimize(a, ops):
    if "compiled" in a and not isinstance(a["compiled"], bool):  # a mirror's extra argument
        raise TypeError(f"compiled must be True or False, got {a['compiled']!r}")
    check_learning_rate(a["learning_rate"])
    check_count("num_iterations", a["num_iterations"], 0)
    check_data(a["parameters"], a["X"], a["Y"], "sigmoid", ops, num_layers=2)


def _v_model(a, ops):
    check_learning_rate(a["learning_rate"])
    check_count("num_iterations", a["num_iterations"], 0)
    check_count("n_h", a["n_h"], 1)
    X, Y = a["X_train"], a["Y_train"]
    dt = check_array("X", X, ops)
    if shape_of(X)[1] == 0:
        raise ValueError(f"X has shape {shape_of(X)}: no examples (m = 0)")
    if dt != "float64":
        raise TypeError(f"X has dtype {dt} but the parameters have float64; convert one of "
                        "them (nothing is cast implicitly)")
    check_finite("X", X, ops)
    check_Y(Y, (int(Y.shape[0]) if hasattr(Y, "shape") and len(Y.shape) == 2 else 1,
                shape_of(X)[1]), dt, "sigmoid", ops)


def _v_article_predict(a, ops):
    check_data(a["parameters"], a["X"], None, "sigmoid", ops, num_layers=2)


def _v_initialize_parameters(a, ops):
    for k in ("n_x", "n_h", "n_y"):
        check_count(k, a[k], 1)
    if "dtype" in a:  # torch's extra arguments (model follows the data's dtype/device)
        check_dtype_arg(a["dtype"])
    if "device" in a:
        check_device(a["device"], ops)


def _v_layer_sizes(a, ops):
    check_array("X", a["X"], ops)
    check_array("Y", a["Y"], ops)
    check_count("n_h", a["n_h"], 1)


def _v_sigmoid(a, ops):
    check_array("Z", a["Z"], ops, ndim=None)


def _v_activation(a, ops):
    check_activation(a["name"], HIDDEN_ACTIVATIONS + ("softmax",))
    check_array("z", a["z"], ops, ndim=None)


def _v_activation_grad(a, ops):
    check_names(hidden=a["name"])
    check_array("z", a["z"], ops, ndim=None)
    check_array("a", a["a"], ops, ndim=None)
    if shape_of(a["z"]) != shape_of(a["a"]):
        raise ValueError(f"a has shape {shape_of(a['a'])}, expected the shape of z = "
                         f"{shape_of(a['z'])} (a = g(z))")
    if ops.dtype_name(a["z"]) != ops.dtype_name(a["a"]):
        raise TypeError(f"a has dtype {ops.dtype_name(a['a'])} but z has "
                        f"{ops.dtype_name(a['z'])}")


def _v_softmax(a, ops):
    check_array("z", a["z"], ops, ndim=None)


def _v_gradient_norms(a, ops):
    grads = a["grads"]
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict of arrays, got {type(grads).__name__}")
    for k, v in grads.items():
        if str(k)[:2] in ("dW", "db"):
            check_array(f"grads: {k}", v, ops, ndim=None)


def _v_num_layers(a, ops):
    check_parameters(a["parameters"], ops, finite=False)


def _v_learning_rate_at(a, ops):
    check_optimizer(a["optimizer"])
    check_step_index(a["k"], ops)


def _check_tree_dict(d, name="d"):
    if not isinstance(d, dict):
        raise TypeError(f"{name} must be a dict of arrays, got {type(d).__name__}")


def _check_convertible(name, x):
    """from_numpy's input: anything NumPy turns into a numeric array, but not a masked
    array (np.array would drop its mask without a word)."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy.ma.MaskedArray; from_numpy would drop its mask "
                        "(fill its masked entries first: x.filled(value))")
    dt = dtype_name(x) if hasattr(x, "dtype") else np.asarray(x).dtype.name
    if dt not in CONVERTIBLE_DTYPES and not dt.startswith(("int", "uint", "float", "complex")):
        raise TypeError(f"{name} has dtype {dt}; from_numpy converts numeric arrays only "
                        "(bool, integer, float or complex)")


def _v_from_numpy(a, ops):
    _check_convertible("x", a["x"])
    check_conversion_dtype(a["dtype"])
    check_device(a["device"], ops)


def _v_tree_from_numpy(a, ops):
    _check_tree_dict(a["d"])
    for k, v in a["d"].items():
        if not isinstance(v, (int, float)):
            _check_convertible(f"d: {k}", v)
    check_conversion_dtype(a["dtype"])
    check_device(a["device"], ops)


def _v_tree_to_numpy(a, ops):
    _check_tree_dict(a["d"])


def check_weights_to_save(parameters, ops):
    """save_weights' dict: string names a file can hold (WEIGHT_NAME), float arrays of
    this backend; checked before any file is created."""
    if not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict of arrays, got {type(parameters).__name__}")
    if not parameters:
        raise ValueError("parameters: nothing to save (empty dict)")
    for k, v in parameters.items():
        if not isinstance(k, str):
            raise TypeError(f"parameters: key {k!r} is a {type(k).__name__}; weight names "
                            "must be strings")
        if not WEIGHT_NAME.match(k):
            raise ValueError(f"parameters: key {k!r} is not a weight name (a letter, then "
                             "letters, digits or _, at most 64 characters)")
        check_array(f"parameters: {k}", v, ops, ndim=None)


def _v_save_weights(a, ops):
    check_path(a["path"])
    check_weights_to_save(a["parameters"], ops)


def _v_load_weights(a, ops):
    check_path(a["path"])
    if a["dtype"] is not None:
        check_dtype_arg(a["dtype"])
    check_device(a["device"], ops)
    if a["layer_dims"] is not None:
        check_layer_dims(a["layer_dims"])


def _v_batch_order(a, ops):
    # m = 0 and bad batch sizes are batch_order's own messages (reference.data)
    check_count("m", a["m"], 0)
    check_seed(a["seed"])
    check_count("epoch", a["epoch"], 0)
    check_seed(a["seed"] + a["epoch"], "seed + epoch")


# ---------------------------------------------------------------- the remedies (docs/remedies.md)

def check_remedies(remedies):
    from .remedies import Remedies
    if not isinstance(remedies, Remedies):
        raise TypeError(f"remedies must be a reference.Remedies, got {type(remedies).__name__}")


def check_remedy_parameters(parameters, remedies, ops, finite=True):
    """W1 ... WL chained; per hidden layer b{l} (n_l, 1), or gamma{l} beta{l} (n_l, 1) where
    batch-normalised; Ws{l} (n_l, n_{l-2}) where the skip is projected; the output layer's
    b{L}; nothing else; one float dtype. Returns (layout, dtype name)."""
    from .remedies import layout
    if not isinstance(parameters, dict):
        raise TypeError(f"parameters must be a dict of arrays, got {type(parameters).__name__}")
    idx = [int(k[1:]) for k in map(str, parameters) if re.match(r"^W[1-9][0-9]*$", k)]
    L = max(idx, default=0)
    if L == 0:
        raise ValueError("parameters: no layers (expected keys W1 ... WL, see docs/remedies.md)")
    for l in range(1, L + 1):
        if f"W{l}" not in parameters:
            raise ValueError(f"parameters: missing W{l}")
        check_array(f"parameters: W{l}", parameters[f"W{l}"], ops)
    dims = (int(parameters["W1"].shape[1]),) + tuple(int(parameters[f"W{l}"].shape[0]) for l in range(1, L + 1))
    lay = layout(dims, remedies)
    want = {}
    for l in range(1, L + 1):
        want[f"W{l}"] = (dims[l], dims[l - 1])
        for k in ((f"gamma{l}", f"beta{l}") if l in lay["bn"] else (f"b{l}",)):
            want[k] = (dims[l], 1)
        if l in lay["projected"]:
            want[f"Ws{l}"] = (dims[l], dims[l - 2])
    missing = [k for k in want if k not in parameters]
    extra = [str(k) for k in parameters if k not in want]
    if missing or extra:
        parts = ([f"missing {' '.join(missing)}"] if missing else []) + \
                ([f"unexpected {' '.join(extra)}"] if extra else [])
        raise ValueError(f"parameters: {'; '.join(parts)} for these remedies (expected "
                         f"{' '.join(want)}; build them with initialize_remedy_network)")
    dt0 = ops.dtype_name(parameters["W1"])
    for k, shape in want.items():
        dt = check_array(f"parameters: {k}", parameters[k], ops)
        if dt != dt0:
            raise TypeError(f"parameters: {k} has dtype {dt} but W1 has {dt0}; all "
                            "parameters must share one dtype")
        if shape_of(parameters[k]) != shape:
            raise ValueError(f"parameters: {k} has shape {shape_of(parameters[k])}, expected {shape}")
        if 0 in shape:
            raise ValueError(f"parameters: {k} has shape {shape}; layers need at least one unit")
        if finite:
            check_finite(f"parameters: {k}", parameters[k], ops)
    return lay, dt0


def check_bn_state(bn_state, parameters, lay, ops):
    if not lay["bn"]:
        if bn_state is not None and not isinstance(bn_state, dict):
            raise TypeError(f"bn_state must be a dict (or None), got {type(bn_state).__name__}")
        return
    if not isinstance(bn_state, dict):
        raise TypeError(f"bn_state must be a dict of arrays (init_bn_state), got {type(bn_state).__name__}")
    for l in lay["bn"]:
        for k in (f"mu_run{l}", f"var_run{l}"):
            if k not in bn_state:
                raise ValueError(f"bn_state: missing {k} (make it with init_bn_state)")
            check_array(f"bn_state: {k}", bn_state[k], ops)
            if shape_of(bn_state[k]) != shape_of(parameters[f"gamma{l}"]):
                raise ValueError(f"bn_state: {k} has shape {shape_of(bn_state[k])}, expected "
                                 f"{shape_of(parameters[f'gamma{l}'])}")


def check_masks(masks, lay, dims, m, remedies, ops):
    """None, or D1 ... D{L-1} shaped (n_l, m) (any float dtype: 0/1 casts exactly), and
    only with dropout: masks given with keep_prob == 1 mean the caller expected dropout
    that would silently not happen (every backend refuses them, the same way)."""
    if masks is None:
        return
    if not remedies.dropout:
        raise ValueError("dropout masks were given but keep_prob is 1 (no dropout): pass masks=None")
    if not isinstance(masks, dict):
        raise TypeError(f"masks must be a dict of arrays (dropout_masks) or None, got {type(masks).__name__}")
    for l in range(1, lay["L"]):
        k = f"D{l}"
        if k not in masks:
            raise ValueError(f"masks: missing {k} (make them with dropout_masks / step_masks)")
        check_array(f"masks: {k}", masks[k], ops)
        if shape_of(masks[k]) != (dims[l], m):
            raise ValueError(f"masks: {k} has shape {shape_of(masks[k])}, expected {(dims[l], m)}")
    extra = sorted(set(masks) - {f"D{l}" for l in range(1, lay["L"])})
    if extra:
        raise ValueError(f"masks: unexpected {', '.join(map(str, extra))} (the hidden layers' "
                         f"masks are D1 ... D{lay['L'] - 1})")


def _remedy_data(a, ops, Y=True, masks=True, trains=False):
    """The checks every remedy function with data makes; ``trains``: it runs a train-mode
    forward, whose unbiased running variance averages m/(m-1) var (m = 1 cannot give it):
    refused here, before anything is computed (or compiled), in every backend."""
    check_remedies(a["remedies"])
    lay, dt = check_remedy_parameters(a["parameters"], a["remedies"], ops)
    m = check_X(a["X"], a["parameters"], ops)
    if trains and lay["bn"] and a["remedies"].bn_running_var == "unbiased" and m < 2:
        raise ValueError("bn_running_var='unbiased' needs a batch of m >= 2 examples (it "
                         "averages m/(m-1) times the batch variance)")
    L = lay["L"]
    dims = (int(a["parameters"]["W1"].shape[1]),) + tuple(
        int(a["parameters"][f"W{l}"].shape[0]) for l in range(1, L + 1))
    if Y:
        check_Y(a["Y"], (dims[-1], m), dt, a["output"], ops)
    if masks:
        check_masks(a.get("masks"), lay, dims, m, a["remedies"], ops)
    return lay, m


def _v_initialize_remedy_network(a, ops):
    _v_initialize_network(a, ops)
    check_remedies(a["remedies"])


def _v_init_bn_state(a, ops):
    check_tree(a["parameters"], ops)


def _v_dropout_masks(a, ops):
    check_layer_dims(a["layer_dims"])
    check_count("m", a["m"], 1)
    kp = a["keep_prob"]
    if isinstance(kp, bool) or not isinstance(kp, (int, float, np.integer, np.floating)) \
            or not 0 < kp <= 1:
        raise ValueError(f"keep_prob must be a number in (0, 1], got {kp!r}")
    if "seed" in a:
        check_seed(a["seed"])
    if "k" in a:
        check_count("k", a["k"], 0)


def _v_remedy_forward(a, ops):
    check_names(a["hidden"], a["output"])
    lay, _ = _remedy_data(a, ops, Y=False, trains=a.get("train", True))
    check_bn_state(a["bn_state"], a["parameters"], lay, ops)


def _v_remedy_cost(a, ops):
    check_names(output=a["output"])
    check_remedies(a["remedies"])
    lay, dt = check_remedy_parameters(a["parameters"], a["remedies"], ops)
    L = lay["L"]
    cache = a["cache"]
    if not isinstance(cache, dict) or f"Z{L}" not in cache:
        raise ValueError(f"cache: missing Z{L} (pass the cache that remedy_forward returned)")
    check_Y(a["Y"], shape_of(cache[f"Z{L}"]), dt, a["output"], ops, against=f"the shape of Z{L}")


def _v_remedy_backward(a, ops):
    check_names(a["hidden"], a["output"])
    lay, m = _remedy_data(a, ops)
    cache = a["cache"]
    if not isinstance(cache, dict):
        raise TypeError(f"cache must be a dict of arrays, got {type(cache).__name__}")
    want = [f"Z{l}" for l in range(1, lay["L"] + 1)] + [f"A{l}" for l in range(1, lay["L"] + 1)]
    want += [f"{p}{l}" for l in lay["bn"] for p in ("var", "Zn")]
    missing = [k for k in want if k not in cache]
    if missing:
        raise ValueError(f"cache: missing {' '.join(missing)} (pass the cache that the "
                         "train-mode remedy_forward returned for these parameters and X)")


def _v_remedy_backward_autodiff(a, ops):
    check_names(a["hidden"], a["output"])
    lay, _ = _remedy_data(a, ops, trains=True)
    check_bn_state(a["bn_state"], a["parameters"], lay, ops)


def _v_remedy_step(a, ops):
    check_names(a["hidden"], a["output"])
    check_optimizer(a["optimizer"])
    lay, _ = _remedy_data(a, ops, trains=True)
    check_bn_state(a["bn_state"], a["parameters"], lay, ops)
    check_state(a["opt_state"], a["parameters"], a["optimizer"], ops)


VALIDATORS = {
    "network_forward": _v_network_forward,
    "network_backward": _v_network_backward,
    "network_backward_autodiff": _v_autodiff,
    "cross_entropy": _v_cross_entropy,
    "cross_entropy_from_logits": _v_cross_entropy_from_logits,
    "init_optimizer_state": _v_init_optimizer_state,
    "optimizer_step": _v_optimizer_step,
    "train_step": _v_train_step,
    "train": _v_train,
    "train_scan": _v_train_scan,
    "initialize_network": _v_initialize_network,
    "network_predict": _v_predict,
    "make_train_step": _v_make_train_step,
    "forward_propagation": _v_forward_propagation,
    "compute_cost": _v_compute_cost,
    "backward_propagation": _v_backward_propagation,
    "update_parameters": _v_update_parameters,
    "optimize": _v_optimize,
    "model": _v_model,
    "predict": _v_article_predict,
    "initialize_parameters": _v_initialize_parameters,
    "layer_sizes": _v_layer_sizes,
    "sigmoid": _v_sigmoid,
    "activation": _v_activation,
    "activation_grad": _v_activation_grad,
    "softmax": _v_softmax,
    "gradient_norms": _v_gradient_norms,
    "num_layers": _v_num_layers,
    "learning_rate_at": _v_learning_rate_at,
    "from_numpy": _v_from_numpy,
    "tree_from_numpy": _v_tree_from_numpy,
    "tree_to_numpy": _v_tree_to_numpy,
    "save_weights": _v_save_weights,
    "load_weights": _v_load_weights,
    "batch_order": _v_batch_order,
    "initialize_remedy_network": _v_initialize_remedy_network,
    "init_bn_state": _v_init_bn_state,
    "dropout_masks": _v_dropout_masks,
    "step_masks": _v_dropout_masks,
    "remedy_forward": _v_remedy_forward,
    "remedy_cost": _v_remedy_cost,
    "remedy_backward": _v_remedy_backward,
    "remedy_backward_autodiff": _v_remedy_backward_autodiff,
    "remedy_step": _v_remedy_step,
}


def _guard(fn, check, ops):
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{fn.__name__}(): {e}") from None
        bound.apply_defaults()
        check(bound.arguments, ops)
        return fn(*args, **kwargs)
    wrapper.__wrapped__ = fn
    wrapper.unvalidated = fn
    return wrapper


def _guard_step_factory(make, ops):
    """make_train_step: validate the factory's arguments; the returned step checks shapes,
    dtypes and keys of its arguments (no values: it is the hot path) outside any jit."""
    sig = inspect.signature(make)

    @functools.wraps(make)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        _v_make_train_step(a, ops)
        step = make(*args, **kwargs)

        @functools.wraps(step)
        def checked_step(parameters, state, X, Y):
            check_data(parameters, X, Y, a["output"], ops, finite=False, labels=False)
            check_state(state, parameters, a["optimizer"], ops)
            return step(parameters, state, X, Y)
        checked_step.unvalidated = step
        return checked_step
    wrapper.unvalidated = make
    return wrapper


def guard_api(namespace, ops):
    """{name: validated wrapper} for every function of VALIDATORS present in namespace."""
    out = {}
    for name, check in VALIDATORS.items():
        fn = namespace.get(name)
        if fn is None or getattr(fn, "unvalidated", None) is not None:
            continue
        if name == "make_train_step":
            out[name] = _guard_step_factory(fn, ops)
        else:
            out[name] = _guard(fn, check, ops)
    return out
