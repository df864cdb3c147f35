"""Global numeric state, set in one place and restored.

Full-precision float32 matmuls are the default: TF32 off in torch, "highest" matmul
precision in JAX (JAX's own default on GPUs is TF32-like for float32). Reduced
precision is an explicit, separately toleranced axis (``tf32=True``).
"""
from contextlib import contextmanager, ExitStack
import importlib.util


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


# ------------------------------------------------------------------ threads

# Below this many floating-point operations per step, torch's intra-op threads only add
# synchronisation: the article's 2-4-1 x 400 step (~2e4 flops) ran 5.3 ms/step with 2
# threads on the 2-core CI machine under load and 0.75 ms with 1 (docs/framework_differences.md, row 12).
SMALL_WORK_FLOPS = 5e6


def step_flops(layer_dims, m):
    """Floating-point operations of one training step of a dense network (forward 2, backward
    4 per multiply-add of every W[l] A[l-1]): 6 m sum(n_l n_{l-1})."""
    return 6 * m * sum(a * b for a, b in zip(layer_dims[:-1], layer_dims[1:]))


@contextmanager
def thread_policy(work):
    """torch's intra-op threads for a problem of ``work`` flops per step: one thread when
    it is small (below SMALL_WORK_FLOPS), torch's own setting otherwise; restored on exit.
    Yields the thread count in effect (None without torch), for the caller to report."""
    if not _has("torch"):
        yield None
        return
    import torch
    saved = torch.get_num_threads()
    if work < SMALL_WORK_FLOPS:
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(saved)
