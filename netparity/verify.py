"""``netparity verify``: a user's own PyTorch or flax/optax model, checked stage by stage
against the NumPy reference.

The user file defines factories (docs/verify.md has the whole contract):

    FRAMEWORK = "torch"                      # or "jax"
    OUTPUT = "sigmoid"                       # sigmoid: planar data (n_y = 1); softmax: spirals (n_y = 3)
    HIDDEN = "tanh"                          # the hidden activation the model uses
    LAYER_DIMS = (2, 4, 1)                   # optional (default: n_x, 4, n_y)
    STEPS, BATCH_SIZE, DTYPE = 2, None, "float64"
    REFERENCE_OPTIMIZER = {"name": "momentum", "learning_rate": 0.5, "beta": 0.9}  # optional
    def make_model(layer_dims): ...          # torch nn.Module / flax nnx.Module: rows in, logits out
    def make_optimizer(params): ...          # torch: a torch.optim optimiser on params; jax: optax
    def make_loss(): ...                     # loss(logits (m, n_y), y (m, n_y)) -> scalar
    def make_scheduler(optimizer): ...       # optional (torch)
    def train_step(model, optimizer, loss_fn, x, y): ...   # optional: your own loop body
    def load_parameters(model, parameters): ...            # optional: your own weight loader

netparity copies the reference's initial weights into the model (Linear / Dense layers in
order, transposing where the layout needs it), runs k steps on the reference's data and
batch order, captures every stage it can (Z, A per layer through hooks, the cost, every
gradient, the updated parameters and optimiser state) and compares them with
``netparity.runner`` (the same helper, bounds and table as ``netparity check``). Steps are
checked one by one (k = 1, then 2, ...), so the report names the first diverging step and
stage; where the divergence matches a known convention difference (the conventions tables
of torch_impl/ and jax_impl/) it says which, and how to fix it.
"""
from dataclasses import dataclass, field
import importlib.util
import math
import os

import numpy as np

import reference as R
from netparity.runner import compare_case
from netparity.stagenames import stages_for_path

DATA = {"sigmoid": "planar", "softmax": "spirals"}
FRAMEWORKS = ("torch", "jax")


class VerifyInputError(ValueError):
    """The user file or an option cannot be used (the CLI prints it and exits 2)."""


@dataclass(frozen=True)
class VerifyCase:
    """The configuration of one verify step, shaped like a conformance Case for the runner
    and the tables (backend = the user's file, path = its framework)."""
    backend: str
    path: str
    dtype: str
    hidden: str
    output: str
    dims: tuple
    optimizer: str
    batch: str
    steps: int
    device: str = "cpu"
    arch: str = "user"
    tf32: bool = False

    def layer_dims(self):
        return self.dims

    @property
    def id(self):
        return (f"{self.backend}-{self.path}-{self.device}-{self.dtype}-{self.hidden}-{self.output}-"
                f"{'x'.join(map(str, self.dims))}-{self.optimizer}-{self.batch}-{self.steps}step")

    def context(self):
        return {"case": self.id}


@dataclass
class StepCheck:
    step: int                 # 1-based: the stages recorded during update number `step`
    result: object            # runner.CaseResult
    missing: list             # stages the reference has that the model's run did not yield


@dataclass
class VerifyResult:
    name: str
    framework: str
    config: dict
    checks: list = field(default_factory=list)
    hints: list = field(default_factory=list)

    @property
    def ok(self):
        return bool(self.checks) and all(c.result.ok for c in self.checks)

    def first_divergence(self):
        """(step, against, StageResult) of the first stage out of bound, or None."""
        for c in self.checks:
            d = c.result.first_divergence()
            if d:
                return (c.step,) + d
        return None


# ------------------------------------------------------------------ the user file

