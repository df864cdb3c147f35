"""`netparity train`: train a network on a built-in data set with one backend or all.

The reference is the source of every number: the data, the initial weights and the
mini-batch order come from ``reference``; a backend (looked up by name in
``netparity.backends``) receives them converted and runs its own ``train``. Printing, the
progress bar and the plot live here, at the edge; the maths stays in the backends.

Defaults reproduce the article: planar data, n_x-4-n_y with tanh hidden units and a
sigmoid output (softmax when the labels are one-hot), ``randn * 0.01`` weights drawn with
seed 1, batch gradient descent at lr 1.2 for 10000 iterations. Each optimiser has its own
default learning rate (DEFAULT_LR: the article's 1.2 for gd and the course's momentum,
0.01 for Adam). With mini-batches the printed cost is the epoch's: the mean of the loss
over its m examples. torch's intra-op threads follow ``netparity.numerics.thread_policy``
(one for small problems), reported in the first line. The progress bar's rate starts
after the first update, which includes a compiled backend's compilation. With several
backends the run ends with how far each is from NumPy (max |cost difference|, final
parameters, predictions), and ``--plot`` draws the drift and every backend's boundary.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

import reference as ref
from netparity import fileio
from netparity.backends import REGISTRY, get_backend
from netparity.cli_checks import add_remedy_arguments, check_train_args, remedies_of, seed_value
from netparity.numerics import thread_policy

# the learning rate each optimiser gets when --lr is not given: the article's 1.2 for
# gradient descent; the course's momentum (an average of gradients, the same step size)
# keeps it; Adam normalises its step, so 1.2 is far too large (planar, 10 000 updates:
# 76.75 % at 1.2, 92.0 % at 0.01)
DEFAULT_LR = {"gd": 1.2, "momentum": 1.2, "adam": 0.01}


# ------------------------------------------------------------------ argument types

def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def hidden_sizes(text):
    """"4" or "5,4,3" -> (4,) or (5, 4, 3): the hidden layers' widths."""
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def add_arguments(parser):
    from netparity.cli import HelpFormatter
    parser.formatter_class = HelpFormatter
    parser.add_argument("--dataset", choices=list(ref.DATASETS), default="planar",
                        help="built-in, seeded data set")
    parser.add_argument("--layers", type=hidden_sizes, default=(4,), metavar="N[,N...]",
                        help="hidden layer sizes, e.g. 4 (the article) or 5,4,3")
    parser.add_argument("--hidden", choices=ref.HIDDEN_ACTIVATIONS, default="tanh",
                        help="hidden-layer activation")
    parser.add_argument("--init", choices=ref.INITIALIZERS, default="article",
                        help="weight initialisation (article: randn * 0.01)")
    parser.add_argument("--optimizer", choices=ref.OPTIMIZERS, default="gd")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
                             + ")")
    parser.add_argument("--lr-decay", type=positive_float, default=None, metavar="RATE",
                        help="decay the learning rate (the course's inverse-time decay: "
                             "lr0 / (1 + RATE floor(k / N)) at update k; --schedule for others)")
    parser.add_argument("--decay-every", type=positive_int, default=None, metavar="N",
                        help="updates between two decays (default: one epoch's updates, as in "
                             "the course)")
    parser.add_argument("--schedule", choices=[s for s in ref.SCHEDULES if s != "constant"],
                        default=None, help="with --lr-decay: inverse_time (default), exponential "
                                           "(lr0 RATE^(k/N)) or step (lr0 RATE^floor(k/N))")
    parser.add_argument("--epochs", "--iterations", dest="epochs", type=positive_int,
                        default=10000, metavar="N",
                        help="passes over the data (with the full batch, one pass is one "
                             "gradient-descent iteration)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="mini-batch size (default: the full batch)")
    parser.add_argument("--cost", choices=ref.COSTS, default="stable",
                        help="cross-entropy from logits (stable) or the article's formula (literal)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--seed", type=seed_value, default=1,
                        help="seed of the initial weights and of the mini-batch order, "
                             "in [0, 2**32 - 1]")
    parser.add_argument("--print-every", type=non_negative_int, default=1000, metavar="N",
                        help="print the cost every N iterations (full batch) or epochs "
                             "(mini-batches: the epoch's mean cost); 0: never")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="write a PNG: cost curve(s), the drift from NumPy (several backends) "
                             "and, for 2-D data, the decision boundary of every backend")
    parser.add_argument("--save-weights", metavar="PATH", default=None,
                        help="write the trained weights (.npz); with several backends the "
                             "backend name is inserted before the extension")
    parser.add_argument("--backend", choices=[*REGISTRY, "all"], default="numpy",
                        help="which implementation trains; all: every available one, "
                             "curves overlaid")
    parser.add_argument("--device", default="cpu", help="device for the mirrors (cpu, cuda, gpu)")
    parser.add_argument("--grad-norms", action="store_true",
                        help="print the Frobenius norm of every dW with each printed cost")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_remedy_arguments(parser, "the trained network (through netparity.remedy_training."
                                 "train_remedies: the backend's remedy_step; the reference draws "
                                 "the dropout masks)")


