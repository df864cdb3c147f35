"""Options, markers and the global numeric state of the test suite.

Global state is set here and nowhere else in tests: every test runs inside
``precision_mode`` (TF32 off, "highest" JAX matmul precision) and torch's default dtype
and thread count are checked and restored around it, so no test depends on another's
leftovers or on the order the tests run in (CI runs them in random order).
"""
import contextlib
import os

import pytest
from hypothesis import settings, HealthCheck

from netparity.backends import REGISTRY, import_error
from netparity.numerics import precision_mode
from netparity.stages import SIZES

# Hypothesis: "ci" is derandomized (same examples every run); "dev" explores with a
# random seed that hypothesis prints on failure (reproduce with --hypothesis-seed=N).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True, max_examples=100,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    g = parser.getgroup("netparity")
    g.addoption("--backend", action="append", default=None, choices=list(REGISTRY),
                help="run only these backends (repeatable; default: all)")
    g.addoption("--device", action="append", default=None,
                help="run only these devices: cpu, cuda, gpu (repeatable; default: all)")
    g.addoption("--dtype", action="append", default=None, choices=["float64", "float32"],
                help="run only these dtypes (repeatable; default: both)")
    g.addoption("--size", action="append", default=None, choices=list(SIZES),
                help="run only these sizes of the conformance matrix (repeatable; default: "
                     "all: toy, and a medium slice or with --full-matrix the medium product)")
    g.addoption("--full-matrix", action="store_true",
                help="collect the full product of every axis (thousands of cases, marked slow)")


def pytest_configure(config):
    """JAX's persistent compilation cache, shared by the xdist workers and kept between
    runs in .pytest_cache. Eager JAX compiles every primitive separately for each new
    shape/dtype (~50 ms each on this 2-core CPU, ~130 for one eager Adam step); the cache
    lets the second worker and the next run load them instead (6.6 s -> 1.9 s for one
    case, measured). It changes no result: an entry is keyed by the computation, the
    compile options and the jax/jaxlib version. NETPARITY_JAX_CACHE=0 turns it off;
    NETPARITY_JAX_CACHE_DIR puts it elsewhere (tools/mutate.py shares one between its
    runs). Under ``-p no:cacheprovider`` (no ``config.cache``) and without that variable
    there is no persistent cache: compiles happen in memory, as without this hook."""
    if os.environ.get("NETPARITY_JAX_CACHE", "1") == "0":
        return
    cache_dir = os.environ.get("NETPARITY_JAX_CACHE_DIR")
    if not cache_dir:
        cache = getattr(config, "cache", None)  # set by the cacheprovider plugin only
        if cache is None:
            return
        cache_dir = str(cache.mkdir("jax-compilation-cache"))
    try:
        import jax
    except ImportError:
        return
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _selected(config, option, value):
    chosen = config.getoption(option)
    return chosen is None or value in chosen


def backend_params(reference=True):
    """Every registered backend as a pytest param (the registry is the one list): one that
    does not import here is collected and skipped with its import error, never dropped."""
    out = []
    for name, spec in REGISTRY.items():
        if not (reference or spec.mirror):
            continue
        reason = import_error(name)
        out.append(pytest.param(name, id=name, marks=[pytest.mark.skip(
            reason=f"backend {name!r} does not import here: {reason}")] if reason else []))
    return out


def _item_axes(item):
    """(backend, device, dtype, size) an item runs on, from its ``case`` or its parameters."""
    params = getattr(item, "callspec", None) and item.callspec.params or {}
    case = params.get("case")
    if case is not None and hasattr(case, "backend"):
        return case.backend, case.device, case.dtype, getattr(case, "size", None)
    return params.get("backend"), params.get("device"), params.get("dtype"), params.get("size")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        axes = _item_axes(item)
        if not all(v is None or not isinstance(v, str) or _selected(config, opt, v)
                   for opt, v in zip(("--backend", "--device", "--dtype", "--size"), axes)):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@contextlib.contextmanager
def suite_numeric_state():
    """The state every test runs in, restored afterwards whatever the test changed: torch's
    default dtype and thread count (one thread inside), TF32 off and "highest" matmul
    precision on every framework, and JAX's global config (jax_enable_x64,
    jax_default_matmul_precision, also when set with jax.config.update)."""
    try:
        import torch
    except ImportError:
        torch = None
    try:
        import jax
        import jax_impl  # noqa: F401  its import turns jax_enable_x64 on: part of the baseline
    except ImportError:
        jax = None
    saved = (torch.get_default_dtype(), torch.get_num_threads()) if torch else None
    jax_saved = ({k: getattr(jax.config, k) for k in JAX_FLAGS} if jax else None)
    if torch:
        # the suite's matrices are tiny: intra-op threads only add synchronisation (and
        # thrash under pytest-xdist); one thread also makes CPU results reproducible
        torch.set_num_threads(1)
    try:
        with precision_mode(tf32=False):
            yield
    finally:
        if torch:
            torch.set_default_dtype(saved[0])
            torch.set_num_threads(saved[1])
        if jax:
            for k, v in jax_saved.items():
                if getattr(jax.config, k) != v:
                    jax.config.update(k, v)


JAX_FLAGS = ("jax_enable_x64", "jax_default_matmul_precision")


@pytest.fixture(autouse=True)
def numeric_state():
    """Every test inside ``suite_numeric_state``."""
    with suite_numeric_state():
        yield


def _startup_torch_threads():
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


TORCH_STARTUP_THREADS = _startup_torch_threads()  # before any test sets one thread


@contextlib.contextmanager
def user_threads():
    """torch with the intra-op threads a user's process starts with (NumPy's BLAS and XLA
    keep theirs throughout), for cases whose matrices are big enough for threads to split
    a reduction; ``numeric_state`` restores the suite's one thread afterwards."""
    if TORCH_STARTUP_THREADS is not None:
        import torch
        torch.set_num_threads(TORCH_STARTUP_THREADS)
    yield


def require_device(backend_module, device):
    """Skip (with the reason) when the case's device is absent on this machine."""
    if device not in backend_module.devices():
        what = {"cuda": "no CUDA device", "gpu": "no JAX GPU device"}.get(device, f"no {device} device")
        pytest.skip(f"{what} on this machine")


def call_ok(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on input the API documents as valid: an exception there is a
    wrong answer, asserted (pytest.fail), not a crash that no assertion reaches."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - every exception type is the same wrong answer
        pytest.fail(f"{getattr(fn, '__name__', fn)} raised {type(e).__name__} on valid input: {e}")
