"""The one comparison helper every conformance assertion goes through.

For each stage it checks structure (present, shape, dtype) before values, then measures
max abs error, max relative error, ULP distance (in the compared dtype) and the ratio of
the error to its bound from ``netparity.tolerance`` (elementwise, worst element). A
stage passes when ratio <= 1. On failure the message names the context (backend, path,
device, dtype, configuration, step) and the first diverging stage in forward-then-backward
order, with its neighbours, so the stage where the bug enters is named, not only the
stages it contaminated.
"""
from dataclasses import dataclass, asdict
import math

import numpy as np


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

    def line(self):
        if self.note and not math.isfinite(self.ratio):
            return f"{self.stage:>10}: {self.note}"
        return (f"{self.stage:>10}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
                f"{self.max_ulp:.3g} ulp, {self.ratio:.3g} x bound {self.bound:.3g}"
                + (f" ({self.note})" if self.note else ""))


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
    E = np.broadcast_to(np.asarray(bound, dtype=np.float64) * factor, r.shape)
    finite = np.isfinite(r)
    # non-finite reference values (the literal cost at saturation) must be matched exactly
    same_nonfinite = np.where(finite, True, (np.isnan(r) & np.isnan(g)) | (r == g))
    if not np.all(same_nonfinite):
        return StageResult(stage, False, ratio=math.inf,
                           note=f"non-finite mismatch: reference {r[~same_nonfinite].ravel()[:3]}, "
                                f"backend {g[~same_nonfinite].ravel()[:3]}")
    err = np.where(finite, np.abs(g - r), 0.0)
    err = np.where(np.isnan(err), np.inf, err)  # backend nan where the reference is finite
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / E)
        rel = np.where(err == 0, 0.0, err / np.abs(r))
        spacing = np.spacing(np.abs(r).astype(dtype or got.dtype.name)).astype(np.float64)
        ulp = np.where(err == 0, 0.0, err / spacing)
    if err.size == 0:
        return StageResult(stage, True)
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    max_ratio = float(ratio[worst])
    return StageResult(stage, bool(max_ratio <= 1.0), max_abs=float(err.max()), max_rel=float(rel.max()),
                       max_ulp=float(ulp.max()), bound=float(E[worst]), ratio=max_ratio)


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
