"""`netparity verify FILE`: your own PyTorch or flax/optax model, checked stage by stage
against the reference (netparity/verify.py; the file's contract: docs/verify.md).

Prints the per-stage table of the first diverging step (or of the last step when all
agree), the first diverging stage and any known convention difference that explains
it. Exit code 0 when every captured stage of every step is within bound, 1 when one is
not, 2 when the file or an option cannot be used.
"""
import argparse
import os
import sys

import reference as R


def add_arguments(parser):
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("file", help="a Python file defining FRAMEWORK, make_model, make_optimizer, "
                                     "make_loss (see docs/verify.md)")
    parser.add_argument("--steps", type=int, default=None,
                        help="updates to check, one by one (default: the file's STEPS, else 2)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default=None,
                        help="dtype (default: the file's DTYPE, else float64)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="mini-batch size, batches in the reference's order (default: the file's "
                             "BATCH_SIZE, else full batch)")
    parser.add_argument("--optimizer", choices=R.OPTIMIZERS, default=None,
                        help="the reference optimiser to compare with (default: the file's "
                             "REFERENCE_OPTIMIZER, else inferred from yours where possible)")
    parser.add_argument("--lr", type=float, default=None, help="its learning rate (with --optimizer)")
    parser.add_argument("--beta", type=float, default=None, help="its momentum beta (with --optimizer)")
    parser.add_argument("--momentum-form", choices=("ema", "heavy_ball"), default=None,
                        help="its momentum form (with --optimizer momentum)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the result as JSON")
    parser.add_argument("--no-color", action="store_true", help="no ANSI colours")


def _optimizer(args):
    if args.optimizer is None:
        if any(v is not None for v in (args.lr, args.beta, args.momentum_form)):
            raise ValueError("--lr, --beta and --momentum-form need --optimizer")
        return None
    fields = {"name": args.optimizer}
    for k, v in (("learning_rate", args.lr), ("beta", args.beta), ("momentum_form", args.momentum_form)):
        if v is not None:
            fields[k] = v
    return fields


def to_json(result):
    from netparity.cmd_check import _finite
    first = result.first_divergence()
    return {"file": result.name, "framework": result.framework, "ok": result.ok,
            "config": {k: (repr(v) if k == "optimizer" else v) for k, v in result.config.items()},
            "first_divergence": None if first is None else
            {"step": first[0], "against": first[1], "stage": first[2].stage},
            "hints": result.hints,
            "steps": [{"step": c.step, "ok": c.result.ok, "not_captured": c.missing,
                       "stages": [{"stage": r.stage, "against": a, "ok": r.ok, "max_abs": _finite(r.max_abs),
                                   "max_ulp": _finite(r.max_ulp), "bound": _finite(r.bound),
                                   "ratio": _finite(r.ratio), "note": r.note}
                                  for a, r in c.result.rows()]} for c in result.checks]}


def run(args):
    from netparity.cli_checks import check_output_file, check_positive
    from netparity.cmd_check import render
    from netparity.verify import VerifyInputError, verify
    # arguments and the --json path before any work (exit 2)
    check_positive("--steps", [args.steps] if args.steps is not None else [])
    check_positive("--batch-size", [args.batch_size] if args.batch_size is not None else [])
    if args.json is not None:
        check_output_file("--json", args.json)
    try:
        opt = _optimizer(args)
        result = verify(args.file, steps=args.steps, dtype=args.dtype, batch_size=args.batch_size,
                        optimizer=opt)
    except (VerifyInputError, ValueError) as e:
        print(f"netparity verify: {e}", file=sys.stderr)
        return 2
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    cfg = result.config
    batch = "full batch" if cfg["batch_size"] is None else f"batches of {cfg['batch_size']}"
    print(f"{result.name} ({result.framework}): {cfg['hidden']}/{cfg['output']} "
          f"{'x'.join(map(str, cfg['layer_dims']))} on the {cfg['data']} data, {cfg['dtype']}, "
          f"{batch}, compared with reference {cfg['optimizer']}")
    last = result.checks[-1]
    print(render([last.result], colour))
    if last.missing:
        print(f"not captured from this model (not compared): {', '.join(last.missing)}")
    first = result.first_divergence()
    if first is None:
        print(f"OK: all {len(result.checks)} step(s) agree with the reference within bound")
    else:
        step, against, r = first
        print(f"FAIL: first diverging stage {r.stage!r} at step {step} (against "
              f"{'the reference in the same dtype' if against == 'reference' else 'the float64 oracle'})")
        print(f"  {r.line().strip()}")
        for h in result.hints:
            print(f"  hint: {h}")
    if args.json:
        from netparity import fileio
        fileio.write_json(args.json, to_json(result))   # atomic: never a truncated file
        print(f"results written to {args.json}")
    return 0 if result.ok else 1
