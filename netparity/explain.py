"""Why correct implementations differ in their last digits, with numbers: the glossary and
the worked examples of the report (and of the notebook, which calls the same functions).

Every function is pure and computes from the reference's own data (the article's network
on the planar data, its first gradient-descent step, the configuration `netparity check`
runs by default), so the numbers shown are the numbers of the check next to them:

    ulp_facts()                        ULP, machine epsilon and unit roundoff per dtype, with float.hex
    summation_orders(terms)            one sum, four orders: forward, reverse, pairwise, exact
    db_cancellation(dtype)             db2 = sum(dZ2) / m: its terms, their cancellation, its bound in ULPs
    fma_update(dtype)                  P - lr dP with one rounding (FMA) against two (NumPy), first update
    autodiff_scale()                   autodiff's dJ/dZ2 (central differences) against the course's dZ2
    GLOSSARY                           (term, definition) pairs, the definitions the report prints
"""
from fractions import Fraction

import numpy as np

# the configuration the worked examples use: `netparity check`'s default case
ARTICLE = dict(hidden="tanh", output="sigmoid", arch="shallow", optimizer="gd", batch="full", steps=1)


def ulp(x, dtype):
    """The spacing of the floats of ``dtype`` at |x|: one unit in the last place."""
    return float(np.spacing(np.abs(np.asarray(x, dtype=dtype))))


def ulp_distance(a, b, dtype):
    """|a - b| in ULPs of b (in ``dtype``): how many floats apart they are, about."""
    return abs(float(a) - float(b)) / ulp(b, dtype)


def ulp_facts():
    """Per dtype: machine epsilon (the ULP of 1.0), unit roundoff u = eps / 2 (the largest
    relative error of one correctly rounded operation), the float after 1.0 in hex."""
    out = {}
    for dtype in ("float64", "float32"):
        one = np.asarray(1.0, dtype=dtype)
        after = np.nextafter(one, np.asarray(2.0, dtype=dtype))
        out[dtype] = {"eps": float(np.finfo(dtype).eps), "u": float(np.finfo(dtype).eps) / 2,
                      "bits": int(np.finfo(dtype).nmant) + 1,
                      "one_hex": float(one).hex(), "after_one_hex": float(after).hex(),
                      "after_one": float(after)}
    return out


def _round_to(fr, dtype):
    """Fraction -> the nearest float of ``dtype`` (ties to even): correctly rounded."""
    if dtype == "float64":
        return np.float64(float(fr))  # int / int true division is correctly rounded in Python
    t = np.dtype(dtype).type
    c = t(float(fr))  # within one ULP of the answer (float64 first may round twice)
    cands = [np.nextafter(c, t(-np.inf)), c, np.nextafter(c, t(np.inf))]
    dist = [abs(Fraction(float(x)) - fr) for x in cands]
    best = min(dist)
    near = [x for x, d in zip(cands, dist) if d == best]
    if len(near) > 1:  # a tie: the even significand
        near = [x for x in near if int(np.frombuffer(x.tobytes(), dtype=np.uint32)[0]) % 2 == 0]
    return near[0]


def summation_orders(terms):
    """One sum of ``terms`` (a 1-D array, summed in its own dtype) in four orders:
    forward and reverse (one addition after the other, each rounded), pairwise (NumPy's
    np.sum) and exact (math.fsum, then rounded once). Returns {order: (value, hex, ULPs
    from the exact sum)}."""
    terms = np.asarray(terms)
    t = terms.dtype.type
    dtype = terms.dtype.name

    def sequential(xs):
        acc = t(0)
        for x in xs:
            acc = t(acc + x)
        return acc

    exact = _round_to(sum((Fraction(float(x)) for x in terms), Fraction(0)), dtype)
    sums = {"forward": sequential(terms), "reverse": sequential(terms[::-1]),
            "pairwise (np.sum)": terms.sum(dtype=terms.dtype), "exact, rounded once": exact}
    return {k: (float(v), float(v).hex(), ulp_distance(v, exact, dtype)) for k, v in sums.items()}


def _article_step(dtype):
    from netparity.stages import expected
    return expected(dtype, *ARTICLE.values())


def db_cancellation(dtype="float32"):
    """db2 = sum(dZ2) / m of the article's first step: the m terms dZ2 = A2 - Y (float64
    oracle values), how much they cancel, the bound E of db2 (netparity.tolerance: it
    grows with sum|dZ2|, the size of the terms, not with |db2|) and that bound in ULPs
    of db2: a correct backend may differ from the reference by up to 2E, i.e. by that
    many ULPs, which is why db shows large ULP counts on correct code."""
    e = _article_step(dtype)
    dZ = np.asarray(e.oracle["dZ2"], dtype=np.float64).ravel()
    m = dZ.size
    db = float(e.oracle["db2"].ravel()[0])
    sum_abs = float(np.sum(np.abs(dZ)))
    bound = float(np.asarray(e.bounds["db2"]).ravel()[0])
    spacing = ulp(e.ref["db2"].ravel()[0], dtype)
    return {"dtype": dtype, "m": m, "positive": int(np.sum(dZ > 0)), "negative": int(np.sum(dZ < 0)),
            "largest_term": float(np.max(np.abs(dZ))), "sum_abs": sum_abs, "sum": float(np.sum(dZ)),
            "db2": db, "condition": sum_abs / abs(float(np.sum(dZ))), "bound": bound,
            "ulp_db2": spacing, "bound_ulps": 2 * bound / spacing,
            "gamma_m": m * 2.0 ** -(np.finfo(dtype).nmant + 1) / (1 - m * 2.0 ** -(np.finfo(dtype).nmant + 1))}


