"""JAX's benchmark hooks (the interface: reference/bench.py).

Variants: ``jit`` (each op one jax.jit program; the loop a Python loop over the jitted
step) and ``scan`` (the whole loop one program, ``train_scan``), on the CPU and on a GPU
where present. Every result is ``block_until_ready``'d: JAX dispatches asynchronously.
"""
import jax

import jax_impl
from reference.bench import BenchOps, article_inputs, eager_ops, inputs
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
    params, X, Y = article_inputs(jax_impl, cfg, device)
    cost = compiled_cost("optimize", params, X, Y, jax_impl.from_numpy(1.2),
                         num_iterations=num_iterations, record=False)
    return BenchOps({"optimize": lambda: jax_impl.optimize(params, X, Y,
                                                           num_iterations=num_iterations)[0]},
                    _new_traces("optimize"), {"optimize": cost})
