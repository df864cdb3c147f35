"""Conformance cases: a configuration, the stages it produces on any backend, and the
reference/oracle/bound triple every backend is compared with.

A case runs ``steps`` updates. At the last step it records every stage, in
forward-then-backward order: Z1 A1 ... ZL AL, cost_literal, cost_stable,
dZL dWL dbL dA{L-1} dZ{L-1} ... dW1 db1 dA0, then the updated parameters W1' b1' ...
and optimiser state t' vdW1' sdW1' .... Each backend runs its own chain of updates from
the reference's initial weights and data (nothing is re-synchronised between steps), so
the bounds carry the error of earlier steps forward (see tolerance.py).

A ``resync`` case checks the last update alone: the reference runs the first steps − 1
updates in the case's dtype, and every backend (and the float64 oracle) starts the last
one from that state, its parameters, running estimates and optimiser state (t = steps − 1
included) exactly as the reference holds them. Its bounds are one update's, so they stay
finite where carried bounds overflow (batch norm over several float32 steps,
docs/tolerances.md), and it still exercises what only a later update has: Adam's bias
corrections at t > 1, non-zero moments, running estimates away from 0 and 1.
"""
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

import reference as R
from netparity.backends import get_backend
from netparity.stagenames import remedy_stage_order, stage_order
from netparity.tolerance import Precision, input_bounds, stage_bounds
from netparity.tolerance_remedies import remedy_stage_bounds


@dataclass(frozen=True)
class Size:
    """One size of the matrix: its architectures (name -> hidden widths) and the data set
    of each output activation. The first architecture is the size's default."""
    archs: dict
    data: dict


SIZES = {
    # the article's nets on its 2-D sets; "deep" has a square layer (W2 is 4x4), where a
    # transposed weight keeps its shape
    "toy": Size({"shallow": (4,), "deep": (4, 4, 3)}, {"sigmoid": "planar", "softmax": "spirals"}),
    # the sizes people train: 784-256-256-10 / -1 on 8000 MNIST-shaped examples; reductions
    # of 784, 256 and 8000 terms, which BLAS blocks and splits over threads; W2 is square
    # (256x256) for the same reason as the toy "deep"
    "medium": Size({"deep": (256, 256)}, {"sigmoid": "blobs784_binary", "softmax": "blobs784"}),
}
ARCHS = SIZES["toy"].archs   # the toy architectures (the default size's)
# the remedies' deeper toy nets (docs/remedies.md): skips enter hidden layers 3 and 5;
# "res" has equal widths (identity skips A1 -> 3, A3 -> 5), "proj" a projected skip
# (Ws3 is 4x8: A1 -> 3) and an identity one (A3 -> 5). The toy "deep" (2-4-4-3-1) has one
# projected skip (Ws3, 3x4). Not in SIZES: the core matrix does not run them.
REMEDY_ARCHS = {"res": (8, 8, 8, 8, 8), "proj": (8, 6, 4, 4, 4)}
# the remedy axis: a short name -> the Remedies of docs/remedies.md ("none": the plain
# network, the core matrix's cases)
REMEDY_CONFIGS = {
    "none": R.Remedies(),
    "bn": R.Remedies(batch_norm=True),
    "res": R.Remedies(residual="before"),
    "resafter": R.Remedies(residual="after"),
    "l2": R.Remedies(l2=0.7),
    "drop": R.Remedies(keep_prob=0.8),
    "drophalf": R.Remedies(keep_prob=0.5),
    "bntorch": R.Remedies(batch_norm=True, bn_running_var="unbiased"),
    "all": R.Remedies(batch_norm=True, residual="before", l2=0.7, keep_prob=0.8),
    # torch's running-variance convention (nn.BatchNorm1d has no biased form; flax no unbiased)
    "alltorch": R.Remedies(batch_norm=True, residual="before", l2=0.7, keep_prob=0.8,
                           bn_running_var="unbiased"),
}


