"""The remedies (batch norm, residual connections, L2, inverted dropout): the JAX mirror
of reference/remedies.py, specified in docs/remedies.md (names, shapes, the m dJ/d(.)
convention of dZ/dA/dH/dZt, which stages a configuration has, their order, the
reference's arithmetic order). torch_impl/remedies.py is the torch counterpart.

    init_bn_state(parameters)                                        -> bn_state
    remedy_forward(X, parameters, bn_state, remedies, hidden, output, masks=None, train=True)
                                                                     -> (AL, cache, new_bn_state)
    remedy_cost(cache, parameters, Y, remedies, output)              -> (cost_stable, cost_l2)
    remedy_backward(parameters, cache, X, Y, remedies, hidden, output, masks=None) -> grads
    remedy_backward_autodiff(parameters, bn_state, X, Y, remedies, hidden, output, masks=None)
    remedy_step(path, parameters, bn_state, opt_state, X, Y, remedies, hidden, output,
                optimizer, masks=None) -> (stages, new_parameters, new_bn_state, new_opt_state)

``Remedies`` (hashable: a static argument of jax.jit) and the layout helpers are the
reference's own. This module never draws random numbers: ``initialize_remedy_network``,
``dropout_masks`` and ``step_masks`` are the reference's draws converted to jax arrays,
and every other function takes the 0/1 masks as inputs (no jax.random key anywhere).
Everything computes in the dtype of the inputs (x64 is on so that float64 exists; Python
floats are weakly typed and never promote float32).

Gradient paths of ``remedy_step``: "manual" (the formulas, eager), "autodiff" (jax.grad
through the same forward and cost, jitted as ``network_backward_autodiff`` is, with zero
probes on Z, Zt, H and A for the m dJ/d(.) stages) and "compiled" (the manual step,
forward to update, as one jax.jit with remedies, hidden, output and optimizer static and
t traced, as ``make_train_step(compiled=True)`` does it).

Input checks: as torch_impl/remedies.py (the shared validation of reference/validate.py
through guard_api; the mirror adds only its unknown-path message).
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import reference.remedies as _ref
from reference.remedies import Remedies, layer_dims_of, layout, weight_names  # noqa: F401  Remedies: re-exported
from ._convert import tree_from_numpy
from .activations import activation, activation_grad
from .costs import cross_entropy, cross_entropy_from_logits
from .network import _matmul_nt
from .optim import optimizer_step

REMEDY_PATHS = ("manual", "autodiff", "compiled")


# ------------------------------------------------------------------ the reference's draws

def initialize_remedy_network(layer_dims, remedies, init="xavier", seed=1, dtype=np.float64,
                              device="cpu"):
    """The reference's draws (float64, then cast to ``dtype`` on ``device``)."""
    p = _ref.initialize_remedy_network(layer_dims, remedies, init, seed, np.float64)
    return tree_from_numpy(p, dtype, device)


def dropout_masks(layer_dims, m, keep_prob, seed, dtype=np.float64, device="cpu"):
    """The reference's 0/1 masks D1 ... D{L-1} (its RandomState draw), as jax arrays."""
    return tree_from_numpy(_ref.dropout_masks(layer_dims, m, keep_prob, seed), dtype, device)


def step_masks(layer_dims, m, keep_prob, k, dtype=np.float64, device="cpu"):
    """The reference's masks of step k (None without dropout), as jax arrays."""
    masks = _ref.step_masks(layer_dims, m, keep_prob, k)
    return None if masks is None else tree_from_numpy(masks, dtype, device)


# ------------------------------------------------------------------ validation

def _layout(parameters, remedies):
    """The layers each remedy touches (reference.remedies.layout). Inputs are checked by
    the shared validation (reference/validate.py through guard_api) before this runs."""
    return layout(layer_dims_of(parameters), remedies)


# ------------------------------------------------------------------ the formulas

