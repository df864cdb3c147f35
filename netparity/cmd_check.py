"""`netparity check`: run a slice of the conformance matrix and print, per configuration,
every stage's error against the reference as a table (rows: stages, columns:
backend/path).

It uses exactly the machinery of tests/test_conformance.py: ``netparity.stages``
(Case, expected, run_backend, order_for_path) and ``netparity.compare.compare_stages``
with the same bounds -- factor 2 against the reference in the same dtype and, for
float32, factor 1 against the float64 oracle. A cell shows the worse of the two
comparisons (max abs error, ULPs, error/bound ratio); a stage passes when ratio <= 1.
Exit code 0 only when every stage of every case passes.
"""
import argparse
import itertools
import math
import os
import sys

from netparity.backends import MIRRORS, REGISTRY

PATHS = ("manual", "autodiff", "compiled")
DTYPES = ("float64", "float32")

GREEN, YELLOW, RED, BOLD, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[1m", "\033[0m"


def add_arguments(parser):
    import reference as R
    from netparity.stages import ARCHS, BATCH_SIZES, OPTIMIZER_CONFIGS

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--backend", action="append", choices=list(REGISTRY), default=None,
                        help="backend(s) to check (repeatable; default: the mirrors "
                             f"{', '.join(MIRRORS)}; numpy checks the reference against itself)")
    parser.add_argument("--path", action="append", choices=PATHS, default=None,
                        help="gradient path(s) (repeatable; default: manual, autodiff)")
    parser.add_argument("--device", action="append", default=None,
                        help="device(s): cpu, cuda (torch), gpu (jax) (repeatable; default: cpu)")
    parser.add_argument("--dtype", action="append", choices=DTYPES, default=None,
                        help="dtype(s) (repeatable; default: float64, float32)")
    parser.add_argument("--hidden", action="append", choices=R.HIDDEN_ACTIVATIONS, default=None,
                        help="hidden activation(s) (repeatable; default: tanh)")
    parser.add_argument("--output", action="append", choices=R.OUTPUT_ACTIVATIONS, default=None,
                        help="output activation(s) (repeatable; default: sigmoid)")
    parser.add_argument("--arch", action="append", choices=list(ARCHS), default=None,
                        help="architecture(s) (repeatable; default: shallow = the article's 2-4-1)")
    parser.add_argument("--optimizer", action="append", choices=list(OPTIMIZER_CONFIGS), default=None,
                        help="optimiser(s) (repeatable; default: gd)")
    parser.add_argument("--batch", action="append", choices=list(BATCH_SIZES), default=None,
                        help="batch mode(s) (repeatable; default: full)")
    parser.add_argument("--steps", action="append", type=int, default=None,
                        help="number(s) of updates before the stages are recorded (default: 1)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results (and the environment fingerprint) as JSON")
    parser.add_argument("--no-color", action="store_true", help="no ANSI colours")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------------- running

class Config(tuple):
    """What the columns of one table share: everything but backend, path and device."""


def selected_cases(args):
    from netparity.stages import Case
    axes = [args.backend or list(MIRRORS), args.path or ["manual", "autodiff"],
            args.device or ["cpu"], args.dtype or list(DTYPES), args.hidden or ["tanh"],
            args.output or ["sigmoid"], args.arch or ["shallow"], args.optimizer or ["gd"],
            args.batch or ["full"], args.steps or [1]]
    cases = []
    for b, p, d, dt, h, o, a, opt, bt, st in itertools.product(*axes):
        if b == "numpy" and p != "manual":
            continue  # the reference has one gradient path
        cases.append(Case(b, p, d, dt, h, o, a, opt, bt, st))
    return cases


def check_case(case):
    """(results, skip reason): the case's StageResults against the reference in the same
    dtype (factor 2) and, for float32, also against the float64 oracle (factor 1), each
    tagged with ``against`` ("reference" or "oracle")."""
    from netparity.backends import get_backend
    from netparity.compare import compare_stages
    from netparity.numerics import precision_mode
    from netparity.stages import expected, order_for_path, run_backend

    try:
        backend = get_backend(case.backend)
    except ImportError as e:
        return None, f"backend not importable: {e}"
    if case.device not in backend.devices():
        return None, f"no {case.device} device on this machine"
    if case.path == "compiled":
        ok, reason = backend.compile_status()
        if not ok:
            return None, f"compiler unavailable: {reason}"
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
                 case.steps, case.tf32)
    with precision_mode(tf32=case.tf32):
        got = run_backend(case)
    order = order_for_path(e.order, case.path)
    results = compare_stages(e.ref, got, e.bounds, order, case.dtype)
    for r in results:
        r.against = "reference"
    if case.dtype != "float64":
        for r in compare_stages(e.oracle, got, e.bounds, order, case.dtype, factor=1.0):
            r.against = "oracle"
            results.append(r)
    return results, None


def worst_per_stage(results):
    """stage -> the worse of its comparisons (failing first, then the larger ratio)."""
    out = {}
    for r in results:
        o = out.get(r.stage)
        if o is None or (not r.ok and o.ok) or (r.ok == o.ok and r.ratio > o.ratio):
            out[r.stage] = r
    return out


def run_cases(cases, progress=True):
    """[(case, results or None, skip reason or None)] for every case, with a tqdm bar."""
    from tqdm import tqdm
    out = []
    for case in tqdm(cases, desc="check", unit="case", file=sys.stderr, disable=not progress,
                     leave=False):
        results, skip = check_case(case)
        out.append((case, results, skip))
    return out


