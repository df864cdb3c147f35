"""Pre-flight checks of the command line: every argument and output path is checked
before any work (training, checking, benchmarking) starts, so bad input costs
milliseconds and never a traceback.

A problem raises ``UsageError``; ``netparity.cli.main`` prints it as one line on stderr
(``netparity <command>: error: ...``) and exits with code 2 (docs/errors.md). Each
subcommand calls its ``check_<command>_args(args)`` first thing in ``run(args)``.

``args._explicit`` (set by ``cli.main``) is the set of options the user typed: an
option given together with one that makes it meaningless is refused rather than
silently ignored.
"""
import json
import os

from netparity import fileio

SEED_MAX = 2 ** 32 - 1       # NumPy's RandomState seeds
MAX_LAYER_WIDTH = 10_000     # units per hidden layer (train --layers)
MAX_PARAMETERS = 10_000_000  # weights and biases in total: 80 MB in float64, x4 with Adam


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def given(args, dest):
    """Whether the user typed the option stored in ``dest`` (not just its default)."""
    return dest in getattr(args, "_explicit", ())


def refuse_together(args, dest, other, why):
    """``--dest`` with ``--other`` would be ignored: say so instead."""
    if given(args, dest) and given(args, other):
        raise UsageError(f"{_flag(dest)} has no effect with {_flag(other)} ({why}); drop one of them")


def _flag(dest):
    return "--" + dest.replace("_", "-")


# ------------------------------------------------------------------ values

def seed_value(text):
    """argparse type: a RandomState seed, an integer in [0, 2**32 - 1]."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32 - 1], got {text}")
    return value


def _number(text):
    """float(text) for an argparse type, or its one-line error."""
    import argparse
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def keep_prob_value(text):
    """argparse type of --keep-prob: inverted dropout's keep probability, in (0, 1]."""
    import argparse
    import math
    value = _number(text)
    if not (math.isfinite(value) and 0 < value <= 1):
        raise argparse.ArgumentTypeError(f"must be a keep probability in (0, 1] (1: no dropout), "
                                         f"got {text}")
    return value


def l2_value(text):
    """argparse type of --l2: the L2 regularisation strength lambda, finite and >= 0."""
    import argparse
    import math
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite lambda >= 0, got {text}")
    return value


REMEDY_DESTS = ("batch_norm", "residual", "l2", "keep_prob")


def add_remedy_arguments(parser, what):
    """--batch-norm, --residual {before,after}, --l2 LAMBDA, --keep-prob P (docs/remedies.md):
    ``what`` says what they apply to, in the help."""
    g = parser.add_argument_group("remedies (docs/remedies.md)", f"applied to {what}; none given: "
                                  "the plain network")
    g.add_argument("--batch-norm", action="store_true",
                   help="batch-normalise every hidden layer (gamma, beta; no bias)")
    g.add_argument("--residual", choices=("before", "after"), default=None,
                   help="a skip from A[l-2] into hidden layers 3, 5, ... (needs >= 3 hidden layers), "
                        "added before the activation (the course's) or after it")
    g.add_argument("--l2", type=l2_value, default=None, metavar="LAMBDA",
                   help="L2 regularisation: + lambda/(2m) sum ||W||^2 in the cost")
    g.add_argument("--keep-prob", type=keep_prob_value, default=None, metavar="P",
                   help="inverted dropout on the hidden layers, keeping each unit with probability P")


def remedies_of(args):
    """The ``Remedies`` the remedy flags ask for, or None when none was given (then the
    command runs exactly as without them)."""
    if not any(getattr(args, d, None) not in (None, False) for d in REMEDY_DESTS):
        return None
    from netparity.remedy_training import remedies_from_flags
    return remedies_from_flags(args.batch_norm, args.residual, args.l2, args.keep_prob)


def check_remedies_fit(remedies, dims, where):
    """The remedies can build the network ``dims``: --residual needs a hidden layer 3."""
    from netparity.remedy_training import skip_problem
    problem = skip_problem(dims, remedies)
    if problem:
        raise UsageError(f"--residual: {problem}{where}")


def check_positive(option, values):
    for v in values if isinstance(values, (list, tuple)) else [values]:
        if v is not None and v <= 0:
            raise UsageError(f"{option} must be a positive integer, got {v}")


