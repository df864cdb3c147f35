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
from reference.validate import check_batches
from ._convert import from_numpy, to_numpy, torch_dtype
from . import conventions
from reference.costs import unknown_cost
from reference.remedies import (ConventionUnsupported, layer_dims_of as remedy_layer_dims,
                               layout as remedy_layout, skip_layers)

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


# layers the reference network has no counterpart of, whatever weights are loaded: they
# normalise with statistics of the batch (or the row), or draw their own random mask
NORMALISING = tuple(getattr(nn, n) for n in (
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "LayerNorm", "GroupNorm", "RMSNorm", "LocalResponseNorm") if hasattr(nn, n))
DROPOUT = tuple(getattr(nn, n) for n in (
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout") if hasattr(nn, n))


def foreign_layers(model):
    """[(where, what, why)] for each layer of ``model`` that no weights can make the
    reference network's: a normalisation layer, or dropout with p > 0 (in train mode it
    draws its own mask). Activations, containers and nn.Linear are the network's own."""
    out = []
    for name, mod in model.named_modules():
        where = f"model.{name}" if name else "model"
        if isinstance(mod, NORMALISING):
            out.append((where, type(mod).__name__, "normalises with statistics of each batch or row"))
        elif isinstance(mod, DROPOUT) and mod.p > 0:
            out.append((where, f"{type(mod).__name__}(p={mod.p})", "draws its own random mask at every "
                        "training step (set p=0 or remove it to verify the rest)"))
    return out


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
    check_batches(batches)
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


# ---------------------------------------------------------------- the remedies (docs/remedies.md)


class InjectedDropout(nn.Dropout):
    """nn.Dropout's semantics with the mask given rather than drawn.

    nn.Dropout(p) takes the DROP probability p = 1 - keep_prob; in train mode it returns
    x * bernoulli(1 - p) / (1 - p), in eval mode x unchanged (convention dropout.keep_prob).
    It draws its mask from torch's global generator, so no seed makes it the reference's
    ``D{l} = rand(n, m) < keep_prob`` (NumPy's RandomState): every backend receives the
    reference's masks as inputs (docs/remedies.md), and this module multiplies by the given
    one. ``mask``: (m, n) 0/1 rows, set before each forward (``RemedyNet.set_masks``).
    Divides by ``keep_prob`` itself: 1 - (1 - keep_prob) need not round back to it
    (1 - (1 - 0.7) = 0.7000000000000001), and nn.Dropout multiplies by the rounded
    1 / (1 - p) (convention dropout.mask)."""

    def __init__(self, keep_prob):
        super().__init__(p=1.0 - keep_prob)
        self.keep_prob = keep_prob
        self.mask = None

    def forward(self, x):
        if not self.training or self.keep_prob == 1.0 or self.mask is None:
            return x
        return x * self.mask / self.keep_prob


class RemedyNet(nn.Module):
    """The remedies' network as PyTorch users write it (examples are rows):

        hidden l:  Z = linear_l(A)            nn.Linear, bias=False when batch-normalised
                   Zt = norms[l](Z)           nn.BatchNorm1d(momentum=1 - bn_momentum, eps=bn_eps)
                   S = A^[l-2] or skips[l](A^[l-2])   (l = 3, 5, ...; projected when widths differ)
                   H = Zt + S ("before") or Zt;  A = g(H) (+ S, "after");  A = drops[l](A)
        output:    logits = linear_L(A)

    forward(x) returns the logits (m, n_y). Each named stage passes through ``self.tap``
    (identity unless an adapter sets ``self.recorder``), the way Net's stages are observed
    by hooks: Z, Zt, S, H are module code here, not module outputs. Parameters start as
    nan (the reference's are copied in: ``load_reference``)."""

    def __init__(self, layer_dims, remedies, hidden="tanh", output="sigmoid", dtype=torch.float64,
                 device="cpu"):
        super().__init__()
        check_activation(hidden, HIDDEN_ACTIVATIONS)
        check_activation(output, OUTPUT_ACTIVATIONS)
        dtype = torch_dtype(dtype)
        self.hidden, self.output, self.remedies = hidden, output, remedies
        self.L = L = len(layer_dims) - 1
        self.dims = tuple(layer_dims)
        bn = remedies.batch_norm
        kw = dict(dtype=dtype, device=device)
        self.linears = nn.ModuleList(
            nn.utils.skip_init(nn.Linear, layer_dims[l - 1], layer_dims[l], bias=not (bn and l < L), **kw)
            for l in range(1, L + 1))
        self.norms = nn.ModuleDict({
            str(l): nn.BatchNorm1d(layer_dims[l], eps=remedies.bn_eps, momentum=1.0 - remedies.bn_momentum, **kw)
            for l in range(1, L)} if bn else {})
        self.skip_from = {l: l - 2 for l in skip_layers(L, remedies)}
        self.skips = nn.ModuleDict({
            str(l): nn.utils.skip_init(nn.Linear, layer_dims[l - 2], layer_dims[l], bias=False, **kw)
            for l in self.skip_from if layer_dims[l] != layer_dims[l - 2]})
        self.drops = nn.ModuleDict({str(l): InjectedDropout(remedies.keep_prob) for l in range(1, L)}
                                   if remedies.keep_prob < 1.0 else {})
        self.recorder = None
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(float("nan"))

    def tap(self, name, t):
        if self.recorder is not None:
            self.recorder(name, t)
        return t

    def set_masks(self, masks):
        """The reference's masks {"D1": (n_1, m), ...} (NumPy, columns) for the next forward;
        None: no dropout (the dropout modules keep None)."""
        for l, d in self.drops.items():
            w = self.linears[0].weight
            d.mask = None if masks is None else from_numpy(np.ascontiguousarray(masks[f"D{l}"].T),
                                                           w.dtype, w.device)

    def forward(self, x):
        g = HIDDEN[self.hidden]
        a, acts = x, {0: x}
        for l in range(1, self.L):
            z = self.tap(f"Z{l}", self.linears[l - 1](a))
            zt = self.tap(f"Zt{l}", self.norms[str(l)](z)) if str(l) in self.norms else z
            s = None
            if l in self.skip_from:
                prev = acts[self.skip_from[l]]
                s = self.tap(f"S{l}", self.skips[str(l)](prev) if str(l) in self.skips else prev)
            h = zt + s if s is not None and self.remedies.residual == "before" else zt
            h = self.tap(f"H{l}", h)
            a = g(h)
            if s is not None and self.remedies.residual == "after":
                a = a + s
            if str(l) in self.drops:
                a = self.drops[str(l)](a)
            a = acts[l] = self.tap(f"A{l}", a)
        return self.tap(f"Z{self.L}", self.linears[-1](a))

    def reference_parameters(self):
        """{reference name: Parameter} in the reference's order: per layer W{l}, then b{l}
        or gamma{l} beta{l}, then Ws{l}."""
        out = {}
        for l, lin in enumerate(self.linears, start=1):
            out[f"W{l}"] = lin.weight
            if lin.bias is not None:
                out[f"b{l}"] = lin.bias
            if str(l) in self.norms:
                out[f"gamma{l}"], out[f"beta{l}"] = self.norms[str(l)].weight, self.norms[str(l)].bias
            if str(l) in self.skips:
                out[f"Ws{l}"] = self.skips[str(l)].weight
        return out

    def reference_buffers(self):
        """{"mu_run{l}": running_mean, "var_run{l}": running_var} of every BatchNorm1d."""
        out = {}
        for l, bn in self.norms.items():
            out[f"mu_run{l}"], out[f"var_run{l}"] = bn.running_mean, bn.running_var
        return out

    @torch.no_grad()
    def load_reference(self, parameters, bn_state=None):
        """Copy the reference's parameters (W (n, n_prev) as is, column vectors b, gamma, beta
        as 1-D) and running estimates into the modules. ValueError when a name or shape
        does not match."""
        mine = self.reference_parameters()
        if set(mine) != set(parameters):
            raise ValueError(f"the model's parameters are {sorted(mine)}, the reference's {sorted(parameters)}")
        for k, p in mine.items():
            v = np.asarray(parameters[k])
            v = v[:, 0] if p.ndim == 1 else v
            if tuple(p.shape) != v.shape:
                raise ValueError(f"{k}: the model's is {tuple(p.shape)}, the reference's {np.shape(parameters[k])}")
            p.copy_(torch.from_numpy(np.ascontiguousarray(v)))
        for k, b in self.reference_buffers().items():
            if bn_state is not None and k in bn_state:
                b.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(bn_state[k])[:, 0])))


