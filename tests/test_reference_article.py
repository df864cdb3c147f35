"""The article's API: its defaults and quirks, bit-identity with the L-layer network,
global RNG hygiene, and the article's known result on the planar data."""
import re

import numpy as np
import pytest

from conftest import call_ok
import reference as ref


def rng_state_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


@pytest.mark.parametrize("n_x, n_h, n_y", [(2, 4, 1), (3, 5, 2), (1, 1, 1)], ids=lambda v: str(v))
def test_initialize_parameters_draws_like_the_article(n_x, n_h, n_y):
    # the article: np.random.seed(1); W1 = randn(n_h, n_x) * 0.01; ...; W2 = randn(n_y, n_h) * 0.01
    rng = np.random.RandomState(1)
    W1 = rng.randn(n_h, n_x) * 0.01
    W2 = rng.randn(n_y, n_h) * 0.01
    p = ref.initialize_parameters(n_x, n_h, n_y)
    assert list(p) == ["W1", "b1", "W2", "b2"]
    assert p["W1"].shape == (n_h, n_x) and p["W2"].shape == (n_y, n_h)
    assert p["b1"].shape == (n_h, 1) and p["b2"].shape == (n_y, 1)
    assert np.array_equal(p["W1"], W1) and np.array_equal(p["W2"], W2)
    assert not p["b1"].any() and not p["b2"].any()
    assert all(v.dtype == np.float64 for v in p.values())
    q = ref.initialize_network([n_x, n_h, n_y])
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_initial_w1_first_value_is_the_seed_1_draw():
    # RandomState(1).randn() is 1.6243453636632417 (a fixed, widely reproduced number)
    assert ref.initialize_parameters(2, 4, 1)["W1"][0, 0] == pytest.approx(0.016243453636632417,
                                                                           rel=1e-15)


@pytest.mark.parametrize("call", [
    pytest.param(lambda: ref.initialize_parameters(2, 4, 1), id="initialize_parameters"),
    pytest.param(lambda: ref.initialize_network([2, 3, 1], init="he", seed=5), id="initialize_network"),
    pytest.param(lambda: ref.load_planar_dataset(), id="load_planar_dataset"),
    pytest.param(lambda: ref.model(*ref.load_planar_dataset(), *ref.load_planar_dataset(),
                                   num_iterations=2, print_cost=False), id="model"),
])
def test_global_numpy_rng_is_untouched(call):
    np.random.seed(12345)
    before = np.random.get_state()
    call_ok(call)
    assert rng_state_equal(before, np.random.get_state())


def test_forward_propagation_cache_and_shapes():
    X, Y = ref.load_planar_dataset()
    A2, cache = ref.forward_propagation(X, ref.initialize_parameters(2, 4, 1))
    assert sorted(cache) == ["A1", "A2", "Z1", "Z2"]
    assert cache["Z1"].shape == cache["A1"].shape == (4, 400)
    assert A2.shape == cache["Z2"].shape == (1, 400) and A2 is cache["A2"]


def test_sigmoid_returns_activation_and_cache():
    Z = np.array([[0.0, 2.0]])
    A, cache = ref.sigmoid(Z)
    assert cache is Z
    np.testing.assert_allclose(A, [[0.5, 1 / (1 + np.exp(-2.0))]], rtol=1e-15)


def test_layer_sizes():
    X, Y = ref.load_planar_dataset()
    assert ref.layer_sizes(X, Y) == (2, 4, 1)
    assert ref.layer_sizes(X, Y, n_h=7) == (2, 7, 1)


def test_compute_cost_is_a_python_float():
    A2 = np.array([[0.8, 0.3]])
    Y = np.array([[1.0, 0.0]])
    J = ref.compute_cost(A2, Y)
    assert type(J) is float
    assert J == pytest.approx(-(np.log(0.8) + np.log(0.7)) / 2, rel=1e-15)


def test_article_is_bit_identical_to_the_network_in_float64():
    X, Y = ref.load_planar_dataset()
    rng = np.random.RandomState(0)
    params = {k: v + 0.5 * rng.randn(*v.shape) for k, v in ref.initialize_parameters(2, 4, 1).items()}
    A2, cache = ref.forward_propagation(X, params)
    AL, ncache = ref.network_forward(X, params, "tanh", "sigmoid")
    for k in cache:
        assert np.array_equal(cache[k], ncache[k]), k
    assert ref.compute_cost(A2, Y) == float(ref.cross_entropy(AL, Y, "sigmoid"))
    grads = ref.backward_propagation(params, cache, X, Y)
    ngrads = ref.network_backward(params, ncache, X, Y, "tanh", "sigmoid")
    for k in grads:
        assert np.array_equal(grads[k], ngrads[k]), k
    new = ref.update_parameters(params, grads)
    nnew, _ = ref.optimizer_step(params, ngrads, {"t": 0}, ref.Optimizer("gd", 1.2))
    for k in new:
        assert np.array_equal(new[k], nnew[k]), k
    assert np.array_equal(ref.predict(params, X), ref.network_predict(params, X))


def test_update_parameters_returns_a_new_dict_and_uses_lr_1_2():
    params = {k: np.full((1, 1), 1.0) for k in ("W1", "b1", "W2", "b2")}
    grads = {"d" + k: np.full((1, 1), 0.5) for k in params}
    new = ref.update_parameters(params, grads)
    assert new is not params
    assert all(params[k][0, 0] == 1.0 for k in params)
    assert all(new[k][0, 0] == pytest.approx(1.0 - 1.2 * 0.5, rel=1e-15) for k in new)


def test_optimize_records_no_costs_without_print_cost(capsys):
    X, Y = ref.load_planar_dataset()
    _, costs = ref.optimize(ref.initialize_parameters(2, 4, 1), X, Y, num_iterations=5)
    assert costs == []
    assert capsys.readouterr().out == ""


def test_optimize_prints_and_records_every_1000_iterations(capsys):
    X, Y = ref.load_planar_dataset()
    p0 = ref.initialize_parameters(2, 4, 1)
    params, costs = ref.optimize(p0, X, Y, num_iterations=2001, print_cost=True)
    lines = capsys.readouterr().out.splitlines()
    assert [re.match(r"Cost after iteration (\d+): ", l).group(1) for l in lines] == ["0", "1000", "2000"]
    assert len(costs) == 3 and all(type(c) is float for c in costs)
    assert lines == [f"Cost after iteration {i}: {c:f}" for i, c in zip((0, 1000, 2000), costs)]
    # the first cost is the one of the initial (tiny) weights: ~log 2
    assert costs[0] == ref.compute_cost(ref.forward_propagation(X, p0)[0], Y)
    assert costs[0] == pytest.approx(np.log(2), abs=1e-3)
    assert costs[0] > costs[1] > costs[2]


def test_predict_returns_bool_row():
    X, _ = ref.load_planar_dataset()
    pred = ref.predict(ref.initialize_parameters(2, 4, 1), X)
    assert pred.dtype == np.bool_ and pred.shape == (1, 400)


def test_model_reaches_the_article_accuracy_on_planar_data():
    X, Y = ref.load_planar_dataset()
    params, costs = ref.model(X, Y, X, Y, n_h=4, num_iterations=10000, learning_rate=1.2,
                              print_cost=False)
    assert costs == []
    accuracy = float(np.mean(ref.predict(params, X) == Y))
    assert accuracy >= 0.89, f"training accuracy {accuracy:.4f} < 0.89 (article: ~0.91)"
