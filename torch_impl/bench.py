"""torch's benchmark hooks (the interface: reference/bench.py).

Variants: ``manual`` (eager, the formulas), ``autodiff`` (eager, torch.autograd),
``compile`` (one torch.compile'd step), on the CPU and on CUDA where present.
"""
import torch

import torch_impl
from reference.bench import BenchOps, article_inputs, eager_ops
from .backend import compile_status, compiled_frames, reset_compiled

VARIANTS = {
    ("manual", "cpu"): ("forward", "backward", "step", "loop"),
    # forward has no autodiff/compiled flavour of its own (the same code runs)
    ("autodiff", "cpu"): ("backward", "step", "loop"),
    ("compile", "cpu"): ("step", "loop"),
    ("manual", "cuda"): ("forward", "backward", "step", "loop"),
    ("compile", "cuda"): ("step", "loop"),
}
COMPILED = ("compile",)


def skip_reason(variant, device, size):
    if variant in COMPILED:
        if size == "smoke":  # checked first: compile_status() itself compiles
            return "smoke size: torch.compile takes ~20 s to compile on a CPU, over the CI budget"
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
    if variant == "compile":
        reset_compiled()  # a fresh compile per config, counted from zero
        traces = compiled_frames  # 1 means no recompilation in the whole benchmark
    grad_path = "autodiff" if variant == "autodiff" else "manual"
    step = torch_impl.make_train_step("tanh", out, opt, grad_path=grad_path,
                                      compiled=variant == "compile")
    backward = None
    if variant == "autodiff":
        def backward(p, cache, X, Y, hidden, output):
            return torch_impl.network_backward_autodiff(p, X, Y, hidden, output)
    return BenchOps(eager_ops(torch_impl, cfg, device, step, backward), traces)


def make_optimize(cfg, num_iterations, device="cpu"):
    params, X, Y = article_inputs(torch_impl, cfg, device)
    return BenchOps({"optimize": lambda: torch_impl.optimize(params, X, Y,
                                                             num_iterations=num_iterations)[0]})
