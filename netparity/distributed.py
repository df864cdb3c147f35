"""Data-parallel conformance: the batch split over N workers on the real engines
(torch.distributed, JAX sharding), every stage compared with the single-process reference.

    cases = select_dp_cases(workers=2)                  # every registered mode, default slice
    results = run_dp_cases(cases)                       # [DPResult], one launch per backend
    results[0].ok, results[0].first_divergence()

A ``DPCase`` is a conformance case plus ``mode`` ("path:reduction", one of the backend's
``BackendSpec.data_parallel``) and ``workers`` N. Batch k (the reference's column indices)
is cut into N contiguous shards of ceil(m / N) examples, the last one shorter (the split
XLA uses for an uneven dimension; every engine here gets the same one): ``shard_offsets``.
Each rank r returns, for the last step,

    the per-example stages Z, A, dZ, dA of its own columns: compared with the reference's
        columns offsets[r]:offsets[r + 1] (bounds of those columns);
    its copy of the reduced ones, the costs, dW, db, the updated parameters and optimiser
        state: compared with the reference's (bounds with the reduction term of
        tolerance.reduction_roundings(N));

through ``runner.compare_case``, one rank at a time; the ranks' results are merged stage by
stage (each StageResult's note says the rank), so ``first_divergence`` names the first
diverging stage in forward-then-backward order and the rank where it diverged.

Outcomes: a mode whose registry entry names a convention (torch's "idiomatic:ddp":
"ddp.per_rank_mean") differs from the reference on unequal shards by that convention; such
a case that diverges is a *measured convention difference* (``convention_of``), reported
with its number, not a failure; one that does not diverge is (the convention was expected
to show). The weighted modes are the fix and must conform.

The job contract with a backend's ``<module>.distributed.launch(job_dir, workers, timeout)``
(no pickle anywhere):
    job.json            {"workers": N, "device": "cpu" | "cuda" | "gpu", "cases": [{"name",
                         "mode", "dtype", "hidden", "output", "optimizer": {reference.Optimizer
                         fields}, "steps", "bug", "per_example": [stage names]}]}
    <name>.in.npz       X, Y (the data set), W1 b1 ... (initial parameters, float64),
                        batch<k> (column indices of update k), offsets<k> (N + 1 ints)
    <name>.rank<r>.npz  written by rank r: its stages of the last update (NumPy; t' 0-d int)
    <name>.rank<r>.error.txt   instead, when the case raised on that rank (a failure
                        named "run", not a skip)
    <name>.meta.json    optional: what the engine reports about the run (DPResult.meta)
"""
from dataclasses import asdict, dataclass, field
from functools import lru_cache
import itertools
import json
import math
import os
import tempfile

import numpy as np

import reference as R
from netparity.backends import REGISTRY, backend_spec, get_backend, import_error
from netparity.compare import StageResult
from netparity.runner import CaseResult, DTYPES, compare_case
from netparity.stagenames import stage_order
from netparity.stages import ARCHS, OPTIMIZER_CONFIGS, dataset, expected_for, initial_parameters
from netparity import fileio

# examples per update: "full" and "mini" split evenly over N = 1, 2, 4 (m = 400 / 300 and
# 64), "odd" (63) does not for N > 1: the unequal shards (32 + 31; 16 + 16 + 16 + 15)
DP_BATCH_SIZES = {"full": None, "mini": 64, "odd": 63}
DEFAULT_DP_BATCHES = ("full", "odd")

# planted reduction bugs (tests only; the explicit-reduction modes manual:all_reduce and
# manual:psum implement them) and the stage each must be named at
BUGS = {
    "sum": "each rank's mean summed, not divided by N (nor weighted): N times the gradient",
    "rank_mean": "the mean of the ranks' means, (1/N) sum_r G_r: wrong for unequal shards",
    "local_state": "the optimiser state advanced with the rank's own, unreduced gradient",
    "reorder": "a rank reverses the order of its examples",
}


