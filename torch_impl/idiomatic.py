"""The network as PyTorch users write it, and the adapter that runs any such model the
way the reference runs its own, capturing every stage in the reference's names and layout.

    model = Net((2, 4, 1), hidden="tanh", output="sigmoid")          # nn.Linear layers
    opt, sched = conventions.torch_optimizer_for(R.Optimizer("adam", 0.01), model.parameters())
    stages, costs = run_steps(model, opt, make_loss("sigmoid"), parameters, X, Y, batches,
                              "sigmoid", scheduler=sched)

Every convention difference between the two (layout, momentum form, loss normalisation,
schedules) is a row of ``conventions.CONVENTIONS``; this module only applies them.

The adapter's design: the loop body is a *step function*
``step_fn(model, torch_optimizer, loss_fn, x, y) -> loss`` (default ``idiomatic_step``:
zero_grad, forward, loss, backward, step), and all capture is done from the outside by
hooks, so a user's own step function (gradient clipping, a forgotten zero_grad, two
backward passes) runs unchanged and is observed the same way:
- forward pre-hooks on each nn.Linear: its input A^[l-1] (and a tensor hook for dA^[l-1]);
- forward hooks on each nn.Linear: its output Z^[l] (and a tensor hook for dZ^[l]);
- a forward hook on the model: the logits (A^[L] = sigmoid/softmax of them, the costs);
- an optimiser step pre-hook: .grad just before the update (dW^[l], db^[l]).
Hooks are registered for the last step only and removed afterwards (also on error); they
record the step's first forward pass and first optimizer.step() (a forward for logging after
the update is ignored).
"""
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reference.activations import (LEAKY_SLOPE, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS,
                                   check_activation)
from reference.optim import Optimizer
from ._convert import from_numpy, to_numpy, torch_dtype
from . import conventions
from reference.costs import unknown_cost

# torch's own activations. Their autograd derivative at z = 0 is the reference's
# (measured in tests/test_idiomatic_torch.py): torch.relu -> 0, F.leaky_relu -> 0.01.
HIDDEN = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": functools.partial(F.leaky_relu, negative_slope=LEAKY_SLOPE),
}


