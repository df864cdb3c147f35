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
    the array's. The cast is done by torch (round to nearest, like NumPy's astype).
    An ml_dtypes bfloat16 array (what to_numpy returns for bfloat16) becomes a bfloat16
    tensor bit for bit."""
    a = np.array(x, copy=True)
    if a.dtype.name == "bfloat16":  # torch cannot import ml_dtypes' type: pass the bits
        t = bfloat16_from_bits(a.view(np.uint16))
    else:
        t = torch.from_numpy(a)
    return t.to(device=device, dtype=torch_dtype(dtype) or t.dtype)


def bfloat16_from_bits(bits):
    """uint16 bit patterns (NumPy) -> a bfloat16 tensor with exactly those bits."""
    return torch.from_numpy(np.ascontiguousarray(bits).view(np.int16)).view(torch.bfloat16)


def bfloat16_bits(t):
    """A bfloat16 tensor -> its uint16 bit patterns as a NumPy array (a copy)."""
    return t.detach().cpu().contiguous().view(torch.int16).numpy().view(np.uint16).copy()


def to_numpy(x):
    """A NumPy copy (never a view of the tensor's memory: writing into it changes
    nothing here). bfloat16 becomes ml_dtypes' bfloat16 (what jax_impl returns), or
    float32 (exact) where ml_dtypes is not installed."""
    if isinstance(x, torch.Tensor):
        on_host = x.device.type == "cpu"
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            try:
                import ml_dtypes
            except ImportError:
                return x.float().numpy()
            return bfloat16_bits(x).view(ml_dtypes.bfloat16)
        # a CPU tensor's .numpy() shares its memory: copy; from a device, .cpu() was the copy
        return x.numpy().copy() if on_host else x.numpy()
    return np.array(x, copy=True)


def tree_from_numpy(d, dtype=None, device="cpu"):
    return {k: v if isinstance(v, (int, float)) else from_numpy(v, dtype, device)
            for k, v in d.items()}


def tree_to_numpy(d):
    return {k: v if isinstance(v, (int, float)) else to_numpy(v) for k, v in d.items()}
