"""The conformance matrix: every stage of every mirror against the reference.

Axes: backend x gradient path x device x dtype x hidden activation x output x
architecture x optimiser x batch mode (x steps). The default run (``-m "not slow"``) covers
every registered mirror (netparity.backends.REGISTRY), every path it has (manual,
autodiff, idiomatic), dtype, activation, output and architecture after one full-batch
step (optimiser rotating; the other optimisers are marked slow), a 3-step mini-batch/SGD
case per (backend, path, activation, output) (dtype alternating; the other is slow), the
compiled paths and the GPU cases; ``--full-matrix`` collects the whole product (marked
slow). Ids read like ``torch-autodiff-cpu-float32-relu-sigmoid-2x4x4x3x1-adam-full-1step``.

Size axis (``--size``): everything above is the "toy" size (the article's nets). The
"medium" size is what people train, 784-256-256-10 / -1 on 8000 examples
(``torch-manual-cpu-float32-relu-softmax-medium-784x256x256x10-adam-full-3step``), with
torch's threads as a user's process has them: the default run has a slice of it
(``medium_slice``), ``--full-matrix`` its product (``medium_cases``).

Every case runs through ``netparity.runner.run_case``: against the reference in the same
dtype (|x_b - x_r| <= 2E) and, for float32, against the float64 oracle (|x_b - x64| <= E),
with the bounds of ``netparity.tolerance``.
"""
import contextlib
import itertools

import pytest

from conftest import user_threads
from netparity.backends import REGISTRY, mirrors
from netparity.runner import run_case
from netparity.stages import ARCHS, Case, OPTIMIZER_CONFIGS
import reference as R

HIDDEN = R.HIDDEN_ACTIVATIONS
OUTPUTS = R.OUTPUT_ACTIVATIONS
DTYPES = ("float64", "float32")
OPTIMIZERS = tuple(OPTIMIZER_CONFIGS)
# every registered mirror, importable or not: one that does not import here is a skip
# carrying its import error (netparity.runner.skip_reason), not a silent omission
BACKENDS = mirrors()


def paths(backend, *names):
    """The paths among ``names`` that ``backend`` implements (its registry entry)."""
    return [p for p in names if p in REGISTRY[backend].paths]


def gpu_devices(backend):
    return [d for d in REGISTRY[backend].devices if d != "cpu"]


def default_cases():
    """(case, slow) pairs. Not slow (CI): every backend x path x dtype x activation x
    output x architecture after one step, the optimiser rotating; the other optimisers of
    those one-step cases are marked slow."""
    cases = []
    rot = itertools.cycle(OPTIMIZERS)
    for backend in BACKENDS:
        for path, dtype, hidden, output, arch in itertools.product(
                paths(backend, "manual", "autodiff", "idiomatic"), DTYPES, HIDDEN, OUTPUTS, ARCHS):
            fast = next(rot)
            for opt in OPTIMIZERS:
                cases.append((Case(backend, path, "cpu", dtype, hidden, output, arch, opt, "full", 1),
                              opt != fast))
    # multi-step: every (backend, path, activation, output) in one dtype (alternating);
    # the other dtype is marked slow. (JAX compiles every eager op once per new shape and
    # dtype, ~40 ms each: new shapes, not steps, are what costs time here.)
    rot = itertools.cycle(itertools.product(("mini", "sgd"), OPTIMIZERS, ARCHS))
    dtype_rot = itertools.cycle(DTYPES)
    for backend in BACKENDS:
        for path, hidden, output in itertools.product(
                paths(backend, "manual", "autodiff", "idiomatic"), HIDDEN, OUTPUTS):
            batch, opt, arch = next(rot)
            fast = next(dtype_rot)
            for dtype in DTYPES:
                cases.append((Case(backend, path, "cpu", dtype, hidden, output, arch, opt, batch, 3),
                              dtype != fast))
    # compiled: every (dtype, activation, output) where the compiler is cheap; a slow
    # compiler (torch.compile: seconds per graph on CPU) gets two representative cases here
    # and the rest in --full-matrix
    for backend in BACKENDS:
        if "compiled" not in REGISTRY[backend].paths:
            continue
        if REGISTRY[backend].slow_compile:
            cases.append((Case(backend, "compiled", "cpu", "float64", "tanh", "sigmoid", "shallow", "adam", "full", 2), False))
            cases.append((Case(backend, "compiled", "cpu", "float32", "relu", "softmax", "deep", "momentum", "mini", 2), False))
            continue
        rot = itertools.cycle(itertools.product(OPTIMIZERS, ARCHS))
        for dtype, hidden, output in itertools.product(DTYPES, HIDDEN, OUTPUTS):
            opt, arch = next(rot)
            cases.append((Case(backend, "compiled", "cpu", dtype, hidden, output, arch, opt, "mini", 3), False))
    # GPU: one activation per output on every GPU device of every backend, each path, in
    # float64, float32 and TF32; skipped with the reason where there is no such device
    for backend in BACKENDS:
        for device, path, hidden, output, tf32 in itertools.product(
                gpu_devices(backend), paths(backend, *REGISTRY[backend].paths), HIDDEN, OUTPUTS,
                (False, True)):
            if tf32 and device not in REGISTRY[backend].tf32_devices:
                continue
            for dtype in (("float32",) if tf32 else DTYPES):
                cases.append((Case(backend, path, device, dtype, hidden, output, "deep", "adam",
                                   "mini", 2, tf32), False))
    return cases