def output_activation(output, logits):
    """A^[L] from the logits, in rows: sigmoid, or softmax over the n_y classes (dim 1)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    return torch.sigmoid(logits) if output == "sigmoid" else torch.softmax(logits, dim=1)


class Net(nn.Module):
    """The L-layer network: nn.Linear layers with ``hidden`` between them.

    forward(x): x is (m, n_x) (examples are rows), returns the logits Z^[L] (m, n_y);
    the output function (sigmoid / softmax) belongs to the loss (``make_loss``).
    Weights start as nan: the reference is the source of every number
    (``load_reference_parameters``), and nn.Linear's own initialiser would draw from
    torch's global RNG; nan makes a forgotten load impossible to miss.
    """

    def __init__(self, layer_dims, hidden="tanh", output="sigmoid", dtype=torch.float64, device="cpu"):
        super().__init__()
        check_activation(hidden, HIDDEN_ACTIVATIONS)
        check_activation(output, OUTPUT_ACTIVATIONS)
        self.hidden, self.output = hidden, output
        dtype = torch_dtype(dtype)
        self.layers = nn.ModuleList(
            nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=dtype, device=device)
            for n_in, n_out in zip(layer_dims[:-1], layer_dims[1:]))
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(float("nan"))

    def forward(self, x):
        g = HIDDEN[self.hidden]
        for layer in self.layers[:-1]:
            x = g(layer(x))
        return self.layers[-1](x)


# ---------------------------------------------------------------- losses


def _sum_over_m(fn, cost):
    """loss(logits (m, n_y), y (m, n_y)) = fn(logits, y) / m, tagged with its cost name."""
    def loss_fn(logits, y):
        return fn(logits, y) / logits.shape[0]
    loss_fn.cost = cost
    return loss_fn


def make_loss(output, cost="stable"):
    """The idiomatic loss for the reference's cost, normalised like the reference (1/m):
    loss_fn(logits (m, n_y), y (m, n_y) = Y.T) -> 0-d tensor, with ``loss_fn.cost`` the
    stage name it produces ("stable" -> cost_stable, "literal" -> cost_literal).

    sigmoid, stable:  nn.BCEWithLogitsLoss(reduction="sum") / m. The default "mean"
                      divides by n_y * m (every entry), the reference by m: equal only
                      for n_y = 1 (convention "loss.bce_mean").
    softmax, stable:  nn.CrossEntropyLoss() with probability targets y = Y.T: its "mean"
                      divides by m, as the reference. Probabilities rather than class
                      indices: every loss here takes the same target tensor, and the
                      formula is the reference's sum_j -y_j log softmax_j for any Y (class
                      indices assume one-hot Y; they give the same value then).
    sigmoid, literal: nn.BCELoss(reduction="sum")(torch.sigmoid(logits), y) / m; BCELoss
                      clamps each log at -100 (convention "loss.bce_clamp").
    softmax, literal: the NLL of log(softmax): -(y * log(softmax(logits))).sum() / m.
    """
    check_activation(output, OUTPUT_ACTIVATIONS)
    if cost == "stable":
        if output == "sigmoid":
            return _sum_over_m(nn.BCEWithLogitsLoss(reduction="sum"), cost)
        ce = nn.CrossEntropyLoss()   # the mean over the m rows is the reference's 1/m
        ce.cost = cost
        return ce
    if cost == "literal":
        if output == "sigmoid":
            bce = nn.BCELoss(reduction="sum")
            return _sum_over_m(lambda z, y: bce(torch.sigmoid(z), y), cost)
        return _sum_over_m(lambda z, y: -(y * torch.log(torch.softmax(z, dim=1))).sum(), cost)
    raise unknown_cost(cost)


def cost_name(loss_fn):
    """"stable" or "literal": ``loss_fn.cost`` if set, else from the torch loss class
    (BCEWithLogitsLoss, CrossEntropyLoss take logits: stable; BCELoss, NLLLoss take
    probabilities / log-probabilities: literal); anything else is taken as stable."""
    named = getattr(loss_fn, "cost", None)
    if named in ("stable", "literal"):
        return named
    if isinstance(loss_fn, (nn.BCELoss, nn.NLLLoss)):
        return "literal"
    return "stable"


@torch.no_grad()
def reference_costs(logits, y, output):
    """Both of the reference's costs from the logits (m, n_y) and y = Y.T (m, n_y), in
    their dtype, outside autograd: the literal formula (no clamp: inf/nan at saturation
    as in reference.cross_entropy) and the stable one from logits."""
    m = logits.shape[0]
    if output == "sigmoid":
        a = torch.sigmoid(logits)
        literal = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum() / m
        stable = F.binary_cross_entropy_with_logits(logits, y, reduction="sum") / m
    else:
        literal = -(y * torch.log(torch.softmax(logits, dim=1))).sum() / m
        stable = F.cross_entropy(logits, y)
    return {"cost_literal": literal, "cost_stable": stable}


# ---------------------------------------------------------------- weights


def linear_layers(model):
    """[(qualified name, nn.Linear)] in module traversal order (= the reference's l = 1..L)."""
    return [(name, mod) for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]


def _describe(i, name, lin):
    where = f"model.{name}" if name else "model"
    return f"layer {i} ({where}: Linear({lin.in_features}->{lin.out_features}))"


def reference_names(model):
    """{"W1": weight, "b1": bias, ...}: the reference's name of each nn.Linear parameter."""
    names = {}
    for i, (_, lin) in enumerate(linear_layers(model), start=1):
        names[f"W{i}"], names[f"b{i}"] = lin.weight, lin.bias
    return names


def load_reference_parameters(model, parameters):
    """Copy the reference's W1 b1 ... WL bL (NumPy, W (n_l, n_{l-1}), b (n_l, 1)) into the
    model's nn.Linear layers in module order: weight = W (same layout), bias = b[:, 0],
    cast to each layer's dtype and device. The Parameter objects stay the same (an
    optimiser built on them keeps working). ValueError naming the layer when the count
    or a shape does not match or a layer has no bias."""
    layers = linear_layers(model)
    L = len(parameters) // 2
    if len(layers) != L or any(f"W{i}" not in parameters or f"b{i}" not in parameters
                               for i in range(1, L + 1)):
        found = ", ".join(_describe(i, n, m) for i, (n, m) in enumerate(layers, start=1)) or "none"
        raise ValueError(f"the model has {len(layers)} nn.Linear layers ({found}) but the reference "
                         f"parameters are {', '.join(parameters)} ({L} layers)")
    for i, (name, lin) in enumerate(layers, start=1):
        W, b = np.asarray(parameters[f"W{i}"]), np.asarray(parameters[f"b{i}"])
        what = _describe(i, name, lin)
        if lin.bias is None:
            raise ValueError(f"{what} has no bias (bias=False) but the reference has b{i} {b.shape}: "
                             "build it with bias=True")
        if tuple(lin.weight.shape) != W.shape:
            raise ValueError(f"{what} has weight {tuple(lin.weight.shape)} but W{i} is {W.shape}")
        if b.shape != (lin.out_features, 1):
            raise ValueError(f"{what} has bias ({lin.out_features},) but b{i} is {b.shape}")
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b[:, 0])))