def shard_offsets(m, workers):
    """[0, s, 2 s, ..., m] with s = ceil(m / N): rank r takes columns offsets[r]:offsets[r + 1].
    ValueError when a shard would be empty (the reduction's bound assumes none is)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    s = -(-m // workers)
    off = [min(r * s, m) for r in range(workers)] + [m]
    if any(b <= a for a, b in zip(off[:-1], off[1:])):
        raise ValueError(f"{m} examples in blocks of ceil({m}/{workers}) = {s} leave a worker "
                         f"without examples: use fewer workers or a larger batch")
    return off


def per_example_stages(L):
    """The stages with one column per example (each rank holds its own columns)."""
    return [s for s in stage_order(L, []) if s.lstrip("d")[:1] in ("Z", "A")]


@dataclass(frozen=True)
class DPCase:
    backend: str
    mode: str = "manual:all_reduce"   # "path:reduction", a key of BackendSpec.data_parallel
    workers: int = 2
    dtype: str = "float64"
    hidden: str = "tanh"
    output: str = "sigmoid"
    arch: str = "shallow"
    optimizer: str = "gd"
    batch: str = "full"
    steps: int = 1
    bug: str | None = None            # a key of BUGS (tests only)
    device: str = "cpu"
    tf32: bool = False

    @property
    def path(self):
        return self.mode.partition(":")[0]

    @property
    def data(self):
        return "planar" if self.output == "sigmoid" else "spirals"

    def layer_dims(self):
        X, Y = dataset(self.data)
        return (X.shape[0],) + ARCHS[self.arch] + (Y.shape[0],)

    def batches(self):
        """Column indices of each of the ``steps`` updates (the reference's batch order)."""
        X, _ = dataset(self.data)
        out, epoch = [], 0
        while len(out) < self.steps:
            out.extend(R.batch_order(X.shape[1], DP_BATCH_SIZES[self.batch], seed=0, epoch=epoch))
            epoch += 1
        return out[:self.steps]

    def shard_sizes(self):
        """Examples per rank in the last update."""
        off = shard_offsets(len(self.batches()[-1]), self.workers)
        return [b - a for a, b in zip(off[:-1], off[1:])]

    @property
    def equal_shards(self):
        return len(set(self.shard_sizes())) == 1

    @property
    def id(self):
        dims = "x".join(map(str, self.layer_dims()))
        where = "" if self.device == "cpu" else f"@{self.device}"
        return (f"{self.backend}-{self.mode}{where}-x{self.workers}-{self.dtype}-{self.hidden}-{self.output}"
                f"-{dims}-{self.optimizer}-{self.batch}-{self.steps}step" + (f"-bug:{self.bug}" if self.bug else ""))

    def context(self):
        return {"case": self.id}

    # how runner.render / cmd_check present it
    @property
    def column(self):
        return (f"{self.backend}/{self.mode}" + ("" if self.device == "cpu" else f"@{self.device}")
                + (f" bug:{self.bug}" if self.bug else ""))

    @property
    def title(self):
        dims = "x".join(map(str, self.layer_dims()))
        sizes = "+".join(map(str, self.shard_sizes()))
        return (f"{self.dtype} {self.hidden}/{self.output} {dims} {self.optimizer} {self.batch} "
                f"{self.steps} step{'s' if self.steps != 1 else ''}, {self.workers} worker"
                f"{'s' if self.workers != 1 else ''} (shards {sizes})")


@dataclass
class DPResult(CaseResult):
    """A CaseResult plus what the engine reported about the run (``<name>.meta.json``:
    e.g. JAX's count of compiler-inserted all-reduce ops, the stages read from each
    device's own shard) and every rank's stages as it returned them (NumPy, by name)."""
    meta: dict = field(default_factory=dict)
    stages: list = field(default_factory=list)


def convention_of(case):
    """The convention key by which ``case`` is expected to differ from the reference (its
    mode's registry entry, on unequal shards), or None."""
    if case.equal_shards:
        return None
    return backend_spec(case.backend).data_parallel.get(case.mode)


def dp_backends():
    """Registered backends with data-parallel modes, in registry order."""
    return [name for name, spec in REGISTRY.items() if spec.data_parallel]


def select_dp_cases(workers, backends=None, modes=None, dtypes=None, hidden=None, output=None,
                    arch=None, optimizer=None, batch=None, steps=None, devices=None):
    """The product of the axes (None: every backend with data-parallel modes, all its modes,
    float64 and float32, tanh/sigmoid 2-4-1, gd, full and odd batches, one step, cpu)."""
    axes = [backends or dp_backends(), dtypes or DTYPES, hidden or ["tanh"], output or ["sigmoid"],
            arch or ["shallow"], optimizer or ["gd"], batch or DEFAULT_DP_BATCHES, steps or [1],
            devices or ["cpu"]]
    for b in axes[0]:
        if not backend_spec(b).data_parallel:
            raise ValueError(f"backend {b!r} has no data-parallel modes")
    out = []
    for b, *rest in itertools.product(*axes):
        for mode in backend_spec(b).data_parallel:
            if modes is None or mode in modes:
                dt, h, o, a, opt, bt, k, dev = rest
                out.append(DPCase(b, mode, workers, dt, h, o, a, opt, bt, k, device=dev))
    return out


# ------------------------------------------------------------------ expected values

def dp_expected(case):
    """stages.Expected of the whole batch (the reduction term of ``case.workers`` in the
    bounds); shared by every backend and mode of the configuration."""
    return _expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
                     case.steps, case.workers)


