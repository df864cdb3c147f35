"""The remedies' reference (reference/remedies.py, docs/remedies.md), checked against
independent computations: central finite differences of the cost for every gradient,
closed forms for batch norm's statistics and running estimates, the L2 term computed
another way, dropout's masks statistically, and ``Remedies()`` against the plain network
value by value.

Tolerances:
  FD_TOL = 1e-7   relative distance ||g - g_fd|| / (||g|| + ||g_fd||) of central finite
                  differences with h = 1e-6 in float64 (as tests/test_reference_gradients.py):
                  truncation O(h^2) and rounding O(u/h) leave ~1e-9; a formula error (a
                  missing 1/m, a dropped path through mu or var, a wrong skip) is O(1e-2..1).
                  Smooth activations (tanh, sigmoid) for FD, and leaky_relu only where every
                  hidden pre-activation is > KINK_MARGIN from the kink (asserted).
  HAND_RTOL = 1e-12  closed forms evaluated with NumPy's own routines (np.var, norms) in
                  float64: the same quantity in a different order, agreeing to a few ulps
                  times the reduction length (<= 1e-13 here).
  Dropout rate: the kept fraction of N Bernoulli(keep_prob) draws lies within 5 standard
                  deviations sqrt(p(1-p)/N) of keep_prob (a false alarm has probability
                  < 1e-6; the draws are seeded, so the outcome is fixed anyway); a mask drawn
                  at 1 - keep_prob or from the wrong comparison misses by > 100 sigma.
Bit-exactness (Remedies() against network_forward / network_backward): np.array_equal
and the same dtype, no tolerance.
"""
import itertools

import numpy as np
import pytest

import reference as R
import reference.remedies as RR
from reference.remedies import layout

FD_H = 1e-6
FD_TOL = 1e-7
HAND_RTOL = 1e-12
KINK_MARGIN = 1e-3

# an identity skip (A1 -> 3: both 4 wide) and a projected one (A1 -> 3 through Ws3, 3x4),
# plus a 2-skip net (3 and 5)
ARCHS = {"identity": (3, 4, 4, 4, 4, 2), "projected": (3, 4, 4, 3, 3, 2),
         "two_skips": (2, 3, 3, 3, 3, 3, 1)}
CONFIGS = {
    "bn": R.Remedies(batch_norm=True),
    "before": R.Remedies(residual="before"),
    "after": R.Remedies(residual="after"),
    "l2": R.Remedies(l2=0.3),
    "drop": R.Remedies(keep_prob=0.7),
    "bn_before_l2_drop": R.Remedies(batch_norm=True, residual="before", l2=0.3, keep_prob=0.7),
    "bn_after_drop": R.Remedies(batch_norm=True, residual="after", keep_prob=0.6),
}


def make_problem(dims, output, remedies, m=7, seed=0):
    """Seeded X, Y, O(1) parameters (non-zero biases and betas, gammas away from 1),
    fresh running estimates and dropout masks."""
    rng = np.random.RandomState(seed)
    X = rng.randn(dims[0], m)
    if output == "sigmoid":
        Y = (rng.rand(dims[-1], m) > 0.5).astype(np.float64)
    else:
        Y = R.one_hot(rng.randint(0, dims[-1], size=m), dims[-1])
    params = R.initialize_remedy_network(dims, remedies, seed=seed + 1)
    for k in params:
        if k[0] in "bg":   # b, beta, gamma
            params[k] = params[k] + 0.3 * rng.randn(*params[k].shape)
    masks = R.dropout_masks(dims, m, remedies.keep_prob, seed + 2) if remedies.dropout else None
    return X, Y, params, R.init_bn_state(params), masks


def cost(params, bn, X, Y, remedies, hidden, output, masks):
    # the unvalidated implementations (reference.remedies): the FD loop calls this ~1000 times
    _, cache, _ = RR.remedy_forward(X, params, bn, remedies, hidden, output, masks)
    return float(RR.remedy_cost(cache, params, Y, remedies, output)[0])


