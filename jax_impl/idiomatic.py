"""The network written the way JAX users write it, and the adapter that checks such code.

    Net(layer_dims, hidden="tanh", output="sigmoid", dtype=jnp.float64, rngs=None)
        a flax.nnx.Module of nnx.Linear layers and jax.nn activations; x (m, n_x) -> logits (m, n_y)
    make_loss(output, cost="stable")
        loss(logits, labels) -> J, from optax's cross-entropies (rows: (m, n_y))
    load_reference_parameters(model_or_params, parameters, *, transpose=True, dtype=None)
        the reference's W1 b1 ... copied into the Linear/Dense layers, in order
    run_steps(model_or_apply, tx, loss_fn, parameters, X, Y, batches, output, *, ...)
        THE GENERIC ADAPTER: a user's flax module (or pure apply(params, x) + params pytree)
        and optax transformation, run on the reference's batches; the last step's stages
        in the reference's names and layout
    run_idiomatic(parameters, X, Y, batches, hidden, output, optimizer, dtype, device, cost)
        Net + make_loss + conventions.optax_transform_for through run_steps

Layouts and conventions: jax_impl/conventions.py (the table). Examples are rows here,
columns in the reference; kernels are (in, out) = W.T; biases are 1-D.

Why flax.nnx rather than linen: nnx is flax's recommended API (and what new flax code
is written in); ``nnx.capture`` with ``Module.sow``/``Module.perturb`` returns each
layer's Z, A and their gradients from one traced call, and nnx.split/merge makes the
module a pure function for jax.jit and jax.value_and_grad. No measured reason for linen
was found: the adapter still runs linen models through the pure-``apply`` path
(``model.apply`` and its params dict, kernels named ``kernel``/``bias`` as in nnx).

Which stages are captured (last step, NumPy, reference layout):
  every model:   Z{L} (the logits), A{L} (sigmoid/softmax of them), cost_stable and
                 cost_literal (the loss's value under its name, the other cost from the
                 logits), dZ{L} = m dJ/dZ^[L] (a zero tap added to the logits), dA0 =
                 m dJ/dX (the gradient w.r.t. the input), every dWl, dbl (from the
                 gradient pytree, kernel.T and bias[:, None]), W1' b1' ... after the
                 update, and the optimiser state (vdP', sdP'; t' only where optax counts:
                 Adam or a schedule; see conventions.state_to_reference)
  an nnx module that calls ``self.sow(nnx.Intermediate, "Zl", z)`` and
  ``z = self.perturb("Zl", z)`` (and the same for "Al") for the hidden layers l < L, as
  Net does: also Zl, Al, dZl = m dJ/dZ^[l], dAl = m dJ/dA^[l]
  a pure apply(params, x): the every-model set.
"""
from functools import lru_cache, partial
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from reference.activations import (HIDDEN_ACTIVATIONS, LEAKY_SLOPE, OUTPUT_ACTIVATIONS,
                                   check_activation)
from reference.optim import Optimizer
from reference.validate import check_batches

from ._convert import _device
from .conventions import (dense_layers, leaf_path, leaves_by_path,
                          optax_transform_for, reference_optimizer_for, state_to_reference,
                          tree_to_reference)
from reference.costs import check_cost



def leaky_relu(z):
    """The reference's leaky relu: derivative 0.01 at z = 0 (strict z > 0).
    jax.nn.leaky_relu(z, negative_slope=0.01) tests z >= 0, so jax.grad gives 1.0 at 0
    (conventions row activation.leaky_relu_at_0). That is not hypothetical: the spirals
    data set has examples at the origin, where every Z^[l] of a zero-bias network is
    exactly 0, and jax.nn.leaky_relu makes their dZ 100x the reference's (measured:
    the deep leaky_relu/softmax conformance cases fail with it, dZ2 at 25x its bound)."""
    return jnp.where(z > 0, z, LEAKY_SLOPE * z)


# jax.nn's functions, as a flax user writes them, except leaky_relu (above);
# jax.nn.relu'(0) = 0 (its custom JVP), the reference's convention.
HIDDEN = {"sigmoid": jax.nn.sigmoid, "tanh": jax.nn.tanh, "relu": jax.nn.relu,
          "leaky_relu": leaky_relu}
OUTPUT = {"sigmoid": jax.nn.sigmoid, "softmax": partial(jax.nn.softmax, axis=-1)}