def check_layers(dims):
    """The network's layer sizes: no layer wider than MAX_LAYER_WIDTH and at most
    MAX_PARAMETERS in total (an absurd size fails here, not as a MemoryError later)."""
    wide = [n for n in dims[1:-1] if n > MAX_LAYER_WIDTH]
    if wide:
        raise UsageError(f"--layers: {wide[0]} units in one layer, more than the "
                         f"{MAX_LAYER_WIDTH} allowed")
    count = sum(n * (n_prev + 1) for n_prev, n in zip(dims[:-1], dims[1:]))
    if count > MAX_PARAMETERS:
        raise UsageError(f"--layers: {dims} has {count} parameters, more than the "
                         f"{MAX_PARAMETERS} allowed")


def check_device(option, backend, device):
    """``device`` works with ``backend``: asked of the backend itself (its from_numpy
    checks the name and the machine), so aliases such as JAX's "cuda" are accepted."""
    import numpy as np
    try:
        backend.from_numpy(np.zeros(1), None, device)
    except (ValueError, TypeError, RuntimeError) as e:
        raise UsageError(f"{option} {device}: {e}") from None


def check_output_file(option, path):
    problem = fileio.output_file_problem(path)
    if problem:
        raise UsageError(f"{option} {path!r}: {problem}")


def check_output_dir(option, path):
    problem = fileio.output_dir_problem(path)
    if problem:
        raise UsageError(f"{option} {path!r}: {problem}")