def central_differences(params, bn, X, Y, remedies, hidden, output, masks):
    """{dP: dJ/dP} for every parameter P, and dA0 = m dJ/dX (X perturbed: checks the
    backward through every layer, batch norm's dZ through its batch statistics included)."""
    def fd(f, arr):
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + FD_H
            hi = f()
            arr[idx] = old - FD_H
            lo = f()
            arr[idx] = old
            g[idx] = (hi - lo) / (2 * FD_H)
        return g
    p = {k: v.copy() for k, v in params.items()}
    Xc = X.copy()
    out = {f"d{k}": fd(lambda: cost(p, bn, Xc, Y, remedies, hidden, output, masks), p[k]) for k in p}
    out["dA0"] = X.shape[1] * fd(lambda: cost(p, bn, Xc, Y, remedies, hidden, output, masks), Xc)
    return out


def relative_difference(a, b, keys):
    x = np.concatenate([a[k].ravel() for k in keys])
    y = np.concatenate([b[k].ravel() for k in keys])
    return float(np.linalg.norm(x - y) / (np.linalg.norm(x) + np.linalg.norm(y)))


def kink_distance(cache, dims, remedies):
    """The smallest |H| over the hidden layers (the input of g, at its kink for relu)."""
    lay = layout(dims, remedies)
    H = [cache.get(f"H{l}", cache.get(f"Zt{l}", cache[f"Z{l}"])) for l in range(1, lay["L"])]
    return min(float(np.abs(h).min()) for h in H)


FD_CASES = [(c, a, h, o) for c, a, h, o in itertools.product(
    CONFIGS, ARCHS, ("tanh", "sigmoid", "leaky_relu"), ("sigmoid", "softmax"))
    if not (o == "softmax" and ARCHS[a][-1] == 1)
    # leaky_relu: one output per config and arch is enough (its FD needs the kink margin)
    and not (h == "leaky_relu" and o == "softmax")]


@pytest.mark.parametrize("config,arch,hidden,output", FD_CASES,
                         ids=["-".join(c) for c in FD_CASES])
def test_gradients_match_central_differences(config, arch, hidden, output):
    remedies, dims = CONFIGS[config], ARCHS[arch]
    for seed in range(20):
        X, Y, params, bn, masks = make_problem(dims, output, remedies, seed=seed)
        _, cache, _ = R.remedy_forward(X, params, bn, remedies, hidden, output, masks)
        if hidden != "leaky_relu" or kink_distance(cache, dims, remedies) > KINK_MARGIN:
            break
    if hidden == "leaky_relu":
        # the kink: perturbing by h moves a pre-activation by ~h max|input| at most; the first
        # of the seeded problems whose pre-activations all keep that margin
        assert kink_distance(cache, dims, remedies) > KINK_MARGIN, "no seed keeps the kink margin"
    grads = R.remedy_backward(params, cache, X, Y, remedies, hidden, output, masks)
    numerical = central_differences(params, bn, X, Y, remedies, hidden, output, masks)
    # every parameter has its gradient, of its shape (dgamma, dbeta, dWs included)
    assert sorted(k for k in numerical if k != "dA0") == sorted(
        k for k in grads if k[:2] in ("dW", "db") or k.startswith(("dgamma", "dbeta")))
    for k in numerical:
        assert grads[k].shape == numerical[k].shape, k
    keys = sorted(numerical)
    diff = relative_difference(grads, numerical, keys)
    assert diff < FD_TOL, f"relative difference {diff:.3e} >= {FD_TOL:g}"
    # and each new kind of gradient on its own (a small one could hide in the stack)
    for k in keys:
        if k.startswith(("dgamma", "dbeta", "dWs")) or k == "dA0":
            d = relative_difference(grads, numerical, [k])
            assert d < 10 * FD_TOL, f"{k}: relative difference {d:.3e}"


