"""A-priori error bounds for the remedies' stages (docs/remedies.md), in the style of
netparity/tolerance.py: the same rounding model, fl(a op b) = (a op b)(1 + d), |d| <= u,
sums and products of K terms within gamma_K of the sum of |terms| (any order), input
errors carried exactly where cheap and over the whole interval of the inputs where the
map is non-linear, everything evaluated with the float64 oracle's values. Each bound
sits beside the formula it bounds; docs/tolerances.md has the table.

Where several formulations are legitimate (the mirrors', autodiff's, the frameworks' own
layers), the bound covers all of them and says how:
  - variance: two-pass mean((Z - mu)^2) (reference, torch) or one-pass
    mean(Z^2) - mu^2 (flax's use_fast_variance): the larger of the two bounds;
  - 1/sqrt(var + eps): a division by sqrt or a multiplication by rsqrt (XLA's rsqrt is
    not correctly rounded): a transcendental's c u relative error (tolerance.Precision.f);
  - batch norm's backward: the reference's closed form or autodiff's chain through mu and
    var: every elementwise term charged 6 roundings (prec.f), the means gamma_{m+1};
  - dropout's scale: (A D) / keep_prob (the reference: one rounding), A (D / keep_prob) or
    A D (1 / keep_prob) with the scalar rounded first (at most 2u + 2^-53 < 3u): 3u,
    and 0 when 1 / keep_prob is a power of two (then every form is exact);
  - L2: (lambda / m) W added to the gradient (reference, SGD's weight_decay) or by an
    optimiser: the scalar lambda / m rounded, the product, the sum: 3 roundings.
"""
import math

import numpy as np

from netparity.stagenames import COST_L2, cost_key
from reference.activations import activation
from netparity.tolerance import (_abs, _act_bounds, _act_grad_bounds, _matmul_bound, cost_bounds,
                                 optimizer_bounds, output_grad_bound)


def _mean_bound(x, Ex, prec):
    """E of fl(sum_cols(x') / m) for |x' - x| <= E_x: the carried error plus the sum's
    (m - 1 additions) and the division's rounding, gamma_{m+1} (also a product x y formed
    first: its rounding is the +1)."""
    m = x.shape[1]
    return (np.sum(Ex, axis=1, keepdims=True)
            + prec.gamma(m + 1) * np.sum(_abs(x) + Ex, axis=1, keepdims=True)) / m


def _prod_bound(a, b, Ea, Eb, prec, roundings=1):
    """E of fl(a' b') elementwise: |a| E_b + E_a |b| + E_a E_b + k u (|a| + E_a)(|b| + E_b)."""
    aa, ab = _abs(a), _abs(b)
    return aa * Eb + Ea * (ab + Eb) + roundings * prec.u * (aa + Ea) * (ab + Eb)


def _sum_bound(s, Ea, Eb, prec):
    """E of fl(a' + b') with s = a + b: E_a + E_b + u (|s| + E_a + E_b)."""
    return Ea + Eb + prec.u * (_abs(s) + Ea + Eb)


def dropout_rounding(keep_prob, prec):
    """Relative rounding of the dropout scale D / keep_prob in any of its forms: 0 when
    1 / keep_prob is a power of two (multiplying or dividing by it is exact; also
    keep_prob = 1, no dropout), else 3u (module docstring)."""
    # keep_prob in (0, 1] is a power of two exactly when 1 / keep_prob is
    return 0.0 if math.frexp(keep_prob)[0] == 0.5 else 3 * prec.u


def _inv_std(var, Evar, eps, prec):
    """(r, r_lo, E_r) for r = sqrt(var + eps): the sum's rounding, then over the interval
    |sqrt(v') - sqrt(v)| = |v' - v| / (sqrt(v') + sqrt(v)) <= E_v / (r_lo + r), plus the
    root's (or rsqrt's) rounding. r_lo = sqrt(max(v - E_v, 0)), the smallest r' may be
    (at least that of eps in a correct formula, v' >= eps)."""
    v = var + eps
    Ev = Evar + prec.u * (v + Evar)
    r = np.sqrt(v)
    r_lo = np.sqrt(np.maximum(v - Ev, 0.0))
    Er = Ev / (r_lo + r) + prec.f * r
    r_lo = np.maximum(r - Er, 0.0)
    return r, r_lo, Er


