"""The tolerance policy: one a-priori floating-point error bound per stage.

Why not hand-picked rtol/atol: an error that is acceptable for dW1 of a 784-wide layer
is a bug for b2 of a 4-wide one. Instead every stage gets an elementwise absolute bound
E, derived from the standard rounding-error model and propagated to first order through
the network, evaluated with the float64 oracle's values:

    fl(a op b) = (a op b)(1 + d), |d| <= u          u = unit roundoff of the dtype
    matmul/sum with inner size K (any order, blocked, FMA, pairwise):
        |fl(A B) - A B| <= gamma_K |A||B|,   gamma_K = K u / (1 - K u)   (Higham, ASNA 3.5)
    elementwise f(z): |fl(f(z)) - f(z)| <= c_f u |f(z)|  with c_f = ULPS_TRANSCENDENTAL
        (libm, SLEEF and XLA's vectorised exp/tanh/log are within a few ulps)
    input errors propagate through f by |f'(z)| E_z (first order); through a product
    AB by |A| E_B + E_A |B|; through the optimisers by their partial derivatives.

With TF32 (torch ``allow_tf32`` / JAX "tensorfloat32" precision) a float32 matmul first
rounds both inputs to a 10-bit mantissa (u_in = 2^-11) and accumulates in float32:
    |fl(A B) - A B| <= (2 u_in + gamma_K) |A||B|.

Every backend's result x_b and the reference's x_r in the same dtype obey
|x - exact| <= E, so the conformance assertion is |x_b - x_r| <= 2E, and a
lower-precision result is also checked against the float64 oracle with |x_b - x64| <= E.
The suite reports measured error / bound: on correct code it is typically 1e-3..1e-1
(worst-case bounds are pessimistic by ~sqrt(K) or more), a plausible bug gives >> 1.
The carry over several steps is not linearised: after a few float32 Adam steps at the
sizes people train a parameter's error can be as large as a step (a gradient near zero
flips its sign), so every non-linear map is bounded over the whole interval of its
inputs (products keep E_A E_B; activations and costs take their steepest slope on the
interval; a relu unit whose branch may flip passes the backend's own dA; Adam's step is
bounded over the box of its moments and by its step limit). Where the float formula
itself can overflow (the literal cost once A rounds to 0 or 1) the bound is
``Unbounded``: a named outcome, not a ratio (docs/tolerances.md).
"""
from dataclasses import dataclass

import numpy as np

from netparity.stagenames import cost_key

ULPS_TRANSCENDENTAL = 4.0   # exp, log, log1p, tanh, sigmoid: within 4 ulps on all backends
ULPS_ELEMENTWISE = 2.0      # a few chained +, -, *, / around each transcendental

UNIT_ROUNDOFF = {
    "float64": 2.0 ** -53,
    "float32": 2.0 ** -24,
    "float16": 2.0 ** -11,
    "bfloat16": 2.0 ** -8,
}
TF32_UNIT_ROUNDOFF = 2.0 ** -11


@dataclass(frozen=True)
class Precision:
    """u for element-wise work and accumulation; u_in for rounding matmul inputs (TF32)."""
    dtype: str
    tf32: bool = False

    @property
    def u(self):
        return UNIT_ROUNDOFF[self.dtype]

    @property
    def u_in(self):
        return TF32_UNIT_ROUNDOFF if (self.tf32 and self.dtype == "float32") else 0.0

    def gamma(self, k):
        ku = k * self.u
        if ku >= 1:
            return np.inf
        return ku / (1 - ku)

    def matmul_factor(self, k):
        return 2 * self.u_in + self.gamma(k)

    @property
    def f(self):  # relative error of one element-wise transcendental stage
        return (ULPS_TRANSCENDENTAL + ULPS_ELEMENTWISE) * self.u


def _abs(x):
    return np.abs(np.asarray(x, dtype=np.float64))