def fma_update(dtype="float32", steps=20, learning_rate=1.2):
    """The article's gradient-descent updates P - lr dP (lr 1.2, the first ``steps`` of its
    run in ``dtype``, every parameter): NumPy's two roundings (lr dP, then the difference)
    against one fused multiply-add (the exact P - lr dP rounded once, what
    torch.optim.SGD's add_ and XLA under jit compute). Returns the number of values, how
    many differ, the largest difference in ULPs and a few examples."""
    import reference as R
    from netparity.stages import dataset
    X, Y = (a.astype(dtype) for a in dataset("planar"))
    params = R.tree_from_numpy(R.initialize_network([2, 4, 1], init="article", seed=1), dtype)
    lr = np.dtype(dtype).type(learning_rate)  # a Python float meets float32 as float32 (NEP 50)
    n = differ = 0
    worst = 0.0
    examples = []
    for step in range(steps):
        AL, cache = R.network_forward(X, params)
        grads = R.network_backward(params, cache, X, Y)
        for k, P in params.items():
            g = grads["d" + k]
            two = P - lr * g
            for p, gi, tw in zip(P.ravel(), g.ravel(), two.ravel()):
                one = _round_to(Fraction(float(p)) - Fraction(float(lr)) * Fraction(float(gi)), dtype)
                n += 1
                if one != tw:
                    differ += 1
                    worst = max(worst, ulp_distance(one, tw, dtype))
                    if len(examples) < 3:
                        examples.append({"step": step, "param": k, "p": float(p), "g": float(gi),
                                         "two_roundings": float(tw), "fma": float(one)})
        params = {k: P - lr * grads["d" + k] for k, P in params.items()}
    return {"dtype": dtype, "lr": float(lr), "steps": steps, "values": n, "differ": differ,
            "max_ulps": worst, "examples": examples}


def autodiff_scale(h=1e-6, columns=(0, 1, 2)):
    """The course's dZ2 = A2 - Y against dJ/dZ2 by central differences of the reference's
    stable cost (float64, the article's first step): autodiff returns dJ/dZ2, which is
    dZ2 / m, so every autodiff path multiplies by m. Returns m and, per column i, dZ2[i],
    the finite difference and their ratio."""
    import reference as R
    e = _article_step("float64")
    from netparity.stages import dataset
    X, Y = dataset("planar")
    Z2 = np.array(e.oracle["Z2"], dtype=np.float64)
    m = Y.shape[1]
    rows = []
    for i in columns:
        up, down = Z2.copy(), Z2.copy()
        up[0, i] += h
        down[0, i] -= h
        fd = (float(R.cross_entropy_from_logits(up, Y)) - float(R.cross_entropy_from_logits(down, Y))) / (2 * h)
        dz = float(e.oracle["dZ2"][0, i])
        rows.append({"column": i, "dZ2": dz, "dJ_dZ2": fd, "ratio": dz / fd})
    return {"m": m, "rows": rows}


