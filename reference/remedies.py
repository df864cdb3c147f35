"""The remedies: batch normalisation, residual connections, L2 regularisation, dropout.

The specification is docs/remedies.md; this module is its NumPy reference. Every forward
formula sits beside its derivative (``# d:`` comments), and every remedy acts on the hidden
layers only. ``Remedies()`` is the plain network: then every function here computes exactly
(bit for bit) what ``network_forward`` / ``network_backward`` compute, with the same cache
and gradient keys (tests/test_reference_remedies.py checks it value by value).

Conventions as in reference/network.py: examples are columns; ``dZ dA dH dZt`` are
m * dJ/d(.), ``dW db dgamma dbeta dWs`` are dJ/d(.). Everything computes in the dtype of its
inputs: hyper-parameters are Python floats, which NumPy 2 never lets upcast an array.

Parameters  W{l}; b{l} (layers without batch norm); gamma{l} beta{l} (batch-normalised);
            Ws{l} (projected skips), per layer in that order.
Cache       A0, then per layer Z mu var Zn Zt S H A (only those the layer has), plus the
            internal G{l} = g(H{l}) where it differs from A{l} (not a stage).
bn_state    mu_run{l} var_run{l} per batch-normalised layer.
Masks       D1 ... D{L-1}, 0/1 arrays drawn by ``dropout_masks``.
"""
from dataclasses import dataclass
import math

import numpy as np

from .activations import (activation, activation_grad, check_activation,
                          HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS)
from .costs import cross_entropy, cross_entropy_from_logits
from .network import init_scale
from .optim import optimizer_step

RESIDUALS = ("none", "before", "after")
RUNNING_VARS = ("biased", "unbiased")
MASK_SEED = 1000   # step k of a run draws its masks with seed MASK_SEED + k


class ConventionUnsupported(ValueError):
    """Raised by an idiomatic path (a framework's own layers) asked for a convention its
    framework has no form of (e.g. torch's nn.BatchNorm1d with bn_running_var="biased"):
    the conformance runner reports the case as skipped with this message, not failed."""


def _real(value):
    return (not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
            and math.isfinite(value))