@lru_cache(maxsize=256)
def _expected(dtype, hidden, output, arch, optimizer, batch, steps, workers):
    case = DPCase("numpy", workers=workers, dtype=dtype, hidden=hidden, output=output, arch=arch,
                  optimizer=optimizer, batch=batch, steps=steps)
    X, Y = dataset(case.data)
    return expected_for(initial_parameters(case), X, Y, case.batches(), hidden, output,
                        OPTIMIZER_CONFIGS[optimizer], dtype, workers=workers)


def shard_expected(exp, lo, hi, per_example):
    """``exp`` with the per-example stages cut to columns lo:hi (values and bounds)."""
    from netparity.stages import Expected

    def cut(d):
        return {s: (np.asarray(v)[..., lo:hi] if s in per_example and np.ndim(v) == 2 else v)
                for s, v in d.items()}
    return Expected(cut(exp.ref), cut(exp.oracle), cut(exp.bounds), exp.order)


def compare_ranks(case, rank_stages, exp):
    """One DPResult for all ranks: runner.compare_case per rank against the reference's
    columns of its shard, merged stage by stage (each StageResult noted with its rank)."""
    L = len(case.layer_dims()) - 1
    per_example = set(per_example_stages(L))
    off = shard_offsets(len(case.batches()[-1]), case.workers)
    per_rank = []
    for r, got in enumerate(rank_stages):
        res = compare_case(case, got, shard_expected(exp, off[r], off[r + 1], per_example))
        for rs in res.comparisons.values():
            for sr in rs:
                where = f"rank {r}" + (f", columns {off[r]}:{off[r + 1]}" if sr.stage in per_example else "")
                sr.note = f"{where}: {sr.note}" if sr.note else where
        per_rank.append(res)
    merged = {}
    for against in per_rank[0].comparisons:
        merged[against] = [sr for stage_results in zip(*(p.comparisons[against] for p in per_rank))
                           for sr in stage_results]
    return DPResult(case, merged)


# ------------------------------------------------------------------ running

def write_job(job_dir, cases):
    """The job files for ``cases`` (one backend, worker count and device) in ``job_dir``:
    what ``launch`` - or torchrun / one process per host across machines - runs."""
    entries = []
    for i, case in enumerate(cases):
        name = f"case{i}"
        X, Y = dataset(case.data)
        arrays = {"X": np.asarray(X), "Y": np.asarray(Y), **initial_parameters(case)}
        for k, idx in enumerate(case.batches()):
            arrays[f"batch{k}"] = np.asarray(idx, dtype=np.int64)
            arrays[f"offsets{k}"] = np.asarray(shard_offsets(len(idx), case.workers), dtype=np.int64)
        fileio.save_npz(os.path.join(job_dir, f"{name}.in.npz"), **arrays)
        entries.append({"name": name, "mode": case.mode, "dtype": case.dtype, "hidden": case.hidden,
                        "output": case.output, "optimizer": asdict(OPTIMIZER_CONFIGS[case.optimizer]),
                        "steps": case.steps, "bug": case.bug,
                        "per_example": per_example_stages(len(case.layer_dims()) - 1)})
    fileio.write_json(os.path.join(job_dir, "job.json"), {"workers": cases[0].workers, "device": cases[0].device, "cases": entries})


def _read_rank(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: (int(v) if v.dtype.kind in "iu" and v.ndim == 0 else v) for k, v in z.items()}


def _crashed(case, why):
    """A case that ran and did not produce its stages: a failure (not a skip), named "run"."""
    return DPResult(case, {"reference": [StageResult("run", False, ratio=math.inf, note=why)]})


