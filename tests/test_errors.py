"""Bad input is rejected identically by every backend: the same exception type and the
same message (docs/errors.md), computed from the reference and compared (CASES). Where a
message must name the backend (another framework's array, a device), every backend's
message has the same shape (PER_BACKEND). Plus: every public function is validated,
Optimizer checks its hyper-parameters, conversions out are copies, learning_rate_at is
a Python float, NonFiniteError on a diverging run, and docs/bad_inputs.md is current."""
import os
import sys
import tempfile
import warnings

import numpy as np
import pytest

from netparity.backends import BUILTIN, REGISTRY, available_backends, get_backend

R = get_backend("numpy")
BACKENDS = available_backends()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# never created: every call using it is refused before a file is touched
NEVER_WRITTEN = os.path.join(tempfile.gettempdir(), "netparity-test-never-written.npz")


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


class DtypeIsAClass:
    """An array-like whose ``dtype`` is a Python class (no ``.name``, no "." in its str)."""
    dtype = float

    def __array__(self, dtype=None, copy=None):
        return np.zeros(2)


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
     if "autodiff" in REGISTRY[B.NAME].paths else R.network_backward(s.P, s.cache, s.X, s.arr(np.ones((2, 10))))),
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
    # functions that had no validation (issue 12, item 18)
    ("sigmoid-int", TypeError, "Z has dtype int64; expected a floating-point dtype",
     lambda B, s: B.sigmoid(s.arr(np.ones((1, 3), dtype=np.int64)))),
    ("activation-int", TypeError, "z has dtype int64",
     lambda B, s: B.activation("tanh", s.arr(np.ones((2, 3), dtype=np.int64)))),
    ("activation-grad-shapes", ValueError, "a has shape (2, 2), expected the shape of z = (2, 3)",
     lambda B, s: B.activation_grad("tanh", s.arr(np.ones((2, 3))), s.arr(np.ones((2, 2))))),
    ("softmax-list", TypeError, "z must be an array, got list",
     lambda B, s: B.softmax([[1.0], [2.0]])),
    ("gradient-norms-list", TypeError, "grads must be a dict of arrays, got list",
     lambda B, s: B.gradient_norms([1.0, 2.0])),
    ("gradient-norms-int", TypeError, "grads: dW1 has dtype int64",
     lambda B, s: B.gradient_norms({"dW1": s.arr(np.ones((3, 2), dtype=np.int64))})),
    ("num-layers-list", TypeError, "parameters must be a dict of arrays, got list",
     lambda B, s: B.num_layers([s.P["W1"]])),
    ("from-numpy-strings", TypeError, "x has dtype str32; from_numpy converts numeric arrays only",
     lambda B, s: B.from_numpy(np.array(["a", "b"]))),
    ("from-numpy-dtype-not-a-name", TypeError,
     "x has dtype <class 'float'>; from_numpy converts numeric arrays only",
     lambda B, s: B.from_numpy(DtypeIsAClass())),
    ("from-numpy-masked", TypeError, "from_numpy would drop its mask",
     lambda B, s: B.from_numpy(np.ma.masked_array([1.0, 2.0], mask=[0, 1]))),
    ("from-numpy-unknown-dtype", TypeError, "dtype must be None or one of",
     lambda B, s: B.from_numpy(s.Xn, "float8")),
    ("tree-from-numpy-list", TypeError, "d must be a dict of arrays, got list",
     lambda B, s: B.tree_from_numpy([s.Xn])),
    ("learning-rate-at-negative", ValueError, "k must be a non-negative integer (the update number), got -1",
     lambda B, s: B.learning_rate_at(s.opt, -1)),
    ("learning-rate-at-float", ValueError, "k must be a non-negative integer",
     lambda B, s: B.learning_rate_at(s.opt, 2.5)),
    ("train-callback-not-callable", TypeError, "callback must be callable",
     lambda B, s: B.train(s.P, s.X, s.Y, callback=5)),
    # seeds (item 21): None would draw from the operating system
    ("init-seed-none", ValueError, "seed must be an integer in [0, 2**32 - 1], got None",
     lambda B, s: B.initialize_network([2, 3, 1], seed=None)),
    ("init-seed-negative", ValueError, "seed must be an integer in [0, 2**32 - 1], got -1",
     lambda B, s: B.initialize_network([2, 3, 1], seed=-1)),
    ("init-seed-2**32", ValueError, "got 4294967296",
     lambda B, s: B.initialize_network([2, 3, 1], seed=2 ** 32)),
    ("train-seed-none", ValueError, "seed must be an integer in [0, 2**32 - 1], got None",
     lambda B, s: B.train(s.P, s.X, s.Y, batch_size=5, seed=None)),
    ("train-seed-plus-epochs", ValueError, "seed + num_epochs - 1 must be at most 2**32 - 1",
     lambda B, s: B.train(s.P, s.X, s.Y, num_epochs=3, seed=2 ** 32 - 2)),
    ("batch-order-seed-none", ValueError, "seed must be an integer in [0, 2**32 - 1], got None",
     lambda B, s: B.batch_order(10, 3, seed=None)),
    # the article API (item 23)
    ("compute-cost-above-1", ValueError, "A2 must hold probabilities in [0, 1]",
     lambda B, s: B.compute_cost(s.arr(np.full((1, 10), 1.5)), s.Y)),
    ("compute-cost-logits", ValueError, "pass the output activation's values, not logits",
     lambda B, s: B.compute_cost(s.arr(np.linspace(-3, 3, 10)[None, :]), s.Y)),
    ("cross-entropy-negative", ValueError, "AL must hold probabilities in [0, 1]",
     lambda B, s: B.cross_entropy(s.arr(s.Yn - 0.5), s.Y)),
    ("init-params-zero", ValueError, "n_x must be a positive integer, got 0",
     lambda B, s: B.initialize_parameters(0, 4, 1)),
    ("init-params-negative", ValueError, "n_x must be a positive integer, got -1",
     lambda B, s: B.initialize_parameters(-1, 4, 1)),
    ("init-params-float", ValueError, "n_h must be a positive integer, got 4.0",
     lambda B, s: B.initialize_parameters(2, 4.0, 1)),
    ("layer-sizes-n_h-zero", ValueError, "n_h must be a positive integer, got 0",
     lambda B, s: B.layer_sizes(s.X, s.Y, 0)),
    # Optimizer's hyper-parameters (item 17): one class, checked at construction
    ("optimizer-exponential-negative-rate", ValueError,
     "decay_rate must be a positive finite number for the 'exponential' schedule, got -0.5",
     lambda B, s: B.Optimizer("gd", 0.1, schedule="exponential", decay_rate=-0.5)),
    ("optimizer-inverse-time-negative-rate", ValueError,
     "decay_rate must be a positive finite number for the 'inverse_time' schedule",
     lambda B, s: B.Optimizer("gd", 0.1, schedule="inverse_time", decay_rate=-1.0)),
    ("optimizer-step-zero-rate", ValueError, "for the 'step' schedule, got 0",
     lambda B, s: B.Optimizer("gd", 0.1, schedule="step", decay_rate=0)),
    ("optimizer-lr-bool", ValueError, "learning_rate must be a positive finite number, got True",
     lambda B, s: B.Optimizer("gd", True)),
    ("optimizer-epsilon-negative", ValueError, "epsilon must be a positive finite number, got -1",
     lambda B, s: B.Optimizer("adam", 0.01, epsilon=-1)),
    ("optimizer-beta-str", ValueError, "beta must be a number in [0, 1), got '0.9'",
     lambda B, s: B.Optimizer("momentum", 0.1, beta="0.9")),
    ("optimizer-beta2-one", ValueError, "beta2 must be a number in [0, 1), got 1",
     lambda B, s: B.Optimizer("adam", 0.01, beta2=1)),
    ("optimizer-decay-steps-float", ValueError, "decay_steps must be a positive integer, got 2.0",
     lambda B, s: B.Optimizer("gd", 0.1, schedule="step", decay_steps=2.0)),
    ("optimizer-momentum-form", ValueError, "unknown momentum_form 'nesterov'",
     lambda B, s: B.Optimizer("momentum", 0.1, momentum_form="nesterov")),
    # weight files: checked before a file is touched (items 12, 13)
    ("save-weights-int-key", TypeError, "parameters: key 1 is a int; weight names must be strings",
     lambda B, s: B.save_weights(NEVER_WRITTEN, {1: s.P["W1"]})),
    ("save-weights-reserved-key", ValueError, "parameters: key '__format__' is not a weight name",
     lambda B, s: B.save_weights(NEVER_WRITTEN, {"__format__": s.P["W1"]})),
    ("save-weights-int-array", TypeError, "parameters: W1 has dtype int64",
     lambda B, s: B.save_weights(NEVER_WRITTEN, {"W1": s.arr(np.ones((2, 2), dtype=np.int64))})),
    ("save-weights-empty-path", ValueError, "path is empty",
     lambda B, s: B.save_weights("", s.P)),
    ("load-weights-bad-layer-dims", ValueError, "layer_dims must be a sequence of at least 2",
     lambda B, s: B.load_weights(NEVER_WRITTEN, layer_dims=[2, 0, 1])),
]


