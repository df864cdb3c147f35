"""Bad input is rejected identically by every backend: the same exception type and the
same message (docs/errors.md), computed from the reference and compared. Plus
NonFiniteError on a diverging run (and check_finite=False) on all three backends."""
import numpy as np
import pytest

from netparity.backends import get_backend

R = get_backend("numpy")
BACKENDS = ["numpy", "torch", "jax"]


def data(output="sigmoid", m=10, n_x=2, n_h=3, n_y=None):
    rng = np.random.RandomState(0)
    X = rng.randn(n_x, m)
    if output == "sigmoid":
        n_y = n_y or 1
        Y = (rng.rand(n_y, m) > 0.5).astype(np.float64)
    else:
        n_y = n_y or 3
        Y = np.eye(n_y)[:, rng.randint(0, n_y, m)]
    P = R.initialize_network([n_x, n_h, n_y], "xavier", seed=1)
    return X, Y, P


class In:
    """The standard inputs, converted to backend B."""

    def __init__(self, B, output="sigmoid"):
        X, Y, P = data(output)
        self.B, self.X, self.Y, self.P = B, B.from_numpy(X), B.from_numpy(Y), B.tree_from_numpy(P)
        self.Xn, self.Yn, self.Pn = X, Y, P
        AL, self.cache = B.network_forward(self.X, self.P, "tanh", output)
        self.AL = AL
        self.grads = B.network_backward(self.P, self.cache, self.X, self.Y, "tanh", output)
        self.opt = R.Optimizer("gd", 0.1)
        self.state = B.init_optimizer_state(self.P, self.opt)

    def arr(self, a, dtype=None):
        return self.B.from_numpy(np.asarray(a), dtype)

    def params(self, P):
        return {k: self.arr(v) for k, v in P.items()}


def with_(d, **kw):
    out = dict(d)
    for k, v in kw.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