# ------------------------------------------------------------------------- training

def resolve_backends(choice):
    """Backend names and modules; raises ImportError naming the one that is missing."""
    names = list(REGISTRY) if choice == "all" else [choice]
    modules = {}
    for name in names:
        try:
            modules[name] = get_backend(name)
        except ImportError as e:
            if choice != "all":
                raise ImportError(f"backend {name!r} is not available here: {e}") from e
    return modules


def make_optimizer(args, batches_per_epoch):
    """The reference Optimizer of the command line: --optimizer, --lr (or its default for
    that optimiser) and the decay options."""
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    if args.lr_decay is None:
        return ref.Optimizer(name=args.optimizer, learning_rate=lr)
    return ref.Optimizer(name=args.optimizer, learning_rate=lr, schedule=args.schedule or "inverse_time",
                         decay_rate=args.lr_decay, decay_steps=args.decay_every or batches_per_epoch)


def describe_optimizer(opt, args):
    lr = f"lr {opt.learning_rate:g}" + ("" if args.lr is not None else f" (the default for {opt.name})")
    if opt.schedule == "constant":
        return f"{opt.name} {lr}"
    form = {"inverse_time": "lr0 / (1 + {r:g} floor(k / {n}))", "exponential": "lr0 {r:g}^(k / {n})",
            "step": "lr0 {r:g}^floor(k / {n})"}[opt.schedule]
    return f"{opt.name} {lr}, {opt.schedule} decay {form.format(r=opt.decay_rate, n=opt.decay_steps)}"


class StepProgress:
    """A progress bar over ``total`` updates whose rate and ETA count from the end of the
    first update: a compiled backend's first update includes its compilation (seconds),
    and a rate over it would say so for the whole run. The first update is timed on its
    own and shown next to the bar."""

    def __init__(self, total, desc, disable, file=None):
        from tqdm import tqdm
        self._tqdm, self.total, self.desc, self.disable = tqdm, total, desc, disable
        self.file = file or sys.stderr
        self.first_s = None
        self._t0 = time.perf_counter()
        self.bar = tqdm(total=total, desc=f"{desc}: first update", file=self.file, disable=disable,
                        leave=False, bar_format="{desc} ...")

    def update(self):
        if self.first_s is None:
            self.first_s = time.perf_counter() - self._t0
            self.bar.close()
            self.bar = self._tqdm(total=self.total, initial=1, desc=self.desc, file=self.file,
                                  disable=self.disable, leave=True, mininterval=0.2,
                                  postfix=f"first update {self.first_s:.2f} s")
        else:
            self.bar.update(1)

    def write(self, line):
        self.bar.write(line, file=sys.stdout)

    def close(self):
        self.bar.close()


class Diverged(Exception):
    """The cost became nan or inf at update ``step``."""

    def __init__(self, step, value):
        super().__init__(step, value)
        self.step, self.value = step, value


def cost_callback(args, sizes, progress, prefix, dw_norms):
    """The per-update callback of a training run: advances the progress bar, raises
    Diverged at the first non-finite cost, and every --print-every iterations (full batch)
    or epochs (mini-batches: the mean of the loss over the epoch's m examples, each batch's
    cost weighted by its size) prints the cost, with --grad-norms each layer's |dW|
    (``dw_norms(x)`` -> [(l, norm)] from the callback's third argument)."""
    per_epoch, m = len(sizes), sum(sizes)
    acc = [0.0]

    def callback(k, J, grads):
        progress.update()
        J = float(J)
        if not math.isfinite(J):
            raise Diverged(k, J)
        epoch, i = divmod(k, per_epoch)
        acc[0] += J * sizes[i]
        if i != per_epoch - 1:
            return
        cost, acc[0] = (J if per_epoch == 1 else acc[0] / m), 0.0
        if args.print_every and epoch % args.print_every == 0:
            what = "iteration" if per_epoch == 1 else "epoch"
            line = f"{prefix}Cost after {what} {epoch}: {cost:f}"
            if args.grad_norms:  # per layer: vanishing (tiny |dW1|) or exploding gradients
                line += "  " + " ".join(f"|dW{l}|={v:.2e}" for l, v in dw_norms(grads))
            progress.write(line)

    return callback


