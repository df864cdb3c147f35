"""Configurations, backend variants and the timing helper shared by the benchmarks.

A variant turns a config into zero-argument callables per op (forward, backward, step,
loop) whose results are synchronised before the clock stops: JAX dispatches
asynchronously (``block_until_ready`` on every result) and so does CUDA
(``torch.cuda.synchronize``); NumPy and torch on the CPU return finished results.
"""
import time
from dataclasses import dataclass

import numpy as np

import reference
from netparity import roofline

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

# (backend, variant, device) -> the ops it has. forward has no autograd/compiled flavour
# of its own (the same code runs), so those variants start at backward or step.
VARIANTS = {
    ("numpy", "reference", "cpu"): ("forward", "backward", "step", "loop"),
    ("torch", "manual", "cpu"): ("forward", "backward", "step", "loop"),
    ("torch", "autograd", "cpu"): ("backward", "step", "loop"),
    ("torch", "compile", "cpu"): ("step", "loop"),
    ("jax", "jit", "cpu"): ("forward", "backward", "step", "loop"),
    ("jax", "scan", "cpu"): ("loop",),
    ("torch", "manual", "cuda"): ("forward", "backward", "step", "loop"),
    ("torch", "compile", "cuda"): ("step", "loop"),
    ("jax", "jit", "gpu"): ("forward", "backward", "step", "loop"),
    ("jax", "scan", "gpu"): ("loop",),
}


def variant_id(backend, variant, device):
    return f"{backend}-{variant}" + ("" if device == "cpu" else f"-{device}")


def module(backend):
    if backend == "numpy":
        return reference
    if backend == "torch":
        import torch_impl
        return torch_impl
    import jax_impl
    return jax_impl


def skip_reason(backend, variant, device):
    """Why this variant cannot run here, or None."""
    try:
        mod = module(backend)
    except ImportError as e:
        return f"{backend} is not installed: {e}"
    if device not in mod.devices():
        return f"no {device} device for {backend} on this machine (devices: {mod.devices()})"
    if variant == "compile":
        ok, reason = mod.compile_status()
        if not ok:
            return f"torch.compile unavailable: {reason}"
    return None


def syncer(backend, device):
    """fn(result) -> result, returning only once the result's computation has finished."""
    if backend == "jax":
        import jax
        return jax.block_until_ready
    if backend == "torch" and device == "cuda":
        import torch

        def sync(result):
            torch.cuda.synchronize()
            return result
        return sync
    return lambda result: result


def jit_trace_count(fn):
    """Compiled variants in a jax.jit's cache (a private method; None if it goes away)."""
    size = getattr(fn, "_cache_size", None)
    return size() if size else None


def xla_cost(jitted, *args, **kwargs):
    """(flops, bytes accessed) of one call of a jax.jit function, from XLA's own cost
    analysis of the compiled (fused) program, or None. A loop body (lax.scan) is counted
    once, so for ``train_scan`` this is the cost of one step."""
    try:
        ca = jitted.lower(*args, **kwargs).compile().cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        return float(ca["flops"]), float(ca["bytes accessed"])
    except Exception:  # an API change must not break the benchmark: no XLA column then
        return None


def make_ops(backend, variant, device, cfg):
    """{op: zero-argument callable}, a callable giving the JAX trace count (or None) and,
    for JAX, {op: XLA's (flops, bytes) of one step} (see ``xla_cost``)."""
    mod = module(backend)
    X, Y = cfg.data()
    params = mod.tree_from_numpy(cfg.parameters(), device=device)
    X, Y = mod.from_numpy(X, device=device), mod.from_numpy(Y, device=device)
    opt, out, n = cfg.optimizer(), cfg.output, cfg.loop_steps
    state = mod.init_optimizer_state(params, opt)
    traces = lambda: None  # noqa: E731
    xla = {}
    if backend == "jax" and variant == "jit":
        import jax
        import jax_impl.backend
        fwd = jax.jit(mod.network_forward, static_argnames=("hidden", "output"))
        bwd = jax.jit(mod.network_backward, static_argnames=("hidden", "output"))
        step = mod.make_train_step("tanh", out, opt, compiled=True)
        _, cache = fwd(X, params, "tanh", out)
        # XLA's costs first: lowering must not count as one of the measured run's traces
        xla = {"forward": xla_cost(fwd, X, params, "tanh", out),
               "backward": xla_cost(bwd, params, cache, X, Y, "tanh", out),
               "step": xla_cost(jax_impl.backend._step_jit, params, state, X, Y, hidden="tanh",
                                output=out, optimizer=opt, cost="stable", grad_path="manual")}
        # the step jit is shared by every config: count what this config adds to it
        before = jit_trace_count(jax_impl.backend._step_jit)
        traces = lambda: (None if before is None else  # noqa: E731
                          jit_trace_count(jax_impl.backend._step_jit) - before)
        xla["loop"] = xla["step"]  # a Python loop over the jit step
    elif backend == "jax" and variant == "scan":
        import jax_impl.training
        xla = {"loop": xla_cost(jax_impl.training._train_scan, params, X, Y, hidden="tanh",
                                output=out, optimizer=opt, num_steps=n, cost="stable")}
        before = jit_trace_count(jax_impl.training._train_scan)
        traces = lambda: (None if before is None else  # noqa: E731
                          jit_trace_count(jax_impl.training._train_scan) - before)
        return ({"loop": lambda: mod.train_scan(params, X, Y, "tanh", out, opt, num_steps=n)},
                traces, xla)
    else:
        fwd, bwd = mod.network_forward, mod.network_backward
        grad_path = "autodiff" if variant == "autograd" else "manual"
        step = mod.make_train_step("tanh", out, opt, grad_path=grad_path,
                                   compiled=variant == "compile")
        _, cache = fwd(X, params, "tanh", out)
    if variant == "autograd":
        bwd = lambda p, c, X, Y, h, o: mod.network_backward_autodiff(p, X, Y, h, o)  # noqa: E731

    def loop():
        p, s = params, state
        for _ in range(n):
            p, s, J, _ = step(p, s, X, Y)
        return p, J

    return {
        "forward": lambda: fwd(X, params, "tanh", out),
        "backward": lambda: bwd(params, cache, X, Y, "tanh", out),
        "step": lambda: step(params, state, X, Y),
        "loop": loop,
    }, traces, xla


def measure(benchmark, fn, sync, size, info, traces=lambda: None, min_rounds=3):
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
    n_traces = traces()
    if n_traces is not None:
        benchmark.extra_info["traces"] = n_traces


def info_for(backend, variant, device, cfg, op, steps=1, input_grad=True):
    itemsize = np.dtype(cfg.dtype).itemsize
    flops, nbytes = roofline.step_cost(cfg.dims, cfg.m, itemsize, op, steps, input_grad)
    return {"backend": backend, "variant": variant, "device": device, "config": cfg.name,
            "dims": list(cfg.dims), "m": cfg.m, "dtype": cfg.dtype, "op": op, "steps": steps,
            "flops": flops, "bytes": nbytes}