def _matmul_bound(A, B, EA, EB, prec, extra=0.0):
    """E(A @ B) from input bounds and the rounding of the product itself, exact in the input
    errors (second order kept: after a few steps E need not be small):

        |fl((A + dA)(B + dB)) - A B| <= |A| E_B + E_A |B| + E_A E_B + c (|A| + E_A)(|B| + E_B)
                                      = |A| ((1 + c) E_B + c |B|) + (1 + c) E_A (|B| + E_B)

    with c = gamma_K (+ TF32 input rounding) + ``extra`` (one more rounding of the result,
    e.g. adding b or dividing by m). Two products instead of three or four."""
    c = prec.matmul_factor(A.shape[1]) + extra
    aA, aB = _abs(A), _abs(B)
    out = aA @ ((1 + c) * EB + c * aB)
    if np.any(EA):  # float64 inputs are exact: E_X = 0
        out += (1 + c) * (EA @ (aB + EB))
    return out


def input_bounds(tree, prec):
    """Error of converting float64 arrays to the dtype: one rounding, u |x| (0 in float64)."""
    u = 0.0 if prec.dtype == "float64" else prec.u
    return {k: u * _abs(v) if not isinstance(v, int) else 0.0 for k, v in tree.items()}


def _slope_at(name, x):
    """g'(x) for x >= 0, to full relative accuracy also where g(x) rounds to 1 (the
    textbook g (1 - g) and 1 - g^2 are then 0, while the slope, e^-x or 4 e^-2x, is not)."""
    if name == "sigmoid":
        e = np.exp(-x)
        return e / (1 + e) ** 2
    e = np.exp(-2 * x)
    return 4 * e / (1 + e) ** 2


def _act_bounds(name, Z, A, EZ, prec):
    """E(A) for A = g(Z): the largest change of g over [Z - E_Z, Z + E_Z] plus the rounding
    of g. Not the linearisation |g'(Z)| E_Z: after a few steps E_Z need not be small.
    sigmoid, tanh: g' is even and falls with |z|, so its maximum on the interval is at the
    point nearest 0, |z_c| = max(|Z| - E_Z, 0); the change is at most that slope times E_Z
    (and at most the range of g). relu, leaky: Lipschitz 1, exact otherwise."""
    if name in ("sigmoid", "tanh"):
        zc = np.maximum(_abs(Z) - EZ, 0.0)
        span = 1.0 if name == "sigmoid" else 2.0
        return np.minimum(_slope_at(name, zc) * EZ, span) + prec.f * _abs(A)
    if name in ("relu", "leaky_relu"):
        return EZ
    # softmax, per column: A'_j = A_j e^{e_j} / sum_k A_k e^{e_k} with |e_k| <= E_k, so
    # (Jensen for the lower side) |A'_j - A_j| <= A_j (exp(E_j + lse_k(log A_k + E_k)) - 1),
    # at most 1; to first order A_j (E_j + sum_k A_k E_k). Plus the rounding of exp and the sum.
    k = Z.shape[0]
    with np.errstate(divide="ignore"):
        logA = np.log(A)
    top = np.max(logA + EZ, axis=0, keepdims=True)
    lse = top + np.log(np.sum(np.exp(logA + EZ - top), axis=0, keepdims=True))
    x = EZ + lse
    change = np.where(x < 700, A * np.expm1(np.minimum(x, 700.0)), np.where(A > 0, 1.0, 0.0))
    return np.minimum(change, 1.0) + (prec.f + prec.gamma(k)) * A


def _act_grad_bounds(name, Z, A, EZ, EA, prec):
    """(g'(Z), E(g'(Z))) as the backends compute it (from A for sigmoid/tanh), exact in E_A:
    |a'(1 - a') - a(1 - a)| <= E_A (|1 - 2a| + E_A), |a'^2 - a^2| <= E_A (2|a| + E_A)."""
    if name == "sigmoid":
        d = A * (1 - A)
        return d, EA * (_abs(1 - 2 * A) + EA) + 3 * prec.u * d
    if name == "tanh":
        d = 1 - A * A
        return d, EA * (2 * _abs(A) + EA) + 3 * prec.u * (1 + A * A)
    slope = 0.0 if name == "relu" else 0.01
    d = np.where(Z > 0, 1.0, slope)
    # where z is within its own error of the kink, the backend may take either branch
    return d, np.where(_abs(Z) <= EZ, 1.0 - slope, 0.0)