def test_l2_gradient_is_lambda_over_m_W():
    """dW(lambda) - dW(0) = (lambda / m) W for every W and Ws; b, gamma, beta unchanged."""
    base = R.Remedies(batch_norm=True, residual="before")
    reg = R.Remedies(batch_norm=True, residual="before", l2=0.37)
    X, Y, params, bn, _ = make_problem(ARCHS["projected"], "sigmoid", reg)
    m = X.shape[1]
    out = []
    for rem in (base, reg):
        _, cache, _ = R.remedy_forward(X, params, bn, rem, "tanh", "sigmoid")
        out.append(R.remedy_backward(params, cache, X, Y, rem, "tanh", "sigmoid"))
    g0, g1 = out
    assert "dWs3" in g1
    for k in params:
        want = 0.37 / m * params[k] if k[0] == "W" else 0.0
        np.testing.assert_allclose(g1[f"d{k}"] - g0[f"d{k}"], np.broadcast_to(want, params[k].shape),
                                   rtol=1e-9, atol=1e-15, err_msg=k)


# ---------------------------------------------------------------- Remedies() is the plain network

PLAIN_CASES = list(itertools.product(("float64", "float32"), R.HIDDEN_ACTIVATIONS, R.OUTPUT_ACTIVATIONS,
                                     ((2, 4, 1), (2, 4, 4, 3, 3), (3, 5, 4, 4, 4, 2))))


@pytest.mark.parametrize("dtype,hidden,output,dims", PLAIN_CASES,
                         ids=[f"{d}-{h}-{o}-{'x'.join(map(str, a))}" for d, h, o, a in PLAIN_CASES])
def test_no_remedy_is_the_plain_network_bit_for_bit(dtype, hidden, output, dims):
    X, Y, _, _, _ = make_problem(dims, output, R.Remedies(), m=9)
    X, Y = X.astype(dtype), Y.astype(dtype)
    for init in ("article", "xavier", "he"):
        p = R.initialize_network(dims, init=init, seed=3, dtype=dtype)
        q = R.initialize_remedy_network(dims, R.Remedies(), init=init, seed=3, dtype=dtype)
        assert list(p) == list(q)
        for k in p:
            assert q[k].dtype == p[k].dtype and np.array_equal(p[k], q[k]), k
    AL, cache = R.network_forward(X, p, hidden, output)
    AL2, cache2, bn2 = R.remedy_forward(X, q, {}, R.Remedies(), hidden, output)
    assert bn2 == {}
    assert list(cache) == list(cache2)
    for k in cache:
        assert cache2[k].dtype == cache[k].dtype and np.array_equal(cache[k], cache2[k]), k
    grads = R.network_backward(p, cache, X, Y, hidden, output)
    grads2 = R.remedy_backward(q, cache2, X, Y, R.Remedies(), hidden, output)
    assert list(grads) == list(grads2)
    for k in grads:
        assert grads2[k].dtype == grads[k].dtype and np.array_equal(grads[k], grads2[k]), k
    J, J_l2 = R.remedy_cost(cache2, q, Y, R.Remedies(), output)
    assert np.array_equal(J, R.cross_entropy_from_logits(cache[f"Z{len(dims) - 1}"], Y, output))
    assert J.dtype == np.dtype(dtype) and J_l2.dtype == np.dtype(dtype) and float(J_l2) == 0.0


def test_no_remedy_step_is_the_core_step():
    """remedy_step(Remedies()) gives the core's stages (netparity.stages.step_stages),
    the same names in the same order and the same bits."""
    from netparity.stages import step_stages
    X, Y = R.load_dataset("planar")
    dims = (2, 4, 4, 3, 1)
    opt = R.Optimizer("adam", learning_rate=0.01)
    p = R.initialize_network(dims, init="xavier", seed=1)
    s = R.init_optimizer_state(p, opt)
    core, _, _ = step_stages(R, "manual", None, p, s, X, Y, "tanh", "sigmoid", opt)
    got, _, bn, _ = R.remedy_step("manual", p, {}, s, X, Y, R.Remedies(), "tanh", "sigmoid", opt)
    assert bn == {}
    assert list(got) == list(core)
    for k in core:
        assert np.array_equal(np.asarray(core[k]), np.asarray(got[k])), k


# ---------------------------------------------------------------- batch norm, by hand