def full_cases():
    return [Case(b, p, d, dt, h, o, a, opt, bt, st)
            for b in BACKENDS
            for p, d, dt, h, o, a, opt, bt, st in itertools.product(
                REGISTRY[b].paths, ("cpu",), DTYPES, HIDDEN, OUTPUTS,
                ARCHS, OPTIMIZERS, ("full", "mini", "sgd"), (1, 5))]


# the medium product (issue 17's, and the idiomatic path): both outputs, relu (kinks) and
# tanh, gd and Adam, full batch (reductions of 8000) and mini-batch, 1 and 3 steps, both
# dtypes, every mirror's manual, autodiff and idiomatic paths
MEDIUM = dict(dtypes=DTYPES, hidden=("relu", "tanh"), outputs=OUTPUTS, optimizers=("gd", "adam"),
              batches=("full", "mini"), steps=(1, 3))


def _medium(backend, path, dtype, hidden, output, opt, batch, steps):
    return Case(backend, path, "cpu", dtype, hidden, output, "deep", opt, batch, steps, size="medium")


def medium_cases():
    """The medium product (384 cases, ~25 min on 2 busy cores), configuration-major: a
    configuration's cases run one after another, so its reference, oracle and bounds
    (seconds, ~500 MB; few are cached) are computed once. Keep that order: run it with
    ``-p no:randomly`` (pytest-randomly's shuffle makes every case recompute them)."""
    return [_medium(b, p, *config)
            for config in itertools.product(*MEDIUM.values())
            for b in BACKENDS for p in paths(b, "manual", "autodiff", "idiomatic")]


def medium_slice():
    """The default run's medium cases (<= 45 s on 2 cores): every mirror's manual and
    autodiff path on two float32 configurations (each also compared with the float64
    oracle): relu/softmax Adam, 3 mini-batch steps (kinks, Adam's normalisation carried
    over steps, a literal cost the float32 formula overflows), and tanh/sigmoid gd, one
    full-batch step (the 8000-long reductions; tests/test_sizes.py plants bugs there)."""
    configs = [("float32", "relu", "softmax", "adam", "mini", 3),
               ("float32", "tanh", "sigmoid", "gd", "full", 1)]
    return [_medium(b, p, *config) for config in configs
            for b in BACKENDS for p in paths(b, "manual", "autodiff")]


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    if metafunc.config.getoption("--full-matrix"):
        cases = [pytest.param(c, marks=pytest.mark.slow) for c in full_cases() + medium_cases()]
    else:
        cases = [pytest.param(c, marks=[pytest.mark.gpu] if c.device != "cpu" else
                              [pytest.mark.slow] if slow else [])
                 for c, slow in default_cases() + [(c, False) for c in medium_slice()]]
    metafunc.parametrize("case", cases, ids=lambda c: c.id)


def test_stages_match_reference(case):
    # toy matrices run on the suite's one thread; bigger ones as a user's process would
    with user_threads() if case.size != "toy" else contextlib.nullcontext():
        result = run_case(case)
    if not result.ran:
        pytest.skip(result.skipped)
    result.raise_if_failed()