# ---------------------------------------------------------------- the adapter


def idiomatic_step(model, torch_optimizer, loss_fn, x, y, zero_grad=True):
    """The loop body PyTorch users write; returns the loss (0-d tensor)."""
    if zero_grad:
        torch_optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    torch_optimizer.step()
    return loss


def _rows(X, idx, dtype, device):
    # the reference's batch X[:, idx] (n, m) as torch rows (m, n)
    return from_numpy(np.ascontiguousarray(X[:, idx].T), dtype, device)


class _Capture:
    """Hooks that record one step's stages in the reference's names and layout: of the
    step's first forward pass (a later one, e.g. for logging after the update, is
    ignored) and of its first optimizer.step()."""

    def __init__(self, model, torch_optimizer, m):
        self.m, self.out, self.handles = m, {}, []
        self.forwards, self.stepped = 0, False
        self.layers = [lin for _, lin in linear_layers(model)]
        # registered first, so it runs before the Linear hooks even if model is a Linear
        self.handles.append(model.register_forward_pre_hook(self._count))
        for i, lin in enumerate(self.layers, start=1):
            self.handles.append(lin.register_forward_pre_hook(functools.partial(self._input, i)))
            self.handles.append(lin.register_forward_hook(functools.partial(self._output, i)))
        self.handles.append(model.register_forward_hook(self._logits))
        self.handles.append(torch_optimizer.register_step_pre_hook(self._grads))

    def _count(self, module, args):
        self.forwards += 1

    def _store_grad(self, key, g):
        # autograd gives dJ/dZ (rows); the reference's dZ, dA are m * dJ/dZ (columns)
        self.out[key] = (self.m * g).T.detach().clone()

    def _input(self, i, module, args):
        if self.forwards != 1:
            return
        a = args[0]
        if i > 1:  # A0 = X is not a stage
            self.out[f"A{i - 1}"] = a.T.detach().clone()
        if a.requires_grad:
            a.register_hook(functools.partial(self._store_grad, f"dA{i - 1}"))

    def _output(self, i, module, args, z):
        if self.forwards != 1:
            return
        self.out[f"Z{i}"] = z.T.detach().clone()
        if z.requires_grad:
            z.register_hook(functools.partial(self._store_grad, f"dZ{i}"))

    def _logits(self, module, args, logits):
        if self.forwards == 1:
            self.logits = logits.detach().clone()

    def _grads(self, torch_optimizer, args, kwargs):
        if self.stepped:
            return
        self.stepped = True
        for i, lin in enumerate(self.layers, start=1):
            if lin.weight.grad is not None:
                self.out[f"dW{i}"] = lin.weight.grad.detach().clone()
            if lin.bias.grad is not None:
                self.out[f"db{i}"] = lin.bias.grad.detach().reshape(-1, 1).clone()

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def _stage_order(L, state_keys):
    fwd = [f"{p}{i}" for i in range(1, L + 1) for p in ("Z", "A")] + ["cost_literal", "cost_stable"]
    bwd = [s for i in range(L, 0, -1) for s in (f"dZ{i}", f"dW{i}", f"db{i}", f"dA{i - 1}")]
    upd = [f"{p}{i}'" for i in range(1, L + 1) for p in ("W", "b")] + [f"{k}'" for k in state_keys]
    return fwd + bwd + upd


def _numpy(v):
    if isinstance(v, int):
        return v
    return to_numpy(v)