def train_one(name, bk, params, X, Y, hidden, output, optimizer, args, prefix):
    """Trains with backend ``bk`` from NumPy ``params``, ``X``, ``Y``; returns NumPy
    (final parameters, costs, seconds). Prints the cost every --print-every iterations
    (full batch) or epochs (mini-batches: the mean of the loss over the epoch's m
    examples, each batch's cost weighted by its size). Raises Diverged at the first
    non-finite cost (the backend's own per-update check of every array is off: this one
    float per update finds the same divergence, one update later at worst, for a
    fraction of the cost)."""
    sizes = [len(idx) for idx in ref.batch_order(X.shape[1], args.batch_size)]
    progress = StepProgress(args.epochs * len(sizes), name, args.no_progress)

    def dw_norms(grads):
        norms = bk.gradient_norms(grads)
        return sorted((int(key[2:]), v) for key, v in norms.items() if key.startswith("dW"))

    callback = cost_callback(args, sizes, progress, prefix, dw_norms)
    per_epoch = len(sizes)

    t0 = time.perf_counter()
    try:
        # a diverging run overflows on its way to nan: that is reported below in the
        # command line's terms, not as NumPy's RuntimeWarnings
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            final, _, costs = bk.train(
                bk.tree_from_numpy(params, args.dtype, args.device),
                bk.from_numpy(X, args.dtype, args.device), bk.from_numpy(Y, args.dtype, args.device),
                hidden, output, optimizer, num_epochs=args.epochs, batch_size=args.batch_size,
                seed=args.seed, cost=args.cost, callback=callback, check_finite=False)
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    final = bk.tree_to_numpy(final)
    bad = next((k for k, v in final.items() if not np.all(np.isfinite(v))), None)
    if bad:  # the last update itself overflowed: no cost after it to see it
        raise Diverged(args.epochs * per_epoch - 1, f"{bad} non-finite")
    return final, np.asarray(bk.to_numpy(costs), dtype=np.float64), seconds, progress.first_s


def train_one_remedies(name, remedies, dims, X, Y, hidden, output, optimizer, args, prefix):
    """``train_one`` with the remedies: netparity.remedy_training.train_remedies (the
    backend's remedy_step, manual path; the reference's batches and dropout masks), the
    same printing (--grad-norms: each layer's |dW| of the update that ends the printed
    iteration or epoch). Returns NumPy (final parameters, running estimates, costs,
    seconds, first update's seconds)."""
    from netparity.remedy_training import train_remedies
    sizes = [len(idx) for idx in ref.batch_order(X.shape[1], args.batch_size)]
    progress = StepProgress(args.epochs * len(sizes), name, args.no_progress)
    callback = cost_callback(args, sizes, progress, prefix,
                             lambda norms: [(l, float(v)) for l, v in enumerate(norms, 1)])
    t0 = time.perf_counter()
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            run = train_remedies(name, dims, X, Y, remedies, hidden, output, optimizer, args.epochs,
                                 args.batch_size, args.seed, dtype=args.dtype, device=args.device,
                                 callback=callback, init=args.init, cost=args.cost)
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    bad = next((k for k, v in {**run.parameters, **run.bn_state}.items()
                if not np.all(np.isfinite(v))), None)
    if bad:  # the last update itself overflowed: no cost after it to see it
        raise Diverged(run.costs.size - 1, f"{bad} non-finite")
    return run.parameters, run.bn_state, run.costs, seconds, progress.first_s


def divergence_advice(e, args, optimizer):
    """What to try, in the command line's terms."""
    tips = [f"a smaller --lr (now {optimizer.learning_rate:g})"]
    if args.cost == "literal":
        tips.append("--cost stable (the literal cost is inf once a prediction rounds to 0 or 1)")
    if optimizer.name != "adam":
        tips.append("--optimizer adam")
    if args.lr_decay is None:
        tips.append("--lr-decay 0.01")
    if args.dtype == "float32":
        tips.append("--dtype float64")
    tried = f"{', '.join(tips[:-1])} or {tips[-1]}" if len(tips) > 1 else tips[0]
    return (f"training diverged: the cost is {e.value} at update {e.step} (the steps are too "
            f"large: the updates overshoot until a value overflows or a prediction saturates). "
            f"Try {tried}")