def read_results(job_dir, cases):
    """[DPResult] of ``cases`` from the rank files in ``job_dir`` (written by the workers
    of ``write_job(job_dir, cases)``), compared with the reference."""
    out = []
    for i, case in enumerate(cases):
        name = f"case{i}"
        errors = sorted(f for f in os.listdir(job_dir) if f.startswith(f"{name}.rank") and f.endswith(".error.txt"))
        if errors:
            with open(os.path.join(job_dir, errors[0])) as f:
                out.append(_crashed(case, f"{errors[0].split('.')[1]} raised "
                                          f"{f.read().strip().splitlines()[-1]}"))
            continue
        paths = [os.path.join(job_dir, f"{name}.rank{r}.npz") for r in range(case.workers)]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            out.append(_crashed(case, f"no result from {len(missing)} worker(s)"))
            continue
        rank_stages = [_read_rank(p) for p in paths]
        res = compare_ranks(case, rank_stages, dp_expected(case))
        res.stages = rank_stages
        meta = os.path.join(job_dir, f"{name}.meta.json")
        if os.path.exists(meta):
            with open(meta) as f:
                res.meta = json.load(f)
        out.append(res)
    return out


def skip_reason(case):
    reason = import_error(case.backend)
    if reason:
        return f"backend {case.backend!r} does not import here: {reason}"
    if case.mode not in backend_spec(case.backend).data_parallel:
        return f"backend {case.backend!r} has no data-parallel mode {case.mode!r}"
    if case.device not in get_backend(case.backend).devices():
        return backend_spec(case.backend).missing_device_reason(case.device)
    return None


def launcher(backend):
    """The backend's ``distributed`` module (its launch(job_dir, workers, timeout))."""
    import importlib
    return importlib.import_module(get_backend(backend).__name__ + ".distributed")


def run_dp_cases(cases, timeout=600, job_root=None):
    """[DPResult] per case, in order: one launch per (backend, workers, device) runs its cases.

    job_root: None runs in temporary directories. A directory: the jobs are kept there
    (``<backend>-x<N>/``), and a job found complete (its "done" marker, written after the
    launch) is read instead of launched again, e.g. by a second pytest-xdist worker that
    needs the same results (the caller serialises access; tests/test_distributed.py)."""
    results = {}
    groups = {}
    for i, case in enumerate(cases):
        reason = skip_reason(case)
        if reason:
            results[i] = DPResult(case, skipped=reason)
        else:
            groups.setdefault((case.backend, case.workers, case.device), []).append(i)
    for (backend, workers, device), idx in groups.items():
        group = [cases[i] for i in idx]
        if job_root is None:
            with tempfile.TemporaryDirectory(prefix="netparity-dp-") as job_dir:
                _launch(backend, workers, job_dir, group, timeout)
                for i, res in zip(idx, read_results(job_dir, group)):
                    results[i] = res
            continue
        job_dir = os.path.join(job_root, f"{backend}-x{workers}" + ("" if device == "cpu" else f"-{device}"))
        done = os.path.join(job_dir, "done")
        if os.path.exists(done):
            with open(done) as f:
                if json.load(f) != [c.id for c in group]:
                    raise ValueError(f"{job_dir} holds the results of other cases")
        else:
            os.makedirs(job_dir, exist_ok=True)
            _launch(backend, workers, job_dir, group, timeout)
            fileio.write_json(done, [c.id for c in group])
        for i, res in zip(idx, read_results(job_dir, group)):
            results[i] = res
    return [results[i] for i in range(len(cases))]


def _launch(backend, workers, job_dir, cases, timeout):
    write_job(job_dir, cases)
    launcher(backend).launch(job_dir, workers, timeout)


# ------------------------------------------------------------------ outcomes

def outcome(result):
    """"pass", "convention" (diverged as its mode's convention says), "fail" (diverged,
    or a convention that did not show), or "skipped"."""
    if not result.ran:
        return "skipped"
    expected = convention_of(result.case)
    if expected:
        return "fail" if result.ok else "convention"
    return "pass" if result.ok else "fail"


def convention_line(result):
    """The measured convention difference of a "convention" outcome: its first diverging
    stage, how many bounds away, and its size relative to the reference (Frobenius norm)."""
    against, sr = result.first_divergence()
    size = f"max abs {sr.max_abs:.3g}"
    rank = int(sr.note.split(",")[0].split(":")[0].split()[-1])
    if result.stages and sr.stage in result.stages[rank]:
        ref = np.asarray(dp_expected(result.case).ref[sr.stage], dtype=np.float64)
        if sr.stage in per_example_stages(len(result.case.layer_dims()) - 1):
            off = shard_offsets(len(result.case.batches()[-1]), result.case.workers)
            ref = ref[..., off[rank]:off[rank + 1]]
        got = np.asarray(result.stages[rank][sr.stage], dtype=np.float64)
        size += f", {np.linalg.norm(got - ref) / np.linalg.norm(ref):.3g} relative (Frobenius)"
    return (f"{result.case.id}: convention {convention_of(result.case)!r} measured: first diverging "
            f"stage {sr.stage!r} ({sr.note}) at {sr.ratio:.3g} x its bound, {size} from the reference")