def run_steps(model, torch_optimizer, loss_fn, parameters, X, Y, batches, output, *, scheduler=None,
              dtype="float64", device="cpu", zero_grad=True, step_fn=None, targets=None, cost=None,
              reference_optimizer=None, loader=None):
    """Run a torch model the way the reference trains its own and capture the last step.

    model: any nn.Module taking (m, n_x) rows and returning logits (m, n_y) whose nn.Linear
        layers (module order) are the reference's layers 1..L; ``parameters`` (the
        reference's NumPy W1 b1 ...) are copied into them first, and any .grad is cleared.
    torch_optimizer, scheduler: built on model.parameters() by the caller (fresh).
    loss_fn(logits, targets(y)) -> 0-d tensor, y = Y[:, idx].T (m, n_y) in ``dtype``;
        ``targets`` (default: identity) converts y for losses that want something else,
        e.g. ``lambda y: y.argmax(1)`` for class indices.
    X (n_x, m), Y (n_y, m): NumPy, the reference's layout; batches: a list of NumPy index
        arrays into their columns, one per update (e.g. netparity.stages.batch_sequence).
    output: "sigmoid" | "softmax", the output function the loss applies (for A^[L]).
    step_fn(model, torch_optimizer, loss_fn, x, y) -> loss: the loop body; default
        ``idiomatic_step`` (optimizer.zero_grad() unless zero_grad=False, forward, loss,
        backward, step). scheduler.step() follows every step_fn call.
    cost: the stage name of the loss value, "stable" | "literal" (default: cost_name(loss_fn)).
    reference_optimizer: how to read the optimiser state (momentum form); default
        conventions.reference_optimizer_for(torch_optimizer, scheduler).
    loader(model, parameters): copies the reference's parameters into the model; default
        ``load_reference_parameters`` (a user's own loader is what ``netparity verify`` checks
        when the user file defines ``load_parameters``).

    Returns (stages, costs): stages of the last step as NumPy arrays in the reference's
    names and layout (Zl, Al, cost_literal, cost_stable, dZl dWl dbl dA{l-1}, Wl' bl',
    and the state: vdP' sdP' as mapped by conventions.state_to_reference, t' only where
    torch keeps a counter (Adam)); costs: the loss value of every step (Python floats).
    """
    dtype = torch_dtype(dtype)
    p_dtypes = {p.dtype for p in model.parameters()}
    if p_dtypes != {dtype}:
        raise ValueError(f"the model's parameters are {sorted(map(str, p_dtypes))} but dtype is {dtype}: "
                         "build the model in that dtype (or call model.to(dtype) before the optimiser)")
    if len(batches) == 0:
        raise ValueError("batches is empty: give at least one array of column indices")
    if step_fn is None:
        step_fn = functools.partial(idiomatic_step, zero_grad=zero_grad)
    targets = targets or (lambda y: y)
    cost = cost or cost_name(loss_fn)
    if reference_optimizer is None:
        reference_optimizer = conventions.reference_optimizer_for(torch_optimizer, scheduler)
    (loader or load_reference_parameters)(model, parameters)
    model.zero_grad(set_to_none=True)
    costs, cap = [], None
    try:
        for k, idx in enumerate(batches):
            x, y = _rows(X, idx, dtype, device), _rows(Y, idx, dtype, device)
            if k == len(batches) - 1:
                x.requires_grad_(True)     # for dA0
                cap = _Capture(model, torch_optimizer, len(idx))
            loss = step_fn(model, torch_optimizer, loss_fn, x, targets(y))
            if scheduler is not None:
                scheduler.step()
            costs.append(float(loss.detach()))
    finally:
        if cap is not None:
            cap.remove()
    out = cap.out
    out[f"A{len(cap.layers)}"] = output_activation(output, cap.logits).T
    out.update(reference_costs(cap.logits, y, output))
    out[f"cost_{cost}"] = loss.detach()
    names = reference_names(model)
    for k, p in names.items():
        out[f"{k}'"] = p.detach().reshape(-1, 1).clone() if p.ndim == 1 else p.detach().clone()
    state = conventions.state_to_reference(torch_optimizer, names, reference_optimizer)
    out.update({f"{k}'": v for k, v in state.items()})
    order = _stage_order(len(cap.layers), state)
    stages = {s: _numpy(out[s]) for s in order if s in out}
    return stages, costs


def layer_dims_of(parameters):
    """(n_x, n_1, ..., n_L) from the reference's W1 ... WL."""
    L = len(parameters) // 2
    return (parameters["W1"].shape[1],) + tuple(parameters[f"W{i}"].shape[0] for i in range(1, L + 1))


def run_idiomatic(parameters, X, Y, batches, hidden="tanh", output="sigmoid", optimizer=Optimizer(),
                  dtype="float64", device="cpu", cost="stable"):
    """The idiomatic path: Net + make_loss + conventions.torch_optimizer_for, run by
    run_steps over ``batches``; returns the stages of the last step (a dict of NumPy
    arrays in the reference's names and layout; no "t'" for gd / momentum)."""
    model = Net(layer_dims_of(parameters), hidden, output, dtype, device)
    torch_optimizer, scheduler = conventions.torch_optimizer_for(optimizer, model.parameters())
    stages, _ = run_steps(model, torch_optimizer, make_loss(output, cost), parameters, X, Y, batches,
                          output, scheduler=scheduler, dtype=dtype, device=device,
                          reference_optimizer=optimizer)
    return stages