def load_user_file(path):
    """Import the user's file as a module (clear errors for what is missing)."""
    if not os.path.isfile(path):
        raise VerifyInputError(f"no such file: {path}")
    name = "netparity_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise VerifyInputError(f"{path}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # the user's code: report it, whatever it is
        raise VerifyInputError(f"{path}: importing it raised {type(e).__name__}: {e}") from e
    pure_jax = callable(getattr(mod, "apply", None))   # a pure apply(params, x) needs no module
    for fn in ("make_model", "make_optimizer", "make_loss"):
        if fn == "make_model" and pure_jax:
            continue
        if not callable(getattr(mod, fn, None)):
            raise VerifyInputError(f"{path}: defines no {fn}() (see docs/verify.md for the factories "
                                   "a verify file defines)")
    fw = getattr(mod, "FRAMEWORK", None)
    if fw not in FRAMEWORKS:
        raise VerifyInputError(f"{path}: FRAMEWORK must be one of {', '.join(FRAMEWORKS)}, got {fw!r}")
    return mod


def _reference_optimizer(spec, inferred):
    if spec is None:
        return inferred
    if isinstance(spec, R.Optimizer):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    try:
        return R.Optimizer(**dict(spec))
    except (TypeError, ValueError) as e:
        raise VerifyInputError(f"reference optimizer {spec!r}: {e}") from e


def user_config(mod, steps=None, dtype=None, batch_size=None):
    output = getattr(mod, "OUTPUT", "sigmoid")
    if output not in DATA:
        raise VerifyInputError(f"OUTPUT must be one of {', '.join(DATA)}, got {output!r}")
    hidden = getattr(mod, "HIDDEN", "tanh")
    if hidden not in R.HIDDEN_ACTIVATIONS:
        raise VerifyInputError(f"HIDDEN must be one of {', '.join(R.HIDDEN_ACTIVATIONS)}, got {hidden!r}")
    X, Y = R.load_dataset(DATA[output])
    dims = tuple(getattr(mod, "LAYER_DIMS", (X.shape[0], 4, Y.shape[0])))
    if len(dims) < 2 or dims[0] != X.shape[0] or dims[-1] != Y.shape[0]:
        raise VerifyInputError(f"LAYER_DIMS {dims}: the {DATA[output]} data needs n_x = {X.shape[0]} "
                               f"inputs and n_y = {Y.shape[0]} outputs")
    steps = steps if steps is not None else getattr(mod, "STEPS", 2)
    if not isinstance(steps, int) or steps < 1:
        raise VerifyInputError(f"steps must be a positive integer, got {steps!r}")
    dtype = dtype or getattr(mod, "DTYPE", "float64")
    if dtype not in ("float64", "float32"):
        raise VerifyInputError(f"dtype must be float64 or float32, got {dtype!r}")
    batch_size = batch_size if batch_size is not None else getattr(mod, "BATCH_SIZE", None)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise VerifyInputError(f"batch size must be a positive integer, got {batch_size!r}")
    return {"output": output, "hidden": hidden, "data": DATA[output], "layer_dims": dims,
            "steps": steps, "dtype": dtype, "batch_size": batch_size,
            "init": "article" if len(dims) == 3 else "xavier"}


def batches_for(m, batch_size, steps, seed=0):
    """The reference's batch order (reference.batch_order, epoch after epoch), cut to ``steps``."""
    out, epoch = [], 0
    while len(out) < steps:
        out.extend(R.batch_order(m, batch_size, seed, epoch))
        epoch += 1
    return out[:steps]


# ------------------------------------------------------------------ framework adapters