def array_label(x):
    """How the documented message names the type of x (numpy.ndarray, numpy.matrix,
    numpy.ma.MaskedArray, torch.Tensor, jax.Array)."""
    if isinstance(x, np.ma.MaskedArray):
        return "numpy.ma.MaskedArray"
    top = type(x).__module__.split(".")[0]
    return "jax.Array" if top in ("jax", "jaxlib") else f"{top}.{type(x).__name__}"


def own_array(B):
    return B.from_numpy(np.zeros((2, 3)))


def foreign_array(B, x):
    """``x`` as another framework's array: a NumPy array for backends that take another
    array type, else the first registered backend's of another type (the commonest
    mix-ups). Backends that share an array type (registry ``arrays``) are not foreign."""
    mine = REGISTRY[B.NAME].arrays
    if mine != "numpy.ndarray":
        return np.array(x)
    others = [b for b in BACKENDS if REGISTRY[b].arrays != mine]
    if not others:
        pytest.skip(f"no backend here takes another array type than {mine}")
    return get_backend(others[0]).from_numpy(x)


def foreign_message(name, x, B):
    return (f"{name} is a {array_label(x)}; the {B.NAME} backend takes "
            f"{array_label(own_array(B))} only (convert it with from_numpy; nothing is "
            "converted implicitly)")