def plain_predict(hidden, output):
    """predict(name, params, X) of the plain network: the reference in float64."""
    def predict(name, params, X):
        return ref.network_predict({k: np.asarray(v, dtype=np.float64) for k, v in params.items()},
                                   X, hidden, output)
    return predict


def accuracy(params, X, Y, hidden, output, predict=None, name="numpy"):
    """Fraction of examples classified right, computed by the reference in float64
    (``predict(name, params, X)``: default the plain network's)."""
    pred = (predict or plain_predict(hidden, output))(name, params, X)
    if output == "sigmoid":
        return float(np.mean(pred == (Y > 0.5)))
    return float(np.mean(pred == np.argmax(Y, axis=0)))


def weights_path(path, name, several):
    if not several:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.{name}{ext or '.npz'}"


def agreement_lines(results, X, hidden, output, dtype, predict=None):
    """How far every backend's run is from NumPy's: max |cost difference| over the run
    (with one ULP of the final cost for scale), max |difference| of the final parameters,
    and how many predictions differ."""
    if "numpy" not in results:
        return []
    ref_final, ref_costs = results["numpy"][:2]
    predict = predict or plain_predict(hidden, output)
    ulp = float(np.spacing(np.abs(np.asarray(ref_costs[-1], dtype=dtype))))
    lines = [f"agreement with numpy ({dtype}, {ref_costs.size} updates; one ULP of the final cost "
             f"is {ulp:.2g}; the numbers are machine-dependent):"]
    for name, (final, costs, *_) in results.items():
        if name == "numpy":
            continue
        dcost = float(np.max(np.abs(costs - ref_costs)))
        dpar = max(float(np.max(np.abs(np.asarray(final[k], np.float64) - np.asarray(ref_final[k], np.float64))))
                   for k in ref_final)
        differ = int(np.sum(predict(name, final, X) != predict("numpy", ref_final, X)))
        lines.append(f"  {name}: max |cost - numpy cost| {dcost:.2g} ({dcost / ulp:.3g} ULP), final "
                     f"parameters max |difference| {dpar:.2g}, {differ} of {X.shape[1]} predictions differ")
    return lines


def run(args):
    try:
        backends = resolve_backends(args.backend)
    except ImportError as e:
        print(f"netparity train: error: {e}", file=sys.stderr)
        return 2
    dims = check_train_args(args, backends)  # every argument and path, before any work
    remedies = remedies_of(args)
    X, Y = ref.load_dataset(args.dataset)
    output = "softmax" if Y.shape[0] > 1 else "sigmoid"
    params = ref.initialize_network(dims, init=args.init, seed=args.seed)
    bn_states = {}   # the remedies' running estimates of each backend's run
    predict = plain_predict(args.hidden, output)
    if remedies is not None:
        from netparity.remedy_training import describe_remedies, remedy_predict

        def predict(name, p, grid):  # eval mode: the running estimates, no dropout
            return remedy_predict(p, bn_states[name], grid, remedies, args.hidden, output)
    per_epoch = len(ref.batch_order(X.shape[1], args.batch_size))
    optimizer = make_optimizer(args, per_epoch)
    several = len(backends) > 1
    batch = args.batch_size if per_epoch > 1 else X.shape[1]
    with thread_policy((dims, batch)) as threads:  # small problems: one thread, restored after
        print(f"{args.dataset}: m = {X.shape[1]}, layers {dims}, {args.hidden} hidden, {output} "
              f"output, {describe_optimizer(optimizer, args)}, "
              + (f"mini-batches of {args.batch_size} ({per_epoch} per epoch), " if per_epoch > 1 else "")
              + f"{args.cost} cost, {args.dtype}, backend{'s' if several else ''} {', '.join(backends)}"
              + (f", remedies: {describe_remedies(remedies)}" if remedies is not None else "")
              + (f"; {threads} intra-op thread{'s' if threads != 1 else ''} for torch (thread policy)"
                 if threads is not None and any(n != "numpy" for n in backends) else ""))
        results = {}
        for name, bk in backends.items():
            prefix = f"[{name}] " if several else ""
            try:
                if remedies is None:
                    final, costs, seconds, first = train_one(name, bk, params, X, Y, args.hidden,
                                                             output, optimizer, args, prefix)
                else:
                    final, bn_states[name], costs, seconds, first = train_one_remedies(
                        name, remedies, dims, X, Y, args.hidden, output, optimizer, args, prefix)
            except Diverged as e:
                print(f"netparity train: {prefix}{divergence_advice(e, args, optimizer)}", file=sys.stderr)
                return 1
            results[name] = (final, costs, seconds, first)
            acc = accuracy(final, X, Y, args.hidden, output, predict, name)
            print(f"{prefix}Train accuracy: {acc:.2%}"
                  + (" (eval mode: batch norm's running estimates, no dropout)"
                     if remedies is not None and (remedies.batch_norm or remedies.dropout) else ""))
            if several:
                print(f"{prefix}{costs.size} updates in {seconds:.2f} s ({costs.size / seconds:.0f} per "
                      f"second; the first took {first:.2f} s)")
            if args.save_weights:
                path = weights_path(args.save_weights, name, several)
                # with batch norm the running estimates (mu_run, var_run) go in the same file
                ref.save_weights(path, {**final, **bn_states.get(name, {})})
                print(f"{prefix}weights written to {path}")
    if several:
        for line in agreement_lines(results, X, args.hidden, output, args.dtype, predict):
            print(line)
    if args.plot:
        write_plot(args.plot, {k: v[:2] for k, v in results.items()}, X, Y, args.hidden, output,
                   title=f"{args.dataset} {dims}" + (f", {describe_remedies(remedies)}" if remedies else ""),
                   dtype=args.dtype, predict=predict)
        print(f"plot written to {args.plot}")
    return 0


