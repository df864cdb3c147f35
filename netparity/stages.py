"""Conformance cases: a configuration, the stages it produces on any backend, and the
reference/oracle/bound triple every backend is compared with.

A case runs ``steps`` updates. At the last step it records every stage, in
forward-then-backward order: Z1 A1 ... ZL AL, cost_literal, cost_stable,
dZL dWL dbL dA{L-1} dZ{L-1} ... dW1 db1 dA0, then the updated parameters W1' b1' ...
and optimiser state t' vdW1' sdW1' .... Each backend runs its own chain of updates from
the reference's initial weights and data (nothing is re-synchronised between steps), so
the bounds carry the error of earlier steps forward (see tolerance.py).
"""
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

import reference as R
from netparity.backends import get_backend
from netparity.stagenames import stage_order
from netparity.tolerance import Precision, input_bounds, stage_bounds

# "deep" has a square layer (W2 is 4x4), where a transposed weight keeps its shape
ARCHS = {"shallow": (4,), "deep": (4, 4, 3)}
BATCH_SIZES = {"full": None, "mini": 64, "sgd": 1}
OPTIMIZER_CONFIGS = {
    "gd": R.Optimizer("gd", learning_rate=0.5),
    "momentum": R.Optimizer("momentum", learning_rate=0.5, beta=0.9),
    "adam": R.Optimizer("adam", learning_rate=0.01),
}


@dataclass(frozen=True)
class Case:
    backend: str
    path: str = "manual"          # one of netparity.backends.PATHS
    device: str = "cpu"
    dtype: str = "float64"
    hidden: str = "tanh"
    output: str = "sigmoid"
    arch: str = "shallow"
    optimizer: str = "gd"
    batch: str = "full"
    steps: int = 1
    tf32: bool = False

    @property
    def data(self):
        return "planar" if self.output == "sigmoid" else "spirals"

    def layer_dims(self):
        X, Y = dataset(self.data)
        return (X.shape[0],) + ARCHS[self.arch] + (Y.shape[0],)

    @property
    def id(self):
        dims = "x".join(map(str, self.layer_dims()))
        prec = "tf32" if self.tf32 else self.dtype
        return (f"{self.backend}-{self.path}-{self.device}-{prec}-{self.hidden}-{self.output}-{dims}"
                f"-{self.optimizer}-{self.batch}-{self.steps}step")

    def context(self):
        return {"case": self.id}


@lru_cache(maxsize=None)
def dataset(name):
    X, Y = R.load_dataset(name)
    X.setflags(write=False)
    Y.setflags(write=False)
    return X, Y


def initial_parameters(case):
    init = "article" if case.arch == "shallow" else "xavier"
    return R.initialize_network(case.layer_dims(), init=init, seed=1)


def batch_sequence(case):
    """Column indices of each of the case's ``steps`` updates (reference order)."""
    X, _ = dataset(case.data)
    m = X.shape[1]
    out, epoch = [], 0
    while len(out) < case.steps:
        out.extend(R.batch_order(m, BATCH_SIZES[case.batch], seed=0, epoch=epoch))
        epoch += 1
    return out[:case.steps]


def _np(backend, v):
    if isinstance(v, (int, float)):
        return v
    arr = backend.to_numpy(v)
    return int(arr) if arr.dtype.kind in "iu" and arr.ndim == 0 else arr


def step_stages(backend, path, step_fn, params, state, X, Y, hidden, output, optimizer):
    """One update on ``backend``; returns (stages as NumPy, new params, new state)."""
    L = len(params) // 2
    if path == "compiled":
        new_p, new_s, J, grads = step_fn(params, state, X, Y)
        out = {"cost_stable": J, **grads}
    else:
        AL, cache = backend.network_forward(X, params, hidden, output)
        out = {k: v for k, v in cache.items() if k != "A0"}
        out["cost_literal"] = backend.cross_entropy(AL, Y, output)
        out["cost_stable"] = backend.cross_entropy_from_logits(cache[f"Z{L}"], Y, output)
        if path == "manual":
            grads = backend.network_backward(params, cache, X, Y, hidden, output)
        else:
            grads = backend.network_backward_autodiff(params, X, Y, hidden, output, "stable")
        out.update(grads)
        new_p, new_s = backend.optimizer_step(params, grads, state, optimizer)
    out.update({f"{k}'": v for k, v in new_p.items()})
    out.update({f"{k}'": v for k, v in new_s.items()})
    return {k: _np(backend, v) for k, v in out.items()}, new_p, new_s


