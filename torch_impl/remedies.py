"""The remedies (batch norm, residual connections, L2, inverted dropout): the torch mirror
of reference/remedies.py, specified in docs/remedies.md (names, shapes, the m dJ/d(.)
convention of dZ/dA/dH/dZt, which stages a configuration has, their order, the
reference's arithmetic order).

    init_bn_state(parameters)                                        -> bn_state
    remedy_forward(X, parameters, bn_state, remedies, hidden, output, masks=None, train=True)
                                                                     -> (AL, cache, new_bn_state)
    remedy_cost(cache, parameters, Y, remedies, output)              -> (cost_stable, cost_l2)
    remedy_backward(parameters, cache, X, Y, remedies, hidden, output, masks=None) -> grads
    remedy_backward_autodiff(parameters, bn_state, X, Y, remedies, hidden, output, masks=None)
    remedy_step(path, parameters, bn_state, opt_state, X, Y, remedies, hidden, output,
                optimizer, masks=None) -> (stages, new_parameters, new_bn_state, new_opt_state)

``Remedies`` and the layout helpers are the reference's own. This module never draws
random numbers: ``initialize_remedy_network``, ``dropout_masks`` and ``step_masks`` are
the reference's draws converted to tensors, and every other function takes the 0/1 masks
as inputs. Everything computes in the dtype of the inputs; hyper-parameters are Python
floats, which never promote a tensor.

Gradient paths of ``remedy_step``: "manual" (the formulas, written out like the
reference's), "autodiff" (torch.autograd through the same forward and cost, converted to
the m dJ/dZ convention) and "compiled" (the manual step, forward to update, as one
torch.compile'd function per static configuration, as ``make_train_step`` does it).

Input checks: the package's public functions run the reference's validation first
(reference/validate.py through guard_api, as every public function of the mirror: the
same checks and one-line messages for parameters that do not fit the remedies, masks of
the wrong shape or lacking a layer, a bn_state lacking a layer, a backward on an
eval-mode cache, masks given without dropout, a batch of one example for the unbiased
running variance: all refused before anything is computed or compiled); the mirror adds
only its unknown-path message. The functions of this module itself are not run through
the shared validation, as the rest of the mirror's modules are not.
"""
import functools

import numpy as np
import torch

import reference.remedies as _ref
from reference.remedies import Remedies, layer_dims_of, layout, weight_names  # noqa: F401  Remedies: re-exported
from ._convert import from_numpy
from .activations import activation, activation_grad
from .costs import cross_entropy, cross_entropy_from_logits
from .network import outer_product, weight_product, weight_t_product
from .optim import apply_update, optimizer_step, step_scalars

REMEDY_PATHS = ("manual", "autodiff", "compiled")


# ------------------------------------------------------------------ the reference's draws

def initialize_remedy_network(layer_dims, remedies, init="xavier", seed=1, dtype=torch.float64,
                              device="cpu"):
    """The reference's draws (float64, then cast to ``dtype`` on ``device``)."""
    p = _ref.initialize_remedy_network(layer_dims, remedies, init, seed, np.float64)
    return {k: from_numpy(v, dtype, device) for k, v in p.items()}


def dropout_masks(layer_dims, m, keep_prob, seed, dtype=torch.float64, device="cpu"):
    """The reference's 0/1 masks D1 ... D{L-1} (its RandomState draw), as tensors."""
    masks = _ref.dropout_masks(layer_dims, m, keep_prob, seed)
    return {k: from_numpy(v, dtype, device) for k, v in masks.items()}


def step_masks(layer_dims, m, keep_prob, k, dtype=torch.float64, device="cpu"):
    """The reference's masks of step k (None without dropout), as tensors."""
    masks = _ref.step_masks(layer_dims, m, keep_prob, k)
    return None if masks is None else {k_: from_numpy(v, dtype, device) for k_, v in masks.items()}


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
            state[f"mu_run{l}"] = torch.zeros_like(g)
            state[f"var_run{l}"] = torch.ones_like(g)
    return state


def _col_mean(x):
    # the reference's explicit sum, then one division (not torch.mean's own reduction)
    return torch.sum(x, dim=1, keepdim=True) / x.shape[1]


