"""The one case runner: a conformance case in, a structured result out.

The tests (conformance matrix, properties, CLI tests), ``netparity check``, ``netparity
report`` and ``netparity verify`` all go through here, so "set up a case, run it, compare"
exists once:

    result = run_case(Case("torch", "idiomatic", dtype="float32", optimizer="adam"))
    result.ok, result.first_divergence(), result.worst_per_stage()
    result.raise_if_failed()            # ConformanceError naming the first diverging stage

Every stage is compared by ``netparity.compare.compare_stages`` twice where it matters:

    "reference"  against the reference in the same dtype:   |x_b - x_r| <= 2E
    "oracle"     against the float64 reference (not float64 cases): |x_b - x64| <= E

with E the a-priori bound of netparity.tolerance. A case that cannot run here (its
framework does not import, no such device, no compiler) is a result with ``skipped`` set
to the reason, never a silent omission.
"""
from dataclasses import dataclass, field
import itertools
import math
import sys

from netparity.backends import backend_spec, get_backend, import_error, mirrors, PATHS
from netparity.compare import ConformanceError, compare_stages, failure_message, non_finite_bounds
from netparity.stagenames import stages_for_path

# against -> (how a failure message says it, factor on the bound E)
AGAINST = {
    "reference": ("the reference in the same dtype", 2.0),
    "oracle": ("the float64 oracle (bound E, not 2E)", 1.0),
}
DTYPES = ("float64", "float32")
DEFAULT_PATHS = ("manual", "autodiff")


@dataclass
class CaseResult:
    """The outcome of one case: per comparison ("reference", "oracle"), the StageResults
    in stage order; or ``skipped`` with the reason it could not run here."""
    case: object
    comparisons: dict = field(default_factory=dict)
    skipped: str | None = None

    @property
    def ran(self):
        return self.skipped is None

    @property
    def ok(self):
        return self.ran and all(r.ok for rs in self.comparisons.values() for r in rs)

    def rows(self):
        """(against, StageResult) for every comparison made."""
        return [(a, r) for a, rs in self.comparisons.items() for r in rs]

    def first_divergence(self):
        """(against, StageResult) of the first stage out of bound, in stage order, or None."""
        for against, rs in self.comparisons.items():
            for r in rs:
                if not r.ok:
                    return against, r
        return None

    def worst_per_stage(self):
        """stage -> the worse of its comparisons (a failing one first, then the larger ratio)."""
        out = {}
        for _, r in self.rows():
            o = out.get(r.stage)
            if o is None or (not r.ok and o.ok) or (r.ok == o.ok and r.ratio > o.ratio):
                out[r.stage] = r
        return out

    def failure_message(self):
        return "\n".join(filter(None, (failure_message(rs, self.case.context(), AGAINST[a][0])
                                       for a, rs in self.comparisons.items())))

    def raise_if_failed(self):
        msg = self.failure_message()
        if msg:
            raise ConformanceError(msg)


def skip_reason(case):
    """Why ``case`` cannot run on this machine, or None."""
    reason = import_error(case.backend)
    if reason:
        return f"backend {case.backend!r} does not import here: {reason}"
    spec = backend_spec(case.backend)
    if case.path not in spec.paths:
        return f"backend {case.backend!r} has no {case.path!r} path (it has {', '.join(spec.paths)})"
    backend = get_backend(case.backend)
    if case.device not in backend.devices():
        return spec.missing_device_reason(case.device)
    if getattr(case, "resync", False) and case.path == "idiomatic":
        return (f"the idiomatic path runs its own loop from a fresh optimiser (run_idiomatic takes "
                f"no optimiser state), so it cannot start an update from the reference's state: "
                f"a resync case runs on the {', '.join(p for p in spec.paths if p != 'idiomatic')} paths")
    if case.path == "compiled":
        ok, why = backend.compile_status()
        if not ok:
            return f"{case.backend} compiler unavailable here: {why}"
    if getattr(case, "remedy", "none") != "none":
        # docs/remedies.md's interface: a backend (or its idiomatic path) that does not have
        # it yet is a skip naming what is missing, not a crash
        need = "run_idiomatic_remedies" if case.path == "idiomatic" else "remedy_step"
        if not callable(getattr(backend, need, None)):
            return (f"backend {case.backend!r} has no {need} (the remedies' interface, "
                    f"docs/remedies.md): remedies {case.remedy!r} not run on its {case.path} path")
    return None