def init_bn_state(parameters):
    """Running mean 0 and variance 1, (n^[l], 1), for every batch-normalised layer (every
    gamma{l}), in the parameters' dtype and device; {} without batch norm."""
    state = {}
    for k, g in parameters.items():
        if k.startswith("gamma"):
            l = k[len("gamma"):]
            state[f"mu_run{l}"] = jnp.zeros_like(g)
            state[f"var_run{l}"] = jnp.ones_like(g)
    return state


def _col_mean(x):
    # the reference's explicit sum, then one division (not jnp.mean's own reduction)
    return jnp.sum(x, axis=1, keepdims=True) / x.shape[1]


def _forward(X, P, bn_state, r, hidden, output, masks, train, lay, probes=None):
    """(AL, cache, new_bn_state), unchecked; the reference's formulas and order.
    ``probes`` (autodiff only): zeros added to A0 and to every Z, Zt, H, A (x + 0 == x),
    whose gradients are those of the stages."""
    def tap(name, x):
        return x + probes[name] if probes is not None and name in probes else x

    L, m = lay["L"], X.shape[1]
    eps, mom = r.bn_eps, r.bn_momentum
    drop = train and masks is not None and r.dropout
    X = tap("A0", X)
    cache = {"A0": X}
    new_bn = dict(bn_state) if bn_state is not None else {}
    A = X
    for l in range(1, L):
        Z = P[f"W{l}"] @ A
        if l not in lay["bn"]:
            Z = Z + P[f"b{l}"]
        Z = tap(f"Z{l}", Z)
        cache[f"Z{l}"] = Z
        H = Z
        if l in lay["bn"]:
            if train:
                mu = _col_mean(Z)
                Zc = Z - mu
                var = _col_mean(Zc * Zc)
                cache[f"mu{l}"], cache[f"var{l}"] = mu, var
                var_c = var * (m / (m - 1)) if r.bn_running_var == "unbiased" else var
                new_bn[f"mu_run{l}"] = mom * bn_state[f"mu_run{l}"] + (1 - mom) * mu
                new_bn[f"var_run{l}"] = mom * bn_state[f"var_run{l}"] + (1 - mom) * var_c
            else:
                Zc = Z - bn_state[f"mu_run{l}"]
                var = bn_state[f"var_run{l}"]
            Zn = Zc / jnp.sqrt(var + eps)
            Zt = tap(f"Zt{l}", P[f"gamma{l}"] * Zn + P[f"beta{l}"])
            cache[f"Zn{l}"], cache[f"Zt{l}"] = Zn, Zt
            H = Zt
        S = None
        if l in lay["skips"]:
            A_skip = cache[f"A{l - 2}"]
            S = P[f"Ws{l}"] @ A_skip if l in lay["projected"] else A_skip
            cache[f"S{l}"] = S
            if r.residual == "before":
                H = tap(f"H{l}", H + S)
                cache[f"H{l}"] = H
        G = activation(hidden, H)
        A = G
        if S is not None and r.residual == "after":
            A = A + S
        if drop:
            A = A * masks[f"D{l}"] / r.keep_prob
        A = tap(f"A{l}", A)
        if A is not G:
            cache[f"G{l}"] = G  # g(H), for g'(H): internal, not a stage (as the reference's)
        cache[f"A{l}"] = A
    Z = tap(f"Z{L}", P[f"W{L}"] @ A + P[f"b{L}"])
    A = activation(output, Z)
    cache[f"Z{L}"], cache[f"A{L}"] = Z, A
    return A, cache, new_bn


def _l2_term(P, m, lam, like):
    if not lam:
        return jnp.zeros_like(like, shape=())  # on like's device, in its dtype
    total = sum(jnp.sum(P[k] * P[k]) for k in weight_names(P))
    return lam / (2 * m) * total


def _cost(cache, P, Y, r, output, L):
    J = cross_entropy_from_logits(cache[f"Z{L}"], Y, output)
    J_l2 = _l2_term(P, Y.shape[1], r.l2, J)
    return (J + J_l2 if r.l2 else J), J_l2