def forward_bounds(params, cache, E_params, E_X, hidden, output, prec):
    """E for every Z^[l], A^[l], from the oracle's float64 values."""
    L = len(params) // 2
    E = {"A0": E_X}
    for l in range(1, L + 1):
        W, b, A_prev = params[f"W{l}"], params[f"b{l}"], cache[f"A{l - 1}"]
        # the rounding of "+ b" is u |W A + b|: one more rounding on the product, plus u |b|
        EZ = (_matmul_bound(W, A_prev, E_params[f"W{l}"], E["A" + str(l - 1)], prec, extra=prec.u)
              + E_params[f"b{l}"] * (1 + prec.u) + prec.u * _abs(b))
        name = output if l == L else hidden
        E[f"Z{l}"] = EZ
        E[f"A{l}"] = _act_bounds(name, cache[f"Z{l}"], cache[f"A{l}"], EZ, prec)
    return E


@dataclass(frozen=True)
class Unbounded:
    """The bound of a stage whose value the rounding model cannot bound: in the dtype it may
    be non-finite where the exact value is finite (the literal cost once A rounds to exactly
    0 or 1: log 0). The comparison then reports the named outcome instead of a ratio; a
    non-finite reference value must still be matched exactly (same formula, same result)."""
    overflowed: str   # the outcome when the compared value is non-finite
    finite: str       # ... and when it is finite (not compared)


def literal_cost_saturation(A, EA, output, prec):
    """Where the literal cost's logs may see exactly 0 in the dtype: A within its error of
    the dtype's smallest normal number (below it the relative rounding model fails and exp
    underflows to 0), and for sigmoid also 1 - A within E_A + u of 0 (A rounds to 1)."""
    tiny = float(np.finfo(prec.dtype).tiny)
    near0 = A - EA <= tiny
    if output == "sigmoid":
        return near0 | (1 - A - EA <= prec.u)
    return near0


def cost_bounds(cache, Y, E, output, cost, prec, extra_roundings=0):
    """Bound on the scalar cost (a 0-d array), or ``Unbounded`` for the literal cost where
    it may saturate. Not linearised: the cost's slope is bounded over the whole interval
    of the logits / activations, as for the activations. ``extra_roundings``: of a
    data-parallel reduction of the batch mean (``reduction_roundings``)."""
    L = (len(cache) - 1) // 2
    Z, A, EZ, EA = cache[f"Z{L}"], cache[f"A{L}"], E[f"Z{L}"], E[f"A{L}"]
    m, k = Y.shape[1], Y.shape[0]
    red = prec.gamma(m * k) + prec.f + extra_roundings * prec.u
    if cost == "stable":
        terms = np.abs(np.maximum(Z, 0)) + np.abs(Z * Y) + np.log1p(np.exp(-np.abs(Z)))
        if output == "softmax":
            terms = terms + np.abs(Z).max(axis=0, keepdims=True) + np.log(k)
        # d cost / d z_j = A_j - Y_j (/m), at most |A - Y| + E_A (and 1) on the interval
        slope = np.minimum(np.abs(A - Y) + EA, 1.0)
        return np.asarray((np.sum(slope * EZ) + red * np.sum(terms)) / m)
    if np.any(literal_cost_saturation(A, EA, output, prec)):
        what = "A = 0 exactly" if output == "softmax" else "A = 0 or 1 exactly"
        return Unbounded(
            f"literal cost overflows in {prec.dtype} ({what}); the stable cost is compared",
            f"literal cost not compared: A is within its error of {'0' if output == 'softmax' else '0 or 1'} "
            f"in {prec.dtype}, where log overflows; the stable cost is compared")
    # |log a' - log a| <= E_A / (A - E_A) on the interval (A - E_A > 0 here)
    if output == "sigmoid":
        dl = Y / (A - EA) + (1 - Y) / (1 - A - EA)
        terms = np.abs(Y * np.log(A)) + np.abs((1 - Y) * np.log(1 - A))
        # (1 - A) is formed in the dtype: relative error u/(1 - A) before the log
        extra = (1 - Y) * prec.u * A / (1 - A - EA)
    else:
        dl = Y / (A - EA)
        terms = np.abs(Y * np.log(A))
        extra = 0.0
    return np.asarray((np.sum(dl * EA + extra) + red * np.sum(terms)) / m)


