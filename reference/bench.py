"""The reference's benchmark hooks, and the shape every backend's hooks share.

bench/ (the pytest-benchmark suites) names no framework: it reads the module named by a
backend's registry entry (``netparity.backends.BackendSpec.bench``) and calls

    VARIANTS                              {(variant, device): the ops it has}
    COMPILED                              the variants that compile (marked ``compiled``)
    PAIRED (optional)                     {variant: other variant}: its loop also timed in
                                          alternating rounds with the other's (paired ratio)
    skip_reason(variant, device, size)    why it cannot run here (beyond "no such
                                          device"), or None
    synchronize(result)                   returns once ``result`` is computed
    make_ops(variant, device, cfg)        -> BenchOps for forward/backward/step/loop
    make_optimize(cfg, num_iterations)    -> BenchOps with the article's ``optimize``

``cfg`` is a bench config (bench/harness.py ``Config``): ``dims``, ``m``, ``dtype``,
``output``, ``loop_steps`` and the reference's ``data()``, ``parameters()``,
``optimizer()``. Every number comes from the reference; the hooks only convert.

The ops a variant offers: ``forward`` (network_forward), ``backward`` (the gradients from
a cached forward), ``step`` (one training step: forward, cost, backward, update) and
``loop`` (``cfg.loop_steps`` steps of batch gradient descent).
"""
from contextlib import nullcontext
from dataclasses import dataclass, field

import reference

VARIANTS = {("reference", "cpu"): ("forward", "backward", "step", "loop")}
COMPILED = ()


@dataclass
class BenchOps:
    """ops: {op: zero-argument callable}; traces(): the compiles this benchmark added
    (jit traces, compiled frames) or None where nothing compiles; costs: {op: (flops,
    bytes)} of ONE step as the backend's compiler counts them (XLA), where it says;
    context(): entered around the whole measurement (a variant's own settings, e.g. a
    thread count); info: extra fields recorded with the result."""
    ops: dict
    traces: object = None
    costs: dict = field(default_factory=dict)
    context: object = nullcontext
    info: dict = field(default_factory=dict)


def skip_reason(variant, device, size):
    return None


def synchronize(result):
    return result  # NumPy returns finished results


def inputs(mod, cfg, device="cpu"):
    """(parameters, X, Y, optimizer, state) of ``cfg`` as ``mod``'s arrays on ``device``."""
    X, Y = cfg.data()
    params = mod.tree_from_numpy(cfg.parameters(), device=device)
    X, Y = mod.from_numpy(X, device=device), mod.from_numpy(Y, device=device)
    opt = cfg.optimizer()
    return params, X, Y, opt, mod.init_optimizer_state(params, opt)


def eager_ops(mod, cfg, device, step, backward=None, forward=None, prepared=None):
    """The four ops of ``mod`` around a given ``step(params, state, X, Y)``; ``backward``
    (params, cache, X, Y, hidden, output) defaults to ``mod.network_backward``, ``forward``
    to ``mod.network_forward``; ``prepared``: ``inputs(mod, cfg, device)`` if already made.
    Shared by every backend's hooks."""
    params, X, Y, opt, state = prepared or inputs(mod, cfg, device)
    out, n = cfg.output, cfg.loop_steps
    forward = forward or mod.network_forward
    backward = backward or mod.network_backward
    _, cache = forward(X, params, "tanh", out)

    def loop():
        p, s = params, state
        for _ in range(n):
            p, s, J, _ = step(p, s, X, Y)
        return p, J

    return {
        "forward": lambda: forward(X, params, "tanh", out),
        "backward": lambda: backward(params, cache, X, Y, "tanh", out),
        "step": lambda: step(params, state, X, Y),
        "loop": loop,
    }


def network_inputs(mod, cfg, device="cpu"):
    """(parameters, X, Y) of ``cfg`` as ``mod``'s arrays (no optimiser state)."""
    X, Y = cfg.data()
    return (mod.tree_from_numpy(cfg.parameters(), device=device),
            mod.from_numpy(X, device=device), mod.from_numpy(Y, device=device))


def make_ops(variant, device, cfg):
    step = reference.make_train_step("tanh", cfg.output, cfg.optimizer())
    return BenchOps(eager_ops(reference, cfg, device, step))


def make_optimize(cfg, num_iterations, device="cpu"):
    params, X, Y = network_inputs(reference, cfg, device)
    return BenchOps({"optimize": lambda: reference.optimize(params, X, Y,
                                                            num_iterations=num_iterations)[0]})