# (id, exception, phrase the message must contain, call(B, inputs))
CASES = [
    # shapes
    ("forward-X-rows", ValueError, "examples must be columns: X is (n_x, m)",
     lambda B, s: B.network_forward(s.arr(s.Xn.T), s.P)),
    ("forward-X-wrong-nx", ValueError, "X must have n_x = 2 rows",
     lambda B, s: B.network_forward(s.arr(np.ones((5, 10))), s.P)),
    ("forward-X-1d", ValueError, "X must be 2-D",
     lambda B, s: B.network_forward(s.arr(np.ones(2)), s.P)),
    ("forward-m0", ValueError, "no examples (m = 0)",
     lambda B, s: B.network_forward(s.arr(np.ones((2, 0))), s.P)),
    ("backward-Y-shape", ValueError, "Y has shape (1, 9), expected (n_y, m)",
     lambda B, s: B.network_backward(s.P, s.cache, s.X, s.arr(s.Yn[:, :9]))),
    ("backward-cache-missing", ValueError, "cache: missing",
     lambda B, s: B.network_backward(s.P, with_(s.cache, A2=None), s.X, s.Y)),
    ("cost-Y-vs-AL", ValueError, "expected the shape of AL",
     lambda B, s: B.cross_entropy(s.AL, s.arr(np.ones((1, 3))))),
    ("cost-logits-m0", ValueError, "no examples (m = 0)",
     lambda B, s: B.cross_entropy_from_logits(s.arr(np.ones((1, 0))), s.arr(np.ones((1, 0))))),
    ("autodiff-Y-shape", ValueError, "Y has shape (2, 10)",
     lambda B, s: B.network_backward_autodiff(s.P, s.X, s.arr(np.ones((2, 10))))
     if B.NAME != "numpy" else R.network_backward(s.P, s.cache, s.X, s.arr(np.ones((2, 10))))),
    ("train-W2-shape", ValueError, "W2 has shape (1, 4)",
     lambda B, s: B.train(s.params(with_(s.Pn, W2=np.ones((1, 4)))), s.X, s.Y)),
    ("params-b-shape", ValueError, "b1 has shape (3, 2), expected (3, 1)",
     lambda B, s: B.network_forward(s.X, s.params(with_(s.Pn, b1=np.zeros((3, 2)))))),
    ("params-b-1d", ValueError, "parameters: b1 must be 2-D, got shape (3,)",
     lambda B, s: B.network_forward(s.X, s.params(with_(s.Pn, b1=np.zeros(3))))),
    # keys
    ("params-W1-without-b1", ValueError, "parameters: missing b1",
     lambda B, s: B.network_forward(s.X, s.params(with_(s.Pn, b1=None)))),
    ("params-W3-when-L2", ValueError, "missing b3",
     lambda B, s: B.network_forward(s.X, s.params(with_(s.Pn, W3=np.ones((1, 1)))))),
    ("params-stray-key", ValueError, "unexpected foo",
     lambda B, s: B.train_step(s.params(with_(s.Pn, foo=np.ones((1, 1)))), s.state, s.X, s.Y)),
    ("params-empty", ValueError, "no layers",
     lambda B, s: B.network_forward(s.X, {})),
    ("article-W3", ValueError, "unexpected W3",
     lambda B, s: B.forward_propagation(s.X, s.params(with_(s.Pn, W3=np.ones((1, 1)))))),
    ("grads-missing", ValueError, "grads: missing dW1",
     lambda B, s: B.optimizer_step(s.P, with_(s.grads, dW1=None), s.state, s.opt)),
    ("state-missing", ValueError, "state: missing vdW1",
     lambda B, s: B.optimizer_step(s.P, s.grads, s.state, R.Optimizer("momentum", 0.1))),
    # dtypes
    ("X-int", TypeError, "X has dtype int64; expected a floating-point dtype",
     lambda B, s: B.network_forward(s.arr(np.ones((2, 10), dtype=np.int64)), s.P)),
    ("X-bool", TypeError, "X has dtype bool",
     lambda B, s: B.network_forward(s.arr(np.ones((2, 10), dtype=bool)), s.P)),
    ("X-complex", TypeError, "X has dtype complex128",
     lambda B, s: B.network_forward(s.arr(np.ones((2, 10), dtype=np.complex128)), s.P)),
    ("X-float32-params-float64", TypeError, "X has dtype float32 but the parameters have float64",
     lambda B, s: B.network_forward(s.arr(s.Xn, "float32"), s.P)),
    ("params-mixed", TypeError, "b1 has dtype float32 but W1 has float64",
     lambda B, s: B.network_forward(s.X, with_(s.P, b1=s.arr(s.Pn["b1"], "float32")))),
    ("Y-float32", TypeError, "Y has dtype float32 but X has float64",
     lambda B, s: B.train_step(s.P, s.state, s.X, s.arr(s.Yn, "float32"))),
    ("Y-int-cost", TypeError, "Y has dtype int64",
     lambda B, s: B.compute_cost(s.AL, s.arr(s.Yn.astype(np.int64)))),
    ("init-int-dtype", TypeError, "dtype must be a floating-point dtype",
     lambda B, s: B.initialize_network([2, 3, 1], dtype="int64")),
    ("optimizer-not-optimizer", TypeError, "optimizer must be an Optimizer",
     lambda B, s: B.init_optimizer_state(s.P, "adam")),
    # values
    ("X-nan", ValueError, "X contains nan or inf",
     lambda B, s: B.network_forward(s.arr(np.where(np.arange(20).reshape(2, 10) == 3, np.nan, s.Xn)), s.P)),
    ("X-inf-train", ValueError, "X contains nan or inf",
     lambda B, s: B.train(s.P, s.arr(np.full((2, 10), np.inf)), s.Y)),
    ("params-nan", ValueError, "parameters: W2 contains nan or inf",
     lambda B, s: B.network_forward(s.X, s.params(with_(s.Pn, W2=s.Pn["W2"] * np.nan)))),
    ("params-inf-optimize", ValueError, "parameters: b1 contains nan or inf",
     lambda B, s: B.optimize(s.params(with_(s.Pn, b1=np.full((3, 1), np.inf))), s.X, s.Y, 2)),
    ("labels-sigmoid-2", ValueError, "Y must hold labels in {0, 1}",
     lambda B, s: B.network_backward(s.P, s.cache, s.X, s.arr(2 * s.Yn))),
    ("labels-sigmoid-half", ValueError, "Y must hold labels in {0, 1}",
     lambda B, s: B.cross_entropy_from_logits(s.cache["Z2"], s.arr(s.Yn * 0 + 0.5))),
    ("labels-nan", ValueError, "Y must hold labels in {0, 1}",
     lambda B, s: B.cross_entropy(s.AL, s.arr(s.Yn * np.nan))),
    ("labels-softmax-not-one-hot", ValueError, "one-hot columns",
     lambda B, s: B.cross_entropy(s.arr(np.full((3, 4), 1 / 3)), s.arr(np.ones((3, 4))), "softmax")),
    # names
    ("unknown-hidden", ValueError, "unknown activation 'gelu'",
     lambda B, s: B.network_forward(s.X, s.P, hidden="gelu")),
    ("unknown-output", ValueError, "unknown activation 'tanh'",
     lambda B, s: B.network_backward(s.P, s.cache, s.X, s.Y, output="tanh")),
    ("unknown-cost", ValueError, "unknown cost 'mse'",
     lambda B, s: B.train(s.P, s.X, s.Y, cost="mse")),
    ("unknown-optimizer", ValueError, "unknown optimizer 'rmsprop'",
     lambda B, s: B.train(s.P, s.X, s.Y, optimizer=R.Optimizer("rmsprop"))),
    ("unknown-init", ValueError, "unknown initializer 'lecun'",
     lambda B, s: B.initialize_network([2, 3, 1], "lecun")),
    ("unknown-grad-path", ValueError, "unknown grad_path 'finite_diff'",
     lambda B, s: B.make_train_step("tanh", "sigmoid", s.opt, grad_path="finite_diff")),
    ("step-fn-X-rows", ValueError, "examples must be columns",
     lambda B, s: B.make_train_step("tanh", "sigmoid", s.opt)(s.P, s.state, s.arr(s.Xn.T), s.Y)),
    # layer_dims
    *[(f"layer-dims-{name}", ValueError, "layer_dims must be a sequence of at least 2 positive integers",
       (lambda dims: lambda B, s: B.initialize_network(dims))(dims))
      for name, dims in [("empty", []), ("single", [3]), ("zero", [2, 0, 1]),
                         ("negative", [2, -3, 1]), ("float", [2, 3.0, 1]), ("bool", [2, True])]],
    # hyper-parameters
    ("lr-zero", ValueError, "learning_rate must be a positive finite number",
     lambda B, s: B.update_parameters(s.P, {k: v for k, v in s.grads.items()}, 0)),
    ("lr-negative-optimize", ValueError, "learning_rate must be a positive finite number",
     lambda B, s: B.optimize(s.P, s.X, s.Y, 2, -1.0)),
    ("lr-nan-optimizer", ValueError, "learning_rate must be a positive finite number",
     lambda B, s: B.train(s.P, s.X, s.Y, optimizer=R.Optimizer("gd", float("nan")))),
    ("batch-size-zero", ValueError, "batch_size must be a positive integer",
     lambda B, s: B.train(s.P, s.X, s.Y, batch_size=0)),
    ("batch-size-float", ValueError, "batch_size must be a positive integer",
     lambda B, s: B.train(s.P, s.X, s.Y, batch_size=2.5)),
    ("num-epochs-negative", ValueError, "num_epochs must be a non-negative integer",
     lambda B, s: B.train(s.P, s.X, s.Y, num_epochs=-1)),
    ("batch-order-m0", ValueError, "need at least one example",
     lambda B, s: B.batch_order(0)),
    ("model-n_h-zero", ValueError, "n_h must be a positive integer",
     lambda B, s: B.model(s.X, s.Y, s.X, s.Y, n_h=0, num_iterations=1, print_cost=False)),
    ("predict-X-rows", ValueError, "examples must be columns",
     lambda B, s: B.predict(s.P, s.arr(s.Xn.T))),
    ("network-predict-int", TypeError, "X has dtype int32",
     lambda B, s: B.network_predict(s.P, s.arr(np.ones((2, 4), dtype=np.int32)))),
    ("backward-prop-cache", ValueError, "cache: A1 has shape",
     lambda B, s: B.backward_propagation(s.P, with_(s.cache, A1=s.arr(np.ones((3, 4)))), s.X, s.Y)),
]