def compare_case(case, got, exp):
    """The case's stages ``got`` (NumPy, by stage name) against ``exp`` (stages.Expected)."""
    order = stages_for_path(exp.order, case.path, case.optimizer)
    comparisons = {"reference": compare_stages(exp.ref, got, exp.bounds, order, case.dtype,
                                                AGAINST["reference"][1])}
    if case.dtype != "float64":
        comparisons["oracle"] = compare_stages(exp.oracle, got, exp.bounds, order, case.dtype,
                                               AGAINST["oracle"][1])
    return CaseResult(case, comparisons)


def run_case(case):
    """Run ``case`` on its backend and compare every stage with the reference."""
    from netparity.numerics import precision_mode
    from netparity.stages import expected, run_backend
    reason = skip_reason(case)
    if reason:
        return CaseResult(case, skipped=reason)
    exp = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
                   case.steps, case.tf32, getattr(case, "size", "toy"), getattr(case, "remedy", "none"),
                   getattr(case, "resync", False))
    unbounded = non_finite_bounds(exp.bounds, stages_for_path(exp.order, case.path, case.optimizer))
    if unbounded:
        # the a-priori bounds compound through batch-normalised layers until they overflow
        # (docs/tolerances.md, "Remedies"): such a case could not fail, so it is not run
        return CaseResult(case, skipped=(
            f"no finite a-priori bound for {len(unbounded)} stages (first {unbounded[0]}): the "
            f"rounding model's bound overflows here (docs/tolerances.md), so the case could not fail"
            + ("" if getattr(case, "resync", False) or case.steps == 1 else
               "; its resync twin checks the last update from the reference's own state")))
    from reference.remedies import ConventionUnsupported
    try:
        with precision_mode(tf32=case.tf32):
            got = run_backend(case)
    except ConventionUnsupported as e:
        # a framework's own layers cannot express the case's convention (docs/remedies.md)
        return CaseResult(case, skipped=f"{case.backend} {case.path}: {e}")
    return compare_case(case, got, exp)


def run_cases(cases, progress=True):
    """[CaseResult] for every case (in the order given), with a progress bar on stderr.
    The cases run grouped by configuration, so each configuration's reference, oracle and
    bounds are computed once (a medium one's take seconds and ~200 MB: few are cached)."""
    from tqdm import tqdm
    order = sorted(range(len(cases)), key=lambda i: config_key(cases[i]))
    results = [None] * len(cases)
    for i in tqdm(order, desc="check", unit="case", file=sys.stderr, disable=not progress,
                  leave=False):
        results[i] = run_case(cases[i])
    return results


def select_cases(backends=None, paths=None, devices=None, dtypes=None, hidden=None, output=None,
                 arch=None, optimizer=None, batch=None, steps=None, sizes=None):
    """The product of the given axes (None: the default of that axis: the mirrors, manual
    and autodiff, cpu, float64 and float32, tanh/sigmoid, the size's first architecture
    (toy: the article's 2-4-1), gd, full batch, one step, the toy size). A path a backend
    does not have, or an architecture a size does not have, is left out, not skipped."""
    from netparity.stages import Case, SIZES
    paths, sizes = paths or DEFAULT_PATHS, sizes or ["toy"]
    for p in paths:
        if p not in PATHS:
            raise ValueError(f"unknown path {p!r}; expected one of {', '.join(PATHS)}")
    for s in sizes:
        if s not in SIZES:
            raise ValueError(f"unknown size {s!r}; expected one of {', '.join(SIZES)}")
    out = []
    for size in sizes:
        archs = SIZES[size].archs
        axes = [backends or mirrors(), paths, devices or ["cpu"], dtypes or DTYPES,
                hidden or ["tanh"], output or ["sigmoid"], arch or [next(iter(archs))],
                optimizer or ["gd"], batch or ["full"], steps or [1]]
        out += [Case(*combo, size=size) for combo in itertools.product(*axes)
                if combo[1] in backend_spec(combo[0]).paths and combo[6] in archs]
    return out


