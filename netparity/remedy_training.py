"""Training with the remedies (docs/remedies.md) on any backend, and the vanishing-gradient
demonstration of `netparity report`.

``train_remedies`` is the remedies' counterpart of a backend's ``train``: the reference
draws everything (initial parameters, the mini-batch order, the dropout masks of every
step) and the backend only runs ``remedy_step`` on what it is given, so every backend
follows the same trajectory up to rounding. Per step it records the cost of the batch
(before the update) and the Frobenius norm of every layer's dW^[l] (the norm of the
gradient the update uses, the L2 term included): the numbers that show a vanishing or an
exploding gradient layer by layer.

``vanishing_demo`` runs the report's demonstration: a deep sigmoid network whose first
layers get almost no gradient without remedies, trained again with batch normalisation
and with residual connections.
"""
from dataclasses import dataclass, field
import math

import numpy as np

import reference as R
from reference.remedies import Remedies, layout


@dataclass
class RemedyRun:
    """The outcome of ``train_remedies``, as NumPy (float64 for the recorded numbers).

    parameters, bn_state   after the last update (the backend's dtype)
    costs                  (steps,) the cost of the batch of update k, before it
    grad_norms             (steps, L): ||dW^[l]||_F of update k in column l - 1
    """
    parameters: dict
    bn_state: dict
    costs: np.ndarray
    grad_norms: np.ndarray
    opt_state: dict = field(default_factory=dict)


def layer_count(layer_dims):
    return len(layer_dims) - 1


def remedies_from_flags(batch_norm=False, residual=None, l2=None, keep_prob=None):
    """The ``Remedies`` of the command line's flags (None: the flag was not given)."""
    return Remedies(batch_norm=bool(batch_norm), residual=residual or "none",
                    l2=0.0 if l2 is None else l2, keep_prob=1.0 if keep_prob is None else keep_prob)


def describe_remedies(remedies):
    """One phrase: "batch norm, residual before, L2 0.7, keep_prob 0.8" ("no remedies")."""
    parts = []
    if remedies.batch_norm:
        parts.append("batch norm")
    if remedies.residual != "none":
        parts.append(f"residual ({remedies.residual} the activation)")
    if remedies.l2:
        parts.append(f"L2 lambda {remedies.l2:g}")
    if remedies.dropout:
        parts.append(f"dropout keep_prob {remedies.keep_prob:g}")
    return ", ".join(parts) or "no remedies"


def skip_problem(layer_dims, remedies):
    """Why ``remedies`` cannot build a network of ``layer_dims`` (None when it can): a
    residual connection needs a hidden layer 3 (the skip goes from A^[1] into layer 3),
    so at least three hidden layers."""
    if remedies.residual == "none" or layout(layer_dims, remedies)["skips"]:
        return None
    hidden = layer_count(layer_dims) - 1
    return (f"a residual connection skips from A[l-2] into hidden layer l = 3, 5, ...: it needs at "
            f"least 3 hidden layers, the network {list(layer_dims)} has {hidden}")


def _steps(m, batch_size, seed, num_epochs):
    for epoch in range(num_epochs):
        yield from R.batch_order(m, batch_size, seed, epoch)


