"""Numeric state: full precision by default, TF32 only when asked, a canary that notices
reduced precision, flags restored, and a fingerprint that records them."""
import types

import numpy as np
import pytest

from netparity.backends import get_backend
from netparity.fingerprint import fingerprint
from netparity.numerics import precision_flags, precision_mode, tf32_canary
from conftest import require_device
from netparity.backends import REGISTRY, import_error



def _device_params(tf32_only=False):
    """(backend, device) for every registered backend and device (the registry's list);
    non-CPU devices carry the gpu mark; a backend that does not import is a skip."""
    out = []
    for name, spec in REGISTRY.items():
        for device in (spec.tf32_devices if tf32_only else spec.devices):
            reason = import_error(name)
            marks = ([pytest.mark.gpu] if device != "cpu" else []) + (
                [pytest.mark.skip(reason=f"backend {name!r} does not import here: {reason}")] if reason else [])
            out.append(pytest.param(name, device, marks=marks, id=f"{name}-{device}"))
    return out


DEVICES = _device_params()


@pytest.mark.parametrize("backend,device", DEVICES)
def test_float32_matmul_runs_at_full_precision(backend, device):
    """Fails if reduced precision (TF32, bf16 passes) is silently active in the suite's
    default mode, e.g. JAX's default precision on an Ampere GPU."""
    B = get_backend(backend)
    require_device(B, device)
    assert tf32_canary(B, device), f"{backend}/{device}: float32 matmul lost bits: reduced precision is active"


@pytest.mark.parametrize("backend,device", _device_params(tf32_only=True))
@pytest.mark.gpu
def test_tf32_axis_really_reduces_precision_on_gpu(backend, device):
    B = get_backend(backend)
    require_device(B, device)
    with precision_mode(tf32=True):
        reduced = not tf32_canary(B, device)
    if not reduced:
        pytest.skip(f"{device} has no TF32 units (pre-Ampere): the TF32 axis equals float32 there")
    assert tf32_canary(B, device)  # and full precision is back after the block


def _tf32_round(x):
    """Round float32 to TF32's 10-bit mantissa (round to nearest even on the bit pattern)."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    lsb = (bits >> 13) & 1
    return ((bits + 0x0FFF + lsb) & ~np.uint32(0x1FFF)).view(np.float32)


class _TF32Array(np.ndarray):
    def __matmul__(self, other):
        return np.asarray(_tf32_round(self)) @ np.asarray(_tf32_round(other))


def test_canary_detects_tf32_rounding():
    """Positive control: a backend whose matmul rounds its inputs to TF32 is caught."""
    fake = types.SimpleNamespace(from_numpy=lambda x, dtype, device: np.asarray(x, dtype).view(_TF32Array),
                                 to_numpy=np.asarray)
    assert not tf32_canary(fake, "cpu")
    honest = types.SimpleNamespace(from_numpy=lambda x, dtype, device: np.asarray(x, dtype), to_numpy=np.asarray)
    assert tf32_canary(honest, "cpu")


def test_precision_mode_sets_then_restores_flags():
    before = precision_flags()
    with precision_mode(tf32=True):
        inside = precision_flags()
        assert inside["torch.backends.cuda.matmul.allow_tf32"] is True
        assert inside["torch.float32_matmul_precision"] == "high"
        assert inside["jax_default_matmul_precision"] == "tensorfloat32"
    assert precision_flags() == before
    # the suite's default (conftest) is full precision
    assert before["torch.backends.cuda.matmul.allow_tf32"] is False
    assert before["torch.float32_matmul_precision"] == "highest"
    assert before["jax_default_matmul_precision"] == "highest"


def test_fingerprint_records_versions_devices_and_flags():
    fp = fingerprint()
    import jax
    import torch
    assert fp["numpy"] == np.__version__ and fp["torch"] == torch.__version__ and fp["jax"] == jax.__version__
    assert fp["precision_flags"] == precision_flags()
    assert fp["cpu_count"] >= 1 and fp["numpy_blas"] and fp["torch_blas"] != ""


# ------------------------------------------------------------------ thread policy

def test_step_work_of_the_article_network_by_hand():
    # 2-4-1 x 400: forward 13 600 (matmuls 9 600 + bias and activation 4 000), cost 3 x 400,
    # backward 24 800 (tests/test_bench_smoke.py derives it term by term), update 2 x 17
    from netparity.numerics import step_work
    assert step_work((2, 4, 1), 400) == 13600 + 1200 + 24800 + 34


@pytest.mark.parametrize("work, cores, want", [
    (4e4, 2, 1),         # the article's step: one thread
    (1.99e8, 2, 1),      # under two threads' worth of work: still one
    (2e8, 2, 2),         # two threads' worth
    (2.4e9, 2, 2),       # more work than cores: one thread per core
    (2.4e9, 16, 16),
    (1e12, 8, 8),
])
def test_threads_for_grows_with_work_up_to_the_cores(work, cores, want, monkeypatch):
    from netparity.numerics import THREADS_ENV, WORK_PER_THREAD, threads_for
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert WORK_PER_THREAD == 1e8  # the table above is written for this constant
    assert threads_for(work, cores) == want


def test_threads_env_overrides_the_policy(monkeypatch):
    from netparity.numerics import THREADS_ENV, threads_for
    monkeypatch.setenv(THREADS_ENV, "3")
    assert threads_for(4e4, 2) == 3
    monkeypatch.setenv(THREADS_ENV, "0")
    with pytest.raises(ValueError, match="NETPARITY_THREADS must be a positive integer, got '0'"):
        threads_for(4e4, 2)


def test_thread_policy_sets_then_restores_torch_threads(monkeypatch):
    """Inside: the policy's count (big work: one per core); after, also after an
    exception: the count from before (conftest runs every test at one thread)."""
    torch = pytest.importorskip("torch", reason="the policy sets torch's thread count")
    from netparity.numerics import THREADS_ENV, available_cores, thread_policy
    monkeypatch.delenv(THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    assert before == 1
    with thread_policy(1e12) as n:
        assert n == available_cores() == torch.get_num_threads()
    assert torch.get_num_threads() == before
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="inside"):
        with thread_policy(((2, 4, 1), 400)) as n:  # (layer_dims, m): the article's step
            assert n == 1 == torch.get_num_threads()
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_core_counts_follow_this_process_affinity():
    """netparity.numerics.available_cores and torch's bench (its "manual-cores" variant's
    thread count) count the CPUs this process may run on: with its affinity mask cut to
    one CPU, one (whatever other processes, pid 1 among them, may use)."""
    import os
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no affinity masks on this OS")
    saved = os.sched_getaffinity(0)
    if len(saved) < 2:
        pytest.skip("one CPU: a mask of one CPU would not differ from it")
    from netparity.numerics import available_cores
    counters = [available_cores]
    if not import_error("torch"):
        from torch_impl.bench import _cores
        counters.append(_cores)
    assert [count() for count in counters] == [len(saved)] * len(counters)
    try:
        os.sched_setaffinity(0, {min(saved)})
        assert [count() for count in counters] == [1] * len(counters)
    finally:
        os.sched_setaffinity(0, saved)