# ------------------------------------------------------------------ presenting results

# How `check`'s cells and the report's heat map judge a ratio error / bound: one scale.
# (verdict, upper limit of the ratio, colour): below 0.1 well inside the bound, up to 1
# still a pass (closer to the bound: rounding of a cancelling sum, a long chain), above 1
# a failure (compare.compare_stage: pass when ratio <= 1).
VERDICTS = (("pass", 0.1, "#1a9850"), ("near the bound", 1.0, "#fee08b"), ("fail", math.inf, "#d73027"))


def verdict(ratio):
    """"pass" (ratio < 0.1), "near the bound" (0.1 <= ratio <= 1, still a pass) or "fail"."""
    if not math.isfinite(ratio) or ratio > 1.0:
        return "fail"
    return "pass" if ratio < VERDICTS[0][1] else "near the bound"


def config_key(case):
    """What the columns of one table share: everything but backend, path and device."""
    return (case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch, case.steps,
            case.tf32, getattr(case, "size", "toy"), getattr(case, "remedy", "none"),
            getattr(case, "resync", False))


def config_title(case):
    if getattr(case, "title", None):  # a case that names itself (netparity.distributed.DPCase)
        return case.title
    size = getattr(case, "size", "toy")
    dims = ("" if size == "toy" else f"{size} ") + "x".join(map(str, case.layer_dims()))
    remedy = getattr(case, "remedy", "none")
    return (f"{case.dtype} {case.hidden}/{case.output} {dims} {case.optimizer} {case.batch} "
            f"{case.steps} step{'s' if case.steps != 1 else ''}"
            + ("" if remedy == "none" else f" remedies {remedy}")
            + (f", update {case.steps} from the reference's state" if getattr(case, "resync", False) else ""))


def column_name(case):
    if getattr(case, "column", None):  # a case that names itself (netparity.distributed.DPCase)
        return case.column
    return f"{case.backend}/{case.path}" + ("" if case.device == "cpu" else f"@{case.device}")


def margins(results):
    """stage -> (worst error/bound ratio over every case that ran, that case's id): how far
    the measured errors stay inside their bounds (1 / ratio is the margin). Named outcomes
    (no numeric bound) are left out."""
    out = {}
    for res in results:
        if not res.ran:
            continue
        for _, r in res.rows():
            if not r.named and (r.stage not in out or r.ratio > out[r.stage][0]):
                out[r.stage] = (r.ratio, res.case.id)
    return out


def summary(results):
    """(one paragraph, all passed?) over a list of CaseResults."""
    ran = [r for r in results if r.ran]
    rows = [row for r in ran for _, row in r.rows()]
    worst = max((row.ratio for row in rows), default=0.0)
    text = (f"{len(ran)} case(s) checked, {len(results) - len(ran)} skipped, "
            f"{len(rows)} stage comparisons, worst error/bound {worst:.3g}")
    failed = [r for r in ran if not r.ok]
    if failed:
        n_bad = sum(1 for r in failed for _, row in r.rows() if not row.ok)
        text += f"; {n_bad} stage(s) out of bound in {len(failed)} case(s):\n" + "\n".join(
            f"  {r.case.id}: first diverging stage {r.first_divergence()[1].stage!r}" for r in failed)
    else:
        text += "; all within bound"
    return text, not failed