def train_remedies(backend_name, layer_dims, X, Y, remedies, hidden, output, optimizer,
                   num_epochs, batch_size, seed, path="manual", dtype="float64", device="cpu",
                   callback=None, init="xavier", parameters=None, cost="stable"):
    """Trains a network with ``remedies`` on backend ``backend_name`` (a registry name);
    returns a RemedyRun.

    X, Y: NumPy (float64); the backend receives them converted to ``dtype`` on ``device``.
    The initial parameters are ``initialize_remedy_network(layer_dims, remedies, init,
    seed)`` (or ``parameters``, NumPy, when given), the running estimates
    ``init_bn_state``'s. Epoch e replays ``reference.batch_order(m, batch_size, seed, e)``;
    update k (0-based, counted over the whole run) on a batch of m_k columns uses
    ``reference.step_masks(layer_dims, m_k, keep_prob, k)``, converted with the backend's
    ``from_numpy`` (the mirrors never draw). ``path``: the backend's ``remedy_step`` path
    ("manual"; the mirrors also have "autodiff" and "compiled"). ``cost``: which cost is
    recorded, "stable" (from the logits) or "literal" (on A^[L]; not on "compiled").

    ``callback(k, J, norms)`` after update k: J the recorded cost (a float), norms a
    (L,) float64 array of ||dW^[l]||; it may raise to stop the run."""
    from netparity.backends import get_backend
    if cost not in ("stable", "literal"):
        raise ValueError(f"unknown cost {cost!r}; expected stable or literal")
    if cost == "literal" and path == "compiled":
        raise ValueError("the compiled path returns the stable cost only (cost='stable')")
    dims = tuple(int(n) for n in layer_dims)
    if X.shape[0] != dims[0] or Y.shape[0] != dims[-1] or X.shape[1] != Y.shape[1]:
        raise ValueError(f"X {X.shape} and Y {Y.shape} do not fit layer_dims {list(dims)}")
    problem = skip_problem(dims, remedies)
    if problem:
        raise ValueError(problem)
    bk = get_backend(backend_name)
    if not callable(getattr(bk, "remedy_step", None)):
        raise ValueError(f"backend {backend_name!r} has no remedy_step (docs/remedies.md)")
    p0 = (R.initialize_remedy_network(dims, remedies, init, seed) if parameters is None
          else parameters)
    params = bk.tree_from_numpy(p0, dtype, device)
    bn = bk.tree_from_numpy(R.init_bn_state(p0), dtype, device)
    state = bk.init_optimizer_state(params, optimizer)
    Xd, Yd = bk.from_numpy(X, dtype, device), bk.from_numpy(Y, dtype, device)
    L = layer_count(dims)
    costs, norms = [], []
    for k, idx in enumerate(_steps(X.shape[1], batch_size, seed, num_epochs)):
        masks = R.step_masks(dims, len(idx), remedies.keep_prob, k)
        Md = None if masks is None else {n: bk.from_numpy(D, dtype, device) for n, D in masks.items()}
        Ii = bk.from_numpy(idx, None, device)
        stages, params, bn, state = bk.remedy_step(path, params, bn, state, Xd[:, Ii], Yd[:, Ii],
                                                   remedies, hidden, output, optimizer, Md)
        J = float(np.asarray(bk.to_numpy(stages[f"cost_{cost}"])))
        row = np.array([np.linalg.norm(np.asarray(bk.to_numpy(stages[f"dW{l}"]), dtype=np.float64))
                        for l in range(1, L + 1)])
        costs.append(J)
        norms.append(row)
        if callback is not None:
            callback(k, J, row)
    return RemedyRun(bk.tree_to_numpy(params), bk.tree_to_numpy(bn), np.array(costs, dtype=np.float64),
                     np.array(norms, dtype=np.float64).reshape(len(norms), L),
                     bk.tree_to_numpy(state))


def remedy_predict(parameters, bn_state, X, remedies, hidden, output):
    """Classes predicted by the trained network in eval mode (batch norm with the running
    estimates, no dropout), computed by the reference in float64: (1, m) bools for a
    sigmoid output, (m,) class indices for softmax."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in parameters.items()}
    bn = {k: np.asarray(v, dtype=np.float64) for k, v in bn_state.items()}
    AL = R.remedy_forward(X, p, bn, remedies, hidden, output, None, train=False)[0]
    return AL > 0.5 if output == "sigmoid" else np.argmax(AL, axis=0)


# ------------------------------------------------------------------ the demonstration

# The report's vanishing-gradient demonstration, chosen by measuring (tests/
# test_remedy_training.py asserts its claims): 12 sigmoid hidden layers of 8 units with
# xavier weights on the planar data, full-batch gradient descent at lr 0.5. sigmoid' <= 1/4,
# so each layer scales the backward signal down: at the first update ||dW1|| is about 1e-9
# of ||dW13|| and the cost stays at log 2 (the first layers do not move, the last one
# learns the average). Batch normalisation rescales every hidden layer's pre-activations
# to unit variance: the norms are level (ratio ~1) and the cost falls to ~0.33 in 300
# updates. Residual connections added after the activation (A = g(H) + A^[l-2]) carry the
# gradient past two layers unscaled (ratio ~5e-2, the cost starts to fall); added before
# it (the course's a = g(z + a^[l-2])) the skip's gradient still goes through g'
# (ratio ~7e-5, the cost stalls as without remedies).
DEMO = {"dataset": "planar", "hidden_layers": 12, "width": 8, "hidden": "sigmoid",
        "init": "xavier", "optimizer": "gd", "lr": 0.5, "steps": 300, "seed": 1}
DEMO_CONFIGS = {
    "without remedies": Remedies(),
    "batch norm": Remedies(batch_norm=True),
    "residual (after g)": Remedies(residual="after"),
    "residual (before g)": Remedies(residual="before"),
    "batch norm + residual (before g)": Remedies(batch_norm=True, residual="before"),
}


@dataclass
class Demo:
    """The demonstration's runs: ``runs[label]`` a RemedyRun; ``settings`` as DEMO."""
    settings: dict
    layer_dims: tuple
    runs: dict
    backend: str = "numpy"

    def ratio(self, label, step=0):
        """||dW^[1]|| / ||dW^[L]|| at update ``step`` (0: the first) of run ``label``."""
        n = self.runs[label].grad_norms[step]
        return float(n[0] / n[-1])

    def final_cost(self, label):
        return float(self.runs[label].costs[-1])

    def summary_rows(self):
        """(label, ||dW1||, ||dWL||, their ratio, first cost, last cost) per run, step 1."""
        return [(label, float(r.grad_norms[0, 0]), float(r.grad_norms[0, -1]), self.ratio(label),
                 float(r.costs[0]), float(r.costs[-1])) for label, r in self.runs.items()]