def archs_of(size):
    """The architectures a case of ``size`` may name (the toy size also has REMEDY_ARCHS)."""
    return {**SIZES[size].archs, **REMEDY_ARCHS} if size == "toy" else SIZES[size].archs
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
    size: str = "toy"             # one of SIZES
    remedy: str = "none"          # one of REMEDY_CONFIGS
    resync: bool = False          # only the last update, from the reference's state (above)

    @property
    def data(self):
        return SIZES[self.size].data[self.output]

    def layer_dims(self):
        X, Y = dataset(self.data)
        return (X.shape[0],) + archs_of(self.size)[self.arch] + (Y.shape[0],)

    @property
    def remedies(self):
        return REMEDY_CONFIGS[self.remedy]

    @property
    def id(self):
        # the size is named only where it is not the toy one (the toy ids predate the axis)
        dims = ("" if self.size == "toy" else f"{self.size}-") + "x".join(map(str, self.layer_dims()))
        prec = "tf32" if self.tf32 else self.dtype
        return (f"{self.backend}-{self.path}-{self.device}-{prec}-{self.hidden}-{self.output}-{dims}"
                f"-{self.optimizer}-{self.batch}-{self.steps}step"
                + ("" if self.remedy == "none" else f"-{self.remedy}")
                + ("-resync" if self.resync else ""))

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
    remedy = getattr(case, "remedy", "none")
    if remedy != "none":  # the same W draws, plus gamma/beta and Ws (docs/remedies.md)
        return R.initialize_remedy_network(case.layer_dims(), REMEDY_CONFIGS[remedy], init=init, seed=1)
    return R.initialize_network(case.layer_dims(), init=init, seed=1)


def case_masks(case, k, m):
    """The dropout masks of step k on a batch of m examples (NumPy float64 0/1), or None."""
    return R.step_masks(case.layer_dims(), m, case.remedies.keep_prob, k)


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
    if getattr(case, "resync", False) and case.path == "idiomatic":
        # it would run from a fresh start and be compared with update N: never silently
        raise ValueError(f"{case.id}: the idiomatic path cannot start from the reference's state "
                         "(runner.skip_reason says why)")
    if getattr(case, "remedy", "none") != "none":
        return run_backend_remedies(case, backend, X, Y, optimizer)
    if case.path == "idiomatic":
        # the framework's own modules and optimisers, from the same weights, data and batches
        return backend.run_idiomatic(initial_parameters(case), X, Y, batch_sequence(case),
                                     case.hidden, case.output, optimizer, case.dtype, case.device)
    batches = batch_sequence(case)
    if getattr(case, "resync", False):
        start_p, _, start_s = resync_start(case)
        params = backend.tree_from_numpy(start_p, case.dtype, case.device)
        state = state_from_numpy(backend, start_s, params, optimizer, case.dtype, case.device)
        batches = batches[-1:]
    else:
        params = backend.tree_from_numpy(initial_parameters(case), case.dtype, case.device)
        state = backend.init_optimizer_state(params, optimizer)
    step_fn = None
    if case.path == "compiled":
        step_fn = backend.make_train_step(case.hidden, case.output, optimizer, "stable", "manual", True)
    Xd = backend.from_numpy(X, case.dtype, case.device)
    Yd = backend.from_numpy(Y, case.dtype, case.device)
    for idx in batches:
        # the batch is cut on the device from the reference's indices (no host round trip)
        Ii = backend.from_numpy(idx, None, case.device)
        out, params, state = step_stages(backend, case.path, step_fn, params, state,
                                         Xd[:, Ii], Yd[:, Ii], case.hidden, case.output, optimizer)
    return out