def _torch_runner(mod, cfg, ref_opt_spec):
    import torch
    from torch_impl import conventions, idiomatic
    dims = cfg["layer_dims"]
    probe = mod.make_model(dims)
    if not isinstance(probe, torch.nn.Module):
        raise VerifyInputError(f"make_model returned {type(probe).__name__}, not a torch.nn.Module")
    _refuse_foreign_layers(idiomatic.foreign_layers(probe))
    probe_opt = mod.make_optimizer(probe.parameters())
    sched_fn = getattr(mod, "make_scheduler", None)
    try:
        inferred = conventions.reference_optimizer_for(
            probe_opt, sched_fn(probe_opt) if sched_fn else None)
    except ValueError as e:
        if ref_opt_spec is None:
            raise VerifyInputError(f"cannot infer the reference optimiser from yours ({e}); "
                                   "name it with REFERENCE_OPTIMIZER or --optimizer") from e
        inferred = None
    ref_opt = _reference_optimizer(ref_opt_spec, inferred)
    user_step = getattr(mod, "train_step", None)
    loader = getattr(mod, "load_parameters", None)

    def run(parameters, X, Y, batches):
        model = mod.make_model(dims)
        to = getattr(torch, cfg["dtype"])
        model = model.to(to)
        opt = mod.make_optimizer(model.parameters())
        sched = sched_fn(opt) if sched_fn else None
        stages, _ = idiomatic.run_steps(model, opt, mod.make_loss(), parameters, X, Y, batches,
                                        cfg["output"], scheduler=sched, dtype=cfg["dtype"],
                                        step_fn=user_step, reference_optimizer=ref_opt,
                                        targets=getattr(mod, "targets", None), loader=loader)
        return stages
    return run, ref_opt


def _jax_runner(mod, cfg, ref_opt_spec):
    from jax_impl import idiomatic
    if ref_opt_spec is None:
        raise VerifyInputError("an optax transformation cannot be read back into hyper-parameters: "
                               "name the reference optimiser with REFERENCE_OPTIMIZER or --optimizer")
    ref_opt = _reference_optimizer(ref_opt_spec, None)
    dims = cfg["layer_dims"]
    user_load = getattr(mod, "load_parameters", None)
    pure = callable(getattr(mod, "apply", None))
    if pure and not callable(getattr(mod, "init_params", None)):
        raise VerifyInputError("a pure apply(params, x) also needs init_params(layer_dims) -> its params pytree")

    if not pure:
        from flax import nnx
        probe = mod.make_model(dims)
        if isinstance(probe, nnx.Module):
            _refuse_foreign_layers(idiomatic.foreign_layers(probe))

    def run(parameters, X, Y, batches):
        model = mod.apply if pure else mod.make_model(dims)
        params = mod.init_params(dims) if pure else None
        stages, _ = idiomatic.run_steps(model, mod.make_optimizer(), mod.make_loss(), parameters, X, Y,
                                        batches, cfg["output"], dtype=cfg["dtype"], params=params,
                                        load=user_load, optimizer=ref_opt)
        return stages
    return run, ref_opt


def _refuse_foreign_layers(found):
    """A model with a layer the reference network has none of (batch norm, dropout, ...)
    would only ever "diverge at A1": say what it is instead, before any work."""
    if found:
        where, what, why = found[0]
        more = f" (and {len(found) - 1} more such layer{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
        raise VerifyInputError(
            f"make_model's model has {what} at {where}{more}: it {why}, and the network verify "
            "compares with (docs/spec.md) is Linear layers and activations only. netparity checks its "
            "own batch norm and dropout against the reference's: netparity check --batch-norm / "
            "--keep-prob (docs/remedies.md)")


ADAPTERS = {"torch": _torch_runner, "jax": _jax_runner}


# ------------------------------------------------------------------ verify

