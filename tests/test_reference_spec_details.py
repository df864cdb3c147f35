"""Details of the specification that the conformance tests cannot see, because every
backend shares them with the reference: the data sets (mirrors convert the reference's),
``batch_order``'s own argument checks (``train`` checks first, so they are reached only
by a direct call) and the optimiser's defaults (one shared ``Optimizer`` class).

Each data set is rebuilt here from the procedure its docstring states (draw order
included), with the defaults of its signature, and must come out bit-identical: a change
of a constant, a draw or a default changes the data every backend is tested on."""
import inspect
import re

import numpy as np
import pytest

import reference as R
from reference.gradcheck import relative_difference


def planar(seed, m):
    # the article's flower: per class j, angles linspace(3.12 j, 3.12 (j + 1)) + 0.2 N,
    # radius 4 sin(4 t) + 0.2 N, X = (r sin t, r cos t), class j on examples j m/2 ...
    rng, n = np.random.RandomState(seed), m // 2
    cols, labels = [], []
    for j in (0, 1):
        t = np.linspace(3.12 * j, 3.12 * (j + 1), n) + 0.2 * rng.randn(n)
        r = 4 * np.sin(4 * t) + 0.2 * rng.randn(n)
        cols.append(np.stack([r * np.sin(t), r * np.cos(t)]))
        labels += [float(j)] * n
    return np.concatenate(cols, axis=1), np.array([labels])


def xor(seed, m, noise):
    rng = np.random.RandomState(seed)
    P = rng.uniform(-1, 1, (2, m))
    Y = np.logical_xor(P[0] > 0, P[1] > 0).astype(np.float64)
    return P + noise * rng.randn(2, m), Y[None, :]


def circles(seed, m, noise, factor):
    rng = np.random.RandomState(seed)
    Y = np.array([float(i % 2) for i in range(m)])
    angle = rng.uniform(0, 2 * np.pi, m)
    radius = np.array([factor if y == 1 else 1.0 for y in Y])
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)]) + noise * rng.randn(2, m), Y[None, :]


def one_hot(labels, K):
    return np.array([[1.0 if c == k else 0.0 for c in labels] for k in range(K)])


def spirals(seed, m, K, noise):
    rng, n = np.random.RandomState(seed), m // K
    arms = []
    for k in range(K):
        r = np.linspace(0, 1, n)
        t = np.linspace(4 * k, 4 * (k + 1), n) + noise * rng.randn(n)
        arms.append(np.stack([r * np.sin(t), r * np.cos(t)]))
    return np.concatenate(arms, axis=1), one_hot([k for k in range(K) for _ in range(n)], K)


def blobs(seed, m, K, n_x, spread):
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-5, 5, (n_x, K))
    labels = [i % K for i in range(m)]
    return centres[:, labels] + spread * rng.randn(n_x, m), one_hot(labels, K)


# (name, keyword arguments that must equal the signature's defaults, rebuild)
DEFAULTS = [
    ("planar", dict(seed=1, m=400), lambda a: planar(a["seed"], a["m"])),
    ("xor", dict(m=400, seed=2, noise=0.1), lambda a: xor(a["seed"], a["m"], a["noise"])),
    ("circles", dict(m=400, seed=3, noise=0.08, factor=0.5),
     lambda a: circles(a["seed"], a["m"], a["noise"], a["factor"])),
    ("spirals", dict(m=300, seed=4, num_classes=3, noise=0.2),
     lambda a: spirals(a["seed"], a["m"], a["num_classes"], a["noise"])),
    ("blobs", dict(m=300, seed=5, num_classes=3, num_features=2, spread=1.0),
     lambda a: blobs(a["seed"], a["m"], a["num_classes"], a["num_features"], a["spread"])),
]
OTHER = {"planar": dict(seed=7, m=60), "xor": dict(m=50, seed=11, noise=0.3),
         "circles": dict(m=51, seed=12, noise=0.02, factor=0.3),
         "spirals": dict(m=40, seed=13, num_classes=4, noise=0.05),
         "blobs": dict(m=41, seed=14, num_classes=2, num_features=3, spread=0.5)}