class Net(nnx.Module):
    """An L-layer perceptron: nnx.Linear layers (kernel (n_{l-1}, n_l), bias (n_l,)),
    the hidden activation ``hidden`` (HIDDEN) after every layer but the last; ``__call__(x)`` takes x (m, n_x) and
    returns the logits z_L (m, n_y). ``output`` names the output activation
    (``predict_proba``); the loss applies it (optax's losses take logits).

    Inside ``nnx.capture`` the hidden stages are recorded under the reference's names:
    ``sow(nnx.Intermediate, "Zl")`` and ``perturb("Zl")`` (zero taps: their gradient is
    dJ/dZ^[l]), the same for "Al". Outside a capture nothing is recorded: flax 0.12.8's
    sow/perturb would then store the value in the module itself (a deprecated fallback that
    also fixes the perturbation's batch size), so a plain ``model(x)`` stays pure.

    The layers draw their own initial kernels from ``rngs`` (default nnx.Rngs(0)), as any
    flax module does; netparity never uses them (load_reference_parameters overwrites them).
    """

    def __init__(self, layer_dims, hidden="tanh", output="sigmoid", dtype=jnp.float64,
                 rngs=None):
        check_activation(hidden, HIDDEN_ACTIVATIONS)
        check_activation(output, OUTPUT_ACTIVATIONS)
        rngs = nnx.Rngs(0) if rngs is None else rngs
        dtype = jnp.dtype(dtype)
        self.hidden, self.output = hidden, output
        self.layers = nnx.List([nnx.Linear(n_in, n_out, dtype=dtype, param_dtype=dtype, rngs=rngs)
                                for n_in, n_out in zip(layer_dims[:-1], layer_dims[1:])])

    def _record(self, name, value):
        # flax marks an active nnx.capture by the module attribute __captures__ (0.12.8)
        if not hasattr(self, "__captures__"):
            return value
        value = self.perturb(name, value)
        self.sow(nnx.Intermediate, name, value)
        return value

    def activation(self, z):
        """The hidden activation g (a method, so a subclass can swap it)."""
        return HIDDEN[self.hidden](z)

    def __call__(self, x):
        a = x
        for l, layer in enumerate(self.layers[:-1], 1):
            z = self._record(f"Z{l}", layer(a))
            a = self._record(f"A{l}", self.activation(z))
        return self.layers[-1](a)

    def predict_proba(self, x):
        """sigmoid or softmax (over the last axis) of the logits, (m, n_y)."""
        return OUTPUT[self.output](self(x))


# ---------------------------------------------------------------- losses (rows: (m, n_y))

def sigmoid_stable(logits, labels):
    # summed over n_y and m, / m: optax's per-element loss .mean() would divide by n_y m,
    # n_y times less than the reference for a multi-output sigmoid (row loss.bce_mean)
    return optax.sigmoid_binary_cross_entropy(logits, labels).sum() / labels.shape[0]


def softmax_stable(logits, labels):
    # per example (m,): .mean() divides by m, as the reference does
    return optax.softmax_cross_entropy(logits, labels).mean()


def sigmoid_literal(logits, labels):
    # the article's formula from the probabilities (nan/inf once they saturate, as there)
    p = jax.nn.sigmoid(logits)
    return -(labels * jnp.log(p) + (1 - labels) * jnp.log(1 - p)).sum() / labels.shape[0]


def softmax_literal(logits, labels):
    p = jax.nn.softmax(logits, axis=-1)
    return -(labels * jnp.log(p)).sum() / labels.shape[0]


_LOSSES = {("sigmoid", "stable"): sigmoid_stable, ("softmax", "stable"): softmax_stable,
           ("sigmoid", "literal"): sigmoid_literal, ("softmax", "literal"): softmax_literal}
for (_o, _c), _f in _LOSSES.items():
    _f.cost, _f.output = _c, _o  # run_steps files the loss's value under this cost's name


def make_loss(output, cost="stable"):
    """``loss(logits, labels) -> J`` (0-d, the inputs' dtype) for logits and labels (m, n_y):
        sigmoid, stable:   optax.sigmoid_binary_cross_entropy(z, y).sum() / m
        softmax, stable:   optax.softmax_cross_entropy(z, y).mean()
        literal:           -sum(y log p + (1 - y) log(1 - p)) / m, p = sigmoid(z);
                           -sum(y log p) / m, p = softmax(z)
    The same function object for the same arguments (a static argument of the jitted step)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    check_cost(cost)
    return _LOSSES[(output, cost)]


# ---------------------------------------------------------------- loading weights

def _load_tree(tree, parameters, transpose, dtype):
    """The params pytree with each dense layer's kernel/bias replaced by the reference's."""
    layers = dense_layers(tree)
    L = len(parameters) // 2
    if len(layers) != L:
        raise ValueError(f"the model has {len(layers)} Linear/Dense layer(s) "
                         f"({', '.join(repr(x.name) for x in layers)}), the reference parameters "
                         f"have {L} (W1..W{L})")
    new = {}
    for l, layer in enumerate(layers, 1):
        W, b = np.asarray(parameters[f"W{l}"]), np.asarray(parameters[f"b{l}"])
        kernel = W.T if transpose else W
        what = f"W{l}.T" if transpose else f"W{l} (transpose=False)"
        if kernel.shape != layer.kernel_shape:
            raise ValueError(f"layer {layer.name!r} (layer {l} of {L}): kernel shape "
                             f"{layer.kernel_shape} != {what} shape {kernel.shape}; flax kernels "
                             f"are (in, out) = W.T, W{l} is (n_{l}, n_{l - 1})")
        if b.shape != (layer.bias_shape[0], 1):
            raise ValueError(f"layer {layer.name!r} (layer {l} of {L}): bias shape "
                             f"{layer.bias_shape} does not match b{l} {b.shape}")
        new[layer.path + ("kernel",)] = kernel
        new[layer.path + ("bias",)] = b[:, 0]

    def put(path, leaf):
        key = leaf_path(path)
        if key not in new:
            return leaf
        dt = dtype if dtype is not None else leaf.dtype
        # device_put of a host copy (jnp.asarray would compile a copy per shape, eagerly)
        return jax.device_put(np.array(new[key], dtype=dt, copy=True))
    return jax.tree_util.tree_map_with_path(put, tree)


# layers the reference network has no counterpart of, whatever weights are loaded: they
# normalise with statistics of the batch (or the row), or draw their own random mask
NORMALISING = tuple(getattr(nnx, n) for n in ("BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm",
                                              "InstanceNorm") if hasattr(nnx, n))


def foreign_layers(model):
    """[(where, what, why)] for each layer of the nnx module ``model`` that no weights can
    make the reference network's: a normalisation layer, or nnx.Dropout with rate > 0 (in
    train mode it draws its own mask). Activations, containers and nnx.Linear are the
    network's own."""
    out = []
    for path, mod in nnx.iter_graph(model):
        where = "model" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)
        if isinstance(mod, NORMALISING):
            out.append((where, f"nnx.{type(mod).__name__}", "normalises with statistics of each batch or row"))
        elif isinstance(mod, nnx.Dropout) and mod.rate > 0 and not getattr(mod, "deterministic", False):
            out.append((where, f"nnx.Dropout(rate={mod.rate})", "draws its own random mask at every "
                        "training step (set rate=0 or remove it to verify the rest)"))
    return out


