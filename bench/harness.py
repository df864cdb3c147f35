"""Configurations, the backends' variants and the timing helper shared by the benchmarks.

No framework is named here: every backend's variants, ops, synchronisation and compile
counts come from its benchmark hooks, the module its registry entry names
(``BackendSpec.bench``; the interface is documented in reference/bench.py). A variant turns
a config into zero-argument callables per op (forward, backward, step, loop) whose
results are synchronised (``hooks.synchronize``) before the clock stops.
"""
import importlib
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest

import reference
from netparity import roofline
from netparity.backends import REGISTRY, backend_spec, get_backend, import_error
from netparity.numerics import thread_policy

TARGET_S = 0.5  # measured time per benchmark (quick/full); big configs take >= 3 rounds


@dataclass(frozen=True)
class Config:
    name: str
    dims: tuple
    m: int
    dtype: str
    output: str = "sigmoid"
    loop_steps: int = 100
    article: bool = False  # also benchmark the article's optimize (2-layer, planar)

    def data(self):
        if self.output == "softmax":  # MNIST-shaped: seeded synthetic blobs, 784 features
            X, Y = reference.load_dataset("blobs", m=self.m, num_features=self.dims[0],
                                          num_classes=self.dims[-1])
        else:
            X, Y = reference.load_dataset("planar", m=self.m)
        return X.astype(self.dtype), Y.astype(self.dtype)

    def parameters(self):
        init = "article" if self.article else "xavier"
        return reference.initialize_network(self.dims, init=init, dtype=self.dtype)

    def optimizer(self):
        return reference.Optimizer(learning_rate=1.2 if self.article else 0.1)


CONFIGS = {c.name: c for c in [
    Config("tiny-2-4-1x64", (2, 4, 1), 64, "float64", loop_steps=10, article=True),
    Config("planar-2-4-1x400-f64", (2, 4, 1), 400, "float64", article=True),
    Config("planar-2-4-1x400-f32", (2, 4, 1), 400, "float32", article=True),
    Config("medium-2-64-64-1x4000-f64", (2, 64, 64, 1), 4000, "float64"),
    Config("large-2-256-1x20000-f32", (2, 256, 1), 20000, "float32", loop_steps=20),
    Config("xlarge-2-1024-1x100000-f32", (2, 1024, 1), 100000, "float32", loop_steps=5),
    Config("mnist-784-128-10x4000-f32", (784, 128, 10), 4000, "float32", "softmax", loop_steps=10),
    Config("mnist-784-128-10x4000-f64", (784, 128, 10), 4000, "float64", "softmax", loop_steps=10),
    # the conformance matrix's medium size (netparity.stages.SIZES["medium"], full batch)
    Config("mnist-784-256-256-10x8000-f32", (784, 256, 256, 10), 8000, "float32", "softmax", loop_steps=5),
]}
SIZES = {
    "smoke": ["tiny-2-4-1x64"],
    "quick": ["planar-2-4-1x400-f64", "planar-2-4-1x400-f32", "medium-2-64-64-1x4000-f64"],
    # the sizes people train: >= 20 000 examples or 784 features
    "large": ["large-2-256-1x20000-f32", "xlarge-2-1024-1x100000-f32", "mnist-784-128-10x4000-f32",
              "mnist-784-128-10x4000-f64", "mnist-784-256-256-10x8000-f32"],
}
SIZES["full"] = SIZES["quick"] + [n for n in CONFIGS if n not in SIZES["quick"] + SIZES["smoke"]]


def hooks(backend):
    """The backend's benchmark hooks (its registry entry's ``bench`` module; the
    interface: reference/bench.py). ImportError when the framework is missing, LookupError
    when the backend declares none."""
    name = backend_spec(backend).bench
    if name is None:
        raise LookupError(f"backend {backend!r} declares no benchmark hooks (BackendSpec.bench)")
    return importlib.import_module(name)


def variant_id(backend, variant, device):
    return f"{backend}-{variant}" + ("" if device == "cpu" else f"-{device}")