def _foreign_X(B, s):
    bad = foreign_array(B, s.Xn)
    return "X", bad, lambda: B.network_forward(bad, s.P)


def _foreign_Y_in_train(B, s):
    bad = foreign_array(B, s.Yn)
    return "Y", bad, lambda: B.train(s.P, s.X, bad)


def _foreign_parameter(B, s):
    bad = foreign_array(B, s.Pn["W1"])
    return "parameters: W1", bad, lambda: B.network_forward(s.X, with_(s.P, W1=bad))


def _numpy_matrix_X(B, s):
    with warnings.catch_warnings():  # np.matrix itself warns that it should not be used
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        bad = np.asmatrix(s.Xn)
    return "X", bad, lambda: B.network_forward(bad, s.P)


def _masked_X(B, s):
    bad = np.ma.masked_array(s.Xn, mask=s.Xn > 1)
    return "X", bad, lambda: B.network_forward(bad, s.P)


# messages that must name the backend (issue 12, items 19, 20): one shape on every
# backend, the TypeError of foreign_message; (id, make(B, inputs) -> (name, bad value, call))
PER_BACKEND = [("foreign-X", _foreign_X), ("foreign-Y-train", _foreign_Y_in_train),
               ("foreign-parameter", _foreign_parameter), ("numpy-matrix-X", _numpy_matrix_X),
               ("masked-X", _masked_X)]


def per_backend_outcome(backend_name, make):
    """(raised type, message, the documented message) of a PER_BACKEND case."""
    B = get_backend(backend_name)
    name, bad, call = make(B, In(B))
    want = foreign_message(name, bad, B)
    if isinstance(bad, np.ma.MaskedArray):
        want = want.replace("convert it with from_numpy",
                            "fill its masked entries first: x.filled(value)")
    try:
        call()
    except (TypeError, ValueError) as e:
        return type(e), str(e), want
    return None, None, want