def load_reference_parameters(model_or_params, parameters, *, transpose=True, dtype=None):
    """Copy the reference's ``W1 b1 ... WL bL`` (NumPy, W (n_l, n_{l-1}), b (n_l, 1)) into
    the Linear/Dense layers of an nnx module (in place; returned) or of a params pytree
    (a new pytree is returned), IN ORDER (conventions.dense_layers: natural-sort order of
    the layer paths): kernel = W.T (in, out), bias = b[:, 0].

    ``transpose=False`` copies W as it is: the classic porting bug, kept reachable on
    purpose so a user file can reproduce it. On a non-square layer it raises; on a square
    one it loads silently and the run diverges first at that layer's Z.
    ``dtype``: None keeps each leaf's dtype (a float32 model stays float32); else cast.
    Works on an abstract module (nnx.eval_shape) too. ValueError naming the layer when the
    count or a shape does not match."""
    if isinstance(model_or_params, nnx.Module):
        state = nnx.state(model_or_params, nnx.Param)
        nnx.update(model_or_params, _load_tree(state, parameters, transpose, dtype))
        return model_or_params
    return _load_tree(model_or_params, parameters, transpose, dtype)


# ---------------------------------------------------------------- the adapter

_STAGE = re.compile(r"^[ZA]\d+$")


def _named_stages(state):
    """{"Z1": value, ...} from an nnx.capture State: the innermost reference-like name on
    each leaf's path; sown values are tuples (one per call): the last one is kept."""
    out = {}
    for path, v in jax.tree_util.tree_flatten_with_path(state)[0]:
        names = [getattr(k, "key", None) for k in path]
        hits = [n for n in names if isinstance(n, str) and _STAGE.match(n)]
        if hits:
            out[hits[-1]] = v
    return out


def _step(params, rest, opt_state, x, y, graphdef, apply, tx, loss_fn, other_loss, output,
          data_sharding=None):
    """One idiomatic update on rows x (m, n_x), y (m, n_y), plus what the stages need.
    ``graphdef``/``rest``: an nnx module (nnx.split); else ``apply(params, x)``.
    ``data_sharding``: the rows are split over its mesh (data parallel; XLA pads an
    uneven last shard and reduces the gradients of the global mean)."""
    if data_sharding is not None:
        x = jax.lax.with_sharding_constraint(x, data_sharding)
        y = jax.lax.with_sharding_constraint(y, data_sharding)
    m = x.shape[0]

    def forward(params, pert, x):
        if graphdef is None:
            return apply(params, x), {}
        model = nnx.merge(graphdef, params, rest)
        return nnx.capture(model, nnx.Intermediate, init=pert)(x)

    if graphdef is None:
        pert = {}
    else:  # zero perturbations shaped like this batch's stages (nnx.perturb's protocol)
        _, pert = nnx.capture(nnx.merge(graphdef, params, rest), nnx.Perturbation)(x)

    def loss_of(params, pert, tap, x):
        logits, inter = forward(params, pert, x)
        logits = logits + tap  # zero tap: d loss / d tap = d loss / d logits
        return loss_fn(logits, y), (logits, inter)

    tap = jnp.zeros((m, y.shape[1]), dtype=x.dtype)
    (J, (logits, inter)), (grads, d_pert, d_tap, d_x) = jax.value_and_grad(
        loss_of, argnums=(0, 1, 2, 3), has_aux=True)(params, pert, tap, x)
    updates, opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    out = {"J": J, "J_other": other_loss(logits, y), "logits": logits,
           "AL": OUTPUT[output](logits), "dZL": m * d_tap, "dA0": m * d_x,
           "inter": _named_stages(inter),
           "d_inter": {k: m * v for k, v in _named_stages(d_pert).items()}}
    return new_params, opt_state, grads, out