def config_key(case):
    return (case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch, case.steps)


def config_title(case):
    from netparity.stages import Case
    dims = "x".join(map(str, Case("numpy", arch=case.arch, output=case.output).layer_dims()))
    return (f"{case.dtype} {case.hidden}/{case.output} {dims} {case.optimizer} {case.batch} "
            f"{case.steps} step{'s' if case.steps != 1 else ''}")


def column_name(case):
    from netparity.stages import PATH_ALIASES
    path = PATH_ALIASES.get(case.path, {}).get(case.backend, case.path)
    return f"{case.backend}/{path}" + ("" if case.device == "cpu" else f"@{case.device}")


# ---------------------------------------------------------------------------- output

def colour_for(ratio):
    if not math.isfinite(ratio) or ratio >= 1:
        return RED
    return GREEN if ratio < 0.1 else YELLOW


def cell_text(r):
    if r is None:
        return "-"
    if not math.isfinite(r.ratio):
        return "FAIL " + (r.note[:30] if r.note else "")
    return f"{r.max_abs:.1e} {r.max_ulp:7.3g}u {r.ratio:.2g}x"


def render(outcomes, colour=False):
    """The tables (one per configuration) as text."""
    groups = {}
    for case, results, skip in outcomes:
        groups.setdefault(config_key(case), []).append((case, results, skip))
    lines = []
    for _, members in groups.items():
        lines.append("")
        lines.append((BOLD if colour else "") + config_title(members[0][0]) + (RESET if colour else ""))
        cols = [(column_name(c), worst_per_stage(res) if res is not None else None, skip)
                for c, res, skip in members]
        stages = []
        for _, res, _ in cols:
            for s in (res or {}):
                if s not in stages:
                    stages.append(s)
        width = max([len(cell_text(r)) for _, res, _ in cols for r in (res or {}).values()]
                    + [len(n) for n, _, _ in cols] + [8])
        lines.append(f"{'stage':>12}  " + "  ".join(f"{n:>{width}}" for n, _, _ in cols))
        for s in stages:
            cells = []
            for _, res, skip in cols:
                if res is None:
                    text, col = "skipped", ""
                else:
                    r = res.get(s)
                    text, col = cell_text(r), (colour_for(r.ratio) if r is not None else "")
                cell = f"{text:>{width}}"
                cells.append(f"{col}{cell}{RESET}" if colour and col else cell)
            lines.append(f"{s:>12}  " + "  ".join(cells))
        for name, res, skip in cols:
            if res is None:
                lines.append(f"  {name}: skipped ({skip})")
    lines.append("")
    lines.append("cells: max abs error, max ULP distance, error/bound ratio (pass <= 1; the worse of "
                 "'vs reference, same dtype, bound 2E' and, for float32, 'vs float64 oracle, bound E')")
    return "\n".join(lines)


def summary(outcomes):
    ran = [(c, res) for c, res, _ in outcomes if res is not None]
    bad = [(c, r) for c, res in ran for r in res if not r.ok]
    skipped = sum(1 for _, res, _ in outcomes if res is None)
    worst = max((r.ratio for _, res in ran for r in res), default=0.0)
    text = (f"{len(ran)} case(s) checked, {skipped} skipped, "
            f"{sum(len(res) for _, res in ran)} stage comparisons, worst error/bound {worst:.3g}")
    if bad:
        firsts = {}
        for c, r in bad:
            firsts.setdefault(c.id, r.stage)
        text += f"; {len(bad)} stage(s) out of bound in {len(firsts)} case(s):\n" + "\n".join(
            f"  {cid}: first diverging stage {s!r}" for cid, s in firsts.items())
    else:
        text += "; all within bound"
    return text, not bad


def _finite(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def to_json(outcomes):
    from netparity.fingerprint import fingerprint
    rows = []
    for case, results, skip in outcomes:
        if results is None:
            rows.append({"case": case.id, "skipped": skip})
            continue
        for r in results:
            rows.append({"case": case.id, "backend": case.backend, "path": case.path,
                         "device": case.device, "dtype": case.dtype, "stage": r.stage,
                         "against": getattr(r, "against", "reference"),
                         "max_abs": _finite(r.max_abs), "max_rel": _finite(r.max_rel),
                         "max_ulp": _finite(r.max_ulp), "bound": _finite(r.bound),
                         "ratio": _finite(r.ratio), "ok": r.ok, "note": r.note})
    return {"fingerprint": fingerprint(), "results": rows,
            "ok": all(r.get("ok", True) for r in rows)}


def run(args):
    from netparity.cli_checks import check_check_args
    check_check_args(args)  # arguments and the --json path, before any work (exit 2)
    cases = selected_cases(args)
    if not cases:
        print("netparity check: no case selected", file=sys.stderr)
        return 2
    try:
        import torch
        torch.set_num_threads(1)  # tiny matrices: more threads only add synchronisation
    except ImportError:
        pass
    outcomes = run_cases(cases, progress=not args.no_progress)
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    print(render(outcomes, colour))
    text, ok = summary(outcomes)
    print(text)
    if args.json:
        from netparity import fileio
        fileio.write_json(args.json, to_json(outcomes))  # atomic: never a truncated file
        print(f"results written to {args.json}")
    if all(res is None for _, res, _ in outcomes):
        return 2  # nothing ran: not a pass
    return 0 if ok else 1