def glossary(facts=None):
    """(term, definition) pairs: what the report's and `check`'s words mean."""
    f = facts or ulp_facts()
    d64, d32 = f["float64"], f["float32"]
    return [
        ("ULP", "unit in the last place: the gap between a float and the next one "
                f"(np.spacing). At 1.0 it is {d64['eps']:.3g} in float64 ({d64['one_hex']} -> "
                f"{d64['after_one_hex']}) and {d32['eps']:.3g} in float32; it halves and doubles "
                "with the binary exponent. 'n ULP' in a table is |a - b| / spacing(b): how many floats "
                "apart two results are."),
        ("machine epsilon eps vs unit roundoff u", f"eps = the ULP of 1.0 = 2^-{d64['bits'] - 1} "
                f"(float64), 2^-{d32['bits'] - 1} (float32). u = eps / 2 = 2^-{d64['bits']} / "
                f"2^-{d32['bits']} is the largest relative error of one correctly rounded operation: "
                "fl(a op b) = (a op b)(1 + d) with |d| <= u. The bounds are written in u."),
        ("E, the bound", "for every stage an a-priori bound on |computed - exact|, element by "
                "element, propagated through the network from the rounding model; a sum of K terms "
                "may be off by gamma_K sum|terms|, gamma_K = K u / (1 - K u), in any order "
                "(docs/tolerances.md, netparity/tolerance.py). It depends on the sizes of the "
                "terms, not on the size of the result."),
        ("2E against the reference", "a backend and the NumPy reference in the same dtype are "
                "each within E of the exact value, so they may be up to 2E apart (triangle "
                "inequality): the conformance check is |backend - reference| <= 2E."),
        ("the float64 oracle", "the reference run in float64 from the same weights: its own "
                "error (u = 1.1e-16) is negligible next to float32's (u = 6e-8), so for float32 it "
                "stands in for the exact value, and a float32 backend is also held to "
                "|backend - oracle| <= E. That answers 'which one is closer to the truth'."),
        ("ratio", "error / bound at the worst element; a stage passes when it is <= 1. Green "
                "< 0.1, yellow 0.1-1 (still a pass, closer to the bound), red > 1 (fail). "
                "Correct code typically shows 1e-3 to 0.5; a planted bug 1e3 to 1e15."),
        ("TF32", "TensorFloat-32: NVIDIA GPUs (Ampere and later) may run float32 matrix "
                "products with inputs rounded to 10 mantissa bits (u_in = 2^-11). netparity turns "
                "it off (netparity.numerics.precision_mode) and checks it only as a separate axis "
                "with its own bound. torch's cudnn.allow_tf32 (True by default) affects cuDNN "
                "convolutions only; this network has none."),
        ("manual / autodiff / idiomatic", "manual: the course's formulas written out in the "
                "framework; autodiff: the framework differentiates the cost (torch.autograd, "
                "jax.grad); idiomatic: the network as the framework's users write it (nn.Module + "
                "torch.optim, flax.nnx + optax)."),
    ]


def _fmt(x):
    return f"{x:.3g}"


def worked_numbers():
    """The worked examples as one dict (the report renders it; the notebook shows the same)."""
    db32 = db_cancellation("float32")
    terms = np.asarray(_article_step("float32").ref["dZ2"]).ravel()
    return {"ulp": ulp_facts(), "sum": summation_orders(terms), "db": db32,
            "fma": fma_update("float32"), "scale": autodiff_scale()}


def worked_text(w):
    """The worked examples as (title, [paragraphs]) with their numbers, plain text."""
    db, fma, sc = w["db"], w["fma"], w["scale"]
    sums = w["sum"]
    out = []
    out.append(("Summation order", [
        f"db2 sums the {db['m']} float32 values dZ2 = A2 - Y of the article's first step. The same "
        "terms added in different orders give different last digits: every addition rounds, and "
        "which partial sums occur depends on the order. BLAS kernels, XLA and torch each choose their own.",
        *(f"{k}: {v[0]!r} ({v[1]}), {v[2]:.0f} ULP from the exact sum" for k, v in sums.items()),
    ]))
    out.append(("Why db shows many ULPs on correct code", [
        f"The {db['m']} terms have sizes up to {_fmt(db['largest_term'])} ({db['positive']} positive, "
        f"{db['negative']} negative) and cancel: sum|dZ2| = {_fmt(db['sum_abs'])} but sum dZ2 = "
        f"{_fmt(db['sum'])}, {_fmt(db['condition'])} times smaller. Rounding errors scale with the "
        f"terms (gamma_m sum|dZ2| / m, gamma_m = {_fmt(db['gamma_m'])}), ULPs with the result.",
        f"db2 = {_fmt(db['db2'])}, one float32 ULP there is {_fmt(db['ulp_db2'])}; its bound E = "
        f"{_fmt(db['bound'])}, so two correct results may be 2E / ULP = {db['bound_ulps']:.3g} ULPs "
        "apart. A large ULP count with a small ratio is rounding; a large ratio is a bug.",
    ]))
    out.append(("Fused multiply-add", [
        "The update P - lr dP rounds twice in NumPy (the product, then the difference); a fused "
        "multiply-add rounds the exact result once (torch.optim.SGD's add_, XLA under jax.jit).",
        f"Over the first {fma['steps']} float32 updates of the article's run (lr = {fma['lr']:.7g} "
        f"as a float32), {fma['differ']} of the {fma['values']} updated values differ between the "
        f"two, by at most {fma['max_ulps']:.3g} ULP of the result (where P and lr dP nearly cancel, "
        "one rounding at their size is several ULPs of the difference): both are within the "
        "bound, neither is wrong.",
    ]))
    rows = sc["rows"]
    out.append(("The autodiff x m convention", [
        "The course's dZ = A - Y is m times the derivative of the cost J = (1/m) sum L: "
        "autodiff differentiates J and returns dJ/dZ = dZ / m, so the autodiff and idiomatic "
        f"columns multiply dZ and dA by m (here m = {sc['m']}) before comparing.",
        *(f"column {r['column']}: dZ2 = {r['dZ2']:.6g}, dJ/dZ2 (central differences) = "
          f"{r['dJ_dZ2']:.6g}, ratio {r['ratio']:.6g}" for r in rows),
    ]))
    return out
