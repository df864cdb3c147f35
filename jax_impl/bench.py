"""JAX's benchmark hooks (the interface: reference/bench.py).

Variants: ``jit`` (each op one jax.jit program; the loop a Python loop over the jitted
step) and ``scan`` (the whole loop one program, ``train_scan``), on the CPU and on a GPU
where present. Every result is ``block_until_ready``'d: JAX dispatches asynchronously.
"""
import jax

import jax_impl
from reference.bench import BenchOps, network_inputs, eager_ops, inputs
from .backend import compiled_cost, trace_count

VARIANTS = {
    ("jit", "cpu"): ("forward", "backward", "step", "loop"),
    ("scan", "cpu"): ("loop",),
    ("jit", "gpu"): ("forward", "backward", "step", "loop"),
    ("scan", "gpu"): ("loop",),
}
COMPILED = ("jit", "scan")


def skip_reason(variant, device, size):
    ok, reason = jax_impl.compile_status()
    return None if ok else reason


def synchronize(result):
    return jax.block_until_ready(result)


def _new_traces(name):
    """traces() -> programs ``name``'s jit compiled since now (its cache is shared by every
    config of the run: count only what this benchmark adds)."""
    before = trace_count(name)
    if before is None:
        return lambda: None
    return lambda: trace_count(name) - before


def make_ops(variant, device, cfg):
    prepared = params, X, Y, opt, state = inputs(jax_impl, cfg, device)
    out, n = cfg.output, cfg.loop_steps
    if variant == "scan":
        cost = compiled_cost("train_scan", params, X, Y, hidden="tanh", output=out,
                             optimizer=opt, num_steps=n, cost="stable")
        return BenchOps({"loop": lambda: jax_impl.train_scan(params, X, Y, "tanh", out, opt,
                                                             num_steps=n)},
                        _new_traces("train_scan"), {"loop": cost})
    fwd = jax.jit(jax_impl.network_forward, static_argnames=("hidden", "output"))
    bwd = jax.jit(jax_impl.network_backward, static_argnames=("hidden", "output"))
    _, cache = fwd(X, params, "tanh", out)
    step_cost = compiled_cost("train_step", params, state, X, Y, hidden="tanh", output=out,
                              optimizer=opt, cost="stable", grad_path="manual")
    # XLA's own costs, then the trace counter: lowering must not count as a trace
    costs = {"forward": _cost_of(fwd, X, params, "tanh", out),
             "backward": _cost_of(bwd, params, cache, X, Y, "tanh", out),
             "step": step_cost, "loop": step_cost}  # the loop: a Python loop over the step
    step = jax_impl.make_train_step("tanh", out, opt, compiled=True)
    return BenchOps(eager_ops(jax_impl, cfg, device, step, backward=bwd, forward=fwd,
                              prepared=prepared),
                    _new_traces("train_step"), costs)


def _cost_of(jitted, *args):
    """XLA's (flops, bytes) of a jit made here (forward and backward alone), or None."""
    try:
        ca = jitted.lower(*args).compile().cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        return float(ca["flops"]), float(ca["bytes accessed"])
    except Exception:  # an API change must not break the benchmark: no XLA column then
        return None


def make_optimize(cfg, num_iterations, device="cpu"):
    params, X, Y = network_inputs(jax_impl, cfg, device)
    cost = compiled_cost("optimize", params, X, Y, jax_impl.from_numpy(1.2),
                         num_iterations=num_iterations, record=False)
    return BenchOps({"optimize": lambda: jax_impl.optimize(params, X, Y,
                                                           num_iterations=num_iterations)[0]},
                    _new_traces("optimize"), {"optimize": cost})


# ------------------------------------------------------------------ the gap to the floor

GAP_COLUMNS = (16, 100, 400, 1600)  # examples per step of the sweep (planar's 2-4-1 net)
GAP_STEPS = 2000


def _loop_kernels(compiled_text):
    """Kernels XLA:CPU runs per iteration of the scan: the fusions, dots, custom calls and
    copies of the while loop's body (each one thunk the runtime dispatches)."""
    bodies, name, count = {}, None, 0
    for line in compiled_text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            name, count = line.split()[0].lstrip("%"), 0
        elif line.startswith("}") and name is not None:
            bodies[name] = count
            name = None
        elif name is not None and any(f" {op}(" in line for op in ("fusion", "dot", "custom-call", "copy")):
            count += 1
    body = [n for line in compiled_text.splitlines() if " while(" in line
            for n in [line.split("body=")[1].split(",")[0].split()[0].lstrip("%")]
            if "body=" in line]
    return bodies.get(body[0]) if body else None


def floor_gap(dtypes=("float64", "float32"), columns=GAP_COLUMNS, steps=GAP_STEPS, repeats=7):
    """What separates the whole-loop path (``train_scan``) from the compute floor at the
    article's size: its time per step over a sweep of the batch width m (the 2-4-1 net on
    the first m planar examples, repeated past 400), the kernels XLA runs per step, and
    the intercept and slope of a least-squares line through the sweep: a fixed cost per
    step (kernel dispatch, the loop) and a cost per example (the arithmetic and the
    transcendentals the floor models). Returns {dtype: {...}} for netparity.cmd_bench."""
    import os
    import time
    import numpy as np
    import reference as R
    from . import training
    X, Y = R.load_dataset("planar")
    p0 = R.initialize_network((2, 4, 1), init="article", seed=1)
    out = {}
    for dtype in dtypes:
        P = jax_impl.tree_from_numpy(p0, dtype)
        times, kernels = [], None
        for m in columns:
            idx = np.arange(m) % X.shape[1]
            Xd, Yd = jax_impl.from_numpy(X[:, idx], dtype), jax_impl.from_numpy(Y[:, idx], dtype)
            run = lambda: jax_impl.train_scan(P, Xd, Yd, num_steps=steps)  # noqa: E731
            synchronize(run())  # compile
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                synchronize(run())
                best = min(best, time.perf_counter() - t0)
            times.append(best / steps)
            if m == 400:
                txt = training._train_scan.lower(P, Xd, Yd, "tanh", "sigmoid", R.Optimizer(),
                                                 steps, "stable").compile().as_text()
                kernels = _loop_kernels(txt)
        slope, intercept = np.polyfit(np.asarray(columns, float), np.asarray(times), 1)
        out[dtype] = {"columns": list(columns), "seconds_per_step": times, "kernels": kernels,
                      "fixed_seconds": float(intercept), "seconds_per_column": float(slope),
                      "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    return out