def vanishing_demo(backend="numpy", configs=None, steps=None, **overrides):
    """Runs the demonstration: every configuration of ``configs`` (label -> Remedies;
    default DEMO_CONFIGS) from the same W draws, on ``backend`` (float64). ``steps`` and
    ``overrides`` (keys of DEMO) change the settings (the tests shrink it)."""
    settings = {**DEMO, **overrides, **({"steps": steps} if steps is not None else {})}
    unknown = sorted(set(settings) - set(DEMO))
    if unknown:
        raise ValueError(f"unknown demo setting(s) {', '.join(unknown)}; expected {', '.join(DEMO)}")
    X, Y = R.load_dataset(settings["dataset"])
    output = "sigmoid" if Y.shape[0] == 1 else "softmax"
    dims = (X.shape[0],) + (settings["width"],) * settings["hidden_layers"] + (Y.shape[0],)
    opt = R.Optimizer(settings["optimizer"], learning_rate=settings["lr"])
    runs = {}
    for label, rem in (configs or DEMO_CONFIGS).items():
        runs[label] = train_remedies(backend, dims, X, Y, rem, settings["hidden"], output, opt,
                                     settings["steps"], None, settings["seed"],
                                     init=settings["init"])
    return Demo(settings, dims, runs, backend)


def demo_figure(demo):
    """Left: ||dW^[l]|| per layer at update 1, log scale, one line per run; right: the cost
    per update of every run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4.3), dpi=100)
    FigureCanvasAgg(fig)
    ax_n, ax_c = fig.subplots(1, 2)
    styles = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    layers = np.arange(1, len(demo.layer_dims))
    for (label, run), colour in zip(demo.runs.items(), styles * 2):
        ax_n.semilogy(layers, run.grad_norms[0], "o-", color=colour, ms=4, label=label)
        ax_c.plot(np.arange(1, run.costs.size + 1), run.costs, color=colour, label=label)
    ax_n.set_xlabel("layer l")
    ax_n.set_ylabel("||dW[l]|| (Frobenius), update 1")
    ax_n.set_xticks(layers)
    ax_n.set_title("gradient norm per layer at the first update (log)", fontsize=10)
    ax_n.legend(fontsize=8)
    s = demo.settings
    ax_c.set_xlabel("update")
    ax_c.set_ylabel("cost")
    ax_c.set_title(f"cost per update ({s['optimizer']} lr {s['lr']:g}, full batch)", fontsize=10)
    ax_c.axhline(math.log(2), color="grey", lw=0.8, linestyle=":")
    ax_c.legend(fontsize=8)
    fig.suptitle(f"{s['dataset']} data, {'-'.join(map(str, demo.layer_dims))}, {s['hidden']} hidden, "
                 f"{s['init']} weights", fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ the conformance matrix

def remedy_config_name(remedies):
    """The name of ``remedies`` in ``netparity.stages.REMEDY_CONFIGS``, the one axis the
    conformance cases know remedies by: an existing entry's name when one equals it
    (--batch-norm is "bn"), else a new entry, added for this process, named after its
    fields ("bn-res_before-l2_0.5-keep_0.9"). A Case(remedy=name) then runs it as any
    named configuration."""
    from netparity.stages import REMEDY_CONFIGS
    for name, r in REMEDY_CONFIGS.items():
        if r == remedies:
            return name
    parts = (["bn"] if remedies.batch_norm else []) \
        + ([f"bnvar_{remedies.bn_running_var}"] if remedies.bn_running_var != "biased" else []) \
        + ([f"res_{remedies.residual}"] if remedies.residual != "none" else []) \
        + ([f"l2_{remedies.l2:g}"] if remedies.l2 else []) \
        + ([f"keep_{remedies.keep_prob:g}"] if remedies.dropout else []) \
        + ([f"eps_{remedies.bn_eps:g}"] if remedies.bn_eps != Remedies.bn_eps else []) \
        + ([f"mom_{remedies.bn_momentum:g}"] if remedies.bn_momentum != Remedies.bn_momentum else [])
    name = "-".join(parts)
    if REMEDY_CONFIGS.get(name, remedies) != remedies:  # a name taken by another config
        name += f"-{abs(hash(remedies)):x}"
    REMEDY_CONFIGS[name] = remedies
    return name
