"""`netparity check`: run a slice of the conformance matrix and print, per configuration,
every stage's error against the reference as a table (rows: stages, columns:
backend/path).

It is a view of ``netparity.runner`` (the same runner the conformance tests use): every
stage compared with the reference in the same dtype (bound 2E) and, for float32, with the
float64 oracle (bound E). A cell shows the worse of the two comparisons (max abs error,
ULPs, error/bound ratio); a stage passes when ratio <= 1. Exit code 0 only when every
stage of every case passes; 2 when nothing could run.
"""
import math
import os
import sys

from netparity.backends import PATHS, REGISTRY, mirrors
from netparity.cli_checks import UsageError, add_remedy_arguments, remedies_of
from netparity.runner import DEFAULT_PATHS, DTYPES

GREEN, YELLOW, RED, BOLD, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[1m", "\033[0m"


def add_arguments(parser):
    import reference as R
    from netparity.stages import BATCH_SIZES, OPTIMIZER_CONFIGS, REMEDY_ARCHS, SIZES

    from netparity.cli import HelpFormatter
    parser.formatter_class = HelpFormatter
    parser.add_argument("--backend", action="append", choices=list(REGISTRY), default=None,
                        help="backend(s) to check (repeatable; default: the mirrors "
                             f"{', '.join(mirrors())}; numpy checks the reference against itself)")
    parser.add_argument("--path", action="append", choices=PATHS, default=None,
                        help=f"gradient path(s) (repeatable; default: {', '.join(DEFAULT_PATHS)}; "
                             "idiomatic = nn.Module + torch.optim / flax + optax)")
    parser.add_argument("--device", action="append", default=None,
                        help="device(s): cpu, cuda (torch), gpu (jax) (repeatable; default: cpu)")
    parser.add_argument("--dtype", action="append", choices=DTYPES, default=None,
                        help="dtype(s) (repeatable; default: float64, float32)")
    parser.add_argument("--hidden", action="append", choices=R.HIDDEN_ACTIVATIONS, default=None,
                        help="hidden activation(s) (repeatable; default: tanh)")
    parser.add_argument("--output", action="append", choices=R.OUTPUT_ACTIVATIONS, default=None,
                        help="output activation(s) (repeatable; default: sigmoid)")
    parser.add_argument("--size", action="append", choices=list(SIZES), default=None,
                        help="size(s) (repeatable; default: toy = the article's nets on 2-D data; "
                             "medium = 784-256-256-10/-1 on 8000 examples)")
    parser.add_argument("--arch", action="append", default=None,
                        choices=sorted({a for s in SIZES.values() for a in s.archs} | set(REMEDY_ARCHS)),
                        help="architecture(s) (repeatable; default: the size's first: the toy "
                             "shallow = the article's 2-4-1, the medium deep; with a remedy flag "
                             "deep (toy: 2-4-4-3-1); res (2-8-8-8-8-8-1) and proj (2-8-6-4-4-4-1) "
                             "only with a remedy flag)")
    parser.add_argument("--optimizer", action="append", choices=list(OPTIMIZER_CONFIGS), default=None,
                        help="optimiser(s) (repeatable; default: gd)")
    from netparity.distributed import DP_BATCH_SIZES
    parser.add_argument("--batch", action="append", default=None,
                        choices=list(BATCH_SIZES) + [b for b in DP_BATCH_SIZES if b not in BATCH_SIZES],
                        help="batch mode(s) (repeatable; default: full; with --data-parallel: full "
                             "and odd, 63 examples, unequal shards)")
    parser.add_argument("--steps", action="append", type=int, default=None,
                        help="number(s) of updates before the stages are recorded (default: 1)")
    parser.add_argument("--resync", action="store_true",
                        help="check only the last of the --steps updates, started from the "
                             "reference's own state before it (parameters, running estimates, "
                             "optimiser state): one update's bounds, which stay finite where the "
                             "bounds carried over several updates overflow (float32 batch norm); "
                             "not on the idiomatic path")
    parser.add_argument("--data-parallel", metavar="N", type=int, default=None,
                        help="split each batch over N workers on the engines (torch.distributed "
                             "gloo ranks, N JAX host devices) and compare every stage with the "
                             "single-process reference (netparity/distributed.py, docs/scale_out.md)")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results (and the environment fingerprint) as JSON")
    parser.add_argument("--no-color", action="store_true", help="no ANSI colours")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_remedy_arguments(parser, "every selected case (Case.remedy: the reference's and each "
                                 "path's remedy_step, bounds of netparity/tolerance_remedies.py)")


def selected_cases(args, remedy="none"):
    """The cases of the command line; with ``remedy`` (a REMEDY_CONFIGS name) every case
    runs it, on the selected architectures (default deep) including the remedies' own."""
    from netparity.runner import select_cases
    if remedy == "none":
        return select_cases(args.backend, args.path, args.device, args.dtype, args.hidden, args.output,
                            args.arch, args.optimizer, args.batch, args.steps, args.size)
    from dataclasses import replace
    from netparity.stages import archs_of
    base = select_cases(args.backend, args.path, args.device, args.dtype, args.hidden, args.output,
                        None, args.optimizer, args.batch, args.steps, args.size)
    return [replace(c, arch=a, remedy=remedy) for c in base for a in args.arch or ["deep"]
            if a in archs_of(c.size)]


def check_remedy_cases(args, cases, remedies):
    """Before any work: the remedies fit every selected network (a residual needs three
    hidden layers), batch norm has batches of at least 2, nothing is silently ignored."""
    from netparity.remedy_training import skip_problem
    from netparity.stages import BATCH_SIZES
    if args.data_parallel is not None:
        raise UsageError("--data-parallel does not run the remedies (its cases are the plain "
                         "network's); drop --data-parallel or the remedy flags")
    for c in cases:
        problem = skip_problem(c.layer_dims(), remedies)
        if problem:
            raise UsageError(f"--residual: {problem} (--arch {c.arch}; try --arch deep, res or proj)")
        if remedies.batch_norm and BATCH_SIZES[c.batch] == 1:
            raise UsageError("--batch-norm normalises over each batch: --batch sgd (batches of 1 "
                             "example, variance 0) has nothing to normalise; use full or mini")


def _check_archs(args):
    from netparity.stages import REMEDY_ARCHS
    bad = [a for a in args.arch or [] if a in REMEDY_ARCHS]
    if bad:
        raise UsageError(f"--arch {bad[0]} is one of the remedies' nets: it needs a remedy flag "
                         "(--batch-norm, --residual, --l2, --keep-prob)")


# ---------------------------------------------------------------------------- output

def colour_for(ratio):
    from netparity.runner import verdict  # the report's heat map uses the same scale
    return {"pass": GREEN, "near the bound": YELLOW, "fail": RED}[verdict(ratio)]


def cell_text(r):
    if r is None:
        return "-"
    if not math.isfinite(r.ratio):
        return "FAIL " + (r.note[:30] if r.note else "")
    if r.named:
        return "see note"
    ulp = "-" if math.isnan(r.max_ulp) else f"{r.max_ulp:.3g}"  # no ulps near zero
    return f"{r.max_abs:7.1e} {ulp:>8}u {r.ratio:7.2g}x"  # fixed fields: columns align


def table_width():
    """The terminal's width when printing to one, else 100 columns."""
    import shutil
    return max(60, shutil.get_terminal_size((100, 24)).columns) if sys.stdout.isatty() else 100


LEGEND = """cells: max abs error, max ULP distance (units in the last place: how many floats apart),
  ratio = error / bound. The bound E is an a-priori rounding-error bound per stage
  (docs/tolerances.md); a cell is the worse of 'vs the NumPy reference in the same dtype,
  bound 2E' and, for float32, 'vs the float64 oracle (the reference run in float64), bound E'.
  Pass when ratio <= 1: green < 0.1, yellow 0.1-1 (near the bound, still a pass), red > 1.
  Many ULPs with a small ratio is rounding (e.g. db, a sum that cancels), not a bug;
  `netparity report` works the numbers out."""


def render(outcomes, colour=False, width=None):
    """The tables (one per configuration) as text, at most ``width`` characters wide
    (default: table_width()): columns that do not fit continue in a block below, with
    the stage names repeated. A stage a path does not produce is "n/a", with the reason."""
    from netparity.runner import column_name, config_key, config_title
    from netparity.stagenames import PATH_OMITS
    width = width or table_width()
    groups = {}
    for res in outcomes:
        groups.setdefault(config_key(res.case), []).append(res)
    lines = []
    for _, members in groups.items():
        lines.append("")
        lines.append((BOLD if colour else "") + config_title(members[0].case) + (RESET if colour else ""))
        cols = [(column_name(r.case), r.worst_per_stage() if r.ran else None, r.skipped, r.case.path)
                for r in members]
        stages = []
        for _, res, _, _ in cols:
            for s in (res or {}):
                if s not in stages:
                    stages.append(s)
        cw = max([len(cell_text(r)) for _, res, _, _ in cols for r in (res or {}).values()]
                 + [len(n) for n, _, _, _ in cols] + [8])
        sw = max([len(s) for s in stages] + [len("stage")])
        fit = max(1, (width - sw) // (cw + 2))
        per_block = -(-len(cols) // -(-len(cols) // fit))  # as many blocks as needed, equal sizes
        omitted = {}
        for b in range(0, len(cols), per_block):
            block = cols[b:b + per_block]
            if b:
                lines.append("")
            lines.append(f"{'stage':>{sw}}  " + "  ".join(f"{n:>{cw}}" for n, _, _, _ in block))
            for s in stages:
                cells = []
                for _, res, skip, path in block:
                    if res is None:
                        text, col = "skipped", ""
                    elif s not in res:
                        text, col = "n/a", ""
                        omitted[path] = PATH_OMITS.get(path, "not produced by this path")
                    else:
                        r = res[s]
                        text, col = cell_text(r), colour_for(r.ratio)
                    cell = f"{text:>{cw}}"
                    cells.append(f"{col}{cell}{RESET}" if colour and col else cell)
                lines.append(f"{s:>{sw}}  " + "  ".join(cells))
        for name, res, skip, _ in cols:
            if res is None:
                lines.append(f"  {name}: skipped ({skip})")
        for note in dict.fromkeys(f"{r.stage}: {r.note}" for _, res, _, _ in cols
                                  for r in (res or {}).values() if r.named):
            lines.append(f"  note {note}")
        for path, why in omitted.items():
            lines.append(f"  n/a on the {path} path: {why}")
    lines.append("")
    lines.append(LEGEND)
    return "\n".join(lines)


def _finite(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def to_json(outcomes):
    from netparity.fingerprint import fingerprint
    rows = []
    for res in outcomes:
        case = res.case
        if not res.ran:
            rows.append({"case": case.id, "skipped": res.skipped})
            continue
        for against, r in res.rows():
            rows.append({"case": case.id, "backend": case.backend, "path": case.path,
                         "device": case.device, "dtype": case.dtype, "stage": r.stage,
                         "against": against,
                         "max_abs": _finite(r.max_abs), "max_rel": _finite(r.max_rel),
                         "max_ulp": _finite(r.max_ulp), "bound": _finite(r.bound),
                         "ratio": _finite(r.ratio), "ok": r.ok, "note": r.note})
    return {"fingerprint": fingerprint(), "results": rows,
            "ok": all(r.get("ok", True) for r in rows)}


def case_work(case):
    """FLOPs of one step of a case (the thread policy's measure of its size)."""
    from netparity.numerics import step_work
    from netparity.stages import dataset
    return step_work(case.layer_dims(), dataset(case.data)[0].shape[1])


def run(args):
    from netparity.cli_checks import check_check_args
    check_check_args(args)  # arguments and the --json path, before any work (exit 2)
    remedies = remedies_of(args)
    if remedies is None:
        _check_archs(args)
    elif args.data_parallel is not None:
        check_remedy_cases(args, [], remedies)
    if args.resync and args.data_parallel is not None:
        raise UsageError("--resync does not apply to --data-parallel (whose cases run every update "
                         "from the initial weights); drop one of them")
    if args.resync and any(n < 2 for n in args.steps or [1]):
        raise UsageError("--resync checks the last of several updates from the reference's state "
                         "before it: give --steps N with N >= 2")
    if args.data_parallel is not None:
        from netparity.distributed import run_check
        return run_check(args)
    from netparity.stages import BATCH_SIZES
    if any(b not in BATCH_SIZES for b in args.batch or []):
        raise UsageError("--batch odd (unequal shards) needs --data-parallel N")
    if remedies is None:
        cases = selected_cases(args)
    else:
        from netparity.remedy_training import remedy_config_name
        cases = selected_cases(args, remedy_config_name(remedies))
        check_remedy_cases(args, cases, remedies)
    if args.resync:
        from dataclasses import replace
        cases = [replace(c, resync=True) for c in cases]
    if not cases:
        print("netparity check: no case selected", file=sys.stderr)
        return 2
    from netparity.numerics import thread_policy
    from netparity.runner import margins, run_cases, summary
    with thread_policy(max(map(case_work, cases))):  # small problems: one thread
        outcomes = run_cases(cases, progress=not args.no_progress)
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    print(render(outcomes, colour))
    print("margin: worst error/bound per stage over every case (pass <= 1)")
    for stage, (ratio, case_id) in margins(outcomes).items():
        print(f"  {stage:>12}  {ratio:.3g}  ({case_id})")
    text, ok = summary(outcomes)
    print(text)
    if args.json:
        from netparity import fileio
        fileio.write_json(args.json, to_json(outcomes))  # atomic: never a truncated file
        print(f"results written to {args.json}")
    if not any(res.ran for res in outcomes):
        return 2  # nothing ran: not a pass
    return 0 if ok else 1