def _decayed(name):
    # the course's L2 term covers every weight matrix (W, skip projections Ws), never b, gamma, beta
    return name.startswith("W")


def remedy_optimizer(model, optimizer):
    """(torch.optim optimiser, scheduler) for a RemedyNet, by conventions.torch_optimizer_for,
    with two parameter groups: the weights (W, Ws: the L2 term's, weight_decay set per
    step to lambda / m, convention l2.weight_decay) and the rest (b, gamma, beta:
    weight_decay 0). The reference's state names of each parameter are
    ``model.reference_parameters()``."""
    named = model.reference_parameters()
    groups = [{"params": [p for k, p in named.items() if _decayed(k)], "weight_decay": 0.0},
              {"params": [p for k, p in named.items() if not _decayed(k)], "weight_decay": 0.0}]
    return conventions.torch_optimizer_for(optimizer, [g for g in groups if g["params"]])


class _RemedyCapture:
    """Records the last step's tapped stages (columns) and their gradients (m dJ/d., columns)."""

    def __init__(self, m):
        self.m, self.out = m, {}

    def __call__(self, name, t):
        if name in self.out:
            return
        self.out[name] = t.T.detach().clone()
        if t.requires_grad:
            t.register_hook(functools.partial(self._grad, "d" + name))

    def _grad(self, key, g):
        self.out[key] = (self.m * g).T.detach().clone()