def output_grad_bound(ZL, AL, EA, dZL, output, prec):
    """E of dZ^[L] = A - Y, formed directly or (autodiff of the stable cost) in log space,
    A = exp(z - lse(z)) (jnp.logaddexp's JVP, log_softmax): the exponent's rounding,
    u (|z| + |lse|), is a relative error of A (33 ulps at z = 33 in float64)."""
    if output == "softmax":
        top = ZL.max(axis=0, keepdims=True)
        lse = top + np.log(np.sum(np.exp(ZL - top), axis=0, keepdims=True))
    else:
        lse = np.logaddexp(ZL, 0.0)
    return EA * (1 + prec.u) + prec.u * _abs(dZL) + prec.u * (_abs(ZL) + _abs(lse)) * _abs(AL)


def backward_bounds(params, cache, grads, E_params, E, hidden, output, prec, extra_roundings=0):
    """E for every dZ^[l], dW^[l], db^[l], dA^[l-1]. ``extra_roundings``: of a
    data-parallel reduction of the batch means dW, db (``reduction_roundings``)."""
    L = len(params) // 2
    m = cache["A0"].shape[1]
    G = {}
    EdZ = output_grad_bound(cache[f"Z{L}"], cache[f"A{L}"], E[f"A{L}"], grads[f"dZ{L}"], output, prec)
    for l in range(L, 0, -1):
        dZ, A_prev, W = grads[f"dZ{l}"], cache[f"A{l - 1}"], params[f"W{l}"]
        G[f"dZ{l}"] = EdZ
        # dZ A^T / m: the division by m is one more rounding (u); a data-parallel
        # reduction adds ``extra_roundings`` more to each term of the mean
        G[f"dW{l}"] = _matmul_bound(dZ, A_prev.T, EdZ, E[f"A{l - 1}"].T, prec,
                                    extra=(1 + extra_roundings) * prec.u) / m
        G[f"db{l}"] = (np.sum(EdZ, axis=1, keepdims=True)
                       + (prec.gamma(m + 1) + extra_roundings * prec.u)
                       * np.sum(_abs(dZ) + EdZ, axis=1, keepdims=True)) / m
        EdA = _matmul_bound(W.T, dZ, E_params[f"W{l}"].T, EdZ, prec)
        G[f"dA{l - 1}"] = EdA
        if l > 1:
            Zp, Ap = cache[f"Z{l - 1}"], cache[f"A{l - 1}"]
            d, Ed = _act_grad_bounds(hidden, Zp, Ap, E[f"Z{l - 1}"], E[f"A{l - 1}"], prec)
            adA, ad = _abs(grads[f"dA{l - 1}"]), _abs(d)
            # |dA' g'' - dA g'| <= E_dA (|g'| + E_g') + |dA| E_g': the product E_dA E_g' is
            # not second-order small at a relu kink, where E_g' is the jump of g' (a unit
            # whose branch flips passes on the backend's own dA, not the oracle's 0)
            EdZ = EdA * (ad + Ed) + adA * Ed + prec.u * (adA + EdA) * (ad + Ed)
    return G


def _pow_rel(beta, t, prec):
    """Relative error of c = 1 - beta^t computed in the dtype (cancellation when t small)."""
    c = 1 - beta ** t
    return (ULPS_TRANSCENDENTAL * prec.u * beta ** t + prec.u) / c


def adam_step_limit(optimizer, t):
    """The largest |update| of bias-corrected Adam at step t, for any gradients (Cauchy-Schwarz
    on m_t = sum_i a_i g_i, v_t = sum_i w_i g_i^2, a_i = (1 - b1) b1^(t-i), w_i = (1 - b2) b2^(t-i)):
        |m_t| <= sqrt(sum_i a_i^2 / w_i) sqrt(v_t),  so  |update| <= lr sqrt(1 - b2^t) / (1 - b1^t)
        sqrt(sum_i a_i^2 / w_i)      (1.0 at t = 1, 1.004 at t = 3, 7.27 as t -> infinity)
    Both placements of epsilon obey it (epsilon only shrinks the step)."""
    b1, b2 = optimizer.beta1, optimizer.beta2
    i = np.arange(1, t + 1)
    a2_over_w = (1 - b1) ** 2 * b1 ** (2.0 * (t - i)) / ((1 - b2) * b2 ** (t - i + 0.0))
    return np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * np.sqrt(np.sum(a2_over_w))