def _backward(P, cache, X, Y, r, hidden, output, masks, lay):
    """The reference's backward, unchecked, same keys in the same order."""
    L, m = lay["L"], X.shape[1]
    lam = r.l2
    drop = masks is not None and r.dropout
    grads = {}
    pending = {}  # l -> the skip's share of dA^[l] (from layer l + 2)
    dZ = cache[f"A{L}"] - Y
    for l in range(L, 0, -1):
        dS = None
        if l < L:
            dA = grads[f"dA{l}"]
            if drop:
                dA = dA * masks[f"D{l}"] / r.keep_prob
            H = cache.get(f"H{l}", cache.get(f"Zt{l}", cache[f"Z{l}"]))
            G = cache.get(f"G{l}", cache[f"A{l}"])
            dH = dA * activation_grad(hidden, H, G)
            if f"H{l}" in cache:
                grads[f"dH{l}"] = dH
            if l in lay["skips"]:
                dS = dH if r.residual == "before" else dA
            dZ = dH
            if l in lay["bn"]:
                dZt = dH
                grads[f"dZt{l}"] = dZt
                Zn = cache[f"Zn{l}"]
                grads[f"dgamma{l}"] = jnp.sum(dZt * Zn, axis=1, keepdims=True) / m
                grads[f"dbeta{l}"] = jnp.sum(dZt, axis=1, keepdims=True) / m
                dZn = dZt * P[f"gamma{l}"]
                dZ = ((dZn - _col_mean(dZn) - Zn * _col_mean(dZn * Zn))
                      / jnp.sqrt(cache[f"var{l}"] + r.bn_eps))
        W = P[f"W{l}"]
        grads[f"dZ{l}"] = dZ
        dW = _matmul_nt(dZ, cache[f"A{l - 1}"]) / m
        grads[f"dW{l}"] = dW + (lam / m) * W if lam else dW
        if f"b{l}" in P:
            grads[f"db{l}"] = jnp.sum(dZ, axis=1, keepdims=True) / m
        if dS is not None:
            A_skip = cache[f"A{l - 2}"]
            if l in lay["projected"]:
                Ws = P[f"Ws{l}"]
                dWs = _matmul_nt(dS, A_skip) / m
                grads[f"dWs{l}"] = dWs + (lam / m) * Ws if lam else dWs
                pending[l - 2] = Ws.T @ dS
            else:
                pending[l - 2] = dS
        dA_prev = W.T @ dZ
        if l - 1 in pending:
            dA_prev = dA_prev + pending.pop(l - 1)
        grads[f"dA{l - 1}"] = dA_prev
    return grads


def _grad_keys(P, lay, before):
    """The backward's keys in its order (docs/remedies.md, "Which stages")."""
    keys = []
    for l in range(lay["L"], 0, -1):
        if l in lay["skips"] and before:
            keys.append(f"dH{l}")
        if l in lay["bn"]:
            keys += [f"dZt{l}", f"dgamma{l}", f"dbeta{l}"]
        keys += [f"dZ{l}", f"dW{l}"] + ([f"db{l}"] if f"b{l}" in P else [])
        if l in lay["projected"]:
            keys.append(f"dWs{l}")
        keys.append(f"dA{l - 1}")
    return keys


_SCALED = ("dZ", "dH", "dA")  # m dJ/d(.) stages (dZt too: its prefix is dZ)


def _probe_shapes(P, lay, m, before):
    """name -> shape of every probe: A0 and, per layer, Z, Zt, H (where stages), A."""
    dims = layer_dims_of(P)
    shapes = {"A0": (dims[0], m)}
    for l in range(1, lay["L"] + 1):
        names = [f"Z{l}"]
        if l < lay["L"]:
            names += ([f"Zt{l}"] if l in lay["bn"] else []) + (
                [f"H{l}"] if before and l in lay["skips"] else []) + [f"A{l}"]
        shapes.update({k: (dims[l], m) for k in names})
    return shapes