def verify(path, steps=None, dtype=None, batch_size=None, optimizer=None):
    """Check the model of the user file ``path``; returns a VerifyResult.

    ``optimizer`` (a reference.Optimizer, a dict of its fields, or a name) is the reference
    optimiser to compare with; default: the file's REFERENCE_OPTIMIZER, else the one
    inferred from the user's optimiser (torch)."""
    mod = load_user_file(path)
    cfg = user_config(mod, steps, dtype, batch_size)
    spec = optimizer if optimizer is not None else getattr(mod, "REFERENCE_OPTIMIZER", None)
    run, ref_opt = ADAPTERS[mod.FRAMEWORK](mod, cfg, spec)
    X, Y = R.load_dataset(cfg["data"])
    p0 = R.initialize_network(cfg["layer_dims"], init=cfg["init"], seed=1)
    batches = batches_for(X.shape[1], cfg["batch_size"], cfg["steps"])
    name = os.path.basename(path)
    cfg = {**cfg, "optimizer": ref_opt}
    result = VerifyResult(name, mod.FRAMEWORK, cfg)
    from netparity.stages import expected_for
    previous = None
    for k in range(1, cfg["steps"] + 1):
        exp = expected_for(p0, X, Y, batches[:k], cfg["hidden"], cfg["output"], ref_opt, cfg["dtype"])
        try:
            got = run(p0, X, Y, batches[:k])
        except (ValueError, TypeError, RuntimeError) as e:
            raise VerifyInputError(f"running your model failed at step {k}: {type(e).__name__}: {e}") from e
        case = VerifyCase(name, f"{mod.FRAMEWORK}-user", cfg["dtype"], cfg["hidden"], cfg["output"],
                          cfg["layer_dims"], ref_opt.name,
                          "full" if cfg["batch_size"] is None else f"batch{cfg['batch_size']}", k)
        # compare what the model's run yields; what it cannot yield is listed, not failed
        order = stages_for_path(exp.order, "idiomatic", ref_opt.name)   # torch/optax SGD: no t
        present = [s for s in order if s in got]
        missing = [s for s in order if s not in got]
        res = compare_case(case, got, _restrict(exp, present))
        result.checks.append(StepCheck(k, res, missing))
        if not res.ok:
            result.hints = [with_fix(h, mod.FRAMEWORK)
                            for h in diagnose(res, got, exp, previous, p0, X, Y, batches[:k], cfg)]
            break
        previous = (got, exp)
    return result


def _restrict(exp, order):
    from dataclasses import replace
    return replace(exp, order=list(order))


# ------------------------------------------------------------------ hints

def with_fix(hint, framework):
    """The hint, followed by the fix that the framework's conventions table gives for the
    convention key the hint ends with ("... [momentum.ema]")."""
    import importlib
    import re
    m = re.search(r"\[([\w.]+)\]$", hint)
    if not m:
        return hint
    table = importlib.import_module(f"{'torch_impl' if framework == 'torch' else 'jax_impl'}.conventions")
    row = table.CONVENTIONS_BY_KEY.get(m.group(1))
    return hint if row is None else f"{hint}; fix ({framework} conventions): {row.mapping}"