_STATIC = ("graphdef", "apply", "tx", "loss_fn", "other_loss", "output", "data_sharding")
# one compile per (shapes, dtypes, module structure, tx, loss): tx and loss objects are
# cached by optax_transform_for / make_loss, nnx graphdefs compare by structure
_step_jit = jax.jit(_step, static_argnames=_STATIC)


def run_steps(model_or_apply, tx, loss_fn, parameters, X, Y, batches, output, *,
              dtype="float64", params=None, jit=True, load=None, cost=None, device="cpu",
              optimizer=None, data_sharding=None):
    """Run a user's idiomatic training step on the reference's data and batches, and
    capture the last step's stages in the reference's names and layout.

    model_or_apply  an nnx.Module with __call__(x (m, n_x)) -> logits (m, n_y), or a pure
                    ``apply(params, x)`` (then ``params`` is its pytree, e.g. a linen
                    ``model.init(...)`` result: only its structure is used)
    tx              an optax.GradientTransformation
    loss_fn         ``loss_fn(logits, labels) -> J`` on rows (make_loss(...) or the user's);
                    its value is filed under ``cost`` (default: ``loss_fn.cost`` if set,
                    else "stable") and the other cost is computed from the logits
    parameters      the reference's initial W1 b1 ... (NumPy), copied in by ``load``
                    (default ``load_reference_parameters(obj, parameters, dtype=dtype)``;
                    a user's own loader ``load(obj, parameters) -> obj`` may replace it)
    X, Y            NumPy (n_x, m), (n_y, m): examples are columns, as in the reference
    batches         column indices of each update (NumPy int arrays), in order
    dtype, device   the data's dtype; "cpu" or "gpu" (arrays jax.device_put there)
    jit             True: one jax.jit-compiled step (XLA fuses the update into an FMA);
                    False: eager JAX (every primitive compiled on its own; slow)
    optimizer       the reference Optimizer ``tx`` is meant to be: state_to_reference
                    needs its momentum_form and beta (vdP = (1 - beta) trace for the EMA
                    form). None: conventions.reference_optimizer_for(opt_state), i.e. the
                    name inferred from the state, every hyper-parameter at its default
    data_sharding   None, or a jax.sharding.NamedSharding of the rows (e.g. over a Mesh
                    axis "data": P("data")): data parallel, with jit; the parameters and
                    optimiser state are replicated over its mesh (``device`` is then
                    unused), each batch is put sharded when its rows divide evenly over
                    the mesh (else replicated: the step's sharding constraint splits it,
                    XLA padding the last shard) and XLA reduces the gradients

    Each update is the idiomatic one: J, grads = jax.value_and_grad(loss)(params);
    updates, opt_state = tx.update(grads, opt_state, params);
    params = optax.apply_updates(params, updates).
    Returns (stages, costs): stages of the last update as NumPy arrays (module docstring
    for which ones), costs the loss value of every update (1-D, dtype).
    """
    dev = _device(device)
    if load is None:
        load = partial(load_reference_parameters, dtype=dtype)
    P0 = {k: np.array(v, dtype=dtype) for k, v in parameters.items()}
    if isinstance(model_or_apply, nnx.Module):
        if params is not None:
            raise ValueError("params= is for a pure apply(params, x); an nnx module holds its "
                             "own parameters")
        model = load(model_or_apply, P0)
        graphdef, p, rest = nnx.split(model, nnx.Param, ...)
        apply = None
    elif callable(model_or_apply):
        if params is None:
            raise ValueError("a pure apply(params, x) needs params=: its params pytree (the "
                             "reference's weights are copied into its kernel/bias leaves)")
        graphdef, rest, apply = None, None, model_or_apply
        p = load(params, P0)
    else:
        raise TypeError(f"expected an nnx.Module or a function apply(params, x), got "
                        f"{type(model_or_apply).__name__}")
    layers = dense_layers(p)
    cost = cost or getattr(loss_fn, "cost", "stable")
    check_cost(cost)
    other = "literal" if cost == "stable" else "stable"
    if data_sharding is not None:
        if not jit:
            raise ValueError("data_sharding needs jit=True (the sharding is a jit constraint)")
        dev = jax.sharding.NamedSharding(data_sharding.mesh, jax.sharding.PartitionSpec())
    p = jax.device_put(p, dev)
    rest = jax.device_put(rest, dev) if rest is not None else None
    # jitted: eager, optax's zeros_like compiles one broadcast per parameter shape (~40 ms
    # each here). Committed to the device like the params: optax's int32 count is created
    # uncommitted, and the step would compile a second variant for the committed count its
    # first call returns.
    opt_state = jax.device_put(jax.jit(tx.init)(p), dev)
    # rows (m, n_x); each batch is cut on the host (NumPy fancy indexing, an exact copy):
    # eager JAX would compile a gather for every new batch shape
    Xr, Yr = np.array(X.T, dtype=dtype), np.array(Y.T, dtype=dtype)
    step = _step_jit if jit else _step
    statics = dict(graphdef=graphdef, apply=apply, tx=tx, loss_fn=loss_fn,
                   other_loss=make_loss(output, other), output=output)
    if data_sharding is not None:
        statics["data_sharding"] = data_sharding
    if optimizer is None:
        optimizer = reference_optimizer_for(opt_state)
    costs = []
    for idx in batches:
        put = dev
        if data_sharding is not None and len(idx) % data_sharding.mesh.size == 0:
            put = data_sharding  # device_put cannot split unevenly (ValueError): else replicated
        x, y = jax.device_put((Xr[idx], Yr[idx]), put)
        p, opt_state, grads, out = step(p, rest, opt_state, x, y, **statics)
        costs.append(out["J"])
    stages = _stages(out, grads, p, layers, cost, other)
    stages.update({f"{k}'": v for k, v in state_to_reference(opt_state, layers, optimizer).items()})
    return stages, np.array([np.asarray(c) for c in costs], dtype=dtype)


