"""Input validation shared by every backend: one set of checks, one set of messages.

Backend-neutral: the checks look at arrays only through duck typing (``.shape``, a dtype
*name*) and ask the backend, through a small ``Ops`` object, for the two things that need
the framework: whether an array is all finite and a NumPy copy of it (for label checks).
Both may answer ``None`` ("values unknown", e.g. a JAX tracer inside ``jax.jit``): the
value checks are then skipped, the shape/dtype checks still run. This module imports
NumPy only.

Exceptions (docs/errors.md): ``TypeError`` for a wrong dtype or a non-array,
``ValueError`` for everything else (shapes, keys, values, names, hyper-parameters).

``guard_api(namespace, ops)`` wraps a backend's public functions so that each validates
its arguments and then calls the unvalidated implementation. Internal code (train's
loop, compiled steps, lax.scan bodies) calls the implementations directly, so hot paths
pay nothing; ``train``/``optimize`` check X and the parameters for nan/inf once, at entry.
"""
import functools
import inspect
import math
import re

import numpy as np

from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, check_activation

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
COSTS = ("stable", "literal")
GRAD_PATHS = ("manual", "autodiff")
_KEY = re.compile(r"^([Wb])([1-9][0-9]*)$")


def dtype_name(x):
    """'float32' for a NumPy/JAX float32 array and for torch.float32."""
    return str(x.dtype).rsplit(".", 1)[-1]


def shape_of(x):
    return tuple(int(s) for s in x.shape)


class Ops:
    """What validation needs from a backend. ``all_finite(x)`` -> bool or None (unknown);
    ``host(x)`` -> a NumPy array or None (unknown)."""

    def __init__(self, all_finite, host, dtype_name=dtype_name):
        self.all_finite, self.host, self.dtype_name = all_finite, host, dtype_name


NUMPY_OPS = Ops(all_finite=lambda x: bool(np.all(np.isfinite(x))), host=np.asarray)


# ---------------------------------------------------------------- names, hyper-parameters

def check_names(hidden=None, output=None, cost=None):
    if hidden is not None:
        check_activation(hidden, HIDDEN_ACTIVATIONS)
    if output is not None:
        check_activation(output, OUTPUT_ACTIVATIONS)
    if cost is not None and cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")


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


def check_dtype_arg(dtype):
    """The ``dtype=`` argument of initialize_network: a float dtype (any spelling)."""
    name = str(dtype).rsplit(".", 1)[-1]
    if isinstance(dtype, type):
        name = dtype.__name__
    if name not in FLOAT_DTYPES:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            pass
    if name not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be a floating-point dtype ({', '.join(FLOAT_DTYPES)}), "
                        f"got {name}")


# ---------------------------------------------------------------- arrays

def check_array(name, x, ops, ndim=2):
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
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


def check_prediction_pair(A, Y, output, ops, name="AL", labels=True):
    """cross_entropy(AL, Y) / compute_cost(A2, Y): A and Y float, same shape, m >= 1."""
    dt = check_array(name, A, ops)
    if shape_of(A)[1] == 0:
        raise ValueError(f"{name} has shape {shape_of(A)}: no examples (m = 0)")
    check_Y(Y, shape_of(A), dt, output, ops, labels, against=f"the shape of {name}")


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
    check_prediction_pair(a["AL"], a["Y"], a["output"], ops, "AL")


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


def _v_train(a, ops):
    check_names(a["hidden"], a["output"], a["cost"])
    check_optimizer(a["optimizer"])
    check_count("num_epochs", a["num_epochs"], 0)
    check_batch_size(a["batch_size"])
    check_data(a["parameters"], a["X"], a["Y"], a["output"], ops, finite=a["check_finite"])


def _v_train_scan(a, ops):
    check_names(a["hidden"], a["output"], a["cost"])
    check_optimizer(a["optimizer"])
    check_count("num_steps", a["num_steps"], 0)
    check_data(a["parameters"], a["X"], a["Y"], a["output"], ops)


def _v_initialize_network(a, ops):
    check_layer_dims(a["layer_dims"])
    check_initializer(a["init"])
    check_dtype_arg(a["dtype"])


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
    check_prediction_pair(a["A2"], a["Y"], "sigmoid", ops, "A2")


def _v_backward_propagation(a, ops):
    L, m = check_data(a["parameters"], a["X"], a["Y"], "sigmoid", ops, num_layers=2)
    check_cache(a["cache"], a["parameters"], 2, m, ops, keys=["A1", "A2"])


def _v_update_parameters(a, ops):
    check_tree(a["parameters"], ops, required=("W1", "b1", "W2", "b2"))
    check_grads(a["grads"], a["parameters"], ops)
    check_learning_rate(a["learning_rate"])


def _v_optimize(a, ops):
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
