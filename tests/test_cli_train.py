"""`netparity train` end to end, its printed numbers recomputed with the reference."""
import re

import numpy as np
import pytest

import reference as ref
from netparity.backends import available_backends
from netparity.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def printed_costs(out, prefix=""):
    pat = re.compile(rf"^{re.escape(prefix)}Cost after iteration (\d+): (\S+)$", re.M)
    return [(int(k), float(v)) for k, v in pat.findall(out)]


def test_default_network_costs_and_accuracy_match_the_reference(capsys):
    assert main(["train", "--iterations", "25", "--print-every", "10", "--no-progress"]) == 0
    out = capsys.readouterr().out
    # independent replay: the article's network, data and loop
    X, Y = ref.load_planar_dataset()
    params = ref.initialize_parameters(2, 4, 1)
    want = []
    for i in range(25):
        A2, cache = ref.forward_propagation(X, params)
        want.append(ref.compute_cost(A2, Y))
        params = ref.update_parameters(params, ref.backward_propagation(params, cache, X, Y), 1.2)
    assert printed_costs(out) == [(0, pytest.approx(want[0], abs=5e-7)),
                                  (10, pytest.approx(want[10], abs=5e-7)),
                                  (20, pytest.approx(want[20], abs=5e-7))]
    acc = float(np.mean(ref.predict(params, X) == Y))
    assert re.search(r"^Train accuracy: (\d+\.\d\d)%$", out, re.M).group(1) == f"{100 * acc:.2f}"


def test_progress_bar_goes_to_stderr(capsys):
    assert main(["train", "--iterations", "3", "--print-every", "0"]) == 0
    captured = capsys.readouterr()
    assert "Cost after" not in captured.out
    assert "3/3" in captured.err


def test_minibatch_softmax_run_matches_reference_train(capsys):
    argv = ["train", "--dataset", "blobs", "--layers", "5,3", "--hidden", "relu", "--init", "he",
            "--optimizer", "adam", "--lr", "0.01", "--epochs", "2", "--batch-size", "64",
            "--seed", "7", "--print-every", "3", "--dtype", "float32", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    X, Y = ref.load_dataset("blobs")
    p0 = ref.initialize_network([2, 5, 3, 3], init="he", seed=7, dtype=np.float32)
    params, _, costs = ref.train(p0, X.astype(np.float32), Y.astype(np.float32), "relu",
                                 "softmax", ref.Optimizer("adam", learning_rate=0.01),
                                 num_epochs=2, batch_size=64, seed=7)
    assert costs.size == 10  # 300 examples -> 5 batches per epoch
    assert printed_costs(out) == [(k, pytest.approx(float(costs[k]), abs=5e-7)) for k in (0, 3, 6, 9)]
    assert "softmax output" in out
    assert re.search(r"^Train accuracy: \d+\.\d\d%$", out, re.M)


def test_plot_is_a_png_and_weights_round_trip(tmp_path, capsys):
    png, weights = tmp_path / "run.png", tmp_path / "w.npz"
    assert main(["train", "--dataset", "xor", "--iterations", "5", "--no-progress",
                 "--plot", str(png), "--save-weights", str(weights)]) == 0
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 2 * height > 200  # two panels side by side
    loaded = ref.load_weights(weights)
    X, Y = ref.load_dataset("xor")
    want, _, _ = ref.train(ref.initialize_network([2, 4, 1]), X, Y,
                           optimizer=ref.Optimizer("gd", 1.2), num_epochs=5)
    assert list(loaded) == list(want)
    assert all(np.array_equal(loaded[k], want[k]) for k in want)


@pytest.mark.parametrize("argv", [
    ["--lr", "-1"], ["--lr", "0"], ["--lr", "nan"], ["--dataset", "moons"],
    ["--iterations", "0"], ["--batch-size", "-4"], ["--layers", "4,x"], ["--layers", "0"],
    ["--hidden", "gelu"], ["--optimizer", "sgd"], ["--backend", "tensorflow"],
    ["--print-every", "-1"], ["--dtype", "float16"]], ids=" ".join)
def test_bad_flag_exits_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", *argv])
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("backend", [b for b in ("torch", "jax") if b in available_backends()])
def test_mirror_backend_prints_the_reference_costs(backend, capsys):
    assert main(["train", "--backend", backend, "--iterations", "3", "--print-every", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    X, Y = ref.load_planar_dataset()
    _, _, costs = ref.train(ref.initialize_network([2, 4, 1]), X, Y,
                            optimizer=ref.Optimizer("gd", 1.2), num_epochs=3)
    assert printed_costs(out) == [(k, pytest.approx(float(costs[k]), abs=5e-7)) for k in range(3)]


def test_grad_norms_flag_prints_each_layers_gradient_norm(capsys):
    """--grad-norms appends |dW1| |dW2| to each printed cost: the norms of the article
    network's first gradients, recomputed here with the reference."""
    assert main(["train", "--iterations", "3", "--print-every", "2", "--no-progress",
                 "--grad-norms"]) == 0
    out = capsys.readouterr().out
    X, Y = ref.load_planar_dataset()
    params = ref.initialize_parameters(2, 4, 1)
    want = {}
    for i in range(3):
        A2, cache = ref.forward_propagation(X, params)
        grads = ref.backward_propagation(params, cache, X, Y)
        want[i] = [float(np.linalg.norm(grads["dW1"])), float(np.linalg.norm(grads["dW2"]))]
        params = ref.update_parameters(params, grads, 1.2)
    got = {int(k): [float(a), float(b)] for k, a, b in re.findall(
        r"Cost after iteration (\d+): \S+  \|dW1\|=(\S+) \|dW2\|=(\S+)", out)}
    assert sorted(got) == [0, 2]
    for k, norms in got.items():
        assert norms == pytest.approx(want[k], rel=5e-3)  # printed with 3 significant digits
