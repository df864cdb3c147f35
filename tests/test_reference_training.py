"""Mini-batch order and the training loop that replays it."""
import numpy as np
import pytest

import reference as ref

PARTITIONS = [(10, 3), (10, 5), (7, 1), (7, 6), (1, 1)]


@pytest.mark.parametrize("m, batch_size", PARTITIONS, ids=lambda v: str(v))
def test_batch_order_partitions_all_indices(m, batch_size):
    batches = ref.batch_order(m, batch_size, seed=3, epoch=1)
    assert all(b.dtype.kind == "i" for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(m))
    want_sizes = [batch_size] * (m // batch_size) + ([m % batch_size] if m % batch_size else [])
    assert [b.size for b in batches] == want_sizes


@pytest.mark.parametrize("m, batch_size", [(7, 3), (10, 4)], ids=lambda v: str(v))
def test_batch_order_is_the_documented_permutation(m, batch_size):
    """RandomState(seed + epoch).permutation(m), cut into consecutive chunks."""
    perm = np.random.RandomState(5 + 2).permutation(m)
    want = [perm[i:i + batch_size].tolist() for i in range(0, m, batch_size)]
    assert [b.tolist() for b in ref.batch_order(m, batch_size, seed=5, epoch=2)] == want


@pytest.mark.parametrize("batch_size", [None, 10, 11, 1000], ids=lambda v: f"batch_size={v}")
def test_full_batch_is_natural_order(batch_size):
    batches = ref.batch_order(10, batch_size, seed=9, epoch=4)
    assert len(batches) == 1 and batches[0].tolist() == list(range(10))


def test_batch_order_is_deterministic_per_seed_and_epoch():
    a = ref.batch_order(20, 4, seed=1, epoch=2)
    b = ref.batch_order(20, 4, seed=1, epoch=2)
    c = ref.batch_order(20, 4, seed=1, epoch=3)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert [x.tolist() for x in a] != [x.tolist() for x in c]
    # and it is shuffled, not the natural order
    assert np.concatenate(a).tolist() != list(range(20))


def test_batch_order_leaves_global_rng_alone():
    before = np.random.get_state()
    ref.batch_order(20, 4, seed=1, epoch=2)
    assert_same_rng_state(before, np.random.get_state())


@pytest.mark.parametrize("m, batch_size", [(0, None), (5, 0), (5, -2), (5, 2.0)],
                         ids=lambda v: str(v))
def test_batch_order_refuses_bad_arguments(m, batch_size):
    with pytest.raises(ValueError):
        ref.batch_order(m, batch_size)


def assert_same_rng_state(a, b):
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def sgd_problem():
    X, Y = ref.load_dataset("xor", m=9, seed=11)
    params = ref.initialize_network([2, 3, 1], init="xavier", seed=2)
    opt = ref.Optimizer("momentum", learning_rate=0.5)
    return X, Y, params, opt


def test_sgd_epoch_replays_batch_order_one_example_at_a_time():
    X, Y, params, opt = sgd_problem()
    seen = []
    new, state, costs = ref.train(params, X, Y, "tanh", "sigmoid", opt, num_epochs=1,
                                  batch_size=1, seed=4,
                                  callback=lambda k, J, g: seen.append((k, float(J))))
    assert state["t"] == 9 and costs.shape == (9,)
    assert [k for k, _ in seen] == list(range(9))
    # replay by hand: RandomState(seed + epoch) order, one train_step per example
    p, s = params, ref.init_optimizer_state(params, opt)
    want = []
    for i in np.random.RandomState(4).permutation(9):
        AL, cache = ref.network_forward(X[:, [i]], p, "tanh", "sigmoid")
        z, y = cache["Z2"][0, 0], Y[0, i]
        want.append(max(z, 0) - z * y + np.log1p(np.exp(-abs(z))))  # this example's loss
        p, s, _, _ = ref.train_step(p, s, X[:, [i]], Y[:, [i]], "tanh", "sigmoid", opt)
    np.testing.assert_allclose(costs, want, rtol=1e-14)
    assert [J for _, J in seen] == costs.tolist()
    for k in p:
        assert np.array_equal(new[k], p[k]), k


def test_minibatch_epochs_use_a_new_order_each_epoch():
    X, Y, params, opt = sgd_problem()
    new, state, costs = ref.train(params, X, Y, "relu", "sigmoid", opt, num_epochs=2,
                                  batch_size=4, seed=1)
    assert state["t"] == 6 and costs.shape == (6,)
    p, s, want = params, ref.init_optimizer_state(params, opt), []
    for epoch in range(2):
        perm = np.random.RandomState(1 + epoch).permutation(9)
        for idx in (perm[0:4], perm[4:8], perm[8:9]):
            p, s, J, _ = ref.train_step(p, s, X[:, idx], Y[:, idx], "relu", "sigmoid", opt)
            want.append(J)
    assert costs.tolist() == want
    for k in p:
        assert np.array_equal(new[k], p[k]), k


def test_full_batch_training_equals_article_optimize():
    X, Y = ref.load_planar_dataset()
    params = ref.initialize_parameters(2, 4, 1)
    article, _ = ref.optimize(params, X, Y, num_iterations=20, learning_rate=1.2)
    new, _, costs = ref.train(params, X, Y, "tanh", "sigmoid", ref.Optimizer("gd", 1.2),
                              num_epochs=20, cost="literal")
    for k in article:
        np.testing.assert_allclose(new[k], article[k], rtol=1e-13, atol=1e-16, err_msg=k)
    assert costs[0] == pytest.approx(ref.compute_cost(ref.forward_propagation(X, params)[0], Y),
                                     rel=1e-14)


def test_train_raises_on_non_finite_and_names_the_update():
    X, Y = ref.load_dataset("xor", m=20)
    params = ref.initialize_network([2, 4, 1], init="he", seed=0)
    with pytest.raises(ref.NonFiniteError) as e:
        ref.train(params, X * 1e3, Y, "relu", "sigmoid", ref.Optimizer("gd", learning_rate=1e6),
                  num_epochs=50, cost="literal")
    assert "update" in str(e.value) and e.value.step >= 0
