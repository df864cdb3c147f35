"""The reference's conventions against flax (nnx / linen) and optax: ONE table, as data,
and the few functions that apply it.

Each row of ``CONVENTIONS`` is a difference a user meets when porting the reference to
idiomatic flax/optax code: the concept, the reference's form, the library's form, and the
mapping (or fix). ``key`` is the short name other code looks up (``convention(key)``;
``netparity verify`` prints the row's mapping as a hint). The numbers quoted are measured
by tests/test_idiomatic_jax.py (flax 0.12.8, optax 0.2.8, jax 0.10.2, CPU, float64
unless said otherwise).

Functions:
    schedule_for(optimizer, dtype)          the learning rate: a float or an optax schedule
    optax_transform_for(optimizer, dtype)   the optax transformation that IS the reference
                                            optimiser (cached: one object per (optimizer, dtype))
    dense_layers(tree)                      the Linear/Dense layers of a params pytree, in order
    tree_to_reference(tree, layers)         a params-shaped pytree as W1 b1 ... (reference layout)
    state_to_reference(opt_state, layers, optimizer)   t, vdP, sdP from an optax state
    reference_optimizer_for(opt_state, **hyper)        the reference Optimizer an optax state
                                            can be compared with (what can be inferred is inferred)

An optax transformation is a pair of closures (init, update): its hyper-parameters (the
learning rate, beta, eps, whether the lr was scaled by 1 - beta) cannot be read back from
it. Only the STATE's structure is inspectable: ScaleByAdamState means Adam, TraceState
means heavy-ball momentum (of either form: the lr scaling is invisible), no moment buffer
means plain gradient descent, a count means a schedule or Adam. So the user names the
reference optimiser's hyper-parameters (``reference_optimizer_for(state, learning_rate=...)``);
its name is inferred.
"""
from dataclasses import dataclass
from functools import lru_cache
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reference.optim import Optimizer


@dataclass(frozen=True)
class Convention:
    key: str        # short name for lookups (verify hints)
    concept: str
    reference: str  # the reference's (course's) form
    library: str    # flax / optax form
    mapping: str    # how to get the reference's behaviour, or the fix


