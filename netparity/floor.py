"""A compute floor for one training step: the least time this machine's arithmetic needs
for the step's operations, so that a benchmark is "how far from the hardware" at every
size - also at the cache-resident sizes of the article's network, where the memory
roofline (netparity.roofline) bounds nothing.

Model: a step is a count of operations per class (``step_ops``), and each class runs at
the best throughput measured on this machine (``measure_rates``):

    floor = (matmul FLOPs + elementwise FLOPs) / peak FLOP/s
          + sum over the transcendental classes  count / (elements per second)

* Arithmetic (every product, bias add, subtraction, tanh' = 1 - a^2, update, ...) runs
  at the machine's matmul peak (what the FMA units sustain: the best of many short
  matmuls, which a busy machine does not interrupt, and roofline.measure_peaks).
  A fused program keeps elementwise intermediates in registers, so arithmetic - not a
  load/store pass per operation - is what it cannot go below.
* All cores count: the rates are the machine's (a one-thread rate times the cores), so
  the floor is below every variant, also one that splits a step over the cores; a step
  run on one thread (the thread policy's count at small sizes) can reach 1 / cores.
* Transcendentals cost tens of instructions per element, so they get measured rates:
  ``tanh`` (hidden units), ``sigmoid`` and ``softmax`` (output units), and the stable
  cross-entropy per logit (``cost_sigmoid``, ``cost_softmax``: an exp and a log1p, or
  the log-sum-exp). Each is the best of every installed backend's own function
  (``activation``, ``softmax``, ``cross_entropy_from_logits``) on cache-resident arrays,
  with the per-call dispatch cost removed: t(n) is measured at two sizes and the rate is
  the slope (n2 - n1) / (t(n2) - t(n1)).

What the floor leaves out, so that it stays a lower bound: memory traffic (in cache at
small sizes; at large sizes the roofline's bytes/bandwidth is the bound to read), loop
and call overhead, and the synchronisation of threads. A fraction of the floor
(floor / measured time) near 1 means nothing but the arithmetic is left to remove.
"""
import time

import numpy as np

from netparity import roofline

TRANSCENDENTAL = ("tanh", "sigmoid", "softmax", "cost_sigmoid", "cost_softmax")
SIZES = (2048, 32768)  # elements of the two timed calls (float64: 16 KB, 256 KB: in cache)


def _layers(dims):
    return list(zip(dims[:-1], dims[1:]))


def step_ops(dims, m, op="step", steps=1, hidden="tanh", output="sigmoid", cost=True,
             input_grad=True):
    """{class: count} of ``op`` ("forward", "backward", "step", "loop", "optimize"):
    "flops" (arithmetic, products included) and elements per transcendental class.
    step = forward + stable cost (``cost``) + backward + plain-GD update; loop and
    optimize are ``steps`` steps (optimize: no cost, no dA_0, as the article's)."""
    if op not in ("forward", "backward", "step", "loop", "optimize"):
        raise ValueError(f"unknown op {op!r}")
    if hidden != "tanh":
        raise ValueError("the floor model knows the tanh hidden layer of the benchmarks only")
    if op == "optimize":
        cost, input_grad = False, False
    L, nL = len(dims) - 1, dims[-1]
    counts = dict.fromkeys(("flops",) + TRANSCENDENTAL, 0)
    if op != "backward":  # forward
        for l, (p, n) in enumerate(_layers(dims), start=1):
            counts["flops"] += 2 * n * p * m + n * m  # W A_prev, + b
            if l < L:
                counts["tanh"] += n * m
        counts[output] += nL * m
    if op == "forward":
        return counts
    if op != "backward" and cost:  # the stable cost per logit, and its sum
        counts[f"cost_{output}"] += nL * m
        counts["flops"] += nL * m
    counts["flops"] += nL * m  # dZ_L = A_L - Y
    for l, (p, n) in enumerate(_layers(dims), start=1):
        counts["flops"] += 2 * n * p * m + n * p  # dW = dZ A_prev^T / m
        counts["flops"] += n * m + n  # db = row sums / m
        if l > 1 or input_grad:
            counts["flops"] += 2 * n * p * m  # dA_prev = W^T dZ
        if l > 1:
            counts["flops"] += 3 * p * m  # dZ_prev = dA_prev (1 - A_prev^2)
    if op != "backward":
        counts["flops"] += 2 * roofline.num_parameters(dims)  # P - lr dP
    if op in ("loop", "optimize"):
        counts = {k: v * steps for k, v in counts.items()}
    return counts


def floor_seconds(counts, dtype, rates):
    """The floor of ``counts`` (step_ops) in dtype, from measured ``rates``
    (measure_rates, as stored with a benchmark run); None where a rate is missing."""
    try:
        t = counts["flops"] / rates[f"flops_{dtype}"]
        for cls in TRANSCENDENTAL:
            if counts.get(cls):
                t += counts[cls] / rates[f"{cls}_{dtype}"]
    except (KeyError, ZeroDivisionError):
        return None
    return t


