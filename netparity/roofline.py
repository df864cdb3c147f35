"""A roofline model of one training step of the vectorised network, and this machine's
measured peaks, so benchmark times can be read as a fraction of what the hardware allows.

Cost model (per step on a batch of m columns, layer sizes n_0 .. n_L):

FLOPs
  forward, per layer l:  2 n_l n_{l-1} m   (Z = W A_prev)
                       + 2 n_l m           (bias add; activation counted as 1 flop/element)
  backward, per layer l: 4 n_l n_{l-1} m   (dW = dZ A_prev^T and dA_prev = W^T dZ: 2x forward)
                       + n_l m             (db column sums)
                       + 2 n_{l-1} m       (dZ_prev = dA_prev * g'(Z_prev), l > 1)
                       + n_L m once        (dZ_L = A_L - Y)
  cost:                  3 n_L m           (a log, a product, a sum per element)
  update (plain GD):     2 per parameter   (P - lr dP)
  The article's ``optimize`` computes no dA_0 = W1^T dZ1 (``input_grad=False``).
  Transcendentals (tanh, exp, log) are counted as one flop: they cost more, so the
  compute bound is optimistic for the tiny-matmul configs where they dominate.

Bytes (``itemsize`` each): a streaming model in which every operation reads its inputs
from and writes its output to memory once, with no reuse between operations (no cache):
  forward, per layer:  W, A_prev read, Z written; bias add reads Z, b, writes Z;
                       activation reads Z, writes A      -> n_l n_{l-1} + n_{l-1} m + 5 n_l m
  backward, per layer: dW reads dZ, A_prev, writes dW; db reads dZ; dA_prev reads W, dZ,
                       writes dA_prev; g' reads dA_prev, A_prev, writes dZ_prev (l > 1)
                       -> 2 n_l n_{l-1} + 3 n_l m + 2 n_{l-1} m (+ 3 n_{l-1} m)
  cost:                reads A_L (or Z_L) and Y          -> 2 n_L m
  update:              reads P, dP, writes P             -> 3 per parameter
Small configs fit in cache, so there the memory bound is pessimistic; the fraction of
roofline is then a lower bound on how well the hardware is used.

Roofline bound of a step = max(flops / peak_flops, bytes / bandwidth); the fraction
reported for a result is bound / measured time (1.0 = at the roofline).
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _layers(dims):
    return list(zip(dims[:-1], dims[1:]))  # (n_{l-1}, n_l) per layer


def num_parameters(dims):
    return sum(n * p + n for p, n in _layers(dims))


def matmul_flops(dims, m):
    """FLOPs of the forward matmuls W A_prev alone: 2 n_l n_{l-1} m summed over layers."""
    return sum(2 * n * p * m for p, n in _layers(dims))


def forward_flops(dims, m):
    return matmul_flops(dims, m) + sum(2 * n * m for _, n in _layers(dims))


def backward_flops(dims, m, input_grad=True):
    total = dims[-1] * m  # dZ_L = A_L - Y
    for l, (p, n) in enumerate(_layers(dims), start=1):
        total += 2 * n * p * m + n * m  # dW, db
        if l > 1 or input_grad:
            total += 2 * n * p * m  # dA_prev
        if l > 1:
            total += 2 * p * m  # dZ_prev = dA_prev * g'
    return total


def forward_bytes(dims, m, itemsize):
    return itemsize * sum(n * p + p * m + 5 * n * m for p, n in _layers(dims))


def backward_bytes(dims, m, itemsize, input_grad=True):
    total = 2 * dims[-1] * m  # dZ_L reads A_L, Y (its write is counted with dW's read)
    for l, (p, n) in enumerate(_layers(dims), start=1):
        total += n * p + 2 * n * m + p * m  # dW, db
        if l > 1 or input_grad:
            total += n * p + n * m + p * m  # dA_prev
        if l > 1:
            total += 3 * p * m  # dZ_prev
    return itemsize * total


def step_cost(dims, m, itemsize, op="step", steps=1, input_grad=True):
    """(flops, bytes) of ``op`` in forward, backward, step (forward + cost + backward +
    update); loop and optimize are ``steps`` steps."""
    P, nL = num_parameters(dims), dims[-1]
    fwd = (forward_flops(dims, m), forward_bytes(dims, m, itemsize))
    if op == "forward":
        return fwd
    bwd = (backward_flops(dims, m, input_grad), backward_bytes(dims, m, itemsize, input_grad))
    if op == "backward":
        return bwd
    flops = fwd[0] + 3 * nL * m + bwd[0] + 2 * P
    nbytes = fwd[1] + itemsize * (2 * nL * m + 3 * P) + bwd[1]
    if op == "step":
        return flops, nbytes
    if op in ("loop", "optimize"):
        return flops * steps, nbytes * steps
    raise ValueError(f"unknown op {op!r}")


def _best_time(fn, repeats):
    fn()  # warm-up: page faults, thread pool start
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_peaks(n=1024, mbytes=64, repeats=5):
    """This machine's NumPy matmul throughput (FLOP/s, float32 and float64, an n x n
    matmul) and memory bandwidth (bytes/s, ``c = a + b`` on arrays of ``mbytes`` MB: it
    reads 2 and writes 1 array; one thread and one thread per core, the better of the
    two). Best of ``repeats``: the peak, not the typical speed."""
    rng = np.random.default_rng(0)
    peaks = {}
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        peaks[f"flops_{dtype}"] = 2 * n ** 3 / _best_time(lambda: a @ b, repeats)
    k = mbytes * 2 ** 20 // 8
    x, y, out = np.ones(k), np.ones(k), np.empty(k)
    one = 3 * 8 * k / _best_time(lambda: np.add(x, y, out=out), repeats)
    # one core does not saturate memory (15 GB/s against 21 GB/s with both cores of the
    # 2-core EPYC, measured): the peak is the better of one thread and one thread per core
    # (NumPy releases the GIL inside the ufunc loop, so slices add in parallel)
    cores = os.cpu_count() or 1
    parts = [slice(i * k // cores, (i + 1) * k // cores) for i in range(cores)]
    with ThreadPoolExecutor(cores) as pool:
        def parallel_add():
            list(pool.map(lambda s: np.add(x[s], y[s], out=out[s]), parts))
        many = 3 * 8 * k / _best_time(parallel_add, repeats)
    peaks["bandwidth"] = max(one, many)
    peaks["bandwidth_1thread"] = one
    return peaks


def roofline_fraction(flops, nbytes, seconds, peak_flops, bandwidth):
    """Roofline bound time / measured time (1.0 = the machine's limit)."""
    return max(flops / peak_flops, nbytes / bandwidth) / seconds