CONVENTIONS = (
    Convention(
        "layout.weight", "dense weight",
        "W^[l] (n_l, n_{l-1}); Z = W A + b",
        "nnx.Linear / linen Dense kernel (in, out) = W.T; z = x @ kernel + bias",
        "kernel = W.T, W = kernel.T (load_reference_parameters transposes; a square layer's "
        "W and W.T have the same shape, so a missing transpose is silent there: first "
        "diverging stage is that layer's Z)"),
    Convention(
        "layout.bias", "bias", "b^[l] (n_l, 1)", "bias (out,)",
        "bias = b[:, 0], b = bias[:, None]"),
    Convention(
        "layout.examples", "data layout", "X (n_x, m), Y (n_y, m): examples are columns",
        "x (m, n_x), logits and labels (m, n_y): examples are rows",
        "x = X.T; every stage is transposed back (Z^[l] = z_l.T)"),
    Convention(
        "init", "initial weights",
        "N(0, 0.01^2) (article) / xavier / he, drawn from RandomState(seed), b = 0",
        "nnx.Linear: lecun_normal kernel from nnx.Rngs, zero bias",
        "copy the reference's weights in (load_reference_parameters); the module's own "
        "draws are never used"),
    Convention(
        "momentum.ema", "momentum form",
        "EMA: v = beta v + (1 - beta) g; P -= lr v",
        "optax.sgd(lr, momentum=beta): trace = g + beta trace; P -= lr trace (heavy-ball)",
        "optax.sgd(lr * (1 - beta), momentum=beta) is the EMA form (equal in exact "
        "arithmetic; 100 full-batch steps agree to ~1e-16); unscaled, the first update is "
        "1/(1 - beta) = 10x the reference's. Or compare with momentum_form='heavy_ball'"),
    Convention(
        "momentum.state", "momentum buffer", "vdP (zero-initialised)",
        "TraceState.trace (zero-initialised)",
        "vdP = (1 - beta) * trace for the EMA form, vdP = trace for heavy_ball"),
    Convention(
        "momentum.optax_ema", "optax.ema", "no bias correction of the momentum",
        "optax.ema(beta) debiases by default: update = ema / (1 - beta^t) (first update = g)",
        "optax.ema(beta, debias=False) + optax.scale_by_learning_rate(lr) is the course's "
        "EMA exactly (state .ema = vdP); debias=True is a third form"),
    Convention(
        "adam.state", "Adam state", "vdP, sdP, t",
        "ScaleByAdamState(count, mu, nu); count is int32",
        "vdP = mu, sdP = nu, t = count"),
    Convention(
        "adam.uncorrected", "Adam epsilon",
        "corrected: m_hat / (sqrt(s_hat) + eps); uncorrected (Keras): eps_hat = eps sqrt(1 - b2^t)",
        "optax.adam: m_hat / (sqrt(s_hat + eps_root) + eps), i.e. the corrected form",
        "adam_epsilon='corrected' is optax.adam(eps_root=0.0); 'uncorrected' has no optax "
        "built-in: scale_by_adam_uncorrected (here)"),
    Convention(
        "adam.eps_root", "Adam eps_root", "none", "optax.adam(eps_root=0.0) adds eps_root under the sqrt",
        "keep eps_root = 0.0"),
    Convention(
        "loss.bce_mean", "sigmoid cost normalisation", "J = sum over n_y and m, / m",
        "optax.sigmoid_binary_cross_entropy(z, y).mean() divides by n_y m",
        "use .sum() / m; .mean() is J / n_y (the same only for n_y = 1)"),
    Convention(
        "loss.ce", "softmax cost normalisation", "J = sum / m",
        "optax.softmax_cross_entropy(z, y) is per example, shape (m,); .mean() divides by m",
        "equal: .mean()"),
    Convention(
        "schedule.int32_count", "exponential / step schedule",
        "lr0 rate^(k / steps), lr0 rate^floor(k / steps), in float64 (Python floats)",
        "optax.exponential_decay(lr0, steps, rate, staircase=False / True): the int32 count "
        "makes the rate float32 even under x64",
        "a schedule computed in float64 (schedule_for); exponential_decay's float32 rate "
        "(1e-6 relative at step 100, rate 0.99) drifts float64 parameters by 1.1e-6 in 100 "
        "steps at lr 1.2"),
    Convention(
        "schedule.inverse_time", "inverse-time schedule", "lr0 / (1 + rate floor(k / steps))",
        "no optax built-in", "a callable schedule (schedule_for)"),
    Convention(
        "schedule.constant", "constant learning rate", "lr0; the state counts t anyway",
        "a float learning_rate: optax keeps no count (gd, momentum)",
        "t' exists only where the optax state has a count (Adam, any schedule)"),
    Convention(
        "sgd.fma", "rounding of the update", "P - lr g: two roundings (NumPy)",
        "under jax.jit XLA fuses p + (-lr) g into one fused multiply-add; eager JAX rounds twice",
        "under jit W' = fma(W, -lr, dW) exactly, so not bitwise NumPy's two roundings "
        "(2 of 17 parameters of the 2-4-1 step; up to 2 ulp); inside the tolerance bound"),
    Convention(
        "activation.relu_at_0", "relu'(0)", "0", "jax.nn.relu: 0 (its custom JVP)", "the same"),
    Convention(
        "activation.leaky_relu_at_0", "leaky_relu'(0)", "0.01",
        "jax.nn.leaky_relu(negative_slope=0.01): 1.0 (it tests x >= 0)",
        "differs only where z == 0 exactly, where dZ is 100x the reference's (spirals has "
        "examples at the origin: every Z of a zero-bias net is 0 there); "
        "jnp.where(z > 0, z, 0.01 z) gives the reference's (Net uses it)"),
    Convention(
        "sharding.batch_mean", "data-parallel gradient",
        "the batch mean: (1/m) sum over the batch's m examples, however they are split",
        "jax.jit on a batch sharded by NamedSharding computes the global formula: XLA splits each "
        "sum into per-device partial sums and an all-reduce, the batch mean on any split (an uneven "
        "batch cannot be device_put sharded: put it replicated and let a sharding constraint inside "
        "the jit split it, XLA pads the last shard); shard_map + lax.pmean of per-device means is "
        "DDP's per-rank mean, wrong on unequal shards",
        "in shard_map: psum(G_r * m_r / m), or pad to equal blocks of width s with a mask (a padded "
        "example's error set to 0) and psum(G_r * s / m) (jax_impl.distributed, mode manual:psum)"),
    # ---- the remedies (docs/remedies.md); measured by tests/test_remedy_conventions.py
    Convention(
        "batchnorm.momentum", "batch norm running averages",
        "r <- mu r + (1 - mu) batch, mu = bn_momentum = 0.9 (the weight of the old value)",
        "nnx.BatchNorm(momentum=0.99): the same form, default 0.99",
        "momentum = bn_momentum; the default 0.99 is bn_momentum = 0.99 (a 10x longer memory)"),
    Convention(
        "batchnorm.running_var", "batch norm running variance",
        "bn_running_var='biased' (default): the batch variance it normalises with",
        "nnx.BatchNorm averages the biased variance",
        "bn_running_var='biased' is flax's; run_idiomatic_remedies raises for 'unbiased' (torch's)"),
    Convention(
        "batchnorm.eps", "batch norm epsilon", "bn_eps = 1e-5 inside the square root",
        "nnx.BatchNorm(epsilon=1e-5): (x - mean) * rsqrt(var + epsilon) (Keras: 1e-3)",
        "epsilon = bn_eps"),
    Convention(
        "batchnorm.stats_dtype", "batch norm running statistics' dtype",
        "mu_run, var_run in the parameters' dtype",
        "nnx.BatchNorm creates mean and var as float32 whatever dtype / param_dtype (flax 0.12.8): a "
        "float64 model's running averages are rounded to float32 at every update",
        "replace them with float64 arrays (run_idiomatic_remedies loads the reference's bn_state in the "
        "model's dtype)"),
    Convention(
        "batchnorm.fast_variance", "batch norm variance formula",
        "var = mean((z - mu)^2): the deviations first",
        "nnx.BatchNorm(use_fast_variance=True), the default: var = max(0, mean(z^2) - mean(z)^2), which "
        "cancels where |mean| >> std",
        "use_fast_variance=False (RemedyNet) computes the reference's formula"),
    Convention(
        "batchnorm.train_eval", "batch norm train / eval",
        "remedy_forward(train=True): batch statistics, running averages updated; train=False: the running ones",
        "nnx.BatchNorm(use_running_average=...) (constructor, call argument or nnx.view / model.eval())",
        "use_running_average = not train (RemedyNet passes it per call)"),
    Convention(
        "residual.placement", "where the skip is added",
        "residual='before': A = g(Z + S) (course); 'after': g(Z) + S",
        "no residual module: the addition is code in __call__",
        "h = zt + s before the activation for 'before' (RemedyNet)"),
    Convention(
        "l2.weight_decay", "L2 regularisation",
        "cost + (lambda / 2m) sum ‖W‖^2 over the weight matrices only: dW += (lambda / m) W",
        "optax.sgd / optax.adam take no weight_decay; optax.add_decayed_weights(wd, mask=None) adds wd * p "
        "to EVERY leaf unless masked",
        "chain(add_decayed_weights(lambda / m, mask=weights_mask), optimizer): kernels only (W, Ws), not "
        "biases nor BatchNorm scale/bias; the reference's dW = grad + wd * W"),
    Convention(
        "l2.adamw", "L2 with Adam",
        "the L2 gradient (lambda / m) W enters Adam's moments",
        "optax.adamw(weight_decay=1e-4) = chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate): "
        "decoupled, outside the moments",
        "not the course's L2: use chain(add_decayed_weights, adam) (row l2.decayed_weights)"),
    Convention(
        "l2.decayed_weights", "order of add_decayed_weights",
        "L2 is part of the gradient, before any optimiser",
        "add_decayed_weights before scale_by_adam: L2 (adapted); after it: AdamW (decoupled)",
        "before (remedy_transform); for gd / momentum the order does not matter except through the "
        "momentum trace (before: decayed gradient traced, as the course)"),
    Convention(
        "dropout.keep_prob", "dropout probability",
        "keep_prob: A * D / keep_prob in training; nothing at eval",
        "nnx.Dropout(rate): rate is the DROP probability; select(mask, x / (1 - rate), 0); deterministic=True: x",
        "rate = 1 - keep_prob"),
    Convention(
        "dropout.mask", "dropout mask",
        "D{l} drawn by the reference (NumPy RandomState(1000 + step)); every backend receives it",
        "nnx.Dropout draws its mask with jax.random.bernoulli from an nnx.Rngs stream",
        "idiomatic.InjectedDropout: nnx.Dropout's formula with the given mask; XLA (CPU) computes its "
        "x / keep_prob as x * (1 / keep_prob), 1 ulp from the reference's division on about a third of "
        "the kept entries (nnx.Dropout's own division too)"),
)

