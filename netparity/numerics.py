"""Global numeric state, set in one place and restored.

Full-precision float32 matmuls are the default: TF32 off in torch, "highest" matmul
precision in JAX (JAX's own default on GPUs is TF32-like for float32). Reduced
precision is an explicit, separately toleranced axis (``tf32=True``).

torch's intra-op thread count follows ``thread_policy`` (below): one thread for small
problems, where a second thread only adds synchronisation.
"""
from contextlib import contextmanager, ExitStack
import importlib.util
import os


def _has(mod):
    return importlib.util.find_spec(mod) is not None


@contextmanager
def precision_mode(tf32=False):
    """Set every framework's float32 matmul precision for the block, then restore it."""
    with ExitStack() as stack:
        if _has("torch"):
            import torch
            saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                     torch.get_float32_matmul_precision())
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.set_float32_matmul_precision("high" if tf32 else "highest")

            def restore():
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
                torch.set_float32_matmul_precision(saved[2])
            stack.callback(restore)
        if _has("jax"):
            import jax
            stack.enter_context(jax.default_matmul_precision("tensorfloat32" if tf32 else "highest"))
        yield


def precision_flags():
    """The flags that decide float32 matmul precision, as they are now."""
    flags = {}
    if _has("torch"):
        import torch
        flags["torch.backends.cuda.matmul.allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
        flags["torch.backends.cudnn.allow_tf32"] = torch.backends.cudnn.allow_tf32
        flags["torch.float32_matmul_precision"] = torch.get_float32_matmul_precision()
    if _has("jax"):
        import jax
        flags["jax_default_matmul_precision"] = jax.config.jax_default_matmul_precision
        flags["jax_enable_x64"] = jax.config.jax_enable_x64
    return flags


def tf32_canary(backend, device):
    """True when a float32 matmul on this backend/device keeps bits that TF32 drops.

    (1 + 2^-20) * 1 is exact in float32 (23-bit mantissa) but rounds to 1 with TF32's
    10-bit mantissa, so the product tells which precision the matmul really ran in."""
    import numpy as np
    a = np.array([[1 + 2.0 ** -20, 0.0], [0.0, 1.0]], dtype=np.float32)
    b = np.eye(2, dtype=np.float32)
    A, B = backend.from_numpy(a, "float32", device), backend.from_numpy(b, "float32", device)
    out = backend.to_numpy(A @ B)
    return bool(out[0, 0] == np.float32(1 + 2.0 ** -20))


# ------------------------------------------------------------------ thread policy

# FLOPs of one step that keep one more thread busy enough to pay for itself: ~10 ms of a
# core's work. Measured on the shared 2-core EPYC (torch eager step, 1 vs 2 threads,
# alternating, load average ~6): 2 threads were slower at every benchmarked size, by 150-
# 430x at 2-4-1 x 400 and 64 (each op waits at a barrier for a thread the scheduler has
# parked), 13x at 2-64-64-1 x 4000 (1e8 FLOPs/step) and 1.2x at 2-1024-1 x 100 000
# (2.4e9 FLOPs/step). A problem must therefore be large before a second thread is
# offered at all; on an idle machine this costs at most the parallel speed-up of the
# sizes between 1e7 and 2e8 FLOPs per step.
WORK_PER_THREAD = 1e8
THREADS_ENV = "NETPARITY_THREADS"  # an explicit count overrides the policy (e.g. 1 on a shared machine)


def step_work(layer_dims, m):
    """Rough FLOPs of one training step of a network with ``layer_dims`` on m examples
    (netparity.roofline's count: forward, cost, backward, update)."""
    from netparity.roofline import step_cost
    return step_cost(tuple(layer_dims), int(m), 8)[0]


def available_cores():
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_for(work, cores=None):
    """The intra-op thread count for a step of ``work`` FLOPs: 1 below 2 x WORK_PER_THREAD,
    else one thread per WORK_PER_THREAD, at most one per core. A pure function of the
    work and the core count (not of the momentary load), so that a run's thread count -
    and with it the summation order of parallel reductions - is the same every time.
    ``NETPARITY_THREADS`` (a positive integer) overrides it."""
    forced = os.environ.get(THREADS_ENV, "").strip()
    if forced:
        if not forced.isdigit() or int(forced) < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {forced!r}")
        return int(forced)
    cores = available_cores() if cores is None else cores
    return int(max(1, min(cores, work // WORK_PER_THREAD)))


@contextmanager
def thread_policy(work):
    """Run the block with torch's intra-op thread count set by ``threads_for(work)``, then
    restore the previous count. ``work``: the FLOPs of one step (a number), or
    ``(layer_dims, m)`` (``step_work`` counts them). Yields the thread count chosen (None
    without torch: nothing is set). JAX and NumPy keep their own pools (XLA's cannot be
    resized inside a process)."""
    if isinstance(work, (tuple, list)):
        work = step_work(*work)
    if not _has("torch"):
        yield None
        return
    import torch
    chosen, saved = threads_for(work), torch.get_num_threads()
    if chosen != saved:
        torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        if torch.get_num_threads() != saved:
            torch.set_num_threads(saved)
