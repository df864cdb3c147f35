"""dtype names and NumPy <-> torch conversions, shared by every module (backend.py
re-exports the public ones; they live here so network/article can import them without
a cycle through training)."""
import numpy as np
import torch


def torch_dtype(dtype):
    """A torch dtype from a torch dtype, a NumPy dtype or a name ("float32"); None -> None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)  # also covers names NumPy lacks, e.g. "bfloat16"
    return torch.from_numpy(np.empty(0, dtype=np.dtype(dtype))).dtype


def from_numpy(x, dtype=None, device="cpu"):
    """A new tensor (a copy, never sharing NumPy's memory) on ``device``; dtype None keeps
    the array's. The cast is done by torch (round to nearest, like NumPy's astype)."""
    t = torch.from_numpy(np.array(x, copy=True))
    return t.to(device=device, dtype=torch_dtype(dtype) or t.dtype)


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            # NumPy has no bfloat16 and torch will not export one: go through float32
            # (exact) to ml_dtypes' bfloat16 (what jax_impl returns), or stay float32
            try:
                import ml_dtypes
            except ImportError:
                return x.float().numpy()
            return x.float().numpy().astype(ml_dtypes.bfloat16)
        return x.numpy()
    return np.asarray(x)


def tree_from_numpy(d, dtype=None, device="cpu"):
    return {k: v if isinstance(v, (int, float)) else from_numpy(v, dtype, device)
            for k, v in d.items()}


def tree_to_numpy(d):
    return {k: v if isinstance(v, (int, float)) else to_numpy(v) for k, v in d.items()}