def run_backend(case):
    """The case on its backend: the stages of the last step, as NumPy."""
    backend = get_backend(case.backend)
    X, Y = dataset(case.data)
    optimizer = OPTIMIZER_CONFIGS[case.optimizer]
    if case.path == "idiomatic":
        # the framework's own modules and optimisers, from the same weights, data and batches
        return backend.run_idiomatic(initial_parameters(case), X, Y, batch_sequence(case),
                                     case.hidden, case.output, optimizer, case.dtype, case.device)
    params = backend.tree_from_numpy(initial_parameters(case), case.dtype, case.device)
    state = backend.init_optimizer_state(params, optimizer)
    step_fn = None
    if case.path == "compiled":
        step_fn = backend.make_train_step(case.hidden, case.output, optimizer, "stable", "manual", True)
    Xd = backend.from_numpy(X, case.dtype, case.device)
    Yd = backend.from_numpy(Y, case.dtype, case.device)
    for idx in batch_sequence(case):
        # the batch is cut on the device from the reference's indices (no host round trip)
        Ii = backend.from_numpy(idx, None, case.device)
        out, params, state = step_stages(backend, case.path, step_fn, params, state,
                                         Xd[:, Ii], Yd[:, Ii], case.hidden, case.output, optimizer)
    return out


@dataclass
class Expected:
    ref: dict            # the reference in the case's dtype
    oracle: dict         # the reference in float64
    bounds: dict         # E per stage, for |x - exact|
    order: list = field(default_factory=list)
    costs_ref: list = field(default_factory=list)     # cost_stable of every step, same dtype
    costs_oracle: list = field(default_factory=list)  # ... in float64
    costs_bound: list = field(default_factory=list)   # ... and its bound E


@lru_cache(maxsize=256)
def expected(dtype, hidden, output, arch, optimizer, batch, steps, tf32=False):
    """Reference (same dtype), float64 oracle and bounds for a configuration, shared by
    every backend, path and device of that configuration."""
    case = Case("numpy", dtype=dtype, hidden=hidden, output=output, arch=arch,
                optimizer=optimizer, batch=batch, steps=steps, tf32=tf32)
    X, Y = dataset(case.data)
    return expected_for(initial_parameters(case), X, Y, batch_sequence(case), hidden, output,
                        OPTIMIZER_CONFIGS[optimizer], dtype, tf32)


def expected_for(p0, X, Y, batches, hidden, output, optimizer, dtype, tf32=False, workers=1):
    """The reference's run of ``batches`` (column indices into X, Y) from the float64
    parameters ``p0``: the last step's stages in ``dtype`` and in float64 (the oracle),
    and every stage's bound, carried through the steps (tolerance.py). ``workers`` > 1:
    the bounds of a data-parallel run whose batch means are reduced over that many
    workers (tolerance.reduction_roundings)."""
    prec = Precision(dtype, tf32)
    p_ref = R.tree_from_numpy(p0, dtype)
    s_ref = R.init_optimizer_state(p_ref, optimizer)
    p64, s64 = p0, R.init_optimizer_state(p0, optimizer)
    E_P = input_bounds(p0, prec)
    E_S = {k: 0.0 if k == "t" else np.zeros_like(v) for k, v in s64.items()}
    costs = ([], [], [])
    for idx in batches:
        Xb, Yb = X[:, idx], Y[:, idx]
        ref, p_ref, s_ref = step_stages(R, "manual", None, p_ref, s_ref, Xb.astype(dtype),
                                        Yb.astype(dtype), hidden, output, optimizer)
        oracle, new64, news64 = step_stages(R, "manual", None, p64, s64, Xb, Yb, hidden, output,
                                            optimizer)
        _, cache64 = R.network_forward(Xb, p64, hidden, output)
        grads64 = {k: oracle[k] for k in oracle if k.startswith("d")}
        bounds, E_P, E_S = stage_bounds(p64, s64, Xb, Yb, cache64, grads64, new64, news64,
                                        E_P, E_S, hidden, output, optimizer, prec, workers=workers)
        p64, s64 = new64, news64
        for lst, v in zip(costs, (ref, oracle, bounds)):
            lst.append(float(v["cost_stable"]))
    L = len(p0) // 2
    return Expected(ref, oracle, bounds, stage_order(L, list(s64)), *costs)
