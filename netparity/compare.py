"""The one comparison helper every conformance assertion goes through.

For each stage it checks structure (present, shape, dtype) before values, then measures
max abs error, max relative error, ULP distance (in the compared dtype) and the ratio of
the error to its bound from ``netparity.tolerance`` (elementwise, worst element). A
stage passes when ratio <= 1.

ULPs and relative errors are reported only where they mean something: at elements whose
reference value is a normal number larger than its own error bound (so known to at least
its leading bit). Elsewhere (values near zero, formed by cancellation at the stage's scale,
e.g. 1e-30 next to 1) an error of one ulp of the stage's magnitude would read as 1e28 ulp:
there the error is reported relative to the stage's magnitude (max |reference|) instead,
and not in ULPs. The pass criterion, error <= bound, is the same everywhere.

A stage whose bound is ``tolerance.Unbounded`` (the literal cost where the dtype's formula
itself can overflow) is a named outcome, not a ratio: a non-finite value there is the
formula's, reported as such; a non-finite reference value must still be matched exactly.

On failure the message names the context (backend, path, device, dtype, configuration,
step) and the first diverging stage in forward-then-backward order, with its neighbours,
so the stage where the bug enters is named, not only the stages it contaminated.
"""
from dataclasses import dataclass, asdict
import math

import numpy as np

from netparity.tolerance import Unbounded


@dataclass
class StageResult:
    stage: str
    ok: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    max_ulp: float = 0.0
    bound: float = 0.0       # the bound at the worst element (already times `factor`)
    ratio: float = 0.0       # worst |error| / bound; pass when <= 1
    note: str = ""

    def as_dict(self):
        return asdict(self)

    @property
    def named(self):
        """A named outcome (no numeric bound applied): the note says what happened."""
        return bool(self.note) and not math.isfinite(self.bound)

    def line(self):
        if self.note and (self.named or not math.isfinite(self.ratio)):
            return f"{self.stage:>10}: {self.note}"
        ulp = "- ulp" if math.isnan(self.max_ulp) else f"{self.max_ulp:.3g} ulp"
        return (f"{self.stage:>10}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
                f"{ulp}, {self.ratio:.3g} x bound {self.bound:.3g}"
                + (f" ({self.note})" if self.note else ""))


NO_FINITE_BOUND = ("no finite a-priori bound (the rounding model's bound overflowed): "
                   "a comparison against it could not fail, so it is not made")


def non_finite_bounds(bounds, order):
    """The stages of ``order`` whose bound (netparity.tolerance) is not finite somewhere
    (an Unbounded stage is a named outcome, not counted)."""
    out = []
    for k in order:
        b = bounds.get(k)
        if b is None or isinstance(b, Unbounded):
            continue
        if not np.all(np.isfinite(np.asarray(b, dtype=np.float64))):
            out.append(k)
    return out


def _dtype_name(x):
    return np.asarray(x).dtype.name


def compare_stage(stage, ref, got, bound, dtype, factor=2.0):
    """Compare one stage. ``ref`` is the reference value (same dtype, or the float64
    oracle), ``bound`` the elementwise bound E for |x - exact|; the pass criterion is
    |got - ref| <= factor * E (factor 2 against a same-dtype reference, 1 against the oracle).
    ``dtype`` is the dtype ``got`` must have (None: don't check)."""
    if got is None:
        return StageResult(stage, False, ratio=math.inf, note="missing from the backend's output")
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        ok = int(got) == int(ref)
        return StageResult(stage, ok, max_abs=abs(int(got) - int(ref)), ratio=0.0 if ok else math.inf,
                           note="" if ok else f"counter {int(got)} != {int(ref)}")
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        return StageResult(stage, False, ratio=math.inf, note=f"shape {got.shape} != reference {ref.shape}")
    if dtype is not None and got.dtype.name != dtype:
        return StageResult(stage, False, ratio=math.inf, note=f"dtype {got.dtype.name} != expected {dtype}")
    r, g = ref.astype(np.float64), got.astype(np.float64)
    finite = np.isfinite(r)
    if isinstance(bound, Unbounded):
        return _unbounded(stage, r, g, finite, bound)
    E = np.broadcast_to(np.asarray(bound, dtype=np.float64) * factor, r.shape)
    if r.size == 0:
        return StageResult(stage, True)
    if not np.all(np.isfinite(E[finite])):
        # an infinite bound would pass any value, a nan one none: neither is a comparison
        return StageResult(stage, False, ratio=math.inf, bound=math.inf,
                           note=NO_FINITE_BOUND)
    # non-finite reference values (the literal cost at saturation) must be matched exactly
    all_finite = bool(finite.all())
    if not all_finite:
        same_nonfinite = np.where(finite, True, (np.isnan(r) & np.isnan(g)) | (r == g))
        if not np.all(same_nonfinite):
            return _nonfinite_mismatch(stage, r, g, same_nonfinite)
    err = np.asarray(np.abs(g - r))  # a 0-d array, not a scalar, for the cost
    if not all_finite:
        err[~finite] = 0.0
    err[np.isnan(err)] = np.inf  # backend nan where the reference is finite
    nonzero = err > 0
    ratio = np.divide(err, E, out=np.zeros_like(err), where=nonzero)
    max_rel, max_ulp = _rel_and_ulp(r, err, nonzero, finite, E / factor, dtype or got.dtype.name)
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    max_ratio = float(ratio[worst])
    return StageResult(stage, bool(max_ratio <= 1.0), max_abs=float(err.max()), max_rel=max_rel,
                       max_ulp=max_ulp, bound=float(E[worst]), ratio=max_ratio)