def bn_problem(m=50, seed=4):
    rem = R.Remedies(batch_norm=True, bn_eps=1e-3)
    dims = (3, 5, 4, 2)
    rng = np.random.RandomState(seed)
    X = 3 * rng.randn(dims[0], m) + 1.5   # a large mean: the statistics matter
    params = R.initialize_remedy_network(dims, rem, seed=seed)
    return X, params, rem, dims


def test_batch_norm_train_mode_statistics():
    """Zn has per-row mean 0 and (biased) variance var / (var + eps), with var NumPy's own
    np.var of Z (ddof=0); mu, var are the stages' values; Zt = gamma Zn + beta."""
    X, params, rem, dims = bn_problem()
    params["gamma1"] = np.linspace(0.5, 2.0, 5).reshape(-1, 1)
    params["beta1"] = np.linspace(-1, 1, 5).reshape(-1, 1)
    _, cache, _ = R.remedy_forward(X, params, R.init_bn_state(params), rem, "tanh", "sigmoid")
    for l in (1, 2):
        Z, Zn = cache[f"Z{l}"], cache[f"Zn{l}"]
        var = np.var(Z, axis=1, keepdims=True)
        np.testing.assert_allclose(cache[f"mu{l}"], Z.mean(axis=1, keepdims=True), rtol=HAND_RTOL)
        np.testing.assert_allclose(cache[f"var{l}"], var, rtol=HAND_RTOL)
        assert np.all(np.abs(Zn.mean(axis=1)) < 1e-13)
        np.testing.assert_allclose(np.var(Zn, axis=1, keepdims=True), var / (var + rem.bn_eps), rtol=1e-11)
        assert np.all(var / (var + rem.bn_eps) < 1)   # eps is inside the root: variance below 1
        np.testing.assert_allclose(cache[f"Zt{l}"], params[f"gamma{l}"] * Zn + params[f"beta{l}"],
                                   rtol=HAND_RTOL, atol=1e-15)


def test_batch_norm_eval_mode_uses_running_estimates():
    X, params, rem, dims = bn_problem()
    rng = np.random.RandomState(9)
    bn = {k: (rng.randn(*v.shape) if k.startswith("mu") else rng.rand(*v.shape) + 0.5)
          for k, v in R.init_bn_state(params).items()}
    masks = R.dropout_masks(dims, X.shape[1], 0.5, 3)
    _, cache, new_bn = R.remedy_forward(X, params, bn, R.Remedies(batch_norm=True, bn_eps=1e-3, keep_prob=0.5),
                                        "tanh", "sigmoid", masks, train=False)
    for l in (1, 2):
        Z = cache[f"Z{l}"]
        want = (Z - bn[f"mu_run{l}"]) / np.sqrt(bn[f"var_run{l}"] + rem.bn_eps)
        np.testing.assert_allclose(cache[f"Zn{l}"], want, rtol=HAND_RTOL)
        # no batch statistics and no dropout in eval mode
        assert f"mu{l}" not in cache and f"var{l}" not in cache
        np.testing.assert_array_equal(cache[f"A{l}"], np.tanh(cache[f"Zt{l}"]))
    assert set(new_bn) == set(bn) and all(new_bn[k] is bn[k] or np.array_equal(new_bn[k], bn[k]) for k in bn)


@pytest.mark.parametrize("running_var,ddof", [("biased", 0), ("unbiased", 1)])
@pytest.mark.parametrize("momentum", [0.9, 0.0, 0.99])
def test_running_estimates_update(running_var, ddof, momentum):
    """mu_run' = mom mu_run + (1 - mom) mean(Z); var_run' = mom var_run + (1 - mom) np.var(Z,
    ddof) with ddof 0 (biased, the course and flax) or 1 (unbiased, torch). torch's momentum
    p is 1 - mom: (1 - p) r + p x gives the same numbers."""
    X, params, _, _ = bn_problem()
    rem = R.Remedies(batch_norm=True, bn_eps=1e-3, bn_momentum=momentum, bn_running_var=running_var)
    rng = np.random.RandomState(2)
    bn = {k: rng.rand(*v.shape) + 0.1 for k, v in R.init_bn_state(params).items()}
    _, cache, new_bn = R.remedy_forward(X, params, bn, rem, "tanh", "sigmoid")
    p_torch = 1 - momentum
    for l in (1, 2):
        Z = cache[f"Z{l}"]
        mu, var = Z.mean(axis=1, keepdims=True), np.var(Z, axis=1, ddof=ddof, keepdims=True)
        for want_mu, want_var in ((momentum * bn[f"mu_run{l}"] + (1 - momentum) * mu,
                                   momentum * bn[f"var_run{l}"] + (1 - momentum) * var),
                                  ((1 - p_torch) * bn[f"mu_run{l}"] + p_torch * mu,
                                   (1 - p_torch) * bn[f"var_run{l}"] + p_torch * var)):
            np.testing.assert_allclose(new_bn[f"mu_run{l}"], want_mu, rtol=HAND_RTOL)
            np.testing.assert_allclose(new_bn[f"var_run{l}"], want_var, rtol=HAND_RTOL)
    # the input state is not modified
    assert all(np.all(v >= 0.1) for v in bn.values())