def outcome(backend_name, call):
    B = get_backend(backend_name)
    s = In(B)
    try:
        call(B, s)
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    return None, None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", CASES, ids=[c[0] for c in CASES])
def test_bad_input_same_error_everywhere(bad, backend):
    name, exc, phrase, call = bad
    want_type, want_msg = outcome("numpy", call)
    assert want_type is exc, f"reference raised {want_type} ({want_msg}), expected {exc.__name__}"
    assert phrase in want_msg, want_msg
    got_type, got_msg = outcome(backend, call)
    assert (got_type, got_msg) == (want_type, want_msg)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_one_hot_same_error(backend):
    B = get_backend(backend)
    s = In(B, "softmax")
    Y = s.Yn.copy()
    Y[:, 0] = [1, 1, 0]
    msgs = []
    for M in (R, B):
        t = In(M, "softmax")
        with pytest.raises(ValueError, match="one-hot columns") as e:
            M.network_backward(t.P, t.cache, t.X, M.from_numpy(Y), "tanh", "softmax")
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def diverging(B, check_finite=True):
    """The literal cost in float32 with a huge learning rate: A saturates to exactly 0/1
    and log(0) gives inf, a few updates in."""
    X, Y, P = data(m=40)
    X32, Y32 = B.from_numpy(X, "float32"), B.from_numpy(Y, "float32")
    P32 = B.tree_from_numpy(P, "float32")
    return B.train(P32, X32, Y32, "tanh", "sigmoid", R.Optimizer("gd", 1e4), num_epochs=20,
                   cost="literal", check_finite=check_finite)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_cost_stops_training(backend):
    with pytest.raises(R.NonFiniteError) as ref_err:
        diverging(R)
    assert ref_err.value.stage == "cost" and ref_err.value.step >= 1
    with pytest.raises(R.NonFiniteError) as err:
        diverging(get_backend(backend))
    assert (err.value.step, err.value.stage) == (ref_err.value.step, ref_err.value.stage)
    assert f"update {err.value.step}" in str(err.value) and "'cost'" in str(err.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_finite_false_opts_out(backend):
    B = get_backend(backend)
    _, _, costs = diverging(B, check_finite=False)
    assert not np.all(np.isfinite(B.to_numpy(costs)))
    # and it opts out of the entry check too: nan in X trains (to nan) without raising
    X, Y, P = data()
    X[0, 0] = np.nan
    _, _, costs = B.train(B.tree_from_numpy(P), B.from_numpy(X), B.from_numpy(Y), check_finite=False)
    assert np.isnan(B.to_numpy(costs)).all()


def test_jit_paths_validate_shapes_not_values():
    """Inside jax.jit the arguments are tracers: validation must look at shapes/dtypes
    only (a jitted call of the public API works), and still rejects bad shapes."""
    import jax
    J = get_backend("jax")
    s = In(J)
    f = jax.jit(lambda X, P: J.network_forward(X, P)[0])
    np.testing.assert_allclose(np.asarray(f(s.X, s.P)), np.asarray(s.AL), rtol=1e-12)
    with pytest.raises(ValueError, match="examples must be columns"):
        f(J.from_numpy(s.Xn.T), s.P)
    step = J.make_train_step("tanh", "sigmoid", s.opt, compiled=True)
    step(s.P, s.state, s.X, s.Y)
