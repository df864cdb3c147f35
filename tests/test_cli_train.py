"""`netparity train` end to end, its printed numbers recomputed with the reference."""
import re
import warnings

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


def printed_epoch_costs(out, prefix=""):
    pat = re.compile(rf"^{re.escape(prefix)}Cost after epoch (\d+): (\S+)$", re.M)
    return [(int(k), float(v)) for k, v in pat.findall(out)]


def test_minibatch_softmax_run_prints_epoch_mean_costs(capsys):
    """With mini-batches the printed cost is the epoch's: the mean of the loss over its m
    examples, i.e. each batch's mean cost weighted by the batch's size."""
    argv = ["train", "--dataset", "blobs", "--layers", "5,3", "--hidden", "relu", "--init", "he",
            "--optimizer", "adam", "--lr", "0.01", "--epochs", "3", "--batch-size", "64",
            "--seed", "7", "--print-every", "2", "--dtype", "float32", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    X, Y = ref.load_dataset("blobs")
    p0 = ref.initialize_network([2, 5, 3, 3], init="he", seed=7, dtype=np.float32)
    params, _, costs = ref.train(p0, X.astype(np.float32), Y.astype(np.float32), "relu",
                                 "softmax", ref.Optimizer("adam", learning_rate=0.01),
                                 num_epochs=3, batch_size=64, seed=7)
    assert costs.size == 15  # 300 examples -> 4 batches of 64 and one of 44 per epoch
    sizes = np.array([64, 64, 64, 64, 44])
    means = [float(np.dot(costs[5 * e:5 * e + 5].astype(np.float64), sizes)) / 300 for e in range(3)]
    assert printed_epoch_costs(out) == [(0, pytest.approx(means[0], abs=5e-7)),
                                        (2, pytest.approx(means[2], abs=5e-7))]
    assert "Cost after iteration" not in out
    assert "softmax output" in out and "mini-batches of 64 (5 per epoch)" in out
    assert re.search(r"^Train accuracy: \d+\.\d\d%$", out, re.M)


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.01), ("momentum", 1.2)])
def test_each_optimizer_has_its_own_default_learning_rate(optimizer, lr, capsys):
    """Without --lr, Adam runs at 0.01 (at the article's 1.2 it reaches 76.75 % on the
    planar data), momentum at the article's 1.2; the first line says which."""
    assert main(["train", "--optimizer", optimizer, "--iterations", "3", "--print-every", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{optimizer} lr {lr:g} (the default for {optimizer})" in out.splitlines()[0]
    X, Y = ref.load_planar_dataset()
    _, _, costs = ref.train(ref.initialize_network([2, 4, 1]), X, Y,
                            optimizer=ref.Optimizer(optimizer, lr), num_epochs=3)
    assert printed_costs(out) == [(k, pytest.approx(float(costs[k]), abs=5e-7)) for k in range(3)]


def test_lr_decay_is_the_courses_inverse_time_decay(capsys):
    """--lr-decay 0.5: lr_k = 1.2 / (1 + 0.5 k), replayed here with the article's own
    functions and a hand-written rate."""
    assert main(["train", "--lr-decay", "0.5", "--iterations", "4", "--print-every", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "inverse_time decay lr0 / (1 + 0.5 floor(k / 1))" in out.splitlines()[0]
    X, Y = ref.load_planar_dataset()
    params = ref.initialize_parameters(2, 4, 1)
    want = []
    for k in range(4):
        A2, cache = ref.forward_propagation(X, params)
        want.append(ref.compute_cost(A2, Y))
        params = ref.update_parameters(params, ref.backward_propagation(params, cache, X, Y),
                                       1.2 / (1 + 0.5 * k))
    assert printed_costs(out) == [(k, pytest.approx(want[k], abs=5e-7)) for k in range(4)]


def test_lr_decay_with_mini_batches_decays_once_per_epoch(capsys):
    """The course decays per epoch: by default N = the batches of one epoch (4 of 100 here)."""
    assert main(["train", "--lr-decay", "1", "--schedule", "step", "--batch-size", "100",
                 "--epochs", "2", "--print-every", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "step decay lr0 1^floor(k / 4)" in out.splitlines()[0]
    X, Y = ref.load_planar_dataset()
    opt = ref.Optimizer("gd", 1.2, schedule="step", decay_rate=1.0, decay_steps=4)
    _, _, costs = ref.train(ref.initialize_network([2, 4, 1]), X, Y, optimizer=opt, num_epochs=2,
                            batch_size=100, seed=1)
    assert printed_epoch_costs(out) == [(e, pytest.approx(float(np.mean(costs[4 * e:4 * e + 4])), abs=5e-7))
                                        for e in range(2)]


@pytest.mark.parametrize("argv, hidden, lr, cost, tips", [
    # lr 100 with the literal cost saturates the sigmoid within a few updates
    (["--lr", "100", "--cost", "literal"], "tanh", 100.0, "literal",
     "Try a smaller --lr (now 100), --cost stable (the literal cost is inf once a prediction rounds "
     "to 0 or 1), --optimizer adam or --lr-decay 0.01"),
    # relu units grow without bound: NumPy's matmul overflows (and warned, before)
    (["--lr", "1e20", "--hidden", "relu"], "relu", 1e20, "stable",
     "Try a smaller --lr (now 1e+20), --optimizer adam or --lr-decay 0.01")],
    ids=["literal-cost-saturates", "relu-overflows"])
def test_divergence_is_reported_in_command_line_terms(argv, hidden, lr, cost, tips, capsys):
    """One line naming the update and what to try, as options: no NumPy RuntimeWarning
    (an error here), no Python argument."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail the run
        rc = main(["train", *argv, "--iterations", "50", "--no-progress", "--print-every", "0"])
    err = capsys.readouterr().err
    assert rc == 1
    X, Y = ref.load_planar_dataset()
    with np.errstate(all="ignore"):
        _, _, costs = ref.train(ref.initialize_network([2, 4, 1]), X, Y, hidden,
                                optimizer=ref.Optimizer("gd", lr), num_epochs=50, cost=cost,
                                check_finite=False)
    first = int(np.argmax(~np.isfinite(costs)))
    assert err.strip().splitlines() == [
        f"netparity train: training diverged: the cost is {costs[first]} at update {first} (the steps "
        "are too large: the updates overshoot until a value overflows or a prediction saturates). "
        + tips]
    assert "check_finite" not in err and "Warning" not in err


@pytest.mark.parametrize("argv, phrase", [
    (["--schedule", "step"], "--schedule shapes the decay of --lr-decay RATE"),
    (["--decay-every", "5"], "--decay-every shapes the decay of --lr-decay RATE"),
    (["--lr-decay", "-1"], "must be a positive finite number")], ids=["schedule-alone", "decay-every-alone", "negative-rate"])
def test_decay_options_are_checked_before_work(argv, phrase, capsys):
    try:
        rc = main(["train", *argv])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    assert phrase in capsys.readouterr().err


def test_progress_rate_excludes_the_first_update():
    """A compiled backend's first update includes its compilation: the bar's rate (and
    so its ETA) counts from the end of the first update, which is timed on its own."""
    import io
    import time
    from netparity.cmd_train import StepProgress
    buf = io.StringIO()
    t0 = time.time()                # tqdm's clock
    p = StepProgress(1000, "slow-first", disable=False, file=buf)
    time.sleep(0.4)                 # the "compilation"
    p.update()
    for _ in range(99):
        p.update()
    d = p.bar.format_dict
    p.close()
    assert p.first_s >= 0.4
    assert d["n"] == 100 and d["initial"] == 1
    # the rate's clock starts once the first update is done, so the 0.4 s are in no rate
    # (a bar kept from the start would have start_t ~ t0). Not a timing bound: a slow
    # machine only makes start_t later.
    assert p.bar.start_t >= t0 + 0.4, (p.bar.start_t - t0, d)
    assert d["elapsed"] <= time.time() - p.bar.start_t + 1e-6
    assert "first update 0.4" in buf.getvalue()


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


@pytest.mark.skipif(not {"torch", "jax"} <= set(available_backends()), reason="needs every mirror")
def test_backend_all_prints_the_agreement_and_plots_drift_and_every_boundary(tmp_path, capsys):
    """--backend all: every backend's run, then how far each is from NumPy's, recomputed
    here from each backend's own train; the plot has the drift and a boundary per backend."""
    import torch
    threads = torch.get_num_threads()
    png = tmp_path / "all.png"
    assert main(["train", "--backend", "all", "--iterations", "5", "--print-every", "0",
                 "--no-progress", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads  # the thread policy restores what it set
    assert "1 intra-op thread for torch (thread policy)" in out.splitlines()[0]
    X, Y = ref.load_planar_dataset()
    p0 = ref.initialize_network([2, 4, 1])
    opt = ref.Optimizer("gd", 1.2)
    _, _, want = ref.train(p0, X, Y, optimizer=opt, num_epochs=5)
    for name in ("torch", "jax"):
        from netparity.backends import get_backend
        bk = get_backend(name)
        _, _, costs = bk.train(bk.tree_from_numpy(p0), bk.from_numpy(X), bk.from_numpy(Y), optimizer=opt,
                               num_epochs=5)
        d = float(np.max(np.abs(np.asarray(bk.to_numpy(costs)) - want)))
        m = re.search(rf"^  {name}: max \|cost - numpy cost\| (\S+) \(", out, re.M)
        assert m, out
        assert float(m.group(1)) == pytest.approx(d, rel=0.05, abs=1e-300)
        assert re.search(rf"^\[{name}\] 5 updates in \S+ s", out, re.M)
    data = png.read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert data[:8] == PNG_MAGIC and height > 800 and width >= 1100  # two rows: curves, boundaries


# ------------------------------------------------------------------ the remedy flags

def remedy_reference(dims, remedies, epochs, batch_size=None, lr=1.2, init="article", seed=1,
                     hidden="tanh"):
    """The remedies' run written out with the reference (costs, norms, params, bn_state)."""
    X, Y = ref.load_planar_dataset()
    opt = ref.Optimizer("gd", learning_rate=lr)
    p = ref.initialize_remedy_network(dims, remedies, init, seed)
    bn, s = ref.init_bn_state(p), ref.init_optimizer_state(p, opt)
    costs, norms, k = [], [], 0
    for e in range(epochs):
        for idx in ref.batch_order(X.shape[1], batch_size, seed, e):
            D = ref.step_masks(dims, len(idx), remedies.keep_prob, k)
            st, p, bn, s = ref.remedy_step("manual", p, bn, s, X[:, idx], Y[:, idx], remedies,
                                           hidden, "sigmoid", opt, D)
            costs.append(float(st["cost_stable"]))
            norms.append([float(np.linalg.norm(st[f"dW{l}"])) for l in range(1, len(dims))])
            k += 1
    return costs, norms, p, bn


def test_remedy_flags_train_the_remedies_and_print_each_layers_norm(tmp_path, capsys):
    """--batch-norm --residual after --l2 --keep-prob: the printed costs and per-layer norms
    are the reference's remedy_step run, the saved file holds parameters and running
    estimates, the accuracy is eval mode's."""
    w = tmp_path / "w.npz"
    assert main(["train", "--layers", "5,5,5", "--iterations", "3", "--print-every", "1",
                 "--no-progress", "--grad-norms", "--batch-norm", "--residual", "after",
                 "--l2", "0.3", "--keep-prob", "0.8", "--save-weights", str(w)]) == 0
    out = capsys.readouterr().out
    rem = ref.Remedies(batch_norm=True, residual="after", l2=0.3, keep_prob=0.8)
    costs, norms, p, bn = remedy_reference((2, 5, 5, 5, 1), rem, 3)
    assert "remedies: batch norm, residual (after the activation), L2 lambda 0.3, dropout keep_prob 0.8" in out
    lines = re.findall(r"Cost after iteration (\d+): (\S+)  (.*)", out)
    assert [float(c) for _, c, _ in lines] == [pytest.approx(c, abs=5e-7) for c in costs]
    assert [int(k) for k, _, _ in lines] == [0, 1, 2]
    for k, _, rest in lines:
        got = [float(v) for v in re.findall(r"\|dW\d\|=(\S+)", rest)]
        assert re.findall(r"\|dW(\d)\|", rest) == ["1", "2", "3", "4"]
        assert got == pytest.approx(norms[int(k)], rel=5e-3)
    saved = ref.load_weights(str(w))
    assert set(saved) == set(p) | set(bn)
    for key in p:
        np.testing.assert_array_equal(saved[key], p[key])
    for key in bn:
        np.testing.assert_array_equal(saved[key], bn[key])
    X, Y = ref.load_planar_dataset()
    AL = ref.remedy_forward(X, p, bn, rem, "tanh", "sigmoid", train=False)[0]
    acc = float(np.mean((AL > 0.5) == (Y > 0.5)))
    assert f"Train accuracy: {acc:.2%} (eval mode" in out


def test_remedy_flags_with_mini_batches_print_epoch_means(capsys):
    """Mini-batches with dropout: the printed epoch cost is the size-weighted mean of the
    reference's batch costs (masks counted over the whole run)."""
    assert main(["train", "--epochs", "2", "--batch-size", "150", "--print-every", "1",
                 "--no-progress", "--keep-prob", "0.7", "--lr", "0.5"]) == 0
    out = capsys.readouterr().out
    costs, _, _, _ = remedy_reference((2, 4, 1), ref.Remedies(keep_prob=0.7), 2, 150, lr=0.5)
    sizes = [150, 150, 100]
    want = [sum(c * m for c, m in zip(costs[3 * e:3 * e + 3], sizes)) / 400 for e in range(2)]
    assert printed_epoch_costs(out) == [(e, pytest.approx(want[e], abs=5e-7)) for e in range(2)]


@pytest.mark.parametrize("backend", [b for b in ("torch", "jax") if b in available_backends()])
def test_remedy_flags_on_a_mirror_print_the_reference_costs(backend, capsys):
    assert main(["train", "--backend", backend, "--iterations", "3", "--print-every", "1",
                 "--no-progress", "--batch-norm", "--layers", "4,4"]) == 0
    out = capsys.readouterr().out
    costs, _, _, _ = remedy_reference((2, 4, 4, 1), ref.Remedies(batch_norm=True), 3)
    assert printed_costs(out) == [(k, pytest.approx(costs[k], abs=5e-7)) for k in range(3)]


def test_remedy_flags_plot_is_a_png(tmp_path, capsys):
    plot = tmp_path / "p.png"
    assert main(["train", "--iterations", "5", "--print-every", "0", "--no-progress",
                 "--batch-norm", "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