def adam_update_change(v, s, Ev, Es, K, q, eps):
    """(E, |update|) for the update K v / (sqrt(q s) + eps) when v and s are off by up to
    Ev, Es (elementwise; v may have either sign, s >= 0). Not linearised: its slope in s is
    unbounded as s -> 0, where a gradient near zero flips the sign of the step. With
    r = sqrt(q s) and r' anywhere in [r_lo, r_hi] = sqrt(q [max(s - E_s, 0), s + E_s]):

        |v'/(r' + eps) - v/(r + eps)| <= E_v / (r_lo + eps) + |v| |r' - r| / ((r' + eps)(r + eps))

    whose second term is largest at r' = r_lo (below r) or r' = r_hi (above)."""
    v = _abs(v)
    r = np.sqrt(q * s)
    r_lo, r_hi = np.sqrt(q * np.maximum(s - Es, 0.0)), np.sqrt(q * (s + Es))
    den, den_lo = r + eps, r_lo + eps
    shift = np.maximum((r - r_lo) / den_lo, (r_hi - r) / (r_hi + eps))
    return K * (Ev / den_lo + v * shift / den), K * v / den


def optimizer_bounds(params, grads, state, new_params, new_state, E_params, E_grads, E_state,
                     optimizer, prec):
    """E for the updated parameters and optimiser buffers after one step."""
    from reference.optim import learning_rate_at
    u = prec.u
    lr = learning_rate_at(optimizer, state["t"])
    t = state["t"] + 1
    EP, ES = {}, {}
    for k, P in params.items():
        g, Eg, EPk = grads[f"d{k}"], E_grads[f"d{k}"], E_params[k]
        aP, ag = _abs(P), _abs(g)
        if optimizer.name == "gd":
            EP[k] = EPk + lr * Eg + 2 * u * (aP + lr * ag) + u * lr * ag
            continue
        if optimizer.name == "momentum":
            b = optimizer.beta
            cg = (1 - b) if optimizer.momentum_form == "ema" else 1.0
            v, Ev = state[f"vd{k}"], E_state[f"vd{k}"]
            Ev_new = b * Ev + cg * Eg + 3 * u * (b * _abs(v) + cg * ag)
            ES[f"vd{k}"] = Ev_new
            EP[k] = EPk + lr * Ev_new + 3 * u * (aP + lr * _abs(new_state[f"vd{k}"]))
            continue
        b1, b2, eps = optimizer.beta1, optimizer.beta2, optimizer.epsilon
        Ev_new = b1 * E_state[f"vd{k}"] + (1 - b1) * Eg + 3 * u * (b1 * _abs(state[f"vd{k}"]) + (1 - b1) * ag)
        # |g'^2 - g^2| <= E_g (2|g| + E_g)
        Es_new = (b2 * E_state[f"sd{k}"] + (1 - b2) * Eg * (2 * ag + Eg)
                  + 4 * u * (b2 * _abs(state[f"sd{k}"]) + (1 - b2) * g * g))
        ES[f"vd{k}"], ES[f"sd{k}"] = Ev_new, Es_new
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        # the update is K v / (sqrt(q s) + eps): K = lr / c1, q = 1 / c2 (eps after the
        # bias correction) or K = lr sqrt(c2) / c1, q = 1 (Keras's placement)
        K, q = (lr / c1, 1 / c2) if optimizer.adam_epsilon == "corrected" else (lr * np.sqrt(c2) / c1, 1.0)
        E_upd, upd = adam_update_change(new_state[f"vd{k}"], _abs(new_state[f"sd{k}"]), Ev_new,
                                        Es_new, K, q, eps)
        # both runs' steps obey the step limit (each from its own gradients)
        E_upd = np.minimum(E_upd, lr * adam_step_limit(optimizer, t) + upd)
        rel_c = _pow_rel(b1, t, prec) + 0.5 * _pow_rel(b2, t, prec)
        E_upd = E_upd * (1 + 8 * u) + (8 * u + rel_c) * upd
        EP[k] = EPk + E_upd + u * (aP + upd)
    ES["t"] = 0.0
    return EP, ES