def _stages(out, grads, new_params, layers, cost, other):
    """The stages in the reference's order (forward, backward, update), transposed back
    (on the host, in NumPy)."""
    L = len(layers)
    out = jax.device_get(out)
    s = {}
    for l in range(1, L):
        for k in (f"Z{l}", f"A{l}"):
            if k in out["inter"]:
                s[k] = out["inter"][k].T
    s[f"Z{L}"], s[f"A{L}"] = out["logits"].T, out["AL"].T
    costs = {f"cost_{cost}": out["J"], f"cost_{other}": out["J_other"]}
    s["cost_literal"], s["cost_stable"] = costs["cost_literal"], costs["cost_stable"]
    g = tree_to_reference(grads, layers, "d")
    for l in range(L, 0, -1):
        if l == L:
            s[f"dZ{L}"] = out["dZL"].T
        elif f"Z{l}" in out["d_inter"]:
            s[f"dZ{l}"] = out["d_inter"][f"Z{l}"].T
        s[f"dW{l}"], s[f"db{l}"] = g[f"dW{l}"], g[f"db{l}"]
        if l == 1:
            s["dA0"] = out["dA0"].T
        elif f"A{l - 1}" in out["d_inter"]:
            s[f"dA{l - 1}"] = out["d_inter"][f"A{l - 1}"].T
    s.update({f"{k}'": v for k, v in tree_to_reference(new_params, layers).items()})
    return {k: np.array(v) for k, v in s.items()}


