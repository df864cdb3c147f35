"""Property-based conformance: random shapes, seeds and input scales (hypothesis).

The "ci" profile (conftest) is derandomized, so CI sees the same examples every run; a
failure prints the example and a ``@reproduce_failure`` blob, and the data it used is
fully determined by the drawn ``seed`` (all arrays come from RandomState(seed))."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import reference as R
from netparity.backends import MIRRORS, get_backend
from netparity.compare import assert_conforms, compare_stages
from netparity.stages import OPTIMIZER_CONFIGS, stage_order, step_stages
from netparity.tolerance import Precision, input_bounds, stage_bounds


def _backends():
    out = []
    for b in MIRRORS:
        try:
            get_backend(b)
            out.append(b)
        except ImportError:
            pass
    return out


# ~1 s per example on JAX (new shapes retrace its eager ops): kept out of the CI budget
@pytest.mark.slow
@pytest.mark.parametrize("backend", _backends())
@given(seed=st.integers(0, 2**31 - 1), n_x=st.integers(1, 6), hidden_dims=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       n_y=st.integers(1, 4), m=st.integers(1, 40), log_scale=st.floats(-3, 1.5),
       hidden=st.sampled_from(R.HIDDEN_ACTIVATIONS), dtype=st.sampled_from(["float64", "float32"]),
       opt=st.sampled_from(sorted(OPTIMIZER_CONFIGS)))
def test_one_step_conforms_for_random_shapes(backend, seed, n_x, hidden_dims, n_y, m, log_scale, hidden, dtype, opt):
    B = get_backend(backend)
    rng = np.random.RandomState(seed)
    output = "sigmoid" if n_y == 1 else "softmax"
    X = rng.randn(n_x, m) * 10.0 ** log_scale
    Y = (rng.rand(1, m) > 0.5).astype(np.float64) if n_y == 1 else R.one_hot(rng.randint(0, n_y, m), n_y)
    p64 = R.initialize_network([n_x, *hidden_dims, n_y], init="xavier", seed=seed)
    optimizer = OPTIMIZER_CONFIGS[opt]
    s64 = R.init_optimizer_state(p64, optimizer)
    prec = Precision(dtype)
    oracle, new64, news64 = step_stages(R, "manual", None, p64, s64, X, Y, hidden, output, optimizer)
    _, cache64 = R.network_forward(X, p64, hidden, output)
    bounds, _, _ = stage_bounds(p64, s64, X, Y, cache64, {k: v for k, v in oracle.items() if k[0] == "d"},
                                new64, news64, input_bounds(p64, prec),
                                {k: 0.0 if k == "t" else np.zeros_like(v) for k, v in s64.items()},
                                hidden, output, optimizer, prec)
    pr = R.tree_from_numpy(p64, dtype)
    ref, _, _ = step_stages(R, "manual", None, pr, R.init_optimizer_state(pr, optimizer),
                            X.astype(dtype), Y.astype(dtype), hidden, output, optimizer)
    pb = B.tree_from_numpy(p64, dtype)
    got, _, _ = step_stages(B, "manual", None, pb, B.init_optimizer_state(pb, optimizer),
                            B.from_numpy(X, dtype), B.from_numpy(Y, dtype), hidden, output, optimizer)
    order = stage_order(len(hidden_dims) + 1, list(s64))
    ctx = {"case": f"{backend}-manual-cpu-{dtype}-{hidden}-{output}-{'x'.join(map(str, [n_x, *hidden_dims, n_y]))}-{opt}-m{m}-seed{seed}"}
    assert_conforms(compare_stages(ref, got, bounds, order, dtype), ctx)
