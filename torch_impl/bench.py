"""torch's benchmark hooks (the interface: reference/bench.py).

Variants: ``manual`` (eager, the formulas), ``autodiff`` (eager, torch.autograd),
``compile`` (one torch.compile'd step), ``scan`` (the whole loop one compiled program,
``train_scan``), on the CPU and on CUDA where present; ``graph`` (CUDA only: one captured
update replayed, ``training.graphed_updates``); ``manual-cores``: the eager step
at one intra-op thread per core (torch's default), where every other variant runs at
the count of netparity's thread policy (the harness sets it; netparity.numerics).
The article's ``optimize`` is timed on its compiled path (``compiled=True``).
"""
import contextlib
import os

import torch

import torch_impl
from reference.bench import BenchOps, network_inputs, eager_ops
from .backend import compile_status, compiled_graphs, reset_compiled

VARIANTS = {
    ("manual", "cpu"): ("forward", "backward", "step", "loop"),
    ("manual-cores", "cpu"): ("step",),
    # forward has no autodiff/compiled flavour of its own (the same code runs)
    ("autodiff", "cpu"): ("backward", "step", "loop"),
    ("compile", "cpu"): ("step", "loop"),
    ("scan", "cpu"): ("loop",),
    ("manual", "cuda"): ("forward", "backward", "step", "loop"),
    ("compile", "cuda"): ("step", "loop"),
    ("graph", "cuda"): ("loop",),
}
COMPILED = ("compile", "scan", "optimize")
PAIRED = {"scan": "manual"}  # the whole compiled loop, timed in alternation with the eager one


@contextlib.contextmanager
def _threads(n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def skip_reason(variant, device, size):
    if variant in COMPILED:
        if size == "smoke":  # checked first: compile_status() itself compiles
            return "smoke size: torch.compile takes 10-25 s to compile on a CPU, over the CI budget"
        ok, reason = compile_status()
        if not ok:
            return f"torch.compile unavailable: {reason}"
    return None


def synchronize(result):
    # CPU ops return finished results; CUDA kernels run asynchronously
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return result


def make_ops(variant, device, cfg):
    opt, out = cfg.optimizer(), cfg.output
    traces = None
    if variant in COMPILED:
        reset_compiled()  # a fresh compile per config, counted from zero
        traces = compiled_graphs  # 1 means no recompilation in the whole benchmark
    if variant == "scan":
        P, X, Y = network_inputs(torch_impl, cfg, device)
        n = cfg.loop_steps
        return BenchOps({"loop": lambda: torch_impl.train_scan(P, X, Y, "tanh", out, opt,
                                                               num_steps=n)}, traces)
    if variant == "graph":
        P, X, Y = network_inputs(torch_impl, cfg, device)
        n = cfg.loop_steps
        state = torch_impl.init_optimizer_state(P, opt)
        return BenchOps({"loop": lambda: torch_impl.training.graphed_updates(
            P, state, X, Y, "tanh", out, opt, num_steps=n)}, None)
    if variant == "manual-cores":
        cores = _cores()
        step = torch_impl.make_train_step("tanh", out, opt)
        return BenchOps(eager_ops(torch_impl, cfg, device, step), context=lambda: _threads(cores),
                        info={"threads": cores})
    grad_path = "autodiff" if variant == "autodiff" else "manual"
    step = torch_impl.make_train_step("tanh", out, opt, grad_path=grad_path,
                                      compiled=variant == "compile")
    backward = None
    if variant == "autodiff":
        def backward(p, cache, X, Y, hidden, output):
            return torch_impl.network_backward_autodiff(p, X, Y, hidden, output)
    return BenchOps(eager_ops(torch_impl, cfg, device, step, backward), traces)


def make_optimize(cfg, num_iterations, device="cpu"):
    params, X, Y = network_inputs(torch_impl, cfg, device)
    reset_compiled()
    return BenchOps({"optimize": lambda: torch_impl.optimize(params, X, Y,
                                                             num_iterations=num_iterations,
                                                             compiled=True)[0]},
                    compiled_graphs)