def _nonfinite_mismatch(stage, r, g, same):
    return StageResult(stage, False, ratio=math.inf,
                       note=f"non-finite mismatch: reference {r[~same].ravel()[:3]}, "
                            f"backend {g[~same].ravel()[:3]}")


def _rel_and_ulp(r, err, nonzero, finite, E, dtype):
    """(max relative error, max ULP distance): relative to |reference| and in ULPs of the
    dtype where the reference is a normal number above its own bound E; elsewhere relative
    to the stage's magnitude and no ULPs (nan when no element qualifies)."""
    a = np.abs(r) if finite.all() else np.where(finite, np.abs(r), 0.0)
    scale = float(a.max())
    if not np.issubdtype(np.dtype(dtype), np.inexact):  # bool / integer stages: no ulp
        rel = np.divide(err, np.where(a > 0, a, max(scale, 1.0)), out=np.zeros_like(err), where=nonzero)
        return float(rel.max()), math.nan
    known = (a >= np.finfo(dtype).tiny) & (a > E)
    rel = np.divide(err, np.where(known, a, scale), out=np.zeros_like(err), where=nonzero)
    if not known.any():
        return float(rel.max()), math.nan
    # one ulp of a normal x in the dtype is 2^(e - p) with x = f 2^e, f in [0.5, 1)
    _, e = np.frexp(a)
    ulp = np.ldexp(np.where(known, err, 0.0), np.finfo(dtype).nmant + 1 - e)
    return float(rel.max()), float(ulp.max())


def _unbounded(stage, r, g, finite, bound):
    """The named outcome of a stage the rounding model cannot bound (tolerance.Unbounded)."""
    same_nonfinite = np.where(finite, True, (np.isnan(r) & np.isnan(g)) | (r == g))
    if not np.all(same_nonfinite):  # the reference's own overflow must be reproduced
        return _nonfinite_mismatch(stage, r, g, same_nonfinite)
    overflowed = not np.all(np.isfinite(g))
    both = finite & np.isfinite(g)
    err = np.where(both, np.abs(g - r), 0.0)
    return StageResult(stage, True, max_abs=float(err.max()) if err.size else 0.0,
                       max_rel=math.nan, max_ulp=math.nan, bound=math.inf, ratio=0.0,
                       note=bound.overflowed if overflowed else bound.finite)


def compare_stages(ref, got, bounds, order, dtype, factor=2.0):
    """compare_stage for every stage in ``order`` that the reference has."""
    return [compare_stage(s, ref[s], got.get(s), bounds.get(s, 0.0), None if s == "t" else dtype, factor)
            for s in order if s in ref]


def context_id(ctx):
    return "-".join(str(v) for v in ctx.values())


def failure_message(results, ctx, against="the reference in the same dtype", neighbours=2):
    bad = [i for i, r in enumerate(results) if not r.ok]
    if not bad:
        return ""
    i = bad[0]
    lines = [f"{context_id(ctx)}: first diverging stage {results[i].stage!r} "
             f"(forward-then-backward order; compared with {against})"]
    lo, hi = max(0, i - neighbours), min(len(results), i + neighbours + 1)
    for j in range(lo, hi):
        mark = ">>" if j == i else ("!!" if not results[j].ok else "  ")
        lines.append(f"  {mark} {results[j].line()}")
    if len(bad) > 1:
        lines.append(f"  {len(bad)} stages out of bound in all: {', '.join(results[k].stage for k in bad)}")
    return "\n".join(lines)


class ConformanceError(AssertionError):
    pass


def assert_conforms(results, ctx, against="the reference in the same dtype"):
    msg = failure_message(results, ctx, against)
    if msg:
        raise ConformanceError(msg)