def load_json_input(option, path, required_keys=()):
    """A JSON object read from ``path`` (an existing, readable file) holding
    ``required_keys``; anything else is a UsageError naming the file."""
    if path == "":
        raise UsageError(f"{option}: empty path")
    if not os.path.exists(path):
        raise UsageError(f"{option} {path!r}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r}: is a directory")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise UsageError(f"{option} {path!r}: cannot read it ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{option} {path!r}: not a JSON file ({e})") from None
    missing = [k for k in required_keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise UsageError(f"{option} {path!r}: not a pytest-benchmark JSON file (no "
                         f"{', '.join(repr(k) for k in missing)})")
    return data


# ------------------------------------------------------------------ per command

def check_train_args(args, backends):
    """``backends``: {name: module} that will train. Returns the layer dims."""
    import reference as ref
    X, Y = ref.load_dataset(args.dataset)
    dims = [X.shape[0], *args.layers, Y.shape[0]]
    check_layers(dims)
    if args.seed + args.epochs - 1 > SEED_MAX:
        raise UsageError(f"--seed + --epochs - 1 must be at most 2**32 - 1 (epoch e shuffles "
                         f"with seed + e), got --seed {args.seed} and --epochs {args.epochs}")
    if args.grad_norms and args.print_every == 0:
        raise UsageError("--grad-norms prints with each cost line and has no effect with "
                         "--print-every 0")
    for dest in ("schedule", "decay_every"):
        if getattr(args, dest, None) is not None and args.lr_decay is None:
            raise UsageError(f"{_flag(dest)} shapes the decay of --lr-decay RATE and has no effect "
                             "without it")
    remedies = remedies_of(args)
    if remedies is not None:
        check_remedies_fit(remedies, dims, " (--layers)")
        if remedies.batch_norm:
            sizes = [len(i) for i in ref.batch_order(X.shape[1], args.batch_size)]
            if min(sizes) < 2:
                raise UsageError(f"--batch-norm normalises over each batch, and a batch of "
                                 f"{min(sizes)} example has variance 0 (every unit would be beta): "
                                 f"--batch-size {args.batch_size} on m = {X.shape[1]} leaves one; "
                                 "choose a size that leaves batches of at least 2")
        missing = [name for name, bk in backends.items() if not callable(getattr(bk, "remedy_step", None))]
        if missing:
            raise UsageError(f"backend {missing[0]!r} has no remedy_step: it cannot train with "
                             "--batch-norm/--residual/--l2/--keep-prob")
    for name, bk in backends.items():
        check_device("--device", bk, args.device)
    if args.plot is not None:
        check_output_file("--plot", args.plot)
    if args.save_weights is not None:
        if args.save_weights == "":
            raise UsageError("--save-weights: empty path")
        from netparity.cmd_train import weights_path
        for name in backends:
            check_output_file("--save-weights", weights_path(args.save_weights, name,
                                                             len(backends) > 1))
    return dims


def check_check_args(args):
    """`netparity check`: --steps >= 1, known device names, a writable --json."""
    check_positive("--steps", args.steps or [])
    if args.device:
        from netparity.backends import REGISTRY
        # the registry says which device names each backend may offer (present or not)
        known = {d for name in (args.backend or REGISTRY) for d in REGISTRY[name].devices}
        for d in args.device:
            if d not in known:
                raise UsageError(f"--device {d}: no selected backend has such a device "
                                 f"(known: {', '.join(sorted(known))})")
    if args.json is not None:
        check_output_file("--json", args.json)


def check_report_args(args):
    """`netparity report`: --steps >= 1 and not with --quick, a usable --out directory,
    an existing --bench-dir when one is given."""
    check_positive("--steps", args.steps)
    refuse_together(args, "steps", "quick", "--quick runs 200 steps")
    check_output_dir("--out", args.out)
    demo = getattr(args, "demo_backend", "numpy")
    if demo != "numpy":
        from netparity.backends import import_error, get_backend
        why = import_error(demo)
        if why:
            raise UsageError(f"--demo-backend {demo}: it does not import here ({why})")
        if not callable(getattr(get_backend(demo), "remedy_step", None)):
            raise UsageError(f"--demo-backend {demo}: it has no remedy_step (docs/remedies.md)")
    if given(args, "bench_dir") and not os.path.isdir(args.bench_dir):
        raise UsageError(f"--bench-dir {args.bench_dir!r}: no such directory")


BENCH_JSON_KEYS = ("benchmarks", "machine_info")
# what `bench` reads from a benchmark row: pytest-benchmark's own fields, and the
# extra_info of netparity's rows (those with an "op"; other rows are skipped)
_ROW_NUMBERS = ("steps", "flops", "bytes", "compile_s")
_ROW_NAMES = ("op", "config", "dtype", "backend", "variant", "device")


def check_benchmark_json(option, path, data):
    """The structure `bench --compare/--render-only` relies on, row by row, so that a
    hand-edited or foreign file is one line, not a KeyError."""
    def bad(why):
        raise UsageError(f"{option} {path!r}: not a pytest-benchmark JSON file of "
                         f"netparity bench ({why})")
    if not isinstance(data["benchmarks"], list) or not isinstance(data["machine_info"], dict):
        bad("'benchmarks' must be a list and 'machine_info' an object")
    for i, b in enumerate(data["benchmarks"]):
        if not isinstance(b, dict) or not all(isinstance(b.get(k), str) for k in ("name", "fullname")):
            bad(f"benchmark {i} has no name/fullname")
        median = (b.get("stats") or {}).get("median") if isinstance(b.get("stats"), dict) else None
        if not isinstance(median, (int, float)) or isinstance(median, bool) or not median > 0:
            bad(f"benchmark {b['name']!r} has no positive stats.median")
        e = b.get("extra_info")
        if not isinstance(e, dict):
            bad(f"benchmark {b['name']!r} has no extra_info")
        if "op" in e:
            for k in _ROW_NUMBERS:
                v = e.get(k)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or \
                        (k == "steps" and v == 0):
                    bad(f"benchmark {b['name']!r}: extra_info {k!r} missing or not a number")
            for k in _ROW_NAMES:
                if not isinstance(e.get(k), str):
                    bad(f"benchmark {b['name']!r}: extra_info {k!r} missing")
    return data


def check_bench_args(args):
    """`netparity bench`: the inputs of --compare / --render-only exist and are
    pytest-benchmark JSON; outputs are writable; no option is silently ignored.
    Returns the loaded inputs ({path: data})."""
    loaded = {}
    if args.compare:
        for dest in ("quick", "smoke", "select", "plots", "render_only", "json"):
            refuse_together(args, dest, "compare", "--compare only reads two saved runs")
        for p in args.compare:
            loaded[p] = check_benchmark_json("--compare", p,
                                             load_json_input("--compare", p, BENCH_JSON_KEYS))
        return loaded
    if args.plots is not None:
        check_output_dir("--plots", args.plots)
    if args.render_only:
        for dest in ("quick", "smoke", "select"):
            refuse_together(args, dest, "render_only", "--render-only runs no benchmark")
        if not given(args, "json"):
            raise UsageError("--render-only needs --json PATH (the saved run to render)")
        loaded[args.json] = check_benchmark_json(
            "--json", args.json, load_json_input("--json", args.json, BENCH_JSON_KEYS))
    elif args.plots is not None and not given(args, "json"):
        return loaded  # the JSON goes into the --plots folder, checked above (made if missing)
    else:
        check_output_file("--json", args.json)
    check_output_file("--json (its .md table)", os.path.splitext(args.json)[0] + ".md")
    return loaded