def run_backend_remedies(case, backend, X, Y, optimizer):
    """A remedy case (docs/remedies.md): ``backend.remedy_step(path, ...)`` per batch, the
    reference's masks of each step converted with the backend's own from_numpy; the
    idiomatic path gets NumPy (weights, running state, data, the masks of every step) and
    runs ``backend.run_idiomatic_remedies``."""
    rem = case.remedies
    p0 = initial_parameters(case)
    bn0 = R.init_bn_state(p0)
    batches = batch_sequence(case)
    if case.path == "idiomatic":
        masks = [case_masks(case, k, len(idx)) for k, idx in enumerate(batches)]
        return backend.run_idiomatic_remedies(p0, bn0, X, Y, batches, masks, rem, case.hidden,
                                              case.output, optimizer, case.dtype, case.device)
    first = 0
    if getattr(case, "resync", False):
        p0, bn0, s0 = resync_start(case)
        first = len(batches) - 1
    params = backend.tree_from_numpy(p0, case.dtype, case.device)
    bn = backend.tree_from_numpy(bn0, case.dtype, case.device)
    if first:
        state = state_from_numpy(backend, s0, params, optimizer, case.dtype, case.device)
    else:
        state = backend.init_optimizer_state(params, optimizer)
    Xd = backend.from_numpy(X, case.dtype, case.device)
    Yd = backend.from_numpy(Y, case.dtype, case.device)
    out = {}
    for k, idx in enumerate(batches):
        if k < first:
            continue
        masks = case_masks(case, k, len(idx))
        Md = None if masks is None else {n: backend.from_numpy(v, case.dtype, case.device)
                                         for n, v in masks.items()}
        Ii = backend.from_numpy(idx, None, case.device)
        out, params, bn, state = backend.remedy_step(case.path, params, bn, state, Xd[:, Ii], Yd[:, Ii],
                                                     rem, case.hidden, case.output, optimizer, Md)
    return {k: _np(backend, v) for k, v in out.items()}


def state_from_numpy(backend, state, params, optimizer, dtype, device):
    """The reference's optimiser state (NumPy buffers, t an int) as ``backend`` holds its
    own: its init_optimizer_state's keys and the type of its t (an int, or a device
    integer array), each buffer converted in ``dtype``."""
    own = backend.init_optimizer_state(params, optimizer)
    out = {}
    for k, v in own.items():
        if k == "t":
            t = int(state["t"])
            out[k] = t if isinstance(v, int) else backend.from_numpy(
                np.asarray(t, dtype=backend.to_numpy(v).dtype), None, device)
        else:
            out[k] = backend.from_numpy(state[k], dtype, device)
    return out


def resync_start(case):
    """The reference's own state before the case's last update, in the case's dtype:
    (parameters, running estimates or None, optimiser state), NumPy (cached)."""
    return _resync_start(case.dtype, case.hidden, case.output, case.arch, case.optimizer,
                         case.batch, case.steps, case.tf32, case.size, case.remedy)


@lru_cache(maxsize=64)
def _resync_start(dtype, hidden, output, arch, optimizer, batch, steps, tf32, size, remedy):
    case = Case("numpy", dtype=dtype, hidden=hidden, output=output, arch=arch, optimizer=optimizer,
                batch=batch, steps=steps, tf32=tf32, size=size, remedy=remedy)
    X, Y = dataset(case.data)
    opt = OPTIMIZER_CONFIGS[optimizer]
    p = R.tree_from_numpy(initial_parameters(case), dtype)
    s = R.init_optimizer_state(p, opt)
    bn = R.tree_from_numpy(R.init_bn_state(initial_parameters(case)), dtype) if remedy != "none" else None
    # the same chain as expected()'s same-dtype reference (a NumPy reference: tf32 is moot)
    for k, idx in enumerate(batch_sequence(case)[:-1]):
        Xb, Yb = X[:, idx].astype(dtype), Y[:, idx].astype(dtype)
        if remedy == "none":
            _, p, s = step_stages(R, "manual", None, p, s, Xb, Yb, hidden, output, opt)
        else:
            _, p, bn, s = R.remedy_step("manual", p, bn, s, Xb, Yb, case.remedies, hidden, output,
                                        opt, case_masks(case, k, len(idx)))
    for tree in (p, bn or {}, s):   # shared by every case of the configuration: read-only
        for v in tree.values():
            if isinstance(v, np.ndarray):
                v.setflags(write=False)
    return p, bn, s


