"""`netparity train`: train a network on a built-in data set with one backend or all.

The reference is the source of every number: the data, the initial weights and the
mini-batch order come from ``reference``; a backend (looked up by name in
``netparity.backends``) receives them converted and runs its own ``train``. Printing, the
progress bar and the plot live here, at the edge; the maths stays in the backends.

Defaults reproduce the article: planar data, n_x-4-n_y with tanh hidden units and a
sigmoid output (softmax when the labels are one-hot), ``randn * 0.01`` weights drawn with
seed 1, batch gradient descent at lr 1.2 for 10000 iterations.
"""
import argparse
import math
import os
import sys

import numpy as np

import reference as ref
from netparity import fileio
from netparity.backends import REGISTRY, get_backend
from netparity.cli_checks import check_train_args, seed_value
from netparity.numerics import thread_policy


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
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--dataset", choices=list(ref.DATASETS), default="planar",
                        help="built-in, seeded data set")
    parser.add_argument("--layers", type=hidden_sizes, default=(4,), metavar="N[,N...]",
                        help="hidden layer sizes, e.g. 4 (the article) or 5,4,3")
    parser.add_argument("--hidden", choices=ref.HIDDEN_ACTIVATIONS, default="tanh",
                        help="hidden-layer activation")
    parser.add_argument("--init", choices=ref.INITIALIZERS, default="article",
                        help="weight initialisation (article: randn * 0.01)")
    parser.add_argument("--optimizer", choices=ref.OPTIMIZERS, default="gd")
    parser.add_argument("--lr", type=positive_float, default=1.2, help="learning rate")
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
                        help="print the cost every N updates (0: never)")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="write a PNG: cost curve(s) and, for 2-D data, the decision boundary")
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


def train_one(name, bk, params, X, Y, hidden, output, optimizer, args, prefix):
    """Trains with backend ``bk`` from NumPy ``params``, ``X``, ``Y``; returns NumPy
    (final parameters, costs)."""
    from tqdm import tqdm

    updates = args.epochs * len(ref.batch_order(X.shape[1], args.batch_size))
    bar = tqdm(total=updates, desc=name, file=sys.stderr, disable=args.no_progress,
               leave=True, mininterval=0.2)

    def callback(k, J, grads):
        bar.update(1)
        if args.print_every and k % args.print_every == 0:
            line = f"{prefix}Cost after iteration {k}: {float(J):f}"
            if args.grad_norms:  # per layer: vanishing (tiny |dW1|) or exploding gradients
                norms = bk.gradient_norms(grads)
                dWs = sorted((int(key[2:]), v) for key, v in norms.items() if key.startswith("dW"))
                line += "  " + " ".join(f"|dW{l}|={v:.2e}" for l, v in dWs)
            bar.write(line, file=sys.stdout)

    try:
        with thread_policy((params_dims(params), X.shape[1])):  # small problems: one thread
            final, _, costs = bk.train(
                bk.tree_from_numpy(params, args.dtype, args.device),
                bk.from_numpy(X, args.dtype, args.device), bk.from_numpy(Y, args.dtype, args.device),
                hidden, output, optimizer, num_epochs=args.epochs, batch_size=args.batch_size,
                seed=args.seed, cost=args.cost, callback=callback)
    finally:
        bar.close()
    return bk.tree_to_numpy(final), np.asarray(bk.to_numpy(costs), dtype=np.float64)


def params_dims(params):
    """Layer sizes (n_0, ..., n_L) from W1 (n_1, n_0), ..., WL (n_L, n_{L-1})."""
    L = len(params) // 2
    return (params["W1"].shape[1],) + tuple(params[f"W{l}"].shape[0] for l in range(1, L + 1))


def accuracy(params, X, Y, hidden, output):
    """Fraction of examples classified right, computed by the reference in float64."""
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    pred = ref.network_predict(params, X, hidden, output)
    if output == "sigmoid":
        return float(np.mean(pred == (Y > 0.5)))
    return float(np.mean(pred == np.argmax(Y, axis=0)))