def _forward(X, P, bn_state, r, hidden, output, masks, train, lay):
    """(AL, cache, new_bn_state), unchecked; the reference's formulas and order."""
    L, m = lay["L"], X.shape[1]
    eps, mom = r.bn_eps, r.bn_momentum
    drop = train and masks is not None and r.dropout
    cache = {"A0": X}
    new_bn = dict(bn_state) if bn_state is not None else {}
    A = X
    for l in range(1, L):
        Z = weight_product(P[f"W{l}"], A)
        if l not in lay["bn"]:
            Z = Z + P[f"b{l}"]
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
            Zn = Zc / torch.sqrt(var + eps)
            Zt = P[f"gamma{l}"] * Zn + P[f"beta{l}"]
            cache[f"Zn{l}"], cache[f"Zt{l}"] = Zn, Zt
            H = Zt
        S = None
        if l in lay["skips"]:
            A_skip = cache[f"A{l - 2}"]
            S = weight_product(P[f"Ws{l}"], A_skip) if l in lay["projected"] else A_skip
            cache[f"S{l}"] = S
            if r.residual == "before":
                H = H + S
                cache[f"H{l}"] = H
        G = activation(hidden, H)
        A = G
        if S is not None and r.residual == "after":
            A = A + S
        if drop:
            A = A * masks[f"D{l}"] / r.keep_prob
        if A is not G:
            cache[f"G{l}"] = G  # g(H), for g'(H): internal, not a stage (as the reference's)
        cache[f"A{l}"] = A
    Z = weight_product(P[f"W{L}"], A) + P[f"b{L}"]
    A = activation(output, Z)
    cache[f"Z{L}"], cache[f"A{L}"] = Z, A
    return A, cache, new_bn


def _l2_term(P, m, lam, like):
    if not lam:
        return like.new_zeros(())
    total = sum(torch.sum(P[k] * P[k]) for k in weight_names(P))
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
                grads[f"dgamma{l}"] = torch.sum(dZt * Zn, dim=1, keepdim=True) / m
                grads[f"dbeta{l}"] = torch.sum(dZt, dim=1, keepdim=True) / m
                dZn = dZt * P[f"gamma{l}"]
                dZ = ((dZn - _col_mean(dZn) - Zn * _col_mean(dZn * Zn))
                      / torch.sqrt(cache[f"var{l}"] + r.bn_eps))
        W = P[f"W{l}"]
        grads[f"dZ{l}"] = dZ
        dW = outer_product(dZ, cache[f"A{l - 1}"], W) / m
        grads[f"dW{l}"] = dW + (lam / m) * W if lam else dW
        if f"b{l}" in P:
            grads[f"db{l}"] = torch.sum(dZ, dim=1, keepdim=True) / m
        if dS is not None:
            A_skip = cache[f"A{l - 2}"]
            if l in lay["projected"]:
                Ws = P[f"Ws{l}"]
                dWs = outer_product(dS, A_skip, Ws) / m
                grads[f"dWs{l}"] = dWs + (lam / m) * Ws if lam else dWs
                pending[l - 2] = weight_t_product(Ws, dS)
            else:
                pending[l - 2] = dS
        dA_prev = weight_t_product(W, dZ)
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


