"""Fuzzing the public API with hypothesis: random shapes (0 and mismatches included),
dtypes (float64/float32/int64/complex128/bool, X and parameters drawn separately) and
values (nan, inf, huge) through network_forward + cross_entropy_from_logits +
network_backward on every registered backend, each against the reference. Either both
raise the same exception type with the same message, or both succeed and the results agree.

Agreement bound (documented choice): per stage, |got - ref| <= 1e3 * u * scale with u
the unit roundoff of the dtype and scale = max(1, max |ref|) over the stage's finite
entries; nan/inf must sit at the same places (and infs have the same sign). The
tolerance policy's first-order bounds (netparity.tolerance) are sharper, but they are
built for well-conditioned inputs; here values up to 1e30 saturate tanh/sigmoid and an
absolute bound relative to the stage's largest entry is the honest statement for any
input: every op on this path is a short sum/product (depth <= 4 with at most 4-term
sums), so its error is a few u times the magnitudes involved, far inside 1e3 u.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import backend_params
from netparity.backends import get_backend
from netparity.compare import compare_stage

DTYPES = ["float64", "float32", "int64", "complex128", "bool"]
SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0]


@st.composite
def problems(draw):
    n_x, n_h, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 4))
    rows = n_x if draw(st.booleans()) or draw(st.booleans()) else draw(st.integers(0, 4))
    y_rows = 1 if draw(st.integers(0, 5)) else draw(st.integers(0, 2))
    y_cols = m if draw(st.integers(0, 5)) else draw(st.integers(0, 5))
    x_dtype = draw(st.sampled_from(DTYPES) if draw(st.integers(0, 2)) == 0 else st.just("float64"))
    p_dtype = x_dtype if draw(st.integers(0, 3)) else draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.RandomState(seed)

    def values(shape, dtype, special):
        if dtype == "bool":
            return rng.rand(*shape) > 0.5
        if dtype == "int64":
            return rng.randint(-3, 4, shape)
        scale = draw(st.sampled_from([1.0, 1.0, 1e3, 1e30])) if special else 1.0
        a = rng.randn(*shape) * scale
        if special and a.size and draw(st.integers(0, 3)) == 0:
            a.flat[rng.randint(a.size)] = draw(st.sampled_from(SPECIAL))
        return a.astype(dtype)

    X = values((rows, m), x_dtype, True)
    P = {"W1": values((n_h, n_x), p_dtype, True), "b1": values((n_h, 1), p_dtype, True),
         "W2": values((1, n_h), p_dtype, True), "b2": values((1, 1), p_dtype, False)}
    Y = (rng.rand(y_rows, y_cols) > 0.5).astype(x_dtype if x_dtype != "bool" else "float64")
    if draw(st.integers(0, 6)) == 0 and Y.size:
        Y.flat[0] = 2
    hidden = draw(st.sampled_from(["tanh", "relu", "leaky_relu", "sigmoid"]))
    return X, Y, P, hidden


def run(backend, X, Y, P, hidden):
    B = get_backend(backend)
    Xb, Yb, Pb = B.from_numpy(X), B.from_numpy(Y), B.tree_from_numpy(P)
    try:
        AL, cache = B.network_forward(Xb, Pb, hidden)
        J = B.cross_entropy_from_logits(cache["Z2"], Yb)
        grads = B.network_backward(Pb, cache, Xb, Yb, hidden)
    except (TypeError, ValueError) as e:
        return "error", (type(e).__name__, str(e))
    out = {k: B.to_numpy(v) for k, v in {**cache, "J": J, **grads}.items()}
    return "ok", out


def agree(stage, ref, got, dtype):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    assert ref.shape == got.shape, stage
    fr, fg = np.isfinite(ref), np.isfinite(got)
    assert np.array_equal(fr, fg), f"{stage}: nan/inf at different places"
    assert np.array_equal(np.isnan(ref), np.isnan(got)), f"{stage}: nan vs inf"
    assert np.array_equal(ref[np.isinf(ref)], got[np.isinf(got)]), f"{stage}: inf signs"
    if not fr.any():
        return
    u = float(np.finfo(dtype).eps) / 2
    scale = max(1.0, float(np.abs(ref[fr]).max()))
    res = compare_stage(stage, np.where(fr, ref, 0), np.where(fg, got, 0), 1e3 * u * scale,
                        None, factor=1.0)
    assert res.ok, res.line()


def check(backend, X, Y, P, hidden):
    kind, ref = run("numpy", X, Y, P, hidden)
    for b in (backend,):
        got_kind, got = run(b, X, Y, P, hidden)
        assert got_kind == kind, f"{b}: {got_kind} {got if got_kind == 'error' else ''} vs numpy {kind} {ref if kind == 'error' else ''}"
        if kind == "error":
            assert got == ref, f"{b} raised {got}, numpy {ref}"
        else:
            assert list(got) == list(ref)
            for k in ref:
                agree(f"{b}:{k}", ref[k], got[k], ref["A0"].dtype)
    return kind


@pytest.mark.parametrize("backend", backend_params(reference=False))
@settings(max_examples=20)
@given(problems())
def test_fuzz_backend_agrees_with_reference(backend, problem):
    check(backend, *problem)


@pytest.mark.slow
@pytest.mark.parametrize("backend", backend_params(reference=False))
@settings(max_examples=300)
@given(problems())
def test_fuzz_backend_agrees_with_reference_many(backend, problem):
    check(backend, *problem)