def _close(a, b, rtol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and np.all(np.isfinite(a)) and np.allclose(a, b, rtol=rtol,
                                                                          atol=rtol * np.abs(b).max())


def diagnose(res, got, exp, previous, p0, X, Y, batches, cfg):
    """Known convention differences that explain the first divergence, as sentences."""
    rtol = 1e-6 if cfg["dtype"] == "float64" else 1e-3
    _, first = res.first_divergence()
    stage, ref = first.stage, exp.ref
    L = len(cfg["layer_dims"]) - 1
    m = len(batches[-1])
    n_y = cfg["layer_dims"][-1]
    hints = []
    if stage.startswith("cost_") and stage in got:
        r = float(got[stage]) / float(ref[stage]) if float(ref[stage]) != 0 else math.nan
        for factor, text in ((1 / n_y, f"the cost is the reference's / n_y (n_y = {n_y}): a mean over all "
                                       "n_y*m entries (BCEWithLogitsLoss(), optax's "
                                       "sigmoid_binary_cross_entropy(...).mean(), a .mean() of per-entry "
                                       "losses); the course divides by m only: sum, then divide by m "
                                       "[loss.bce_mean]"),
                             (m, f"the cost is m = {m} times the reference's: reduction='sum' (or .sum()) "
                                 "where the course takes the mean over the examples"),
                             (1 / m, f"the cost is the reference's / m (m = {m}): divided by m twice")):
            if n_y > 1 or factor != 1 / n_y:
                if abs(r - factor) <= rtol * max(1.0, factor):
                    hints.append(text)
    if stage == f"A{L}" and f"A{L}" in got:
        act = (lambda a: 1 / (1 + np.exp(-a))) if cfg["output"] == "sigmoid" else (
            lambda a: np.exp(a - a.max(0)) / np.exp(a - a.max(0)).sum(0))
        if _close(got[stage], act(ref[stage]), rtol):
            hints.append(f"A{L} is {cfg['output']}({cfg['output']}(Z{L})): the model already applies "
                         f"{cfg['output']} to its output and the loss applies it again. Return the logits "
                         "(drop the final activation): BCEWithLogitsLoss / CrossEntropyLoss / optax's "
                         "*_cross_entropy take logits [output.logits]")
    if stage.startswith("Z") and stage in got:
        # the network as it computes if every W went in without a transpose (a square W as
        # it is, any W reshaped to the (in, out) kernel shape: kernel^T = reshape(W)^T),
        # forward to the diverging layer (the layers before it may not be captured)
        l = int(stage[1:])
        params = p0 if not previous else {k: previous[1].ref[f"{k}'"] for k in p0}
        A = X[:, batches[-1]].astype(cfg["dtype"])
        for j in range(1, l + 1):
            W = params[f"W{j}"]
            Z = W.reshape(W.shape[1], W.shape[0]).T @ A + params[f"b{j}"]
            A = R.activation(cfg["hidden"], Z)
        if _close(got[stage], Z, rtol):
            hints.append(f"{stage} is what the network computes when each W went into its layer without a "
                         "transpose (reshaped to the kernel's shape, or a square W as it is): a flax kernel "
                         "is (in, out) = Wᵀ, torch's Linear.weight (out, in) = W; reshape is not a transpose, "
                         "and a square layer hides it from every shape check [layout.weight]")
    if stage.startswith("dW") and previous is not None and stage in got:
        acc = sum(_step_grad(p0, X, Y, batches[:j], cfg, stage) for j in range(1, len(batches) + 1))
        if _close(got[stage], acc, rtol):
            hints.append(f"the gradients at step {len(batches)} equal the sum of the gradients of steps 1.."
                         f"{len(batches)}: gradients accumulate (optimizer.zero_grad() is missing before "
                         "backward()) [grad.zero_grad]")
    if stage.endswith("'") and stage[0] in "Wb" and cfg["optimizer"].name == "momentum":
        k = stage[:-1]
        before = p0[k] if not previous else previous[1].ref[stage]
        beta = cfg["optimizer"].beta
        d_got, d_ref = before - got[stage], before - ref[stage]
        form = cfg["optimizer"].momentum_form
        if form == "ema" and _close(d_got * (1 - beta), d_ref, rtol):
            hints.append("the update is 1/(1-beta) times the reference's: it looks like heavy-ball momentum "
                         "(torch.optim.SGD(momentum=beta) / optax.sgd(momentum=beta)) compared with the "
                         "course's EMA momentum. Use lr*(1-beta) in your optimiser, or compare with "
                         "momentum_form='heavy_ball' [momentum.ema]")
        if form == "heavy_ball" and _close(d_got, d_ref * (1 - beta), rtol):
            hints.append("the update is (1-beta) times the reference's: your optimiser looks like the EMA "
                         "form (or lr*(1-beta)) compared with heavy-ball momentum [momentum.heavy_ball]")
    return hints


def _step_grad(p0, X, Y, batches, cfg, stage):
    from netparity.stages import expected_for
    return expected_for(p0, X, Y, batches, cfg["hidden"], cfg["output"], cfg["optimizer"],
                        cfg["dtype"]).ref[stage]