@pytest.mark.parametrize("name, defaults, rebuild", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_dataset_defaults_are_the_documented_ones(name, defaults, rebuild):
    params = inspect.signature(R.DATASETS[name]).parameters
    assert {k: params[k].default for k in defaults} == defaults


@pytest.mark.parametrize("name, defaults, rebuild", DEFAULTS, ids=[d[0] for d in DEFAULTS])
@pytest.mark.parametrize("args", ["defaults", "other"])
def test_dataset_follows_its_documented_procedure(name, defaults, rebuild, args):
    kwargs = defaults if args == "defaults" else OTHER[name]
    X, Y = R.load_dataset(name) if args == "defaults" else R.load_dataset(name, **kwargs)
    want_X, want_Y = rebuild(kwargs)
    # the same draws and the same formulas evaluated in the same order: bit-identical
    assert X.shape == want_X.shape and Y.shape == want_Y.shape
    assert np.array_equal(Y, want_Y)
    assert np.array_equal(X, want_X), f"max difference {np.max(np.abs(X - want_X)):.3g}"


def assert_raises(call, kind, pattern):
    """The call raises exactly ``kind`` with a message matching ``pattern``. Any other
    outcome (no error, another exception such as a KeyError from deeper down) fails
    this assertion, where pytest.raises would let the other exception through."""
    try:
        call()
    except Exception as e:  # noqa: BLE001  every exception is an outcome to check
        assert type(e) is kind and re.search(pattern, str(e)), f"raised {e!r}, expected {kind.__name__}: {pattern}"
        return
    raise AssertionError(f"no exception, expected {kind.__name__}: {pattern}")


@pytest.mark.parametrize("batch_size", [0, -3, 2.5])
def test_batch_order_refuses_a_bad_batch_size(batch_size):
    # train validates batch_size before calling batch_order; a direct call checks it too
    assert_raises(lambda: R.batch_order(10, batch_size), ValueError, r"^batch_size must be a positive integer, got ")


def test_batch_order_refuses_no_examples():
    assert_raises(lambda: R.batch_order(0, 4), ValueError, r"^need at least one example, got m = 0$")


def test_optimizer_defaults():
    """The article's rate 1.2 for gradient descent; the deep-learning course's momentum
    0.9 (its EMA form); Adam's defaults of Kingma & Ba (2015), Algorithm 1 ("good default
    settings ... beta1 = 0.9, beta2 = 0.999 and epsilon = 1e-8"), with the bias-corrected
    epsilon placement of that algorithm; a constant rate."""
    assert R.Optimizer() == R.Optimizer(
        name="gd", learning_rate=1.2, beta=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8,
        momentum_form="ema", adam_epsilon="corrected", schedule="constant", decay_rate=1.0,
        decay_steps=1)
    assert (R.Optimizer().epsilon, R.Optimizer().beta1, R.Optimizer().beta2) == (1e-8, 0.9, 0.999)


def test_adam_defaults_agree_with_torch_and_optax():
    """The same Adam defaults as the frameworks' own optimisers (where installed)."""
    checked = 0
    try:
        import torch
        p = inspect.signature(torch.optim.Adam).parameters
        assert (p["betas"].default, p["eps"].default) == ((R.Optimizer().beta1, R.Optimizer().beta2),
                                                           R.Optimizer().epsilon)
        checked += 1
    except ImportError:
        pass
    try:
        import optax
        p = inspect.signature(optax.adam).parameters
        assert (p["b1"].default, p["b2"].default, p["eps"].default) == (
            R.Optimizer().beta1, R.Optimizer().beta2, R.Optimizer().epsilon)
        checked += 1
    except ImportError:
        pass
    if not checked:
        pytest.skip("neither torch nor optax is installed")


@pytest.mark.parametrize("key", ["Z1", "A1", "Z2", "A2"])
def test_every_cache_entry_is_checked(key):
    """network_backward names any missing cache entry, the first layer's included
    (a check of layers 2..L only would let a KeyError through for Z1/A1)."""
    X, Y = R.load_planar_dataset(m=10)
    P = R.initialize_network([2, 3, 1])
    _, cache = R.network_forward(X, P)
    assert_raises(lambda: R.network_backward(P, {k: v for k, v in cache.items() if k != key}, X, Y),
                  ValueError, rf"^cache: missing {key} ")


@pytest.mark.parametrize("a, b, want", [
    # |a - b| / (|a| + |b|) over the stacked entries, from hand-computed norms
    ({"dW1": [[3.0, 4.0]]}, {"dW1": [[0.0, 0.0]]}, 1.0),                        # 5 / 5
    ({"dW1": [[1.0, 0.0]]}, {"dW1": [[0.0, 1.0]]}, np.sqrt(2) / 2),            # sqrt2 / 2
    ({"dW1": [[2.0]], "db1": [[0.0]]}, {"dW1": [[2.0]], "db1": [[1.0]]}, 1 / (2 + np.sqrt(5))),  # 1 / (2 + sqrt5)
])
def test_relative_difference_on_hand_values(a, b, want):
    """gradcheck's relative difference |g - g_fd| / (|g| + |g_fd|) (Euclidean norms of all
    entries stacked) on vectors whose norms are known: the gradient tests compare it with
    a threshold, so a wrong formula giving small numbers would pass them unnoticed."""
    a = {k: np.array(v) for k, v in a.items()}
    b = {k: np.array(v) for k, v in b.items()}
    assert relative_difference(a, b) == pytest.approx(want, rel=1e-15)


def test_model_refuses_no_examples_and_accepts_one():
    """model checks its data itself (it draws its own parameters): m = 0 is refused with
    the message every backend shares, m = 1 is a valid data set."""
    X, Y = R.load_planar_dataset(m=10)
    assert_raises(lambda: R.model(X[:, :0], Y[:, :0], X[:, :0], Y[:, :0], num_iterations=1, print_cost=False),
                  ValueError, r"^X has shape \(2, 0\): no examples \(m = 0\)$")
    params, _ = R.model(X[:, :1], Y[:, :1], X[:, :1], Y[:, :1], num_iterations=1, print_cost=False)
    assert {k: v.shape for k, v in params.items()} == {"W1": (4, 2), "b1": (4, 1), "W2": (1, 4), "b2": (1, 1)}