def run_idiomatic_remedies(p0, bn0, X, Y, batches, masks, remedies, hidden="tanh", output="sigmoid",
                           optimizer=Optimizer(), dtype="float64", device="cpu", *, make_optimizer=None):
    """The remedies' idiomatic torch path: RemedyNet (nn.Linear, nn.BatchNorm1d, skips as
    module code, dropout with nn.Dropout's semantics and the reference's masks), the
    stable loss of ``make_loss``, torch.optim with weight_decay = lambda / m on the
    weights' group; ``len(batches)`` updates from the reference's ``p0`` and ``bn0``.

    p0, bn0: the reference's initial parameters and running estimates (NumPy, columns);
    batches: column indices per update; masks: per update the reference's {"D{l}": (n_l, m)}
    or None (no dropout). Returns the last update's stages (NumPy, the reference's names,
    order and layout) that the framework exposes; not: mu{l}, var{l}, Zn{l}
    (nn.BatchNorm1d returns gamma * Zn + beta only) nor t' for gd and momentum.
    dW{l}, dWs{l} are .grad + weight_decay * W (what torch.optim adds before using it),
    cost_l2 = weight_decay / 2 * sum ‖W‖^2, cost_stable = the loss + cost_l2.

    torch's running variance averages the unbiased batch variance (m / (m - 1) var):
    reference.remedies.ConventionUnsupported (a ValueError; the runner skips the case with
    its message) unless remedies.bn_running_var == "unbiased" (convention batchnorm.running_var).

    make_optimizer(model) -> torch optimiser: replaces remedy_optimizer (to measure other
    conventions: weight_decay on every parameter, AdamW); its weight decay is then its own
    (remedies.l2 is not applied), and dW, dWs are .grad, the loss's gradient.
    """
    if remedies.batch_norm and remedies.bn_running_var != "unbiased":
        raise ConventionUnsupported("nn.BatchNorm1d's running variance averages the unbiased batch variance "
                         "(m / (m - 1) times the one it normalises with); the reference's "
                         f"bn_running_var={remedies.bn_running_var!r} has no torch form: use "
                         "bn_running_var='unbiased' (convention 'batchnorm.running_var')")
    check_batches(batches, masks)
    tdtype = torch_dtype(dtype)
    model = RemedyNet(remedy_layer_dims(p0), remedies, hidden, output, tdtype, device)
    model.load_reference(p0, bn0)
    if make_optimizer is None:
        torch_optimizer, scheduler = remedy_optimizer(model, optimizer)
        decay_group = torch_optimizer.param_groups[0]
    else:
        torch_optimizer, scheduler, decay_group = make_optimizer(model), None, {}
    named = model.reference_parameters()
    decayed = {k: p for k, p in named.items() if _decayed(k)}
    loss_fn = make_loss(output, "stable")
    model.train()
    for k, idx in enumerate(batches):
        m = len(idx)
        wd = remedies.l2 / m if make_optimizer is None else 0.0
        decay_group["weight_decay"] = wd
        x, y = _rows(X, idx, tdtype, device), _rows(Y, idx, tdtype, device)
        model.set_masks(None if masks is None or remedies.keep_prob == 1.0 else masks[k])
        last = k == len(batches) - 1
        if last:
            x.requires_grad_(True)
            cap = model.recorder = _RemedyCapture(m)
            cap("A0", x)
            before = {n: p.detach().clone() for n, p in named.items()}
        torch_optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        if last:
            grads = {n: p.grad.detach().clone() for n, p in named.items()}
        torch_optimizer.step()
        if scheduler is not None:
            scheduler.step()
    model.recorder = None
    out = cap.out
    L = model.L
    out[f"A{L}"] = output_activation(output, logits.detach()).T
    costs = reference_costs(logits.detach(), y, output)
    cost_l2 = wd / 2 * sum((before[n] ** 2).sum() for n in decayed) if decayed else torch.zeros((), dtype=tdtype)
    out["cost_l2"] = cost_l2
    out["cost_literal"] = costs["cost_literal"] + cost_l2
    out["cost_stable"] = loss.detach() + cost_l2
    for n, g in grads.items():
        if _decayed(n):
            g = g + wd * before[n]
        out[f"d{n}"] = g.reshape(-1, 1) if g.ndim == 1 else g
    for n, p in named.items():
        out[f"{n}'"] = p.detach().reshape(-1, 1).clone() if p.ndim == 1 else p.detach().clone()
    state = conventions.state_to_reference(torch_optimizer, named, optimizer)
    out.update({f"{k}'": v for k, v in state.items()})
    out.update({f"{k}'": b.detach().reshape(-1, 1).clone() for k, b in model.reference_buffers().items()})
    out.pop("A0", None)
    return {s: _numpy(out[s]) for s in remedy_idiomatic_order(model.dims, remedies, list(state), out)}


def remedy_idiomatic_order(layer_dims, remedies, state_keys, have):
    """The remedies' stage order (netparity.stagenames.remedy_stage_order) restricted to the
    stages this path emitted (``have``): the batch statistics mu, var and Zn are not exposed
    by nn.BatchNorm1d / nnx.BatchNorm (they return gamma * Zn + beta only)."""
    from netparity.stagenames import remedy_stage_order
    lay = remedy_layout(tuple(layer_dims), remedies)
    order = remedy_stage_order(lay["L"], lay["bn"], lay["skips"], lay["projected"],
                               remedies.residual == "before", bool(remedies.l2), state_keys)
    return [s for s in order if s in have]
