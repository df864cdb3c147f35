"""Property-based conformance: random shapes, seeds and input scales (hypothesis).

The "ci" profile (conftest) is derandomized, so CI sees the same examples every run; a
failure prints the example and a ``@reproduce_failure`` blob, and the data it used is
fully determined by the drawn ``seed`` (all arrays come from RandomState(seed))."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import reference as R
from conftest import backend_params
from netparity.backends import get_backend
from netparity.compare import assert_conforms, compare_stages
from netparity.stages import OPTIMIZER_CONFIGS, expected_for, step_stages


# ~1 s per example on JAX (new shapes retrace its eager ops): kept out of the CI budget
@pytest.mark.slow
@pytest.mark.parametrize("backend", backend_params(reference=False))
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
    # the reference (same dtype), float64 oracle and bounds: the runner's own computation
    exp = expected_for(p64, X, Y, [np.arange(m)], hidden, output, optimizer, dtype)
    pb = B.tree_from_numpy(p64, dtype)
    got, _, _ = step_stages(B, "manual", None, pb, B.init_optimizer_state(pb, optimizer),
                            B.from_numpy(X, dtype), B.from_numpy(Y, dtype), hidden, output, optimizer)
    ctx = {"case": f"{backend}-manual-cpu-{dtype}-{hidden}-{output}-{'x'.join(map(str, [n_x, *hidden_dims, n_y]))}-{opt}-m{m}-seed{seed}"}
    assert_conforms(compare_stages(exp.ref, got, exp.bounds, exp.order, dtype), ctx)