def dp_summary(results):
    """(one paragraph, all as expected?) over a list of data-parallel CaseResults."""
    kinds = {k: [r for r in results if outcome(r) == k] for k in ("pass", "convention", "fail", "skipped")}
    rows = [row for r in results if r.ran and outcome(r) == "pass" for _, row in r.rows()]
    worst = max((row.ratio for row in rows), default=0.0)
    text = (f"{len(results) - len(kinds['skipped'])} data-parallel case(s) run, {len(kinds['skipped'])} "
            f"skipped; {len(kinds['pass'])} conform (worst error/bound {worst:.3g}), "
            f"{len(kinds['convention'])} differ by their documented convention, "
            f"{len(kinds['fail'])} fail")
    lines = [text]
    lines += ["  " + convention_line(r) for r in kinds["convention"]]
    for r in kinds["fail"]:
        if r.ok:
            lines.append(f"  {r.case.id}: expected the convention {convention_of(r.case)!r} to show, "
                         "but every stage conforms")
        else:
            lines.append(f"  {r.case.id}: first diverging stage {r.first_divergence()[1].stage!r} "
                         f"({r.first_divergence()[1].note})")
    for r in kinds["skipped"]:
        lines.append(f"  {r.case.id}: skipped ({r.skipped})")
    return "\n".join(lines), not kinds["fail"]


def run_check(args):
    """``netparity check --data-parallel N``: the slice the check options select, on N
    workers of every engine; prints the same per-configuration tables as ``check`` (a
    column per backend/mode, the worst rank in each cell) and the outcomes. Exit code 0
    when every case conforms or differs by its documented convention, 1 otherwise, 2 when
    nothing ran."""
    import sys
    from netparity.cmd_check import render, to_json
    workers = args.data_parallel
    if workers < 1:
        print(f"netparity check: --data-parallel needs N >= 1, got {workers}", file=sys.stderr)
        return 2
    backends = args.backend or dp_backends()
    without = [b for b in backends if not backend_spec(b).data_parallel]
    if without:
        print(f"netparity check: {', '.join(without)} ha{'s' if len(without) == 1 else 've'} no data-parallel "
              f"modes (backends with some: {', '.join(dp_backends())})", file=sys.stderr)
        return 2
    modes = None
    if args.path:
        modes = [m for b in backends for m in backend_spec(b).data_parallel if m.partition(":")[0] in args.path]
    try:
        cases = select_dp_cases(workers, backends, modes, args.dtype, args.hidden, args.output, args.arch,
                                args.optimizer, args.batch, args.steps, args.device)
        for c in cases:
            c.shard_sizes()   # ValueError now, for a batch too small for N workers
    except (ValueError, KeyError) as e:
        print(f"netparity check: {e}", file=sys.stderr)
        return 2
    print(f"launching {workers} worker(s) per engine for {len(cases)} case(s) ...", file=sys.stderr)
    outcomes = run_dp_cases(cases)
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    print(render(outcomes, colour))
    text, ok = dp_summary(outcomes)
    print(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        report = to_json(outcomes)
        report["outcomes"] = {r.case.id: outcome(r) for r in outcomes}
        report["ok"] = ok
        fileio.write_json(args.json, report)
        print(f"results written to {args.json}")
    if not any(r.ran for r in outcomes):
        return 2
    return 0 if ok else 1


def environment():
    """{backend: what runs its data-parallel modes}, for the environment fingerprint."""
    out = {}
    for b in dp_backends():
        if import_error(b):
            out[b] = f"unavailable: {import_error(b)}"
            continue
        try:
            out[b] = launcher(b).engine()
        except Exception as e:  # an engine that cannot describe itself is still listed
            out[b] = f"unknown ({type(e).__name__}: {e})"
    return out


__all__ = ["DPCase", "DP_BATCH_SIZES", "BUGS", "shard_offsets", "per_example_stages", "select_dp_cases",
           "dp_expected", "shard_expected", "compare_ranks", "run_dp_cases", "DPResult", "write_job", "read_results", "convention_of", "outcome",
           "convention_line", "dp_summary", "run_check", "environment"]