def test_unbiased_running_variance_needs_two_examples():
    X, params, _, _ = bn_problem()
    rem = R.Remedies(batch_norm=True, bn_running_var="unbiased")
    with pytest.raises(ValueError, match="m >= 2"):
        R.remedy_forward(X[:, :1], params, R.init_bn_state(params), rem, "tanh", "sigmoid")
    # biased is defined at m = 1 (var = 0, Zn = 0): no error, finite
    _, cache, _ = R.remedy_forward(X[:, :1], params, R.init_bn_state(params),
                                   R.Remedies(batch_norm=True), "tanh", "sigmoid")
    assert np.all(cache["Zn1"] == 0)


# ---------------------------------------------------------------- residuals, L2, dropout by hand

@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("arch", ["identity", "projected"])
def test_residual_forward_by_hand(where, arch):
    dims = ARCHS[arch]
    rem = R.Remedies(residual=where)
    X, _, params, _, _ = make_problem(dims, "softmax", rem)
    _, cache, _ = R.remedy_forward(X, params, {}, rem, "tanh", "softmax")
    A1 = np.tanh(params["W1"] @ X + params["b1"])
    A2 = np.tanh(params["W2"] @ A1 + params["b2"])
    Z3 = params["W3"] @ A2 + params["b3"]
    S3 = params["Ws3"] @ A1 if arch == "projected" else A1
    A3 = np.tanh(Z3 + S3) if where == "before" else np.tanh(Z3) + S3
    np.testing.assert_allclose(cache["S3"], S3, rtol=HAND_RTOL)
    np.testing.assert_allclose(cache["A3"], A3, rtol=HAND_RTOL)
    assert ("H3" in cache) == (where == "before") and "S2" not in cache and "S4" not in cache
    assert ("Ws3" in params) == (arch == "projected")


def test_l2_term_by_an_independent_computation():
    rem = R.Remedies(batch_norm=True, residual="after", l2=0.42)
    dims = ARCHS["projected"]
    X, Y, params, bn, _ = make_problem(dims, "softmax", rem)
    m = X.shape[1]
    _, cache, _ = R.remedy_forward(X, params, bn, rem, "tanh", "softmax")
    J, J_l2 = R.remedy_cost(cache, params, Y, rem, "softmax")
    frob = sum(np.linalg.norm(params[k], "fro") ** 2 for k in ("W1", "W2", "W3", "W4", "W5", "Ws3"))
    np.testing.assert_allclose(float(J_l2), 0.42 / (2 * m) * frob, rtol=HAND_RTOL)
    ce = R.cross_entropy_from_logits(cache["Z5"], Y, "softmax")
    np.testing.assert_allclose(float(J), float(ce) + 0.42 / (2 * m) * frob, rtol=HAND_RTOL)
    # gamma, beta, the biases do not enter: changing them leaves the term alone
    p2 = {k: (v + 1.0 if k[0] in "bg" else v) for k, v in params.items()}
    assert float(R.remedy_cost(cache, p2, Y, rem, "softmax")[1]) == float(J_l2)