def _divide_bound(q, num, Enum, r, r_lo, Er, prec):
    """E of num' / r' (or num' rsqrt(r'^2)) with q = num / r:
    |num'/r' - num/r| <= E_num / r_lo + |num| |r' - r| / (r_lo r), plus c u |q| rounding."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = Enum / r_lo + _abs(num) * Er / (r_lo * r) + prec.f * (_abs(q) + Enum / r_lo)
    return np.where(np.isfinite(out), out, np.inf)


def _variance_bound(Z, mu, Zc, var, EZ, Emu, prec):
    """E of the batch variance (biased) in either algorithm (module docstring).

    Input errors, exactly: for Z' = Z + e, |e| <= E_Z, the exact variance moves by
    var(Z + e) - var(Z) = 2 mean(Zc e) + var(e)  (the mean's own shift cancels), so
    by at most 2 mean(|Zc| E_Z) + mean(E_Z^2), whatever the algorithm.
    Rounding, with rho = gamma_{m+1} mean(|Z| + E_Z) the rounding of the computed mean:
    two-pass  mean((Z' - mu')^2) = var(Z') + rho^2 exactly (the cross term sums to 0); the
              subtraction, the square, the m - 1 additions and the division:
              (gamma_{m+1} + 3u) mean((|Zc| + E_Z + E_mu)^2);
    one-pass  mean(Z'^2) - mu'^2: gamma_{m+1} mean((|Z| + E_Z)^2) for the mean of squares,
              rho (2 |mu| + 2 mean(E_Z) + rho) + u (|mu| + E_mu)^2 for the rounded mean's
              square, u |var| for the difference (its cancellation lives in these terms:
              gamma_m mean(Z^2), not mean(Zc^2))."""
    m = Z.shape[1]
    aZc, aZ, amu = _abs(Zc), _abs(Z), _abs(mu)
    mean = lambda x: np.sum(x, axis=1, keepdims=True) / m  # noqa: E731
    carried = 2 * mean(aZc * EZ) + mean(EZ * EZ)
    rho = prec.gamma(m + 1) * mean(aZ + EZ)
    two = rho * rho + (prec.gamma(m + 1) + 3 * prec.u) * mean((aZc + EZ + Emu) ** 2)
    one = (prec.gamma(m + 1) * mean((aZ + EZ) ** 2) + rho * (2 * amu + 2 * mean(EZ) + rho)
           + prec.u * (amu + Emu) ** 2 + prec.u * (_abs(var) + carried))
    return carried + np.maximum(two, one)


def forward_bounds(params, stages, X, E_params, E_X, hidden, output, remedies, masks, lay, prec):
    """E for every forward stage of a train-mode remedy step, and the internal values the
    backward bounds need (E of g(H), of H, the scale's rounding), from the oracle's stages."""
    L = lay["L"]
    E = {"A0": E_X}
    V = {"A0": X}      # the oracle's values, A0 included
    V.update(stages)
    c_drop = dropout_rounding(remedies.keep_prob, prec) if masks is not None else 0.0
    aux = {}
    for l in range(1, L + 1):
        W, A_prev, EA_prev = params[f"W{l}"], V[f"A{l - 1}"], E[f"A{l - 1}"]
        if f"b{l}" in params:
            # Z = W A + b: as tolerance.forward_bounds (one more rounding for + b)
            b = params[f"b{l}"]
            EZ = (_matmul_bound(W, A_prev, E_params[f"W{l}"], EA_prev, prec, extra=prec.u)
                  + E_params[f"b{l}"] * (1 + prec.u) + prec.u * _abs(b))
        else:
            EZ = _matmul_bound(W, A_prev, E_params[f"W{l}"], EA_prev, prec)
        E[f"Z{l}"] = EZ
        Z = V[f"Z{l}"]
        if l == L:
            E[f"A{l}"] = _act_bounds(output, Z, V[f"A{l}"], EZ, prec)
            break
        EH, H = EZ, Z
        if l in lay["bn"]:
            m = Z.shape[1]
            mu, var = V[f"mu{l}"], V[f"var{l}"]
            # mu = sum_cols(Z) / m
            Emu = _mean_bound(Z, EZ, prec)
            # Zc = Z - mu (not a stage): one subtraction
            Zc = Z - mu
            EZc = _sum_bound(Zc, EZ, Emu, prec)
            Evar = _variance_bound(Z, mu, Zc, var, EZ, Emu, prec)
            # Zn = Zc / sqrt(var + eps)
            r, r_lo, Er = _inv_std(var, Evar, remedies.bn_eps, prec)
            Zn = V[f"Zn{l}"]
            EZn = _divide_bound(Zn, Zc, EZc, r, r_lo, Er, prec)
            # Zt = gamma Zn + beta: a product and a sum (or one FMA)
            g = params[f"gamma{l}"]
            EZt = _prod_bound(g, Zn, E_params[f"gamma{l}"], EZn, prec)
            EZt = _sum_bound(V[f"Zt{l}"], EZt, E_params[f"beta{l}"], prec)
            E[f"mu{l}"], E[f"var{l}"], E[f"Zn{l}"], E[f"Zt{l}"] = Emu, Evar, EZn, EZt
            aux[l] = {"r": r, "r_lo": r_lo, "Er": Er, "m": m}
            EH, H = EZt, V[f"Zt{l}"]
        S = None
        if l in lay["skips"]:
            A_skip, EA_skip = V[f"A{l - 2}"], E[f"A{l - 2}"]
            if l in lay["projected"]:
                # S = Ws A^[l-2]: a product of inner size n^[l-2]
                ES = _matmul_bound(params[f"Ws{l}"], A_skip, E_params[f"Ws{l}"], EA_skip, prec)
            else:
                ES = EA_skip      # S = A^[l-2]: no arithmetic
            S = V[f"S{l}"]
            E[f"S{l}"] = ES
            if remedies.residual == "before":
                # H = Zt + S: one addition
                H = V[f"H{l}"]
                EH = _sum_bound(H, EH, ES, prec)
                E[f"H{l}"] = EH
        G = activation(hidden, H)       # g(H), the oracle's (not a stage)
        EG = _act_bounds(hidden, H, G, EH, prec)
        EA, A_in = EG, G
        if S is not None and remedies.residual == "after":
            A_in = G + S
            EA = _sum_bound(A_in, EG, E[f"S{l}"], prec)
        if masks is not None and remedies.dropout:
            # A = A_in D / keep_prob: D is 0/1 (exact), the scale rounds c_drop relative
            s = masks[f"D{l}"] / remedies.keep_prob
            EA = EA * s * (1 + c_drop) + c_drop * _abs(V[f"A{l}"])
        E[f"A{l}"] = EA
        aux.setdefault(l, {}).update({"H": H, "EH": EH, "G": G, "EG": EG})
    return E, aux


def l2_bound(params, E_params, m, lam, prec):
    """E of cost_l2 = (lambda / 2m) sum_k sum(W_k * W_k) over N entries in all:
    |W'^2 - W^2| <= E_W (2|W| + E_W); the squares, the sums (N - 1 additions in any
    grouping) and the scalar lambda / 2m (rounded) and its product: gamma_{N+3}."""
    keys = [k for k in params if (k[0] == "W" and k[1:].isdigit()) or k.startswith("Ws")]
    N = sum(params[k].size for k in keys)
    carried = sum(float(np.sum(E_params[k] * (2 * _abs(params[k]) + E_params[k]))) for k in keys)
    size = sum(float(np.sum((_abs(params[k]) + E_params[k]) ** 2)) for k in keys)
    return np.asarray(lam / (2 * m) * (carried + prec.gamma(N + 3) * size))


def backward_bounds(params, stages, X, Y, E_params, E, aux, hidden, output, remedies, masks,
                    lay, prec):
    """E for every gradient stage (dZ dW db dA, dH dZt dgamma dbeta dWs)."""
    L, m = lay["L"], X.shape[1]
    V = {"A0": X}
    V.update(stages)
    lam = remedies.l2
    c_drop = dropout_rounding(remedies.keep_prob, prec) if masks is not None else 0.0
    G = {}
    # dZ^[L] = A - Y: as tolerance.backward_bounds (its log-space autodiff form included)
    EdZ = output_grad_bound(V[f"Z{L}"], V[f"A{L}"], E[f"A{L}"], V[f"dZ{L}"], output, prec)
    pending = {}
    for l in range(L, 0, -1):
        EdS, dS = None, None
        if l < L:
            dA, EdA = V[f"dA{l}"], G[f"dA{l}"]
            if masks is not None and remedies.dropout:
                # dA D / keep_prob: as in the forward
                s = masks[f"D{l}"] / remedies.keep_prob
                dA = dA * s
                EdA = EdA * s * (1 + c_drop) + c_drop * _abs(dA)
            a = aux[l]
            d, Ed = _act_grad_bounds(hidden, a["H"], a["G"], a["EH"], a["EG"], prec)
            # dH = dA g'(H): as the core's dZ = dA g'(Z)
            adA, ad = _abs(dA), _abs(d)
            EdH = EdA * (ad + Ed) + adA * Ed + prec.u * (adA + EdA) * (ad + Ed)
            dH = dA * d
            if f"dH{l}" in V:
                G[f"dH{l}"] = EdH
            if l in lay["skips"]:
                dS, EdS = (dH, EdH) if remedies.residual == "before" else (dA, EdA)
            EdZ = EdH
            if l in lay["bn"]:
                G[f"dZt{l}"] = EdH
                Zn, EZn = V[f"Zn{l}"], E[f"Zn{l}"]
                # dgamma = sum_cols(dZt Zn) / m: a product per term, then a mean
                G[f"dgamma{l}"] = _mean_bound(dH * Zn, _prod_bound(dH, Zn, EdH, EZn, prec, 0), prec)
                # dbeta = sum_cols(dZt) / m
                G[f"dbeta{l}"] = _mean_bound(dH, EdH, prec)
                # dZn = dZt gamma
                gam = params[f"gamma{l}"]
                dZn = dH * gam
                EdZn = _prod_bound(dH, gam, EdH, E_params[f"gamma{l}"], prec)
                # dZ = (dZn - mean(dZn) - Zn mean(dZn Zn)) / r, every term charged c u
                # (any formulation of the three paths, autodiff's chain through mu, var)
                a1 = np.sum(dZn, axis=1, keepdims=True) / m
                Ea1 = _mean_bound(dZn, EdZn, prec)
                p = dZn * Zn
                Ep = _prod_bound(dZn, Zn, EdZn, EZn, prec, 0)
                c2 = np.sum(p, axis=1, keepdims=True) / m
                Ec2 = _mean_bound(p, Ep, prec)
                q = Zn * c2
                Eq = _prod_bound(Zn, c2, EZn, Ec2, prec, 0)
                num = dZn - a1 - q
                Enum = EdZn + Ea1 + Eq + prec.f * (_abs(dZn) + _abs(a1) + _abs(q) + EdZn + Ea1 + Eq)
                EdZ = _divide_bound(V[f"dZ{l}"], num, Enum, a["r"], a["r_lo"], a["Er"], prec)
        A_prev, EA_prev = V[f"A{l - 1}"], E[f"A{l - 1}"]
        dZ = V[f"dZ{l}"]
        G[f"dZ{l}"] = EdZ
        G[f"dW{l}"] = _weight_grad_bound(dZ, A_prev, EdZ, EA_prev, params[f"W{l}"],
                                         E_params[f"W{l}"], V[f"dW{l}"], m, lam, prec)
        if f"b{l}" in params:
            G[f"db{l}"] = (np.sum(EdZ, axis=1, keepdims=True)
                           + prec.gamma(m + 1) * np.sum(_abs(dZ) + EdZ, axis=1, keepdims=True)) / m
        if dS is not None:
            A_skip, EA_skip = V[f"A{l - 2}"], E[f"A{l - 2}"]
            if l in lay["projected"]:
                Ws = params[f"Ws{l}"]
                G[f"dWs{l}"] = _weight_grad_bound(dS, A_skip, EdS, EA_skip, Ws, E_params[f"Ws{l}"],
                                                  V[f"dWs{l}"], m, lam, prec)
                pending[l - 2] = (Ws.T @ dS, _matmul_bound(Ws.T, dS, E_params[f"Ws{l}"].T, EdS, prec))
            else:
                pending[l - 2] = (dS, EdS)
        EdA_prev = _matmul_bound(params[f"W{l}"].T, dZ, E_params[f"W{l}"].T, EdZ, prec)
        if l - 1 in pending:
            # dA = W^T dZ + the skip's share: one addition
            _, Eshare = pending.pop(l - 1)
            EdA_prev = _sum_bound(V[f"dA{l - 1}"], EdA_prev, Eshare, prec)
        G[f"dA{l - 1}"] = EdA_prev
    return G


def _weight_grad_bound(dZ, A_prev, EdZ, EA_prev, W, EW, dW, m, lam, prec):
    """E of dZ A^T / m (+ (lambda / m) W): the core's product bound with the division's
    rounding; the L2 term (lambda / m) E_W plus 3 roundings (scalar, product, sum) of
    (lambda / m)|W| and |dW|."""
    E = _matmul_bound(dZ, A_prev.T, EdZ, EA_prev.T, prec, extra=prec.u) / m
    if lam:
        k = lam / m
        E = E + k * EW * (1 + 2 * prec.u) + 3 * prec.u * (k * _abs(W) + _abs(dW) + E)
    return E


def running_bounds(bn_state, stages, E_bn, E, remedies, m, prec):
    """E of r' = mom r + (1 - mom) c x (x the batch mean or variance, c = 1 or m/(m - 1)):
    mom E_r + (1 - mom) c E_x, plus 5 roundings (the two scalars mom, 1 - mom rounded to
    the dtype, c, two products, the sum) of the terms' sizes. torch's form
    (1 - p) r + p x is the same with p = 1 - mom."""
    out = {}
    c = m / (m - 1) if remedies.bn_running_var == "unbiased" else 1.0
    mom = remedies.bn_momentum
    for k in bn_state:
        l = k[len("mu_run"):] if k.startswith("mu_run") else k[len("var_run"):]
        x, Ex, cx = ((stages[f"mu{l}"], E[f"mu{l}"], 1.0) if k.startswith("mu_run")
                     else (stages[f"var{l}"], E[f"var{l}"], c))
        terms = mom * _abs(bn_state[k]) + (1 - mom) * cx * _abs(x)
        out[k] = mom * E_bn[k] + (1 - mom) * cx * Ex * (1 + 3 * prec.u) + 5 * prec.u * terms
    return out


def remedy_stage_bounds(params, state, bn_state, X, Y, stages, new_params, new_state, new_bn,
                        E_params, E_state, E_bn, hidden, output, optimizer, remedies, masks, prec,
                        E_X=None):
    """Every stage's bound for one train-mode remedy step, from the float64 oracle's stages
    of that step (reference.remedy_step's). Returns (E, E_new_params, E_new_state, E_new_bn)
    with E keyed like the stages."""
    from netparity.tolerance import input_bounds
    from reference.remedies import layer_dims_of, layout
    lay = layout(layer_dims_of(params), remedies)
    L, m = lay["L"], X.shape[1]
    if E_X is None:
        E_X = input_bounds({"X": X}, prec)["X"]
    if not remedies.dropout:
        masks = None
    E, aux = forward_bounds(params, stages, X, E_params, E_X, hidden, output, remedies, masks,
                            lay, prec)
    bounds = {k: v for k, v in E.items() if k != "A0"}
    # costs: the cross-entropies' bounds on a core-shaped cache (A0, Z, A per layer), plus L2
    core = {"A0": X, **{f"{p}{l}": stages[f"{p}{l}"] for l in range(1, L + 1) for p in "ZA"}}
    El2 = l2_bound(params, E_params, m, remedies.l2, prec) if remedies.l2 else 0.0
    for c in ("literal", "stable"):
        Ec = cost_bounds(core, Y, E, output, c, prec)
        if remedies.l2 and not hasattr(Ec, "overflowed"):
            # J = CE + cost_l2: one more addition
            Ec = np.asarray(_sum_bound(stages[cost_key(c)], Ec, El2, prec))
        bounds[cost_key(c)] = Ec
    if remedies.l2:
        bounds[COST_L2] = El2
    Gb = backward_bounds(params, stages, X, Y, E_params, E, aux, hidden, output, remedies, masks,
                         lay, prec)
    bounds.update(Gb)
    grads = {k: stages[k] for k in stages if k.startswith("d")}
    EP, ES = optimizer_bounds(params, grads, state, new_params, new_state, E_params, Gb, E_state,
                              optimizer, prec)
    EB = running_bounds(bn_state, stages, E_bn, E, remedies, m, prec)
    bounds.update({f"{k}'": v for k, v in EP.items()})
    bounds.update({f"{k}'": v for k, v in ES.items()})
    bounds.update({f"{k}'": v for k, v in EB.items()})
    # a bound that saturated (inf, and inf * 0 = nan where it met a zero): unbounded there
    # (inf), never nan (compare would read nan as a failure of correct code)
    for tree in (bounds, EP, ES, EB):
        for k, v in tree.items():
            if isinstance(v, np.ndarray) and np.isnan(v).any():
                tree[k] = np.where(np.isnan(v), np.inf, v)
    return bounds, EP, ES, EB