# Under jit, like network._cost_and_gradients: eager jax.grad re-traces and compiles every
# primitive separately for each new shape.
@partial(jax.jit, static_argnames=("remedies", "hidden", "output"))
def _cost_and_grads_jit(P, bn_state, X, Y, masks, remedies, hidden, output):
    lay = layout(layer_dims_of(P), remedies)
    m = X.shape[1]
    before = remedies.residual == "before"
    probes = {k: jnp.zeros(s, dtype=X.dtype) for k, s in _probe_shapes(P, lay, m, before).items()}

    def J_of(P, probes):
        _, cache, _ = _forward(X, P, bn_state, remedies, hidden, output, masks, True, lay, probes)
        return _cost(cache, P, Y, remedies, output, lay["L"])[0]

    J, (dP, dprobe) = jax.value_and_grad(J_of, argnums=(0, 1))(P, probes)
    return J, {k: m * dprobe[k[1:]] if k.startswith(_SCALED) else dP[k[1:]]
               for k in _grad_keys(P, lay, before)}


def _cost_and_autodiff(P, bn_state, X, Y, r, hidden, output, masks, lay):
    J, grads = _cost_and_grads_jit(P, bn_state, X, Y, masks if r.dropout else None,
                                   remedies=r, hidden=hidden, output=output)
    # jit returns dicts with sorted keys; restore the reference's order
    return J, {k: grads[k] for k in _grad_keys(P, lay, r.residual == "before")}


# ------------------------------------------------------------------ the public functions

def remedy_forward(X, parameters, bn_state, remedies, hidden="tanh", output="sigmoid",
                   masks=None, train=True):
    """(AL, cache, new_bn_state). train=True: batch statistics, running estimates
    updated, dropout where masks are given; train=False: the running estimates, no
    dropout, bn_state unchanged. The cache holds A0, every forward stage and the
    reference's internal G{l} = g(H{l}) where it differs from A{l}."""
    train = bool(train)
    lay = _layout(parameters, remedies)
    return _forward(X, parameters, bn_state, remedies, hidden, output, masks, train, lay)


def remedy_cost(cache, parameters, Y, remedies, output="sigmoid"):
    """(cost_stable, cost_l2): the stable cross-entropy of Z^[L] plus
    (lambda / 2m) sum ||W||_F^2 over W1 ... WL then Ws (an exact 0, not added, when
    lambda = 0), 0-d arrays."""
    return _cost(cache, parameters, Y, remedies, output, len(layer_dims_of(parameters)) - 1)


def remedy_backward(parameters, cache, X, Y, remedies, hidden="tanh", output="sigmoid",
                    masks=None):
    """Backprop through a train-mode cache (docs/remedies.md, "Backward"); the masks the
    forward used. dZ dA dH dZt are m dJ/d(.); dW db dgamma dbeta dWs are dJ/d(.)."""
    lay = _layout(parameters, remedies)
    return _backward(parameters, cache, X, Y, remedies, hidden, output, masks, lay)


def remedy_backward_autodiff(parameters, bn_state, X, Y, remedies, hidden="tanh",
                             output="sigmoid", masks=None):
    """``remedy_backward``'s dict (same keys, order and scaling) by jax.grad through the
    train-mode forward and the stable cost, L2 included."""
    lay = _layout(parameters, remedies)
    return _cost_and_autodiff(parameters, bn_state, X, Y, remedies, hidden, output, masks,
                              lay)[1]