def breakdown(counts, dtype, rates):
    """{class: seconds} of the floor, arithmetic as "arithmetic": where the floor's time goes."""
    out = {"arithmetic": counts["flops"] / rates[f"flops_{dtype}"]}
    out.update({cls: counts[cls] / rates[f"{cls}_{dtype}"] for cls in TRANSCENDENTAL
                if counts.get(cls)})
    return out


# ------------------------------------------------------------------ measurement

def _best(fn, sync, calls, repeats):
    """Best over ``repeats`` of the mean time of ``calls`` back-to-back calls."""
    sync(fn())  # warm-up: compile (eager JAX), allocate
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            out = fn()
        sync(out)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def _rate(make, sync, repeats, attempts=3):
    """Elements per second of make(n)() from the slope between the two SIZES (the
    per-call cost cancels). A busy machine can make the small call the slower one: then
    it is measured again (``attempts`` times), and None if it never comes out positive."""
    (n1, n2) = SIZES
    small, large = make(n1), make(n2)
    for _ in range(attempts):
        t1 = _best(small, sync, 20, max(repeats, 2))
        t2 = _best(large, sync, 5, max(repeats, 2))
        if t2 > 1.5 * t1:  # 16x the elements: anything less is noise, not the slope
            return (n2 - n1) / (t2 - t1)
    return None


def _class_functions(mod):
    """{class: (n -> zero-argument callable)} through a backend's public functions,
    unvalidated (validation reads every value: it would be timed with the op)."""
    def plain(name):
        fn = getattr(mod, name)
        return getattr(fn, "unvalidated", fn)
    activation, softmax, xent = plain("activation"), plain("softmax"), plain("cross_entropy_from_logits")
    rng = np.random.default_rng(0)

    def arrays(n, rows, dtype):
        z = mod.from_numpy(rng.standard_normal((rows, n // rows)), dtype)
        y = mod.from_numpy((rng.random((rows, n // rows)) > 0.5).astype(float), dtype)
        return z, y

    def make(cls, dtype):
        def at(n):
            rows = 8 if cls.endswith("softmax") else 1
            z, y = arrays(n, rows, dtype)
            return {"tanh": lambda: activation("tanh", z),
                    "sigmoid": lambda: activation("sigmoid", z),
                    "softmax": lambda: softmax(z),
                    "cost_sigmoid": lambda: xent(z, y, "sigmoid"),
                    "cost_softmax": lambda: xent(z, y, "softmax")}[cls]
        return at
    return make


def _short_matmul_peak(dtype, n=256, calls=300):
    """FLOP/s of the fastest of many short n x n matmuls: on a busy machine a long
    measurement is interrupted, one of 300 half-millisecond calls is not (measured on the
    shared 2-core EPYC at load average 6: 63 GFLOP/s float64 this way, 20 from the
    roofline's five 1024 x 1024 calls; 78 is what 2 cores x 2 FMA units x 4 lanes x
    2.45 GHz allow)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, n, n)).astype(dtype)
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def measure_rates(repeats=5, backends=None):
    """This machine's rates for the floor, for all of its cores: FLOP/s per dtype (the
    better of roofline.measure_peaks and ``_short_matmul_peak``) and, per transcendental
    class and dtype, elements per second: the best one-thread rate over every installed
    backend that has benchmark hooks (their ``synchronize`` waits for asynchronous
    results), times the cores (so the floor stays below a variant that uses them all; a
    step run on one thread can reach 1 / cores of it). Returns {"flops_float64": ...,
    "tanh_float32": ..., "tanh_float32_by": backend name, "cores": n, ...}."""
    import importlib
    from netparity.backends import REGISTRY, available_backends
    from netparity.numerics import available_cores
    peaks = roofline.measure_peaks(repeats=repeats)
    rates = {f"flops_{dt}": max(peaks[f"flops_{dt}"], _short_matmul_peak(dt))
             for dt in ("float64", "float32")}
    cores = rates["cores"] = available_cores()
    names = backends if backends is not None else available_backends()
    for name in names:
        spec = REGISTRY[name]
        if spec.bench is None:
            continue
        mod = importlib.import_module(spec.module)
        sync = importlib.import_module(spec.bench).synchronize
        make = _class_functions(mod)
        for dtype in ("float64", "float32"):
            for cls in TRANSCENDENTAL:
                r = _rate(make(cls, dtype), sync, repeats)
                key = f"{cls}_{dtype}"
                if r and cores * r > rates.get(key, 0):
                    rates[key], rates[key + "_by"] = cores * r, name
    return rates


def fraction(seconds, counts, dtype, rates):
    """floor / measured time (1.0 = at the floor), or None without the rates."""
    f = floor_seconds(counts, dtype, rates)
    return None if f is None else f / seconds

