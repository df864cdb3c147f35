"""The conformance matrix: every stage of every mirror against the reference.

Axes: backend x gradient path x device x dtype x hidden activation x output x
architecture x optimiser x batch mode (x steps). The default run (``-m "not slow"``) covers
every backend, path, dtype, activation, output and architecture after one full-batch
step (optimiser rotating; the other optimisers are marked slow), a 3-step mini-batch/SGD
case per (backend, path, activation, output) (dtype alternating; the other is slow), the compiled paths and the GPU cases;
``--full-matrix`` collects the whole product (marked slow). Ids read like
``torch-autograd-cpu-float32-relu-sigmoid-2x5x4x3x1-adam-full-1step``.

Every assertion goes through ``netparity.compare`` with bounds from
``netparity.tolerance``: against the reference in the same dtype (|x_b - x_r| <= 2E) and,
for float32, against the float64 oracle (|x_b - x64| <= E).
"""
import itertools

import pytest

from netparity.backends import MIRRORS, get_backend
from netparity.compare import assert_conforms, compare_stages
from netparity.stages import ARCHS, Case, OPTIMIZER_CONFIGS, expected, order_for_path, run_backend
from netparity.numerics import precision_mode
from conftest import require_device
import reference as R

HIDDEN = R.HIDDEN_ACTIVATIONS
OUTPUTS = R.OUTPUT_ACTIVATIONS
DTYPES = ("float64", "float32")
OPTIMIZERS = tuple(OPTIMIZER_CONFIGS)
GPU = {"torch": "cuda", "jax": "gpu"}


def _importable(name):
    try:
        get_backend(name)
        return True
    except ImportError:
        return False


BACKENDS = [b for b in MIRRORS if _importable(b)]


def default_cases():
    """(case, slow) pairs. Not slow (CI): every backend x path x dtype x activation x
    output x architecture after one step, the optimiser rotating; the other optimisers of
    those one-step cases are marked slow."""
    cases = []
    rot = itertools.cycle(OPTIMIZERS)
    for backend, path, dtype, hidden, output, arch in itertools.product(
            BACKENDS, ("manual", "autodiff"), DTYPES, HIDDEN, OUTPUTS, ARCHS):
        fast = next(rot)
        for opt in OPTIMIZERS:
            cases.append((Case(backend, path, "cpu", dtype, hidden, output, arch, opt, "full", 1),
                          opt != fast))
    # multi-step: every (backend, path, activation, output) in one dtype (alternating);
    # the other dtype is marked slow. (JAX compiles every eager op once per new shape and
    # dtype, ~40 ms each: new shapes, not steps, are what costs time here.)
    rot = itertools.cycle(itertools.product(("mini", "sgd"), OPTIMIZERS, ARCHS))
    dtype_rot = itertools.cycle(DTYPES)
    for backend, path, hidden, output in itertools.product(
            BACKENDS, ("manual", "autodiff"), HIDDEN, OUTPUTS):
        batch, opt, arch = next(rot)
        fast = next(dtype_rot)
        for dtype in DTYPES:
            cases.append((Case(backend, path, "cpu", dtype, hidden, output, arch, opt, batch, 3),
                          dtype != fast))
    # compiled: every JAX (dtype, activation, output); torch.compile costs seconds per
    # graph on CPU, so two representative cases here and the rest in --full-matrix
    rot = itertools.cycle(itertools.product(OPTIMIZERS, ARCHS))
    if "jax" in BACKENDS:
        for dtype, hidden, output in itertools.product(DTYPES, HIDDEN, OUTPUTS):
            opt, arch = next(rot)
            cases.append((Case("jax", "compiled", "cpu", dtype, hidden, output, arch, opt, "mini", 3), False))
    if "torch" in BACKENDS:
        cases.append((Case("torch", "compiled", "cpu", "float64", "tanh", "sigmoid", "shallow", "adam", "full", 2), False))
        cases.append((Case("torch", "compiled", "cpu", "float32", "relu", "softmax", "deep", "momentum", "mini", 2), False))
    # GPU: the same slice as the CPU's one-step cases for one activation per output, in
    # full float32 and in TF32; skipped with the reason where there is no GPU
    for backend, path, hidden, output, tf32 in itertools.product(
            BACKENDS, ("manual", "autodiff", "compiled"), HIDDEN, OUTPUTS, (False, True)):
        for dtype in (("float32",) if tf32 else DTYPES):
            cases.append((Case(backend, path, GPU[backend], dtype, hidden, output, "deep", "adam",
                               "mini", 2, tf32), False))
    return cases


def full_cases():
    return [Case(b, p, d, dt, h, o, a, opt, bt, st)
            for b, p, d, dt, h, o, a, opt, bt, st in itertools.product(
                BACKENDS, ("manual", "autodiff", "compiled"), ("cpu",), DTYPES, HIDDEN, OUTPUTS,
                ARCHS, OPTIMIZERS, ("full", "mini", "sgd"), (1, 5))]


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("--full-matrix"):
        cases = [pytest.param(c, marks=pytest.mark.slow) for c in full_cases()]
    else:
        cases = [pytest.param(c, marks=[pytest.mark.gpu] if c.device != "cpu" else
                              [pytest.mark.slow] if slow else [])
                 for c, slow in default_cases()]
    metafunc.parametrize("case", cases, ids=lambda c: c.id)


def test_stages_match_reference(case):
    backend = get_backend(case.backend)
    require_device(backend, case.device)
    if case.path == "compiled":
        ok, reason = backend.compile_status()
        if not ok:
            pytest.skip(f"{case.backend} compiler unavailable here: {reason}")
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
                 case.steps, case.tf32)
    with precision_mode(tf32=case.tf32):
        got = run_backend(case)
    order = order_for_path(e.order, case.path)
    assert_conforms(compare_stages(e.ref, got, e.bounds, order, case.dtype), case.context())
    if case.dtype != "float64":
        assert_conforms(compare_stages(e.oracle, got, e.bounds, order, case.dtype, factor=1.0),
                        case.context(), against="the float64 oracle (bound E, not 2E)")