CONVENTIONS_BY_KEY = {c.key: c for c in CONVENTIONS}


def convention(key):
    """The row with this key (KeyError naming the known keys otherwise)."""
    try:
        return CONVENTIONS_BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown convention {key!r}; known: {', '.join(CONVENTIONS_BY_KEY)}") from None


def markdown_table():
    """The table as Markdown (docs/framework_differences.md quotes it)."""
    rows = ["| key | concept | reference | flax / optax | mapping / fix |", "|---|---|---|---|---|"]
    rows += [f"| `{c.key}` | {c.concept} | {c.reference} | {c.library} | {c.mapping} |"
             for c in CONVENTIONS]
    return "\n".join(rows)


# ---------------------------------------------------------------- schedules and optax

def schedule_for(optimizer, dtype="float64", factor=1.0):
    """The learning rate of ``optimizer`` times ``factor`` for optax: a Python float for
    "constant", else a schedule ``count -> rate``, a 0-d array in ``dtype``.

    The rate is computed in float64 from optax's int32 count (the reference's Python-float
    arithmetic), times ``factor``, and rounded once to ``dtype``: what NumPy does with a
    Python float next to a float32 array. optax.exponential_decay would compute it in
    float32 (row ``schedule.int32_count``). With k = the updates done before this one:
        inverse_time  lr0 / (1 + rate floor(k / steps))
        exponential   lr0 rate^(k / steps)
        step          lr0 rate^floor(k / steps)
    """
    lr0, rate, steps = optimizer.learning_rate, optimizer.decay_rate, optimizer.decay_steps
    kind = optimizer.schedule
    if kind == "constant":
        return lr0 * factor
    out = jnp.dtype(dtype)

    def schedule(count):
        k = jnp.asarray(count).astype(jnp.float64)
        if kind == "inverse_time":
            lr = lr0 / (1 + rate * jnp.floor(k / steps))
        elif kind == "exponential":
            lr = lr0 * jnp.power(jnp.float64(rate), k / steps)
        else:  # step
            lr = lr0 * jnp.power(jnp.float64(rate), jnp.floor(k / steps))
        return (lr * factor).astype(out)
    return schedule