def _cost_and_autograd(P, bn_state, X, Y, r, hidden, output, masks, lay):
    """(J, grads) by torch.autograd through ``_forward`` and ``_cost``: dZ, dZt, dH, dA
    scaled by m (dA0 = m dJ/dX); dW, db, dgamma, dbeta, dWs are dJ/d(.), L2 included.
    Detached; the caller's tensors get no graph."""
    m = X.shape[1]
    with torch.enable_grad():
        params = {k: v.detach().requires_grad_(True) for k, v in P.items()}
        A0 = X.detach().requires_grad_(True)
        _, cache, _ = _forward(A0, params, bn_state, r, hidden, output, masks, True, lay)
        J, _ = _cost(cache, params, Y, r, output, lay["L"])
        names = _grad_keys(P, lay, r.residual == "before")
        inputs = [cache[k[1:]] if k.startswith(_SCALED) else params[k[1:]] for k in names]
        values = torch.autograd.grad(J, inputs)
    return J.detach(), {k: m * g if k.startswith(_SCALED) else g for k, g in zip(names, values)}


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
    lambda = 0), 0-d tensors."""
    return _cost(cache, parameters, Y, remedies, output, len(layer_dims_of(parameters)) - 1)


def remedy_backward(parameters, cache, X, Y, remedies, hidden="tanh", output="sigmoid",
                    masks=None):
    """Backprop through a train-mode cache (docs/remedies.md, "Backward"); the masks the
    forward used. dZ dA dH dZt are m dJ/d(.); dW db dgamma dbeta dWs are dJ/d(.)."""
    lay = _layout(parameters, remedies)
    return _backward(parameters, cache, X, Y, remedies, hidden, output, masks, lay)


def remedy_backward_autodiff(parameters, bn_state, X, Y, remedies, hidden="tanh",
                             output="sigmoid", masks=None):
    """``remedy_backward``'s dict (same keys, order and scaling) by torch.autograd through
    the train-mode forward and the stable cost, L2 included."""
    lay = _layout(parameters, remedies)
    return _cost_and_autograd(parameters, bn_state, X, Y, remedies, hidden, output, masks,
                              lay)[1]


@functools.lru_cache(maxsize=None)
def _compiled_core(remedies, hidden, output, optimizer, dims):
    """One torch.compile'd manual step per static configuration and widths: forward,
    costs, backward and the optimiser's tensor work."""
    lay = layout(dims, remedies)

    def core(parameters, bn_state, buffers, X, Y, masks, scalars):
        _, cache, new_bn = _forward(X, parameters, bn_state, remedies, hidden, output, masks,
                                    True, lay)
        J, J_l2 = _cost(cache, parameters, Y, remedies, output, lay["L"])
        grads = _backward(parameters, cache, X, Y, remedies, hidden, output, masks, lay)
        new_params, new_buffers = apply_update(parameters, grads, buffers, optimizer, scalars)
        return J_l2, J, grads, new_params, new_buffers, new_bn
    return torch.compile(core)


def _buffer_order(parameters, buffers):
    """The optimiser buffers in optimizer_step's order (per parameter: vd, then sd)."""
    return [b for k in parameters for b in (f"vd{k}", f"sd{k}") if b in buffers]


def _compiled_step(parameters, bn_state, opt_state, X, Y, remedies, hidden, output,
                   optimizer, masks):
    from .backend import compile_status
    import torch._dynamo
    ok, reason = compile_status()
    if not ok:
        raise ValueError(f"torch.compile is unavailable here: {reason}")
    p = next(iter(parameters.values()))
    # t stays a Python int outside: its scalars enter as 0-d tensors in the parameters'
    # dtype (make_train_step), so new t values never recompile
    scalars = {k: torch.tensor(v, dtype=p.dtype, device=p.device)
               for k, v in step_scalars(optimizer, opt_state["t"]).items()}
    buffers = {k: v for k, v in opt_state.items() if k != "t"}
    core = _compiled_core(remedies, hidden, output, optimizer, tuple(layer_dims_of(parameters)))
    # every configuration's core shares one code object, whose compiles torch counts
    # together (8 by default, then it silently runs eagerly): allow one per configuration
    with torch.no_grad(), torch._dynamo.config.patch(recompile_limit=64):
        J_l2, J, grads, new_p, new_b, new_bn = core(parameters, bn_state or {}, buffers, X, Y,
                                                    masks if remedies.dropout else None, scalars)
    costs = {"cost_l2": J_l2} if remedies.l2 else {}
    return ({**costs, "cost_stable": J, **grads}, {k: new_p[k] for k in parameters},
            {k: new_bn[k] for k in (bn_state or {})},
            {"t": opt_state["t"] + 1, **{k: new_b[k] for k in _buffer_order(parameters, buffers)}})


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
                                                      remedies, hidden, output, optimizer, masks)
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
            grads = _cost_and_autograd(parameters, bn_state, X, Y, remedies, hidden, output,
                                       masks, lay)[1]
        stages.update(grads)
        new_p, new_s = optimizer_step(parameters, grads, opt_state, optimizer)
    stages.update({f"{k}'": v for k, v in new_p.items()})
    stages.update({f"{k}'": v for k, v in new_s.items()})
    stages.update({f"{k}'": v for k, v in new_bn.items()})
    return stages, new_p, new_bn, new_s