def outcome(backend_name, call):
    B = get_backend(backend_name)
    s = In(B)
    try:
        call(B, s)
    except Exception as e:  # noqa: BLE001  any other type is a wrong answer, not a crash
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
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_valid_input_is_never_refused(backend, output):
    """The checks refuse bad input only: well-formed float64 and float32 inputs go
    through every public step of training (each hidden activation, both costs, the
    optimisers, a schedule, gradient norms, train with mini-batches and Adam, an eager
    step on every gradient path, predict, weight files) without a TypeError or ValueError, or any other exception."""
    B = get_backend(backend)
    step = "from_numpy"
    try:
        for dtype in ("float64", "float32"):
            X, Y, P = data(output)
            X, Y, P = B.from_numpy(X, dtype), B.from_numpy(Y, dtype), B.tree_from_numpy(P, dtype)
            hiddens = ("sigmoid", "tanh", "relu", "leaky_relu") if dtype == "float64" else ("tanh",)
            for hidden in hiddens:
                step = f"{dtype} {hidden} network_forward"
                AL, cache = B.network_forward(X, P, hidden, output)
                step = f"{dtype} {hidden} costs"
                B.cross_entropy(AL, Y, output)
                B.cross_entropy_from_logits(cache["Z2"], Y, output)
                step = f"{dtype} {hidden} network_backward"
                grads = B.network_backward(P, cache, X, Y, hidden, output)
                B.gradient_norms(grads)
                B.network_predict(P, X, hidden, output)
            for opt in (R.Optimizer("gd", 0.1), R.Optimizer("momentum", 0.1, beta=0.0),
                        R.Optimizer("adam", 0.01, schedule="exponential", decay_rate=0.5)):
                step = f"{dtype} {opt.name} optimizer_step"
                state = B.init_optimizer_state(P, opt)
                B.optimizer_step(P, grads, state, opt)
                B.learning_rate_at(opt, 0)
            step = f"{dtype} train"
            B.train(P, X, Y, "tanh", output, opt, num_epochs=2, batch_size=4, seed=0)
            for grad_path in B.GRAD_PATHS:
                step = f"{dtype} make_train_step({grad_path!r})"
                B.make_train_step("tanh", output, opt, "stable", grad_path)(
                    P, B.init_optimizer_state(P, opt), X, Y)
        with tempfile.TemporaryDirectory() as d:
            step = "save_weights / load_weights"
            B.save_weights(os.path.join(d, "w.npz"), P)
            B.load_weights(os.path.join(d, "w.npz"), layer_dims=[2, 3, Y.shape[0]])
    except Exception as e:  # noqa: BLE001  refused (TypeError, ValueError) or broken: a wrong answer
        pytest.fail(f"{step}: valid input refused: {type(e).__name__}: {e}")


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


# ------------------------------------------------------------------ issue 12: the classes

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make", [m for _, m in PER_BACKEND], ids=[n for n, _ in PER_BACKEND])
def test_one_message_shape_for_another_frameworks_array(make, backend):
    """Items 19, 20: an array of another framework (or a NumPy matrix / masked array) is
    the documented TypeError on every backend, naming what it got and what it takes."""
    got_type, got_msg, want = per_backend_outcome(backend, make)
    assert (got_type, got_msg) == (TypeError, want)


@pytest.mark.parametrize("source, callee", [(a, b) for a in BACKENDS for b in BACKENDS
                                            if REGISTRY[a].arrays != REGISTRY[b].arrays])
def test_every_pair_of_frameworks_is_refused(source, callee):
    """Item 19, every ordered pair: X from ``source`` into ``callee``'s forward pass."""
    A, B = get_backend(source), get_backend(callee)
    s = In(B)
    X = A.from_numpy(s.Xn)
    with pytest.raises(TypeError) as e:
        B.network_forward(X, s.P)
    assert str(e.value) == foreign_message("X", X, B)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", [
    lambda B: B.from_numpy(np.zeros(2), None, "bogus"),
    lambda B: B.tree_from_numpy({"W1": np.zeros((1, 1))}, None, "bogus"),
    lambda B: B.load_weights(NEVER_WRITTEN, None, "bogus"),
], ids=["from_numpy", "tree_from_numpy", "load_weights"])
def test_unknown_device_same_shape_everywhere(call, backend):
    """Item 18: a device name the backend does not have is one ValueError shape (torch
    used to raise RuntimeError, NumPy and JAX two different ValueErrors)."""
    B = get_backend(backend)
    with pytest.raises(ValueError) as e:
        call(B)
    msg = str(e.value)
    head = f"unknown device 'bogus'; the {backend} backend has "
    assert msg.startswith(head), msg
    assert msg[len(head):].split(", ")[0] == "cpu" and "cpu" in B.devices()