@dataclass(frozen=True)
class Remedies:
    """Which remedies a network uses (hashable: a jit may take it as static). The defaults
    are the plain network. See docs/remedies.md for every field."""
    batch_norm: bool = False
    bn_eps: float = 1e-5
    bn_momentum: float = 0.9
    bn_running_var: str = "biased"
    residual: str = "none"
    l2: float = 0.0
    keep_prob: float = 1.0

    def __post_init__(self):
        """Checked once here for every backend. Numbers are stored as Python floats (a NumPy
        float64 scalar would promote float32 arithmetic, NEP 50)."""
        if not isinstance(self.batch_norm, (bool, np.bool_)):
            raise ValueError(f"batch_norm must be True or False, got {self.batch_norm!r}")
        object.__setattr__(self, "batch_norm", bool(self.batch_norm))
        for name, allowed in (("residual", RESIDUALS), ("bn_running_var", RUNNING_VARS)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        checks = (("keep_prob", lambda v: 0 < v <= 1, "a number in (0, 1]"),
                  ("l2", lambda v: v >= 0, "a finite number >= 0"),
                  ("bn_eps", lambda v: v > 0, "a positive finite number"),
                  ("bn_momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"))
        for name, ok, what in checks:
            value = getattr(self, name)
            if not _real(value) or not ok(value):
                raise ValueError(f"{name} must be {what}, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def dropout(self):
        return self.keep_prob < 1.0


# ---------------------------------------------------------------- layout, parameters

def layer_dims_of(parameters):
    """(n_0, n_1, ..., n_L) from the weight shapes."""
    L = sum(1 for k in parameters if k[0] == "W" and k[1:].isdigit())
    return (parameters["W1"].shape[1],) + tuple(parameters[f"W{l}"].shape[0] for l in range(1, L + 1))


def skip_layers(L, remedies):
    """Hidden layers receiving a skip from A^[l-2]: 3, 5, 7, ... <= L - 1 (the course's
    two-layer residual block), none without residuals."""
    return tuple(range(3, L, 2)) if remedies.residual != "none" else ()


def layout(layer_dims, remedies):
    """dict(L, bn: batch-normalised layers, skips: layers with a skip, projected: those
    whose skip goes through Ws because the widths differ)."""
    L = len(layer_dims) - 1
    skips = skip_layers(L, remedies)
    return {"L": L,
            "bn": tuple(range(1, L)) if remedies.batch_norm else (),
            "skips": skips,
            "projected": tuple(l for l in skips if layer_dims[l] != layer_dims[l - 2])}


def initialize_remedy_network(layer_dims, remedies, init="xavier", seed=1, dtype=np.float64):
    """W{l} exactly as ``initialize_network`` draws them (one RandomState(seed), l = 1..L),
    then the projections Ws{l} from the same generator, in layer order, with the
    initialiser's scale for fan_in n^[l-2], fan_out n^[l]. Biases are zeros, except on
    batch-normalised layers, which have gamma = 1, beta = 0 and no bias (the mean
    subtraction would cancel it). Drawn in float64, then cast (as the core does)."""
    lay = layout(layer_dims, remedies)
    rng = np.random.RandomState(seed)
    W = {l: rng.randn(layer_dims[l], layer_dims[l - 1]) * init_scale(init, layer_dims[l - 1], layer_dims[l])
         for l in range(1, lay["L"] + 1)}
    Ws = {l: rng.randn(layer_dims[l], layer_dims[l - 2]) * init_scale(init, layer_dims[l - 2], layer_dims[l])
          for l in lay["projected"]}
    parameters = {}
    for l in range(1, lay["L"] + 1):
        n = layer_dims[l]
        parameters[f"W{l}"] = W[l].astype(dtype)
        if l in lay["bn"]:
            parameters[f"gamma{l}"] = np.ones((n, 1), dtype=dtype)
            parameters[f"beta{l}"] = np.zeros((n, 1), dtype=dtype)
        else:
            parameters[f"b{l}"] = np.zeros((n, 1), dtype=dtype)
        if l in Ws:
            parameters[f"Ws{l}"] = Ws[l].astype(dtype)
    return parameters


def init_bn_state(parameters):
    """Running mean 0 and variance 1 for every batch-normalised layer (every gamma{l})."""
    state = {}
    for k, g in parameters.items():
        if k.startswith("gamma"):
            l = k[len("gamma"):]
            state[f"mu_run{l}"] = np.zeros_like(g)
            state[f"var_run{l}"] = np.ones_like(g)
    return state


def dropout_masks(layer_dims, m, keep_prob, seed, dtype=np.float64):
    """D{l} = rand(n^[l], m) < keep_prob for l = 1 .. L-1, in order, from one
    RandomState(seed), as 0/1 in ``dtype`` (the shared draw every backend receives)."""
    rng = np.random.RandomState(seed)
    return {f"D{l}": (rng.rand(layer_dims[l], m) < keep_prob).astype(dtype)
            for l in range(1, len(layer_dims) - 1)}


def step_masks(layer_dims, m, keep_prob, k, dtype=np.float64):
    """The masks of step k (0-based) of a run: seed MASK_SEED + k; None without dropout."""
    if keep_prob >= 1:
        return None
    return dropout_masks(layer_dims, m, keep_prob, MASK_SEED + k, dtype)


def _mask(masks, remedies, l, like):
    """D{l} in the dtype of ``like`` (0/1 is exact in every dtype), or None: no dropout."""
    if masks is None or not remedies.dropout:
        return None
    return masks[f"D{l}"].astype(like.dtype, copy=False)


def _check_layout(parameters, lay):
    for l in range(1, lay["L"]):
        want = ({f"gamma{l}", f"beta{l}"} if l in lay["bn"] else {f"b{l}"}) | \
            ({f"Ws{l}"} if l in lay["projected"] else set())
        missing = [k for k in sorted(want) if k not in parameters]
        if missing:
            raise ValueError(f"parameters lack {', '.join(missing)} for these remedies "
                             "(build them with initialize_remedy_network)")


def _col_mean(x):
    """(1/m) sum over the columns: an explicit sum then one division (the formula, not
    np.mean's own reduction), keepdims."""
    return np.sum(x, axis=1, keepdims=True) / x.shape[1]


# ---------------------------------------------------------------- forward

def remedy_forward(X, parameters, bn_state, remedies, hidden="tanh", output="sigmoid",
                   masks=None, train=True):
    """Forward pass with the remedies; returns (AL, cache, new_bn_state). ``train=False``:
    batch norm uses the running estimates (left unchanged) and there is no dropout."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    dims = layer_dims_of(parameters)
    lay = layout(dims, remedies)
    _check_layout(parameters, lay)
    L, m = lay["L"], X.shape[1]
    eps, mom = remedies.bn_eps, remedies.bn_momentum
    cache = {"A0": X}
    new_bn = dict(bn_state) if bn_state is not None else {}
    A = X
    for l in range(1, L):
        W = parameters[f"W{l}"]
        # Z = W A_prev (+ b)                       d: dW = dZ A_prev^T / m, dA_prev = W^T dZ
        Z = W @ A
        if l not in lay["bn"]:
            Z = Z + parameters[f"b{l}"]            # d: db = sum_cols(dZ) / m
        cache[f"Z{l}"] = Z
        H = Z
        if l in lay["bn"]:
            if train:
                # mu = mean_cols Z; var = mean_cols (Z - mu)^2, the biased batch variance
                # (the one that normalises). Their derivatives are not separate stages: they
                # are folded into dZ's formula below (the two mean_cols terms).
                mu = _col_mean(Z)
                Zc = Z - mu
                var = _col_mean(Zc * Zc)
                cache[f"mu{l}"], cache[f"var{l}"] = mu, var
                # running estimates, the course's exponentially weighted average; "unbiased"
                # (torch) averages m/(m-1) var, which m = 1 cannot give (refused by the
                # shared validation, reference/validate.py, for every backend)
                var_c = var * (m / (m - 1)) if remedies.bn_running_var == "unbiased" else var
                new_bn[f"mu_run{l}"] = mom * bn_state[f"mu_run{l}"] + (1 - mom) * mu
                new_bn[f"var_run{l}"] = mom * bn_state[f"var_run{l}"] + (1 - mom) * var_c
            else:
                Zc = Z - bn_state[f"mu_run{l}"]
                var = bn_state[f"var_run{l}"]
            # Zn = (Z - mu) / sqrt(var + eps): eps inside the root keeps a constant unit
            # (var = 0) finite.   d: dZ = (dZn - mean(dZn) - Zn mean(dZn Zn)) / sqrt(var + eps)
            Zn = Zc / np.sqrt(var + eps)
            # Zt = gamma Zn + beta: lets the layer undo the normalisation.
            #   d: dgamma = sum_cols(dZt Zn) / m, dbeta = sum_cols(dZt) / m, dZn = dZt gamma
            Zt = parameters[f"gamma{l}"] * Zn + parameters[f"beta{l}"]
            cache[f"Zn{l}"], cache[f"Zt{l}"] = Zn, Zt
            H = Zt
        S = None
        if l in lay["skips"]:
            # S = A^[l-2] or Ws A^[l-2]: the skip carries the signal (and, backwards, the
            # gradient) past two layers.   d: dWs = dS A^[l-2]^T / m; dA^[l-2] += Ws^T dS
            A_skip = cache[f"A{l - 2}"]
            S = parameters[f"Ws{l}"] @ A_skip if l in lay["projected"] else A_skip
            cache[f"S{l}"] = S
            if remedies.residual == "before":
                H = H + S                          # d: dZt = dH, dS = dH
                cache[f"H{l}"] = H
        # A = g(H)                                 d: dH = dA g'(H)
        G = activation(hidden, H)
        A = G
        if S is not None and remedies.residual == "after":
            A = A + S                              # d: dS = dA (past g)
        D = _mask(masks, remedies, l, A) if train else None
        if D is not None:
            # inverted dropout: dividing by keep_prob keeps E[A] unchanged, so eval needs no
            # rescaling.                           d: dA_in = dA D / keep_prob
            A = A * D / remedies.keep_prob
        if A is not G:
            cache[f"G{l}"] = G                     # g(H), for g'(H); not a stage
        cache[f"A{l}"] = A
    # output layer: no remedy
    Z = parameters[f"W{L}"] @ A + parameters[f"b{L}"]
    A = activation(output, Z)
    cache[f"Z{L}"], cache[f"A{L}"] = Z, A
    return A, cache, new_bn


def remedy_cost(cache, parameters, Y, remedies, output="sigmoid"):
    """(cost_stable, cost_l2): the stable cross-entropy from Z^[L] plus the L2 term
    cost_l2 = (lambda / 2m) sum ||W||_F^2 over every W{l} and Ws{l} (never b, gamma,
    beta); cost_l2 is an exact 0 of the dtype, and not added, when lambda = 0.
    d: dW += (lambda / m) W."""
    L = layer_dims_of(parameters).__len__() - 1
    J = cross_entropy_from_logits(cache[f"Z{L}"], Y, output)
    J_l2 = l2_term(parameters, Y.shape[1], remedies.l2, J.dtype)
    return (J + J_l2 if remedies.l2 else J), J_l2


def remedy_literal_cost(AL, cost_l2, Y, remedies, output="sigmoid"):
    """The literal cross-entropy on A^[L], plus the same L2 term (stage cost_literal)."""
    J = cross_entropy(AL, Y, output)
    return J + cost_l2 if remedies.l2 else J


def weight_names(parameters):
    """The regularised matrices: W1 ... WL, then Ws in layer order."""
    return ([k for k in parameters if k[0] == "W" and k[1:].isdigit()]
            + [k for k in parameters if k.startswith("Ws")])


def l2_term(parameters, m, lam, dtype):
    """(lambda / 2m) sum ||W||^2: per matrix sum(W * W), summed in weight_names order."""
    if not lam:
        return np.zeros((), dtype=dtype)
    total = sum(np.sum(parameters[k] * parameters[k]) for k in weight_names(parameters))
    return np.asarray(lam / (2 * m) * total, dtype=dtype)


# ---------------------------------------------------------------- backward

def remedy_backward(parameters, cache, X, Y, remedies, hidden="tanh", output="sigmoid",
                    masks=None):
    """Backprop through the train-mode forward (its cache). Keys: per layer from L down,
    dZ{L} dW{L} db{L} dA{L-1}, then for hidden l the ones it has of
    dH dZt dgamma dbeta dZ dW db dWs dA{l-1}."""
    check_activation(hidden, HIDDEN_ACTIVATIONS)
    check_activation(output, OUTPUT_ACTIVATIONS)
    dims = layer_dims_of(parameters)
    lay = layout(dims, remedies)
    L, m = lay["L"], X.shape[1]
    lam = remedies.l2
    grads = {}
    pending = {}     # l -> the skip's share of dA^[l] (from layer l + 2)
    dZ = cache[f"A{L}"] - Y
    for l in range(L, 0, -1):
        dS = None
        if l < L:
            dA = grads[f"dA{l}"]
            D = _mask(masks, remedies, l, dA)
            if D is not None:
                dA = dA * D / remedies.keep_prob   # through A = A_in D / keep_prob
            H = cache.get(f"H{l}", cache.get(f"Zt{l}", cache[f"Z{l}"]))
            G = cache.get(f"G{l}", cache[f"A{l}"])
            dH = dA * activation_grad(hidden, H, G)
            if f"H{l}" in cache:
                grads[f"dH{l}"] = dH
            if l in lay["skips"]:
                dS = dH if remedies.residual == "before" else dA
            dZ = dH
            if l in lay["bn"]:
                dZt = dH
                grads[f"dZt{l}"] = dZt
                Zn = cache[f"Zn{l}"]
                grads[f"dgamma{l}"] = np.sum(dZt * Zn, axis=1, keepdims=True) / m
                grads[f"dbeta{l}"] = np.sum(dZt, axis=1, keepdims=True) / m
                dZn = dZt * parameters[f"gamma{l}"]
                # through Zn = (Z - mu(Z)) / sqrt(var(Z) + eps), mu and var depending on
                # every column: the two means are the paths through mu and through var
                dZ = (dZn - _col_mean(dZn) - Zn * _col_mean(dZn * Zn)) / np.sqrt(cache[f"var{l}"] + remedies.bn_eps)
        A_prev = cache[f"A{l - 1}"]
        grads[f"dZ{l}"] = dZ
        dW = dZ @ A_prev.T / m
        grads[f"dW{l}"] = dW + (lam / m) * parameters[f"W{l}"] if lam else dW
        if f"b{l}" in parameters:
            grads[f"db{l}"] = np.sum(dZ, axis=1, keepdims=True) / m
        if dS is not None:
            A_skip = cache[f"A{l - 2}"]
            if l in lay["projected"]:
                Ws = parameters[f"Ws{l}"]
                dWs = dS @ A_skip.T / m
                grads[f"dWs{l}"] = dWs + (lam / m) * Ws if lam else dWs
                pending[l - 2] = Ws.T @ dS
            else:
                pending[l - 2] = dS
        dA_prev = parameters[f"W{l}"].T @ dZ
        if l - 1 in pending:
            dA_prev = dA_prev + pending.pop(l - 1)   # the path through layer l plus the skip
        grads[f"dA{l - 1}"] = dA_prev
    return grads


# ---------------------------------------------------------------- one step

def remedy_step(path, parameters, bn_state, opt_state, X, Y, remedies, hidden, output,
                optimizer, masks=None):
    """One training step: (stages, new_parameters, new_bn_state, new_opt_state) with
    ``stages`` every stage of docs/remedies.md by name. The reference has the "manual"
    path only."""
    if path != "manual":
        raise ValueError(f"the reference has the 'manual' path only, not {path!r}")
    AL, cache, new_bn = remedy_forward(X, parameters, bn_state, remedies, hidden, output, masks)
    J, J_l2 = remedy_cost(cache, parameters, Y, remedies, output)
    grads = remedy_backward(parameters, cache, X, Y, remedies, hidden, output, masks)
    new_p, new_s = optimizer_step(parameters, grads, opt_state, optimizer)
    stages = {k: v for k, v in cache.items() if k != "A0" and not k.startswith("G")}
    stages["cost_literal"] = remedy_literal_cost(AL, J_l2, Y, remedies, output)
    if remedies.l2:
        stages["cost_l2"] = J_l2
    stages["cost_stable"] = J
    stages.update(grads)
    stages.update({f"{k}'": v for k, v in new_p.items()})
    stages.update({f"{k}'": v for k, v in new_s.items()})
    stages.update({f"{k}'": v for k, v in new_bn.items()})
    return stages, new_p, new_bn, new_s