@dataclass
class Expected:
    ref: dict            # the reference in the case's dtype
    oracle: dict         # the reference in float64
    bounds: dict         # E per stage, for |x - exact|
    order: list = field(default_factory=list)
    costs_ref: list = field(default_factory=list)     # cost_stable of every step, same dtype
    costs_oracle: list = field(default_factory=list)  # ... in float64
    costs_bound: list = field(default_factory=list)   # ... and its bound E


def expected(dtype, hidden, output, arch, optimizer, batch, steps, tf32=False, size="toy",
             remedy="none", resync=False):
    """Reference (same dtype), float64 oracle and bounds for a configuration, shared by
    every backend, path and device of that configuration (cached). ``resync``: of the last
    update alone, from the reference's state before it (the module docstring)."""
    cached = _expected_toy if size == "toy" else _expected_big
    return cached(dtype, hidden, output, arch, optimizer, batch, steps, tf32, size, remedy, resync)


def _expected(dtype, hidden, output, arch, optimizer, batch, steps, tf32, size, remedy="none",
              resync=False):
    case = Case("numpy", dtype=dtype, hidden=hidden, output=output, arch=arch,
                optimizer=optimizer, batch=batch, steps=steps, tf32=tf32, size=size, remedy=remedy)
    X, Y = dataset(case.data)
    if resync:
        # the oracle starts from the reference's own values (exact in float64): no input error
        p, bn, s = (None if t is None else R.tree_from_numpy(t, "float64") for t in resync_start(case))
        zero = {k: np.zeros_like(v) for k, v in p.items()}
        last = batch_sequence(case)[-1]
        if remedy != "none":
            return expected_for_remedies(p, X, Y, [last], [case_masks(case, steps - 1, len(last))],
                                         hidden, output, OPTIMIZER_CONFIGS[optimizer], dtype,
                                         case.remedies, tf32, E_p0=zero, bn0=bn, s0=s)
        return expected_for(p, X, Y, [last], hidden, output, OPTIMIZER_CONFIGS[optimizer], dtype,
                            tf32, E_p0=zero, s0=s)
    if remedy != "none":
        masks = [case_masks(case, k, len(idx)) for k, idx in enumerate(batch_sequence(case))]
        return expected_for_remedies(initial_parameters(case), X, Y, batch_sequence(case), masks,
                                     hidden, output, OPTIMIZER_CONFIGS[optimizer], dtype,
                                     case.remedies, tf32)
    return expected_for(initial_parameters(case), X, Y, batch_sequence(case), hidden, output,
                        OPTIMIZER_CONFIGS[optimizer], dtype, tf32)


# a medium configuration's stages and bounds take ~200 MB (the full batch's caches in three
# versions): keep only the last few (cases of one configuration run one after another)
_expected_toy = lru_cache(maxsize=256)(_expected)
_expected_big = lru_cache(maxsize=4)(_expected)


def expected_for(p0, X, Y, batches, hidden, output, optimizer, dtype, tf32=False, E_p0=None,
                 workers=1, s0=None):
    """The reference's run of ``batches`` (column indices into X, Y) from the float64
    parameters ``p0``: the last step's stages in ``dtype`` and in float64 (the oracle),
    and every stage's bound, carried through the steps (tolerance.py). ``E_p0``: the
    initial parameters' error bound (default: their rounding to ``dtype``). ``workers``
    > 1: the bounds of a data-parallel run whose batch means are reduced over that many
    workers (tolerance.reduction_roundings). ``s0``: the float64 optimiser state to start
    from, exact in ``dtype`` (default: a fresh one)."""
    prec = Precision(dtype, tf32)
    p_ref = R.tree_from_numpy(p0, dtype)
    if s0 is None:
        s_ref = R.init_optimizer_state(p_ref, optimizer)
        p64, s64 = p0, R.init_optimizer_state(p0, optimizer)
    else:
        s_ref, p64, s64 = R.tree_from_numpy(s0, dtype), p0, s0
    E_P = input_bounds(p0, prec) if E_p0 is None else E_p0
    E_S = {k: 0.0 if k == "t" else np.zeros_like(v) for k, v in s64.items()}
    costs = ([], [], [])
    for idx in batches:
        Xb, Yb = X[:, idx], Y[:, idx]
        ref, p_ref, s_ref = step_stages(R, "manual", None, p_ref, s_ref, Xb.astype(dtype),
                                        Yb.astype(dtype), hidden, output, optimizer)
        oracle, new64, news64 = step_stages(R, "manual", None, p64, s64, Xb, Yb, hidden, output,
                                            optimizer)
        L = len(p64) // 2
        cache64 = {"A0": Xb, **{f"{p}{l}": oracle[f"{p}{l}"] for l in range(1, L + 1) for p in "ZA"}}
        grads64 = {k: oracle[k] for k in oracle if k.startswith("d")}
        bounds, E_P, E_S = stage_bounds(p64, s64, Xb, Yb, cache64, grads64, new64, news64,
                                        E_P, E_S, hidden, output, optimizer, prec, workers=workers)
        p64, s64 = new64, news64
        for lst, v in zip(costs, (ref, oracle, bounds)):
            lst.append(float(v["cost_stable"]))
    L = len(p0) // 2
    return Expected(ref, oracle, bounds, stage_order(L, list(s64)), *costs)