def test_dropout_masks_rate_and_seed():
    dims, m, keep = (3, 40, 30, 1), 500, 0.8
    a = R.dropout_masks(dims, m, keep, seed=7)
    b = R.dropout_masks(dims, m, keep, seed=7)
    c = R.dropout_masks(dims, m, keep, seed=8)
    assert sorted(a) == ["D1", "D2"]
    assert a["D1"].shape == (40, m) and a["D2"].shape == (30, m) and a["D1"].dtype == np.float64
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])          # the same seed, the same masks
        assert set(np.unique(a[k])) <= {0.0, 1.0}
        assert not np.array_equal(a[k], c[k])
    n = sum(v.size for v in a.values())
    kept = sum(v.sum() for v in a.values()) / n
    sigma = np.sqrt(keep * (1 - keep) / n)
    assert abs(kept - keep) < 5 * sigma, f"kept {kept:.4f}, expected {keep} +- {5 * sigma:.4f}"
    # the draw itself: one RandomState(seed), layer by layer, rand < keep_prob
    rng = np.random.RandomState(7)
    np.testing.assert_array_equal(a["D1"], rng.rand(40, m) < keep)
    np.testing.assert_array_equal(a["D2"], rng.rand(30, m) < keep)
    # step k draws with seed 1000 + k; no dropout, no masks
    s = R.step_masks(dims, m, keep, 3)
    np.testing.assert_array_equal(s["D1"], R.dropout_masks(dims, m, keep, 1003)["D1"])
    assert R.step_masks(dims, m, 1.0, 3) is None
    assert R.dropout_masks(dims, m, keep, 7, dtype=np.float32)["D1"].dtype == np.float32


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dropout_forward_by_hand(dtype):
    """A = g(Z) D / keep_prob in the compute dtype (masks given as float64 are cast: no
    upcast); keep_prob = 1 or masks = None is no dropout."""
    rem = R.Remedies(keep_prob=0.75)
    dims = (2, 6, 5, 1)
    X, _, params, _, _ = make_problem(dims, "sigmoid", rem, m=40)
    X = X.astype(dtype)
    params = R.tree_from_numpy(params, dtype)
    masks = R.dropout_masks(dims, 40, 0.75, seed=1)
    _, cache, _ = R.remedy_forward(X, params, {}, rem, "tanh", "sigmoid", masks)
    A1 = np.tanh(params["W1"] @ X + params["b1"])
    want = A1 * masks["D1"].astype(dtype) / np.asarray(0.75, dtype)
    assert cache["A1"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(cache["A1"], want)
    assert np.all(cache["A1"][masks["D1"] == 0] == 0)
    _, plain, _ = R.remedy_forward(X, params, {}, rem, "tanh", "sigmoid", None)
    np.testing.assert_array_equal(plain["A1"], A1)


# ---------------------------------------------------------------- parameters and validation

def test_initialize_remedy_network_draws():
    rem = R.Remedies(batch_norm=True, residual="before")
    dims = (2, 5, 4, 3, 3, 3, 1)         # skips at 3 (projected, 3x5) and 5 (identity)
    p = R.initialize_remedy_network(dims, rem, init="he", seed=5, dtype=np.float32)
    plain = R.initialize_network(dims, init="he", seed=5, dtype=np.float32)
    for l in range(1, 7):
        np.testing.assert_array_equal(p[f"W{l}"], plain[f"W{l}"])
    for l in range(1, 6):
        assert f"b{l}" not in p
        np.testing.assert_array_equal(p[f"gamma{l}"], np.ones((dims[l], 1), np.float32))
        np.testing.assert_array_equal(p[f"beta{l}"], np.zeros((dims[l], 1), np.float32))
    assert "b6" in p and "gamma6" not in p
    assert [k for k in p if k.startswith("Ws")] == ["Ws3"]
    rng = np.random.RandomState(5)
    for l in range(1, 7):
        rng.randn(dims[l], dims[l - 1])
    np.testing.assert_array_equal(p["Ws3"], (rng.randn(3, 5) * np.sqrt(2.0 / 5)).astype(np.float32))
    bn = R.init_bn_state(p)
    assert sorted(bn) == sorted(f"{k}{l}" for l in range(1, 6) for k in ("mu_run", "var_run"))
    assert all(np.all(bn[f"var_run{l}"] == 1) and np.all(bn[f"mu_run{l}"] == 0) for l in range(1, 6))


def test_parameters_must_match_the_remedies():
    p = R.initialize_network((2, 4, 4, 1), init="xavier")
    with pytest.raises(ValueError, match="gamma1"):
        R.remedy_forward(np.zeros((2, 3)), p, {}, R.Remedies(batch_norm=True), "tanh", "sigmoid")


@pytest.mark.parametrize("field,value", [
    ("keep_prob", 0.0), ("keep_prob", 1.5), ("keep_prob", -0.1), ("keep_prob", float("nan")),
    ("l2", -1e-3), ("l2", float("inf")), ("l2", "0.1"), ("bn_eps", 0.0), ("bn_eps", -1e-5),
    ("bn_momentum", 1.0), ("bn_momentum", -0.1), ("residual", "sideways"), ("residual", None),
    ("bn_running_var", "sample"), ("batch_norm", "yes"), ("keep_prob", True)])
def test_remedies_validation(field, value):
    with pytest.raises(ValueError, match=field):
        R.Remedies(**{field: value})


def test_remedies_defaults_hashable_and_floats():
    r = R.Remedies(l2=np.float64(0.5), keep_prob=1, bn_momentum=np.float32(0.5))
    assert type(r.l2) is float and type(r.keep_prob) is float and type(r.bn_momentum) is float
    assert hash(r) == hash(R.Remedies(l2=0.5, bn_momentum=0.5))
    assert R.Remedies() == R.Remedies(batch_norm=False, bn_eps=1e-5, bn_momentum=0.9,
                                      bn_running_var="biased", residual="none", l2=0.0, keep_prob=1.0)


def test_public_remedy_functions_validate_their_inputs():
    """The flat API's remedy functions run the shared checks (reference/validate.py)."""
    rem = R.Remedies(batch_norm=True, residual="before", keep_prob=0.5)
    dims = ARCHS["projected"]
    X, Y, params, bn, masks = make_problem(dims, "sigmoid", rem)
    assert R.remedy_forward.unvalidated is RR.remedy_forward
    with pytest.raises(TypeError, match="Remedies"):
        R.remedy_forward(X, params, bn, {"batch_norm": True}, "tanh", "sigmoid")
    with pytest.raises(ValueError, match="missing Ws3"):
        R.remedy_forward(X, {k: v for k, v in params.items() if k != "Ws3"}, bn, rem, "tanh", "sigmoid")
    with pytest.raises(ValueError, match="unexpected b1"):
        R.remedy_forward(X, {**params, "b1": np.zeros((4, 1))}, bn, rem, "tanh", "sigmoid")
    with pytest.raises(ValueError, match="masks: D2 has shape"):
        R.remedy_forward(X, params, bn, rem, "tanh", "sigmoid", {**masks, "D2": masks["D2"][:, :3]})
    with pytest.raises(ValueError, match="bn_state: missing mu_run2"):
        R.remedy_forward(X, params, {k: v for k, v in bn.items() if k != "mu_run2"}, rem, "tanh", "sigmoid")
    with pytest.raises(ValueError, match="examples must be columns"):
        R.remedy_forward(X.T, params, bn, rem, "tanh", "sigmoid")
    with pytest.raises(TypeError, match="dtype"):
        R.remedy_forward(X.astype(np.float32), params, bn, rem, "tanh", "sigmoid")
    with pytest.raises(ValueError, match="keep_prob"):
        R.dropout_masks(dims, 5, 0.0, 1)
    _, cache, _ = R.remedy_forward(X, params, bn, rem, "tanh", "sigmoid", masks)
    with pytest.raises(ValueError, match="cache: missing"):
        R.remedy_backward(params, {k: v for k, v in cache.items() if k != "Zn1"}, X, Y, rem, "tanh", "sigmoid", masks)
    with pytest.raises(ValueError, match="Y has shape"):
        R.remedy_cost(cache, params, Y[:, :2], rem, "sigmoid")