# ------------------------------------------------------------------ data parallelism
#
# A batch mean  mu = (1/m) sum_i x_i  (the cost: x_i the example's loss >= 0; dW: x_i =
# dZ_i A_i^T; db: x_i = dZ_i) is what a data-parallel reduction changes. The reference
# forms fl(fl(sum_i x_i) / m): the sum in any order within gamma_{m-1} sum|x_i| (Higham,
# ASNA 4.2: every term passes through at most m - 1 additions), and one rounding for / m;
# the bounds above charge gamma_m (gamma_{m+1}, gamma_{mk}) plus that u.
#
# N workers, rank r holding m_r >= 1 of the m examples (sum_r m_r = m), compute
#     G_r = fl(fl(sum_{i in r} x_i) / m_r)          its local mean (as one process would)
#     H_r = fl(fl(m_r / m) * G_r)                   weighted by its share of the batch
#     mu_dp = fl(sum_r H_r)                         the all-reduce (ring, tree, any order)
# Term i goes through (m_r - 1) + (N - 1) <= m - 1 additions (every other shard holds at
# least one example), so the summation error stays inside gamma_{m-1}; it meets three
# roundings (/ m_r, the rounded weight m_r / m, the product) where the reference has one:
#     |mu_dp - mu| <= (gamma_{m-1} + 3u) sum_i |x_i| / m   (first order)
# i.e. the reference's bound plus 2u sum_i |x_i| / m. The same count holds for
#   - autograd with the loss scaled per rank (DDP + a comm hook weighting m_r / m): each
#     term is rounded once by 1/m_r inside the backward, then weight and product;
#   - shard_map over padded shards (width s >= m_r, padded terms exactly 0): / s, the
#     weight s / m, the product;
#   - the compiler-reduced form (jit + NamedSharding: XLA splits the sum into per-device
#     partial sums and an all-reduce, then divides by m once): within the reference's
#     bound, the 2u are spare.
# The per-rank mean (1/N) sum_r G_r (DDP's convention) adds one rounding (/ N, exact for
# N a power of two) and is a DIFFERENT quantity when the shards are unequal: that is a
# convention difference measured in docs/scale_out.md, not something a bound absorbs.
# With one worker (N = 1, m_1 = m, weight exactly 1) nothing is added.
# (sum_i |x_i| / m: the cost's |terms| as in cost_bounds; |dZ||A|^T / m for dW;
# sum |dZ| / m for db. The error reaches the update through optimizer_bounds like any
# gradient error.)

def reduction_roundings(workers):
    """Roundings a data-parallel reduction over ``workers`` adds to each term of a batch
    mean, beyond the reference's one division by m (derivation above): 0 for one worker, 2."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return 0 if workers == 1 else 2


def stage_bounds(params, state, X, Y, cache, grads, new_params, new_state, E_params, E_state,
                 hidden, output, optimizer, prec, E_X=None, workers=1):
    """Every stage's bound for one step, from the float64 oracle's values of that step.
    Returns (E, E_new_params, E_new_state) with E keyed like the stages. ``workers``: the
    batch is split over that many data-parallel workers whose batch means (the costs,
    dW, db) are combined by a reduction (``reduction_roundings``); the per-example stages
    (Z, A, dZ, dA) are each computed on one worker, with the bounds of one process."""
    if E_X is None:
        E_X = input_bounds({"X": X}, prec)["X"]
    extra = reduction_roundings(workers)
    E = forward_bounds(params, cache, E_params, E_X, hidden, output, prec)
    bounds = {k: v for k, v in E.items() if k != "A0"}
    for c in ("literal", "stable"):
        bounds[cost_key(c)] = cost_bounds(cache, Y, E, output, c, prec, extra)
    G = backward_bounds(params, cache, grads, E_params, E, hidden, output, prec, extra)
    bounds.update(G)
    EP, ES = optimizer_bounds(params, grads, state, new_params, new_state, E_params, G, E_state,
                              optimizer, prec)
    bounds.update({f"{k}'": v for k, v in EP.items()})
    bounds.update({f"{k}'": v for k, v in ES.items()})
    return bounds, EP, ES