def _manual_step(P, bn_state, opt_state, X, Y, masks, remedies, hidden, output, optimizer):
    lay = layout(layer_dims_of(P), remedies)
    _, cache, new_bn = _forward(X, P, bn_state, remedies, hidden, output, masks, True, lay)
    J, J_l2 = _cost(cache, P, Y, remedies, output, lay["L"])
    grads = _backward(P, cache, X, Y, remedies, hidden, output, masks, lay)
    new_p, new_s = optimizer_step(P, grads, opt_state, optimizer)
    return J_l2, J, grads, new_p, new_s, new_bn


# One program per static configuration (and shapes/dtypes); t is traced (an int32 array)
_step_jit = jax.jit(_manual_step, static_argnames=("remedies", "hidden", "output", "optimizer"))


def _buffer_order(parameters, buffers):
    """The optimiser buffers in optimizer_step's order (per parameter: vd, then sd)."""
    return [b for k in parameters for b in (f"vd{k}", f"sd{k}") if b in buffers]


def _compiled_step(P, bn_state, opt_state, X, Y, remedies, hidden, output, optimizer, masks,
                   lay):
    t = opt_state["t"]
    if not isinstance(t, jax.Array):
        # a Python int t would trace as int64 and compile a second variant (make_train_step)
        t = jnp.full_like(X, t, dtype=jnp.int32, shape=())
    J_l2, J, grads, new_p, new_s, new_bn = _step_jit(
        P, bn_state or {}, {**opt_state, "t": t}, X, Y, masks if remedies.dropout else None,
        remedies=remedies, hidden=hidden, output=output, optimizer=optimizer)
    # jit returns dicts with sorted keys; restore the reference's order
    costs = {"cost_l2": J_l2} if remedies.l2 else {}
    grads = {k: grads[k] for k in _grad_keys(P, lay, remedies.residual == "before")}
    return ({**costs, "cost_stable": J, **grads}, {k: new_p[k] for k in P},
            {k: new_bn[k] for k in (bn_state or {})},
            {k: new_s[k] for k in ["t"] + _buffer_order(P, opt_state)})


def remedy_step(path, parameters, bn_state, opt_state, X, Y, remedies, hidden, output,
                optimizer, masks=None):
    """One train-mode update: (stages, new_parameters, new_bn_state, new_opt_state), the
    stages named and ordered as the reference's (forward cache without A0 and G, the
    costs, the gradients, every P', the optimiser state', mu_run' var_run'). Path
    "compiled" returns the costs (cost_l2 where lambda > 0, cost_stable), the gradients
    and the updates only."""
    if path not in REMEDY_PATHS:
        raise ValueError(f"unknown remedy path {path!r}; expected one of {', '.join(REMEDY_PATHS)}")
    lay = _layout(parameters, remedies)
    if path == "compiled":
        stages, new_p, new_bn, new_s = _compiled_step(parameters, bn_state, opt_state, X, Y,
                                                      remedies, hidden, output, optimizer,
                                                      masks, lay)
    else:
        AL, cache, new_bn = _forward(X, parameters, bn_state, remedies, hidden, output, masks,
                                     True, lay)
        J, J_l2 = _cost(cache, parameters, Y, remedies, output, lay["L"])
        stages = {k: v for k, v in cache.items() if k != "A0" and not k.startswith("G")}
        literal = cross_entropy(AL, Y, output)
        stages["cost_literal"] = literal + J_l2 if remedies.l2 else literal
        if remedies.l2:
            stages["cost_l2"] = J_l2
        stages["cost_stable"] = J
        if path == "manual":
            grads = _backward(parameters, cache, X, Y, remedies, hidden, output, masks, lay)
        else:
            grads = _cost_and_autodiff(parameters, bn_state, X, Y, remedies, hidden, output,
                                       masks, lay)[1]
        stages.update(grads)
        new_p, new_s = optimizer_step(parameters, grads, opt_state, optimizer)
    stages.update({f"{k}'": v for k, v in new_p.items()})
    stages.update({f"{k}'": v for k, v in new_s.items()})
    stages.update({f"{k}'": v for k, v in new_bn.items()})
    return stages, new_p, new_bn, new_s