def expected_for_remedies(p0, X, Y, batches, masks, hidden, output, optimizer, dtype, remedies,
                          tf32=False, E_p0=None, bn0=None, s0=None):
    """``expected_for`` with the remedies: the reference's run of ``batches`` from the float64
    parameters ``p0`` (initialize_remedy_network's) and fresh running estimates, step k with
    the dropout masks ``masks[k]`` (NumPy 0/1, or None); the last step's stages in ``dtype``
    and in float64, and every stage's bound (netparity/tolerance_remedies.py), carried
    through the steps (parameters, optimiser state and running estimates). ``E_p0``, ``bn0``,
    ``s0``: a start other than a fresh one (float64 values exact in ``dtype``; the running
    estimates and optimiser state carry no error)."""
    from reference.remedies import layer_dims_of, layout
    prec = Precision(dtype, tf32)
    bn0 = R.init_bn_state(p0) if bn0 is None else bn0
    p_ref, bn_ref = R.tree_from_numpy(p0, dtype), R.tree_from_numpy(bn0, dtype)
    s_ref = R.init_optimizer_state(p_ref, optimizer) if s0 is None else R.tree_from_numpy(s0, dtype)
    p64, bn64, s64 = p0, bn0, (R.init_optimizer_state(p0, optimizer) if s0 is None else s0)
    E_P = input_bounds(p0, prec) if E_p0 is None else E_p0
    E_S = {k: 0.0 if k == "t" else np.zeros_like(v) for k, v in s64.items()}
    E_BN = {k: np.zeros_like(v) for k, v in bn0.items()}   # 0 and 1: exact in every dtype
    costs = ([], [], [])
    ref = oracle = bounds = {}
    for idx, D in zip(batches, masks):
        Xb, Yb = X[:, idx], Y[:, idx]
        ref, p_ref, bn_ref, s_ref = R.remedy_step("manual", p_ref, bn_ref, s_ref, Xb.astype(dtype),
                                                  Yb.astype(dtype), remedies, hidden, output,
                                                  optimizer, D)
        oracle, new64, newbn64, news64 = R.remedy_step("manual", p64, bn64, s64, Xb, Yb, remedies,
                                                       hidden, output, optimizer, D)
        bounds, E_P, E_S, E_BN = remedy_stage_bounds(
            p64, s64, bn64, Xb, Yb, oracle, new64, news64, newbn64, E_P, E_S, E_BN, hidden,
            output, optimizer, remedies, D, prec)
        p64, bn64, s64 = new64, newbn64, news64
        for lst, v in zip(costs, (ref, oracle, bounds)):
            lst.append(float(v["cost_stable"]))
    lay = layout(layer_dims_of(p0), remedies)
    order = remedy_stage_order(lay["L"], lay["bn"], lay["skips"], lay["projected"],
                               remedies.residual == "before", remedies.l2 > 0, list(s64))
    return Expected(ref, oracle, bounds, order, *costs)