PUBLIC_EXEMPT = {
    "devices": "takes no argument",
    "compile_status": "takes no argument",
    "load_planar_dataset": "reference.data: no required argument, returns NumPy data",
    "load_dataset": "reference.data: checks its name itself, returns NumPy data",
    "one_hot": "reference.data: a helper on NumPy label vectors",
    "to_numpy": "the way out: any array-like in, a NumPy copy out",
    "Optimizer": "a class: checks every hyper-parameter in __post_init__",
    "Remedies": "a class (the reference's, re-exported): checks every field in __post_init__",
    "NonFiniteError": "an exception class",
    "Net": "the idiomatic path's nn.Module / nnx.Module class: checks its activations in __init__",
    "run_idiomatic": "the harness's entry point: takes the reference's own NumPy parameters, data and "
                     "batches; its adapter names the layer that does not fit",
    "run_idiomatic_remedies": "run_idiomatic's remedies entry point (docs/remedies.md): the reference's "
                              "NumPy parameters, running estimates, data, batches and masks; it checks "
                              "their counts and the conventions its framework can express",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_public_function_validates_its_input(backend):
    """Item 18, the class: every public function of the flat API runs the shared checks
    (it is a validate.guard_api wrapper), or is exempt for the stated reason."""
    B = get_backend(backend)
    unchecked = []
    for name in dir(B):
        obj = getattr(B, name)
        if name.startswith("_") or not callable(obj) or type(obj).__name__ == "module":
            continue
        if getattr(obj, "unvalidated", None) is None and name not in PUBLIC_EXEMPT:
            unchecked.append(name)
    assert unchecked == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_conversions_out_are_copies(backend):
    """Item 22: writing into what to_numpy / tree_to_numpy returned never changes the
    backend's arrays (NumPy and torch used to return views)."""
    B = get_backend(backend)
    P = B.tree_from_numpy(R.initialize_network([2, 3, 1], "xavier"))
    before = float(np.asarray(B.to_numpy(P["W1"]))[0, 0])
    out = B.tree_to_numpy(P)
    out["W1"][0, 0] = 123.0
    one = B.to_numpy(P["b1"])
    one[...] = 7.0
    assert float(np.asarray(B.to_numpy(P["W1"]))[0, 0]) == before != 123.0
    assert np.all(np.asarray(B.to_numpy(P["b1"])) == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("schedule", ["constant", "inverse_time", "exponential", "step"])
def test_learning_rate_at_is_a_python_float(schedule, backend):
    """Item 24: a Python float on every backend (JAX's used to be a jax array), equal to
    the reference's; JAX's exponential rate is XLA's pow of a fractional exponent, within
    5e-14 relative of libm's (the bound stated in jax_impl/optim.py)."""
    B = get_backend(backend)
    opt = R.Optimizer("gd", 0.3, schedule=schedule, decay_rate=0.7, decay_steps=3)
    for k in (0, 1, 7, 100):
        got, want = B.learning_rate_at(opt, k), R.learning_rate_at(opt, k)
        assert type(got) is float
        if schedule == "exponential":
            assert got == pytest.approx(want, rel=5e-14, abs=0)
        else:
            assert got == want


def test_optimizer_stores_python_floats_so_float32_stays_float32():
    """Item 17: a NumPy float64 hyper-parameter is stored as a Python float: NumPy 2 lets a
    np.float64 scalar promote a float32 array (NEP 50), a Python float never."""
    opt = R.Optimizer("gd", np.float64(0.1))
    assert type(opt.learning_rate) is float and opt == R.Optimizer("gd", 0.1)
    P = R.tree_from_numpy(R.initialize_network([2, 3, 1]), "float32")
    grads = {f"d{k}": np.ones_like(v) for k, v in P.items()}
    new, _ = R.optimizer_step(P, grads, R.init_optimizer_state(P, opt), opt)
    assert {v.dtype for v in new.values()} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(new["W1"], P["W1"] - np.float32(0.1))


def test_bad_inputs_doc_is_current(tmp_path):
    """docs/bad_inputs.md is what tools/bad_input_table.py generates now."""
    missing = [b for b in BUILTIN if b not in BACKENDS]
    if missing:
        pytest.skip(f"the table has a column per registered backend; not importable here: {missing}")
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import bad_input_table
    finally:
        sys.path.pop(0)
    out = tmp_path / "bad_inputs.md"
    bad_input_table.main(["--out", str(out), "--quiet"])
    with open(os.path.join(ROOT, "docs", "bad_inputs.md")) as f:
        committed = f.read()
    assert out.read_text() == committed, "docs/bad_inputs.md is stale: run python tools/bad_input_table.py"