def weights_path(path, name, several):
    if not several:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.{name}{ext or '.npz'}"


def run(args):
    try:
        backends = resolve_backends(args.backend)
    except ImportError as e:
        print(f"netparity train: error: {e}", file=sys.stderr)
        return 2
    dims = check_train_args(args, backends)  # every argument and path, before any work
    X, Y = ref.load_dataset(args.dataset)
    output = "softmax" if Y.shape[0] > 1 else "sigmoid"
    params = ref.initialize_network(dims, init=args.init, seed=args.seed)
    optimizer = ref.Optimizer(name=args.optimizer, learning_rate=args.lr)
    several = len(backends) > 1
    print(f"{args.dataset}: m = {X.shape[1]}, layers {dims}, {args.hidden} hidden, {output} "
          f"output, {args.optimizer} lr {args.lr:g}, {args.cost} cost, {args.dtype}, "
          f"backend{'s' if several else ''} {', '.join(backends)}")

    results = {}
    for name, bk in backends.items():
        prefix = f"[{name}] " if several else ""
        try:
            final, costs = train_one(name, bk, params, X, Y, args.hidden, output, optimizer,
                                     args, prefix)
        except bk.NonFiniteError as e:
            print(f"netparity train: {prefix}training diverged: {e}", file=sys.stderr)
            return 1
        results[name] = (final, costs)
        print(f"{prefix}Train accuracy: {accuracy(final, X, Y, args.hidden, output):.2%}")
        if args.save_weights:
            path = weights_path(args.save_weights, name, several)
            ref.save_weights(path, final)
            print(f"{prefix}weights written to {path}")

    if args.plot:
        write_plot(args.plot, results, X, Y, args.hidden, output, title=f"{args.dataset} {dims}")
        print(f"plot written to {args.plot}")
    return 0


# ------------------------------------------------------------------------- plotting

def write_plot(path, results, X, Y, hidden, output, title=""):
    """Two panels: the cost of every update per backend, and the decision regions of the
    first backend's network over the data (2-D inputs only)."""
    # Figure + the Agg canvas directly: no pyplot, no global backend switch, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    ax_cost, ax_data = fig.subplots(1, 2)
    for i, (name, (_, costs)) in enumerate(results.items()):
        # later curves dashed so that overlapping backends stay visible
        ax_cost.plot(np.arange(costs.size), costs, label=name, linestyle=("-", "--", ":")[i % 3])
    ax_cost.set_xlabel("update")
    ax_cost.set_ylabel("cost")
    ax_cost.set_title("cost per update")
    ax_cost.legend()

    labels = Y[0] if output == "sigmoid" else np.argmax(Y, axis=0)
    if X.shape[0] == 2:
        name, (params, _) = next(iter(results.items()))
        params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        pad = 0.5
        xs = np.linspace(X[0].min() - pad, X[0].max() + pad, 300)
        ys = np.linspace(X[1].min() - pad, X[1].max() + pad, 300)
        gx, gy = np.meshgrid(xs, ys)
        grid = np.stack([gx.ravel(), gy.ravel()])
        regions = ref.network_predict(params, grid, hidden, output).reshape(gx.shape)
        ax_data.contourf(gx, gy, regions.astype(float), alpha=0.3, cmap="Spectral")
        ax_data.scatter(X[0], X[1], c=labels, s=10, cmap="Spectral", edgecolors="k",
                        linewidths=0.2)
        ax_data.set_title(f"decision boundary ({name})")
    else:
        ax_data.text(0.5, 0.5, f"no boundary plot for {X.shape[0]}-D inputs",
                     ha="center", va="center", transform=ax_data.transAxes)
        ax_data.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    fileio.save_figure(fig, path, format="png", dpi=100)  # atomic: never a truncated PNG