def scale_by_adam_uncorrected(b1=0.9, b2=0.999, eps=1e-8):
    """Adam with Keras/TF's epsilon placement (reference ``adam_epsilon="uncorrected"``):
        u = sqrt(1 - b2^t) / (1 - b1^t) * mu / (sqrt(nu) + eps)
    with optax's state (ScaleByAdamState: count, mu, nu), so ``state_to_reference`` reads
    it like optax.adam's. Chain it with ``optax.scale_by_learning_rate(lr)``."""
    def init_fn(params):
        zeros = optax.tree.zeros_like(params)
        return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros,
                                      nu=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: b1 * m + (1 - b1) * g, updates, state.mu)
        nu = jax.tree.map(lambda g, s: b2 * s + (1 - b2) * (g * g), updates, state.nu)
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.float64)
        # sqrt(c2) / c1 in float64 (Python-float arithmetic in the reference), cast once
        corr = jnp.sqrt(1 - jnp.power(b2, t)) / (1 - jnp.power(b1, t))
        new = jax.tree.map(lambda m, s: corr.astype(m.dtype) * m / (jnp.sqrt(s) + eps), mu, nu)
        return new, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)
    return optax.GradientTransformation(init_fn, update_fn)


def optax_transform_for(optimizer, dtype="float64"):
    """The optax GradientTransformation equal (in exact arithmetic) to the reference's
    ``optimizer``. Cached, so equal (optimizer, dtype) give the same object and a jitted
    step that takes it as a static argument compiles once.

        gd                  optax.sgd(lr)
        momentum, ema       optax.sgd(lr * (1 - beta), momentum=beta)   (row momentum.ema)
        momentum, heavy     optax.sgd(lr, momentum=beta)
        adam, corrected     optax.adam(lr, b1, b2, eps, eps_root=0.0)
        adam, uncorrected   chain(scale_by_adam_uncorrected(b1, b2, eps), scale_by_learning_rate(lr))
    with lr = schedule_for(optimizer, dtype) (for ema momentum: schedule_for(optimizer, dtype, 1 - beta)).
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"expected a reference.Optimizer, got {type(optimizer).__name__}")
    return _transform(optimizer, jnp.dtype(dtype).name)


@lru_cache(maxsize=None)
def _transform(optimizer, dtype):
    lr = schedule_for(optimizer, dtype)
    if optimizer.name == "gd":
        return optax.sgd(lr)
    if optimizer.name == "momentum":
        if optimizer.momentum_form == "ema":
            return optax.sgd(schedule_for(optimizer, dtype, 1 - optimizer.beta),
                            momentum=optimizer.beta)
        return optax.sgd(lr, momentum=optimizer.beta)
    b1, b2, eps = optimizer.beta1, optimizer.beta2, optimizer.epsilon
    if optimizer.adam_epsilon == "corrected":
        return optax.adam(lr, b1=b1, b2=b2, eps=eps, eps_root=0.0)
    return optax.chain(scale_by_adam_uncorrected(b1, b2, eps), optax.scale_by_learning_rate(lr))


# ---------------------------------------------------------------- layouts

@dataclass(frozen=True)
class DenseLayer:
    """One Linear/Dense layer of a params pytree: its path (e.g. ("layers", 0) or
    ("params", "Dense_1")) and the kernel (in, out) / bias (out,) shapes found there."""
    path: tuple
    kernel_shape: tuple
    bias_shape: tuple

    @property
    def name(self):
        return "/".join(str(p) for p in self.path)


def _key_name(k):
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return getattr(k, attr)
    return str(k)


def leaf_path(path):
    """A jax key path as a tuple of plain names/indices; nnx Variables add a trailing
    attribute ``value`` (their pytree child), which is dropped."""
    names = tuple(_key_name(k) for k in path)
    if names and names[-1] in ("value", "raw_value") and type(path[-1]).__name__ == "GetAttrKey":
        names = names[:-1]
    return names


def leaves_by_path(tree):
    return {leaf_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _natural(path):
    """Sort key: numbers compare as numbers (layers/2 before layers/10, Dense_2 before Dense_10)."""
    out = []
    for p in path:
        for part in re.split(r"(\d+)", str(p)):
            if part:
                out.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return out


def dense_layers(tree):
    """The layers of a params pytree, in natural-sort order of their paths: every node
    holding a leaf ``kernel`` (2-D, (in, out)) and a leaf ``bias`` ((out,)), flax's names
    (nnx.Linear, linen Dense, nnx.split/nnx.state output, or a plain nested dict).
    Natural-sort order is the definition order for an nnx.List (layers/0, layers/1, ...)
    and for linen's automatic names (Dense_0, Dense_1, ...); named attributes sort by name,
    so name them in call order. ValueError naming the layer when one cannot be mapped."""
    leaves = leaves_by_path(tree)
    groups = {}
    for path, v in leaves.items():
        if path and path[-1] in ("kernel", "bias"):
            groups.setdefault(path[:-1], {})[path[-1]] = v
    if not groups:
        shown = ", ".join("/".join(map(str, p)) for p in list(leaves)[:8])
        raise ValueError("found no Linear/Dense layer: expected leaves named 'kernel' (in, out) "
                         f"and 'bias' (out,) (flax's names); the pytree has: {shown}")
    layers = []
    for path in sorted(groups, key=_natural):
        g, name = groups[path], "/".join(map(str, path))
        if "bias" not in g:
            raise ValueError(f"layer {name!r} has a kernel but no bias; every reference layer "
                             "has one (use_bias=True)")
        if "kernel" not in g:
            raise ValueError(f"layer {name!r} has a bias but no kernel")
        k, b = np.shape(g["kernel"]), np.shape(g["bias"])
        if len(k) != 2 or b != (k[1],):
            raise ValueError(f"layer {name!r} is not a dense layer: kernel {k}, bias {b} "
                             "(expected (in, out) and (out,))")
        layers.append(DenseLayer(path, k, b))
    return layers


def tree_to_reference(tree, layers, prefix=""):
    """A pytree shaped like the params (params, grads, moments) as the reference's dict
    ``{prefix}W1, {prefix}b1, ...`` of NumPy arrays (copied to the host, then laid out
    there: no eager device op to compile): W = kernel.T (n_l, n_{l-1}), b = bias[:, None]
    (n_l, 1)."""
    leaves = leaves_by_path(tree)
    out = {}
    for l, layer in enumerate(layers, 1):
        out[f"{prefix}W{l}"] = np.array(leaves[layer.path + ("kernel",)]).T
        out[f"{prefix}b{l}"] = np.array(leaves[layer.path + ("bias",)])[:, None]
    return out


# ---------------------------------------------------------------- optimiser state

def _states(opt_state):
    """Every optax NamedTuple state inside an opt_state (chains are tuples, nesting allowed)."""
    if isinstance(opt_state, tuple) and hasattr(opt_state, "_fields"):
        yield opt_state
        for f in opt_state:
            if isinstance(f, (tuple, list, dict)):
                yield from _states(f)
    elif isinstance(opt_state, (tuple, list)):
        for s in opt_state:
            yield from _states(s)
    elif isinstance(opt_state, dict):
        for s in opt_state.values():
            yield from _states(s)


def _kinds(opt_state):
    found = {}
    for s in _states(opt_state):
        found.setdefault(type(s), s)
    return found


def state_to_reference(opt_state, layers, optimizer, convert=None):
    """The reference's optimiser state from an optax state, in its layout and order:
    ``t`` (Python int; only where optax keeps a count: ScaleByAdamState, EmaState or
    ScaleByScheduleState), then ``vdW1 vdb1 ...`` and ``sdW1 ...``:
        ScaleByAdamState   vdP = mu, sdP = nu, t = count
        TraceState         vdP = (1 - beta) trace (momentum_form "ema": optax.sgd with the
                           lr scaled by 1 - beta), vdP = trace ("heavy_ball")
        EmaState           vdP = ema (optax.ema's raw average, before any debiasing)
    ``layers``: dense_layers(params). Values are NumPy arrays. ``convert(tree, prefix)``
    replaces ``tree_to_reference(tree, layers, prefix)`` for parameters other than dense
    layers (the remedies' gamma, beta, Ws: idiomatic.run_idiomatic_remedies)."""
    if convert is None:
        def convert(tree, prefix):
            return tree_to_reference(tree, layers, prefix)
    kinds = _kinds(opt_state)
    out = {}
    for cls in (optax.ScaleByAdamState, optax.EmaState, optax.ScaleByScheduleState):
        if cls in kinds:
            out["t"] = int(kinds[cls].count)
            break
    if optax.ScaleByAdamState in kinds:
        s = kinds[optax.ScaleByAdamState]
        out.update(convert(s.mu, "vd"))
        out.update(convert(s.nu, "sd"))
    elif optax.TraceState in kinds:
        v = convert(kinds[optax.TraceState].trace, "vd")
        if optimizer.momentum_form == "ema":
            v = {k: (1 - optimizer.beta) * a for k, a in v.items()}
        out.update(v)
    elif optax.EmaState in kinds:
        out.update(convert(kinds[optax.EmaState].ema, "vd"))
    return out


def reference_optimizer_for(opt_state, **hyper):
    """The reference Optimizer to compare an optax state with. The name is inferred from
    the state's structure (ScaleByAdamState: adam; TraceState or EmaState: momentum;
    neither: gd); every hyper-parameter (learning_rate, beta, momentum_form, schedule, ...)
    must be named in ``hyper``: optax transformations are closures that do not expose
    them. Naming ``name`` explicitly checks it against the state (ValueError on a clash)."""
    kinds = _kinds(opt_state)
    if optax.ScaleByAdamState in kinds:
        name = "adam"
    elif optax.TraceState in kinds or optax.EmaState in kinds:
        name = "momentum"
    else:
        name = "gd"
    if hyper.get("name", name) != name:
        raise ValueError(f"optimizer {hyper['name']!r} named, but the optax state "
                         f"({', '.join(c.__name__ for c in kinds) or 'no state'}) is {name!r}'s")
    return Optimizer(**{**hyper, "name": name})