def cases(ops):
    """pytest params (backend, variant, device, op) for every op in ``ops`` of every
    registered backend's variants; a backend whose hooks do not load is one skipped param
    per op, with the reason."""
    out = []
    for op in ops:
        for backend in REGISTRY:
            try:
                h = hooks(backend)
            except (ImportError, LookupError) as e:
                out.append(pytest.param(backend, None, "cpu", op, id=f"{op}-{backend}",
                                        marks=pytest.mark.skip(reason=f"{backend}: {e}")))
                continue
            for (variant, device), has in h.VARIANTS.items():
                if op in has:
                    marks = [pytest.mark.compiled] if variant in h.COMPILED else []
                    out.append(pytest.param(backend, variant, device, op, marks=marks,
                                            id=f"{op}-{variant_id(backend, variant, device)}"))
    return out


def skip_reason(backend, variant, device, size):
    """Why this variant cannot run here, or None."""
    reason = import_error(backend)
    if reason:
        return f"{backend} is not installed: {reason}"
    try:
        h = hooks(backend)
    except (ImportError, LookupError) as e:
        return str(e)
    here = get_backend(backend).devices()
    if device not in here:
        return f"no {device} device for {backend} on this machine (devices: {here})"
    return h.skip_reason(variant, device, size)


def measure(benchmark, fn, sync, size, info, traces=None, min_rounds=3):
    """Times fn's first call (compile/trace/allocate) apart from the steady state: two
    untimed warm-up calls, then ``benchmark.pedantic`` rounds sized to TARGET_S."""
    run = lambda: sync(fn())  # noqa: E731
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()  # a second warm-up: torch.compile and JAX settle guards/caches on it too
    warm = time.perf_counter() - t0
    if size == "smoke":
        rounds, iterations = 2, 1
    else:  # several calls per round for microsecond ops, so timer overhead stays negligible
        iterations = max(1, int(1e-3 / max(warm, 1e-7)))
        rounds = max(min_rounds, min(200, int(TARGET_S / max(warm * iterations, 1e-7))))
    benchmark.group = info["config"]
    benchmark.extra_info.update(info, first_call_s=first, compile_s=max(first - warm, 0.0))
    benchmark.pedantic(run, rounds=rounds, iterations=iterations, warmup_rounds=0)
    n_traces = traces() if traces else None
    if n_traces is not None:
        benchmark.extra_info["traces"] = n_traces


def paired_speedup(ref_fn, ref_steps, fn, steps, sync, rounds, budget_s=None):
    """Median over ``rounds`` alternating pairs of (ref s/step) / (fn s/step); which one
    runs first alternates, so neither always gets the warmer cache. ``budget_s``: fewer
    rounds (at least 3) when the pairs would take longer. Returns (median, ratios)."""
    def per_step(f, n):
        t0 = time.perf_counter()
        sync(f())
        return (time.perf_counter() - t0) / n
    ratios, t_start = [], time.perf_counter()
    for i in range(rounds):
        if i % 2:
            t_ref, t = per_step(ref_fn, ref_steps), per_step(fn, steps)
        else:
            t, t_ref = per_step(fn, steps), per_step(ref_fn, ref_steps)
        ratios.append(t_ref / t)
        if budget_s and i >= 2 and time.perf_counter() - t_start > budget_s:
            break
    return statistics.median(ratios), ratios


@contextmanager
def settings(cfg, made):
    """The measurement's settings, entered around it: netparity's thread policy for the
    config's step (netparity.numerics; what `netparity train` and `check` use), then the
    variant's own (``made.context``, which may override it). Yields the extra_info
    fields they add: ``threads`` (the policy's count, or the variant's own)."""
    with thread_policy((cfg.dims, cfg.m)) as threads, made.context():
        yield {"threads": threads, **made.info}


def info_for(backend, variant, device, cfg, op, steps=1, input_grad=True):
    itemsize = np.dtype(cfg.dtype).itemsize
    flops, nbytes = roofline.step_cost(cfg.dims, cfg.m, itemsize, op, steps, input_grad)
    return {"backend": backend, "variant": variant, "device": device, "config": cfg.name,
            "dims": list(cfg.dims), "m": cfg.m, "dtype": cfg.dtype, "output": cfg.output,
            "op": op, "steps": steps,
            "flops": flops, "bytes": nbytes}