def run_idiomatic(parameters, X, Y, batches, hidden="tanh", output="sigmoid",
                  optimizer=Optimizer(), dtype="float64", device="cpu", cost="stable",
                  data_sharding=None):
    """The idiomatic JAX path of the conformance matrix: Net(hidden, output) +
    make_loss(output, cost) + conventions.optax_transform_for(optimizer, dtype), run by
    run_steps on the reference's ``parameters`` (W1 b1 ..., NumPy), X (n_x, m), Y (n_y, m)
    and ``batches`` (column indices per update). Returns the last update's stages (dict
    of NumPy arrays in the reference's names and layout; t' only for Adam or a schedule).
    ``data_sharding``: data parallel over its mesh (run_steps)."""
    dims = [parameters["W1"].shape[1]] + [parameters[f"W{l}"].shape[0]
                                          for l in range(1, len(parameters) // 2 + 1)]
    # abstract (nnx.eval_shape): no initial draws are made, the reference's are loaded
    model = nnx.eval_shape(lambda: Net(dims, hidden, output, dtype=dtype))
    tx = optax_transform_for(optimizer, dtype)
    stages, _ = run_steps(model, tx, make_loss(output, cost), parameters, X, Y, batches, output,
                          dtype=dtype, device=device, optimizer=optimizer,
                          data_sharding=data_sharding)
    return stages


# ---------------------------------------------------------------- the remedies (docs/remedies.md)

class InjectedDropout(nnx.Dropout):
    """nnx.Dropout's semantics with the mask given rather than drawn: ``rate`` is the DROP
    probability p = 1 - keep_prob; in train mode the output is
    ``lax.select(mask, x / keep_prob, 0)`` (nnx.Dropout's own formula), deterministic:
    x. nnx.Dropout draws its mask with jax.random.bernoulli from an nnx.Rngs stream, which
    no key makes the reference's ``rand(n, m) < keep_prob`` (NumPy's RandomState); every
    backend receives the reference's masks as inputs (docs/remedies.md). Divides by the
    given keep_prob (nnx.Dropout divides by 1 - rate, which need not round back to it);
    XLA (CPU, eager and jit) turns the division by that constant into a multiplication by
    its rounded reciprocal, so the result is x * (1 / keep_prob): within one ulp of the
    reference's A D / keep_prob (convention dropout.mask)."""

    def __init__(self, keep_prob):
        super().__init__(1.0 - keep_prob)
        self.keep_prob = keep_prob

    def __call__(self, inputs, mask=None, deterministic=None):
        deterministic = self.deterministic if deterministic is None else deterministic
        if deterministic or mask is None or self.keep_prob == 1.0:
            return inputs
        return jax.lax.select(mask != 0, inputs / self.keep_prob, jnp.zeros_like(inputs))


class RemedyNet(nnx.Module):
    """The remedies' network as flax users write it (examples are rows); submodules named
    linear{l}, norm{l} (nnx.BatchNorm(momentum=bn_momentum, epsilon=bn_eps,
    use_fast_variance=False)), skip{l} (nnx.Linear(use_bias=False), projected skips),
    drop{l} (InjectedDropout):

        hidden l:  Z = linear{l}(A)  (use_bias=False when batch-normalised);  Zt = norm{l}(Z)
                   S = A^[l-2] or skip{l}(A^[l-2]);  H = Zt + S ("before");  A = g(H) (+ S "after")
                   A = drop{l}(A, mask)
        output:    logits = linear{L}(A)

    ``__call__(x, masks=None, train=True)``: masks {"D{l}": (m, n_l) rows} or None; train
    False uses the running averages (use_running_average=True) and no dropout. Inside
    nnx.capture every stage is sown and perturbed under its reference name (as Net)."""

    def __init__(self, layer_dims, remedies, hidden="tanh", output="sigmoid", dtype=jnp.float64,
                 rngs=None):
        from reference.remedies import layout
        check_activation(hidden, HIDDEN_ACTIVATIONS)
        check_activation(output, OUTPUT_ACTIVATIONS)
        rngs = nnx.Rngs(0) if rngs is None else rngs
        dtype = jnp.dtype(dtype)
        self.hidden, self.output, self.remedies = hidden, output, remedies
        lay = layout(tuple(layer_dims), remedies)
        self.L = L = lay["L"]
        self.bn, self.skips, self.projected = lay["bn"], lay["skips"], lay["projected"]
        kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
        for l in range(1, L + 1):
            setattr(self, f"linear{l}", nnx.Linear(layer_dims[l - 1], layer_dims[l],
                                                   use_bias=l not in self.bn, **kw))
            if l in self.bn:
                setattr(self, f"norm{l}", nnx.BatchNorm(layer_dims[l], momentum=remedies.bn_momentum,
                                                        epsilon=remedies.bn_eps, use_fast_variance=False,
                                                        **kw))
            if l in self.projected:
                setattr(self, f"skip{l}", nnx.Linear(layer_dims[l - 2], layer_dims[l], use_bias=False, **kw))
            if l < L and remedies.keep_prob < 1.0:
                setattr(self, f"drop{l}", InjectedDropout(remedies.keep_prob))

    _record = Net._record

    def __call__(self, x, masks=None, train=True):
        g = HIDDEN[self.hidden]
        a, acts = x, {0: x}
        for l in range(1, self.L):
            z = self._record(f"Z{l}", getattr(self, f"linear{l}")(a))
            h = z
            if l in self.bn:
                h = self._record(f"Zt{l}", getattr(self, f"norm{l}")(z, use_running_average=not train))
            s = None
            if l in self.skips:
                s = acts[l - 2]
                s = self._record(f"S{l}", getattr(self, f"skip{l}")(s) if l in self.projected else s)
                if self.remedies.residual == "before":
                    h = self._record(f"H{l}", h + s)
            a = g(h)
            if s is not None and self.remedies.residual == "after":
                a = a + s
            if hasattr(self, f"drop{l}") and masks is not None:
                a = getattr(self, f"drop{l}")(a, masks[f"D{l}"], deterministic=not train)
            a = acts[l] = self._record(f"A{l}", a)
        return getattr(self, f"linear{self.L}")(a)


def remedy_paths(model):
    """{reference name: leaf path} of a RemedyNet's parameters (reference order: per layer
    W, b or gamma beta, Ws) and running estimates (mu_run{l}, var_run{l})."""
    params, stats = {}, {}
    for l in range(1, model.L + 1):
        params[f"W{l}"] = (f"linear{l}", "kernel")
        if l in model.bn:
            params[f"gamma{l}"], params[f"beta{l}"] = (f"norm{l}", "scale"), (f"norm{l}", "bias")
            stats[f"mu_run{l}"], stats[f"var_run{l}"] = (f"norm{l}", "mean"), (f"norm{l}", "var")
        else:
            params[f"b{l}"] = (f"linear{l}", "bias")
        if l in model.projected:
            params[f"Ws{l}"] = (f"skip{l}", "kernel")
    return params, stats


def _to_reference(tree, paths, prefix=""):
    """A params/stats-shaped pytree as {prefix + name: NumPy} in the reference's layout:
    kernels transposed (W = kernel.T), vectors as columns."""
    leaves = leaves_by_path(tree)
    out = {}
    for k, path in paths.items():
        v = np.array(leaves[path])
        out[prefix + k] = v.T if path[-1] == "kernel" else v[:, None]
    return out


def _from_reference(tree, paths, values, dtype):
    new = {path: (np.asarray(values[k]).T if path[-1] == "kernel" else np.asarray(values[k])[:, 0])
           for k, path in paths.items() if k in values}

    def put(path, leaf):
        key = leaf_path(path)
        if key not in new:
            return leaf
        return jax.device_put(np.array(new[key], dtype=dtype, copy=True))
    return jax.tree_util.tree_map_with_path(put, tree)


def weights_mask(params):
    """True on the L2 term's leaves (every kernel: W and the skips' Ws), False on biases,
    BatchNorm scales and biases: optax.add_decayed_weights(mask=weights_mask)."""
    return jax.tree_util.tree_map_with_path(lambda p, _: leaf_path(p)[-1] == "kernel", params)


@lru_cache(maxsize=None)
def remedy_transform(optimizer, dtype, weight_decay):
    """(decay, tx): tx = optax.chain(add_decayed_weights(weight_decay, weights_mask),
    the reference optimiser's transformation) (convention l2.decayed_weights: the decay is
    added to the gradient BEFORE the optimiser, the course's L2, not AdamW's after
    scale_by_adam); decay = that first link (what it adds is the reference's dW). Without
    L2 (weight_decay 0): (None, the optimiser alone)."""
    base = optax_transform_for(optimizer, dtype)
    if not weight_decay:
        return None, base
    decay = optax.add_decayed_weights(weight_decay, mask=weights_mask)
    return decay, optax.chain(decay, base)


_REMEDY_STAGE = re.compile(r"^(Z|Zt|S|H|A)\d+$")


def _remedy_named(state):
    out = {}
    for path, v in jax.tree_util.tree_flatten_with_path(state)[0]:
        hits = [n for n in (getattr(k, "key", None) for k in path)
                if isinstance(n, str) and _REMEDY_STAGE.match(n)]
        if hits:
            out[hits[-1]] = v
    return out


def _remedy_step(params, stats, rest, opt_state, x, y, masks, graphdef, decay, tx, loss_fn,
                 other_loss, output, weight_decay):
    """One idiomatic update with the remedies (rows), plus what the stages need. The batch
    statistics are updated inside the differentiated forward and returned as its aux."""
    m = x.shape[0]

    def forward(params, stats, pert, x):
        # copy=True: fresh Variables at this trace level (the ones passed in belong to jit's
        # trace, and nnx.BatchNorm may only update its statistics at the level they were made)
        model = nnx.merge(graphdef, params, stats, rest, copy=True)
        logits, inter = nnx.capture(model, nnx.Intermediate, init=pert)(x, masks, True)
        return logits, inter, nnx.state(model, nnx.BatchStat)

    # zero perturbations shaped like this batch's stages; on a copy, whose batch statistics
    # this extra forward updates (without copy=True they would be updated twice a step)
    _, pert = nnx.capture(nnx.merge(graphdef, params, stats, rest, copy=True),
                          nnx.Perturbation)(x, masks, True)

    def loss_of(params, pert, tap, x, stats):
        logits, inter, new_stats = forward(params, stats, pert, x)
        logits = logits + tap
        return loss_fn(logits, y), (logits, inter, new_stats)

    tap = jnp.zeros((m, y.shape[1]), dtype=x.dtype)
    (J, (logits, inter, new_stats)), (grads, d_pert, d_tap, d_x) = jax.value_and_grad(
        loss_of, argnums=(0, 1, 2, 3), has_aux=True)(params, pert, tap, x, stats)
    updates, opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    out = {"J": J, "J_other": other_loss(logits, y), "logits": logits, "AL": OUTPUT[output](logits),
           "dZL": m * d_tap, "dA0": m * d_x, "inter": _remedy_named(inter),
           "d_inter": {k: m * v for k, v in _remedy_named(d_pert).items()}}
    if decay is not None:
        # what add_decayed_weights adds to the gradient (the reference's dW += lambda/m W),
        # and the L2 term weight_decay / 2 sum ‖W‖^2 = lambda / 2m sum ‖W‖^2
        grads, _ = decay.update(grads, decay.init(params), params)
        kernels = [p for p, w in zip(jax.tree.leaves(params), jax.tree.leaves(weights_mask(params))) if w]
        out["cost_l2"] = weight_decay / 2 * sum(jnp.sum(k * k) for k in kernels)
    return new_params, new_stats, opt_state, grads, out


_remedy_step_jit = jax.jit(_remedy_step, static_argnames=(
    "graphdef", "decay", "tx", "loss_fn", "other_loss", "output", "weight_decay"))



def run_idiomatic_remedies(p0, bn0, X, Y, batches, masks, remedies, hidden="tanh", output="sigmoid",
                           optimizer=Optimizer(), dtype="float64", device="cpu", *, transform=None):
    """The remedies' idiomatic JAX path: RemedyNet (nnx.Linear, nnx.BatchNorm, skips,
    nnx.Dropout's semantics with the reference's masks), optax's stable cross-entropy
    (make_loss), optax.chain(add_decayed_weights(lambda / m, mask=weights), the reference
    optimiser's transformation), jax.value_and_grad, one jax.jit step per batch size.

    p0, bn0: the reference's initial parameters and running estimates (NumPy, columns);
    batches: column indices per update; masks: per update {"D{l}": (n_l, m)} or None.
    Returns the last update's stages (NumPy, reference names, order, layout) less
    mu{l}, var{l}, Zn{l} (nnx.BatchNorm returns scale * Zn + bias only) and t' where optax
    keeps no count. dW{l}, dWs{l} include what add_decayed_weights adds (lambda/m W);
    cost_l2 = weight_decay / 2 sum ‖W‖^2 from the parameters, added to both costs.
    nnx.BatchNorm's running variance is the biased one: reference.remedies.ConventionUnsupported
    (a ValueError; the runner skips the case) for bn_running_var="unbiased" (convention
    batchnorm.running_var).

    transform(m) -> optax GradientTransformation: replaces remedy_transform (to measure other
    conventions: an unmasked add_decayed_weights, adamw); its decay is then its own
    (remedies.l2 is not applied, no cost_l2) and dW, dWs are the loss's gradient. Return the
    same object for the same m (it is a static argument of the jitted step)."""
    from netparity.stagenames import remedy_stage_order
    from reference.remedies import ConventionUnsupported, layer_dims_of, layout
    if remedies.batch_norm and remedies.bn_running_var != "biased":
        raise ConventionUnsupported("nnx.BatchNorm's running variance averages the biased batch variance (the one "
                         f"it normalises with); bn_running_var={remedies.bn_running_var!r} has no flax "
                         "form: use bn_running_var='biased' (convention 'batchnorm.running_var')")
    check_batches(batches, masks)
    dims = layer_dims_of(p0)
    dev = _device(device)
    model = nnx.eval_shape(lambda: RemedyNet(dims, remedies, hidden, output, dtype=dtype))
    ppaths, spaths = remedy_paths(model)
    graphdef, params, stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    params = jax.device_put(_from_reference(params, ppaths, p0, dtype), dev)
    stats = jax.device_put(_from_reference(stats, spaths, bn0 or {}, dtype), dev)
    rest = jax.device_put(rest, dev)
    Xr, Yr = np.array(X.T, dtype=dtype), np.array(Y.T, dtype=dtype)
    opt_state = None
    loss_fn, other = make_loss(output, "stable"), make_loss(output, "literal")
    for k, idx in enumerate(batches):
        wd = remedies.l2 / len(idx)
        if transform is None:
            decay, tx = remedy_transform(optimizer, jnp.dtype(dtype).name, wd)
        else:
            decay, tx, wd = None, transform(len(idx)), 0.0
        if opt_state is None:
            opt_state = jax.device_put(jax.jit(tx.init)(params), dev)
        mk = None
        if masks is not None and remedies.keep_prob < 1.0:
            mk = {d: np.array(v.T, dtype=dtype) for d, v in masks[k].items()}
        x, y, mk = jax.device_put((Xr[idx], Yr[idx], mk), dev)
        params, stats, opt_state, grads, out = _remedy_step_jit(
            params, stats, rest, opt_state, x, y, mk, graphdef=graphdef, decay=decay, tx=tx,
            loss_fn=loss_fn, other_loss=other, output=output, weight_decay=wd)
    out = jax.device_get(out)
    L = len(dims) - 1
    s = {k: v.T for k, v in out["inter"].items()}
    s[f"Z{L}"], s[f"A{L}"] = out["logits"].T, out["AL"].T
    l2 = out.get("cost_l2")
    s["cost_literal"] = out["J_other"] + l2 if l2 is not None else out["J_other"]
    if l2 is not None:
        s["cost_l2"], s["cost_stable"] = l2, out["J"] + l2
    else:
        s["cost_stable"] = out["J"]
    s.update({f"d{k}": v.T for k, v in out["d_inter"].items()})
    s[f"dZ{L}"], s["dA0"] = out["dZL"].T, out["dA0"].T
    s.update(_to_reference(grads, ppaths, "d"))
    s.update({f"{k}'": v for k, v in _to_reference(params, ppaths).items()})
    state = state_to_reference(opt_state, None, optimizer,
                               convert=lambda tree, prefix: _to_reference(tree, ppaths, prefix))
    # the reference's optimizer_step order: t, then vd and sd per parameter
    state = {k: state[k] for k in ["t"] + [f"{b}{k}" for k in ppaths for b in ("vd", "sd")] if k in state}
    s.update({f"{k}'": v for k, v in state.items()})
    s.update({f"{k}'": v for k, v in _to_reference(stats, spaths).items()})
    lay = layout(tuple(dims), remedies)
    order = remedy_stage_order(L, lay["bn"], lay["skips"], lay["projected"],
                               remedies.residual == "before", bool(remedies.l2), list(state))
    return {k: np.array(s[k]) for k in order if k in s}
