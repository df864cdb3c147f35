"""What makes the torch mirror a backend: conversions, devices, gradient paths, the
(optionally compiled) step factory and the portable weight file (reference/backend.py)."""
import functools

import torch

import reference.backend as _ref
from reference.validate import Ops
from ._convert import (bfloat16_bits, bfloat16_from_bits, to_numpy,
                       torch_dtype)
from .network import cost_and_autodiff_grads, cost_and_func_grads, network_backward, network_forward
from .optim import apply_update, step_scalars
from .training import compute_stage_cost, train_step
from reference.costs import check_cost

GRAD_PATHS = ("manual", "autodiff")


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _device_name(device):
    """"cuda:1" / torch.device("cuda", 1) -> "cuda"; None for what torch cannot parse."""
    if isinstance(device, torch.device):
        return device.type
    if not isinstance(device, str):
        return None
    try:
        return torch.device(device).type
    except (RuntimeError, ValueError):
        return None


# what reference/validate.py needs to check torch inputs (same checks, same messages)
OPS = Ops(all_finite=lambda x: bool(torch.isfinite(x).all()),
          host=lambda x: x.detach().cpu().to(torch.float64).numpy(),
          backend="torch", array_kind="torch.Tensor",
          native=lambda x: isinstance(x, torch.Tensor),
          devices=lambda: tuple(devices()), devices_known=("cpu", "cuda"),
          device_name=_device_name)


@functools.lru_cache(maxsize=None)
def compile_status():
    """(ok, reason): compiles and runs a tiny function once per process (inductor on CPU
    needs a C++ compiler; the first compile takes seconds, mostly importing inductor)."""
    try:
        f = torch.compile(lambda x: x * 2 + 1, fullgraph=True)
        x = torch.arange(4, dtype=torch.float64)
        if not torch.equal(f(x), x * 2 + 1):
            return False, "torch.compile ran but returned a wrong result"
    except Exception as e:  # any failure (no compiler, unsupported platform) means "no"
        lines = str(e).strip().splitlines()
        return False, f"{type(e).__name__}: {lines[0] if lines else ''}"
    return True, f"torch.compile (inductor) works, torch {torch.__version__}"


def compiled_frames():
    """Frames torch.compile has compiled in this process since ``reset_compiled()``
    (1 per compiled function and shape; more means it recompiled)."""
    from torch._dynamo.utils import counters
    return counters["frames"]["ok"]


def reset_compiled():
    """Drop every torch.compile'd graph of this process and zero ``compiled_frames()``:
    the next call compiles afresh (a second shape would otherwise switch torch.compile to
    dynamic shapes, a different program from the one a fresh process compiles)."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()


def make_train_step(hidden, output, optimizer, cost="stable", grad_path="manual", compiled=False):
    """fn(parameters, state, X, Y) -> (parameters, state, cost, grads), like train_step.
    grad_path "autodiff" takes the gradients from torch.autograd; compiled=True runs
    forward, cost, backward and update as one torch.compile'd function. The counter t
    stays a Python int outside it: its scalars (learning rate, Adam's bias corrections)
    enter as 0-d tensors in the parameters' dtype, so new values of t never recompile."""
    if grad_path not in GRAD_PATHS:
        raise ValueError(f"the torch mirror has no gradient path {grad_path!r}; it has {GRAD_PATHS}")
    check_cost(cost)
    if not compiled and grad_path == "manual":
        def step(parameters, state, X, Y):
            return train_step(parameters, state, X, Y, hidden, output, optimizer, cost)
        return step

    def core(parameters, buffers, X, Y, scalars):
        if grad_path == "manual":
            AL, cache = network_forward(X, parameters, hidden, output)
            J = compute_stage_cost(AL, cache, Y, output, cost)
            grads = network_backward(parameters, cache, X, Y, hidden, output)
        else:
            autodiff = cost_and_func_grads if compiled else cost_and_autodiff_grads
            J, grads = autodiff(parameters, X, Y, hidden, output, cost)
        new_params, new_buffers = apply_update(parameters, grads, buffers, optimizer, scalars)
        return new_params, new_buffers, J, grads

    if compiled:
        ok, reason = compile_status()
        if not ok:
            raise ValueError(f"torch.compile is unavailable here: {reason}")
        core = torch.compile(core)

    def step(parameters, state, X, Y):
        scalars = step_scalars(optimizer, state["t"])
        if compiled:
            p = next(iter(parameters.values()))
            scalars = {k: torch.tensor(v, dtype=p.dtype, device=p.device) for k, v in scalars.items()}
        buffers = {k: v for k, v in state.items() if k != "t"}
        new_params, new_buffers, J, grads = core(parameters, buffers, X, Y, scalars)
        return new_params, {"t": state["t"] + 1, **new_buffers}, J, grads
    return step


def save_weights(path, parameters):
    """The reference's file format and writer (atomic, no pickle); bfloat16 tensors are
    written as their bit patterns without going through NumPy (which has no bfloat16)."""
    bf16 = [k for k, v in parameters.items() if v.dtype == torch.bfloat16]
    arrays, _ = _ref.encode_weights({k: to_numpy(v) for k, v in parameters.items()
                                     if k not in bf16})
    arrays.update({k: bfloat16_bits(parameters[k]) for k in bf16})
    _ref.write_weight_file(path, {k: arrays[k] for k in parameters}, bf16)


def load_weights(path, dtype=None, device="cpu", layer_dims=None):
    """The reference's reader (checked from the headers before any data is read, never
    unpickles), converted to tensors; bfloat16 comes back as bfloat16 bit for bit."""
    arrays, bf16 = _ref.read_weight_file(path, layer_dims)
    tensors = {k: bfloat16_from_bits(v) if k in bf16 else torch.from_numpy(v)
               for k, v in arrays.items()}
    return {k: t.to(device=device, dtype=torch_dtype(dtype) or t.dtype) for k, t in tensors.items()}