# ------------------------------------------------------------------------- plotting

def write_plot(path, results, X, Y, hidden, output, title="", dtype="float64", predict=None):
    """One backend: the cost of every update and the decision regions (2-D inputs), side
    by side. Several: the costs and their drift from NumPy's on top, every backend's
    decision regions below. ``predict(name, params, grid)``: default the plain network's."""
    # Figure + the Agg canvas directly: no pyplot, no global backend switch, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from netparity.plots import draw_boundary

    several = len(results) > 1
    n = len(results)
    fig = Figure(figsize=(max(11, 4 * n), 9) if several else (11, 4.5))
    FigureCanvasAgg(fig)
    if several:
        grid = fig.add_gridspec(2, 2 * n)
        ax_cost, ax_drift = fig.add_subplot(grid[0, :n]), fig.add_subplot(grid[0, n:])
        ax_data = [fig.add_subplot(grid[1, 2 * i:2 * i + 2]) for i in range(n)]
    else:
        ax_cost, ax_one = fig.subplots(1, 2)
        ax_drift, ax_data = None, [ax_one]
    from netparity.backends import backend_spec
    for name, (_, costs) in results.items():
        colour, style = backend_spec(name).style  # the registry's: dashed curves stay visible
        ax_cost.plot(np.arange(costs.size), costs, label=name, color=colour, linestyle=style)
    ax_cost.set_xlabel("update")
    ax_cost.set_ylabel("cost")
    ax_cost.set_title("cost per update")
    ax_cost.legend()
    if ax_drift is not None:
        ref_costs = results.get("numpy", next(iter(results.values())))[1]
        for name, (_, costs) in results.items():
            if name == "numpy":
                continue
            colour = backend_spec(name).style[0]
            d = np.abs(costs - ref_costs)
            ax_drift.semilogy(np.arange(d.size), np.where(d > 0, d, np.nan), ".", ms=2, alpha=0.5,
                              color=colour)
            ax_drift.semilogy(np.arange(d.size), np.maximum.accumulate(d), color=colour,
                              label=f"{name}: running max (dots: each update)")
        ax_drift.semilogy(np.arange(ref_costs.size), np.spacing(np.abs(ref_costs).astype(dtype)),
                          color="grey", lw=0.8, linestyle=":", label=f"one ULP of the cost ({dtype})")
        ax_drift.set_xlabel("update")
        ax_drift.set_ylabel("|cost - numpy cost|")
        ax_drift.set_title("drift from NumPy (log; zeros not drawn)")
        ax_drift.legend(fontsize=8, loc="lower right")

    if X.shape[0] == 2:
        predict = predict or plain_predict(hidden, output)
        for ax, (name, (params, _)) in zip(ax_data, results.items()):
            draw_boundary(ax, X, Y, lambda grid: predict(name, params, grid))
            ax.set_title(f"decision boundary ({name})")
    else:
        for ax in ax_data:
            ax.text(0.5, 0.5, f"no boundary plot for {X.shape[0]}-D inputs",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    fileio.save_figure(fig, path, format="png", dpi=100)  # atomic: never a truncated PNG
