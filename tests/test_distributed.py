"""Data-parallel conformance on the real engines (netparity/distributed.py, docs/scale_out.md).

Each backend with data-parallel modes (its registry entry) runs every mode with the batch
split over N workers: torch.distributed gloo ranks, JAX host devices. Every rank's stages
are compared with the single-process reference through runner.compare_case: its own
columns of the per-example stages, its copy of the reduced ones, under bounds with the
reduction term of tolerance.reduction_roundings (derived there).

Default run: N = 2, one launch per engine for all of this file's cases, shared by the
pytest-xdist workers (a session fixture behind a file lock in the session's shared
temporary directory, the pattern of the xdist documentation): ~10 s per engine here.
Slow: N = 1, 2, 4 over the product of the axes, and the CLI on the real engines.

Independent checks: the DDP per-rank mean on unequal shards against the reference's
per-shard gradients averaged by hand (not the harness's own expected values); planted
reduction bugs must fail at the stage they break.
"""
import contextlib
import fcntl
import itertools
import os

import numpy as np
import pytest

from netparity.backends import backend_spec, import_error
from netparity.compare import compare_stage
from netparity.distributed import (BUGS, DPCase, compare_ranks, convention_of, dp_backends,
                                   dp_expected, launcher, outcome, per_example_stages,
                                   run_dp_cases, shard_offsets)
from netparity.stages import OPTIMIZER_CONFIGS, dataset, expected_for, initial_parameters
from netparity.tolerance import UNIT_ROUNDOFF, reduction_roundings

N = 2
# (dtype, batch, optimizer, steps): equal shards (the full batch, 400 = 200 + 200) and
# unequal ones (a mini-batch of 63 = 32 + 31), one step and Adam's state carried over two
DEFAULT_CONFIGS = [("float64", "full", "gd", 1), ("float64", "odd", "gd", 1),
                   ("float32", "odd", "adam", 2)]
# planted bug -> (the case's axes, the stage it must be named at)
PLANTED = {
    "sum": (dict(dtype="float64", batch="full"), "dW2"),            # 2x the gradient
    "rank_mean": (dict(dtype="float64", batch="odd"), "dW2"),       # wrong on 32 + 31 only
    "local_state": (dict(dtype="float64", batch="full", optimizer="momentum"), "vdW1'"),
    "reorder": (dict(dtype="float64", batch="full"), "Z1"),
}


def _default_cases(backend):
    cases = [DPCase(backend, mode, N, dt, batch=bt, optimizer=opt, steps=k)
             for mode in backend_spec(backend).data_parallel for dt, bt, opt, k in DEFAULT_CONFIGS]
    if import_error(backend) is None:
        for mode in launcher(backend).BUG_MODES:
            cases += [DPCase(backend, mode, N, bug=bug, **axes) for bug, (axes, _) in PLANTED.items()]
    return cases


def _product_cases(backend, workers):
    axes = itertools.product(("float64", "float32"), (("tanh", "sigmoid", "shallow"), ("relu", "softmax", "deep")),
                             ("gd", "momentum", "adam"), ("full", "mini", "odd"))
    return [DPCase(backend, mode, workers, dt, h, o, a, opt, bt, 2)
            for dt, (h, o, a), opt, bt in axes for mode in backend_spec(backend).data_parallel]


WORKER_COUNTS = {"default": (N,), "product": (1, 2, 4)}


@contextlib.contextmanager
def _lock(path, blocking):
    """An exclusive lock on ``path`` (True), or False at once if another process holds it."""
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def dp_results(tmp_path_factory):
    """get(suite, backend, workers) -> {case id: DPResult}: one launch per engine, worker
    count and suite for the whole session, shared by the xdist workers through the
    session's common temporary directory: the first to ask launches, the others read its
    files; one that finds a launch under way starts the launches nobody has started yet
    (so two workers launch the two engines side by side) and then waits for it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    cases_of = {"default": lambda b, n: _default_cases(b), "product": _product_cases}
    memo = {}

    def run(suite, backend, workers, blocking):
        job_root = root / f"dp-{suite}"
        job_root.mkdir(exist_ok=True)
        with _lock(str(job_root / f"{backend}-x{workers}.lock"), blocking) as held:
            if held:
                results = run_dp_cases(cases_of[suite](backend, workers), job_root=str(job_root))
                memo[(suite, backend, workers)] = {r.case.id: r for r in results}
            return held

    def get(suite, backend, workers):
        key = (suite, backend, workers)
        if key not in memo and not run(suite, backend, workers, blocking=False):
            for b, n in itertools.product(dp_backends(), WORKER_COUNTS[suite]):
                if (suite, b, n) not in memo and (b, n) != (backend, workers):
                    run(suite, b, n, blocking=False)
            run(suite, backend, workers, blocking=True)
        return memo[key]
    return get


def _result(dp_results, case, suite="default"):
    res = dp_results(suite, case.backend, case.workers)[case.id]
    if res.skipped:
        pytest.skip(res.skipped)
    return res


def _params(cases):
    return [pytest.param(c, id=c.id) for c in cases]


DEFAULT = [c for b in dp_backends() for c in _default_cases(b) if c.bug is None]


# ------------------------------------------------------------------ conformance, N = 2

@pytest.mark.parametrize("case", _params([c for c in DEFAULT if convention_of(c) is None]))
def test_data_parallel_conforms(dp_results, case):
    res = _result(dp_results, case)
    res.raise_if_failed()
    assert outcome(res) == "pass"
    assert {r.note.split(",")[0].split(":")[0] for _, r in res.rows()} == {f"rank {r}" for r in range(N)}


@pytest.mark.parametrize("case", _params([c for c in DEFAULT if convention_of(c) is not None]))
def test_convention_on_unequal_shards_is_the_per_rank_mean(dp_results, case):
    """DDP on 32 + 31 examples: one step's per-example stages conform, its gradients are not
    the batch mean (first divergence dW2, the last layer's, far out of bound) but, within
    the bound, the mean of the ranks' means computed here from the reference on each shard.
    After more steps the difference has entered the parameters: which stage of the last
    step shows it first depends on the optimiser (Adam's first update, m / sqrt(s) ~ sign g,
    nearly normalises it away: measured, its 2-step case diverges first at db2)."""
    res = _result(dp_results, case)
    assert outcome(res) == "convention"
    against, first = res.first_divergence()
    L = len(case.layer_dims()) - 1
    if case.steps > 1:
        return
    assert first.stage == "dW2" and first.ratio > 100
    assert all(r.ok for _, r in res.rows() if r.stage in per_example_stages(L) or r.stage.startswith("cost"))
    if case.dtype != "float64":
        return
    # the prediction, independent of the engine and of dp_expected: the reference run on
    # each shard alone, averaged. |DDP - mean_r G_r| <= (1/N) sum_r E_r (each rank's own
    # bound) + (gamma_{N-1} + u) (1/N) sum_r |G_r| (the / N and the all-reduce's sum)
    X, Y = dataset(case.data)
    idx = case.batches()[0]
    off = shard_offsets(len(idx), N)
    shards = [expected_for(initial_parameters(case), X, Y, [idx[a:b]], case.hidden, case.output,
                           OPTIMIZER_CONFIGS[case.optimizer], "float64") for a, b in zip(off, off[1:])]
    u = UNIT_ROUNDOFF["float64"]
    for g in [f"d{p}{l}" for l in range(1, L + 1) for p in "Wb"]:
        G = [e.oracle[g] for e in shards]
        pred = sum(G) / N
        bound = sum(e.bounds[g] for e in shards) / N + N * u * sum(np.abs(x) for x in G) / N
        for rank, got in enumerate(res.stages):
            r = compare_stage(g, pred, got[g], bound, "float64", factor=1.0)
            assert r.ok, f"rank {rank}: {r.line()}"
        # and it is far from the batch mean: the convention is a real difference
        batch_mean = dp_expected(case).oracle[g]
        assert np.max(np.abs(pred - batch_mean)) > 1e6 * np.max(dp_expected(case).bounds[g])


@pytest.mark.parametrize("backend", dp_backends())
def test_compiler_reports_its_reduction(dp_results, backend):
    """Where the engine reports how it reduced (JAX's manual:jit: the all-reduce ops XLA
    inserted, the per-example stages read from each device's own shard), the run really
    was split: >= 1 all-reduce, and on equal shards every per-example stage per device."""
    reported = [r for r in dp_results("default", backend, N).values() if r.ran and "all_reduce_ops" in r.meta]
    if not reported:
        pytest.skip(f"{backend}'s engine reports no compiled program (its ranks are processes)")
    for res in reported:
        assert res.meta["all_reduce_ops"] >= 1, res.case.id
        if res.case.equal_shards:
            L = len(res.case.layer_dims()) - 1
            assert set(res.meta["device_shards"]) >= {f"Z{l}" for l in range(1, L + 1)}, res.case.id


# ------------------------------------------------------------------ planted reduction bugs

def _bug_params():
    out = []
    for b in dp_backends():
        if import_error(b):
            out.append(pytest.param(None, None, id=f"{b}-unavailable",
                                    marks=pytest.mark.skip(reason=f"{b} does not import here: {import_error(b)}")))
            continue
        for mode in launcher(b).BUG_MODES:
            for bug, (axes, stage) in PLANTED.items():
                out.append(pytest.param(DPCase(b, mode, N, bug=bug, **axes), stage, id=f"{b}-{mode}-{bug}"))
    return out


@pytest.mark.parametrize("case, stage", _bug_params())
def test_planted_reduction_bug_is_named(dp_results, case, stage):
    res = _result(dp_results, case)
    assert not res.ok and outcome(res) == "fail"
    against, first = res.first_divergence()
    assert first.stage == stage, res.failure_message()
    assert first.ratio > 1e3
    assert first.note.startswith("rank ")


def test_every_engine_plants_every_bug():
    for b in dp_backends():
        if import_error(b) is None:
            assert set(launcher(b).BUGS) == set(BUGS)


# ------------------------------------------------------------------ the harness, no engine

def test_shard_offsets_are_ceil_blocks():
    assert shard_offsets(400, 2) == [0, 200, 400]
    assert shard_offsets(63, 2) == [0, 32, 63]
    assert shard_offsets(63, 4) == [0, 16, 32, 48, 63]
    assert shard_offsets(7, 1) == [0, 7]
    with pytest.raises(ValueError, match="leave a worker without examples"):
        shard_offsets(5, 4)   # blocks of 2: 2 + 2 + 1 + 0


def test_reduction_term_is_two_roundings_of_each_batch_mean():
    """The bound of a reduced batch mean grows by exactly 2u sum|x_i| / m (tolerance.py);
    the per-example stages keep the one-process bounds."""
    assert reduction_roundings(1) == 0 and reduction_roundings(4) == 2
    case = DPCase("numpy", "manual:x", 2, "float32", batch="odd")
    X, Y = dataset(case.data)
    args = (initial_parameters(case), X, Y, case.batches(), "tanh", "sigmoid", OPTIMIZER_CONFIGS["gd"], "float32")
    one, two = expected_for(*args), expected_for(*args, workers=2)
    import reference as R
    idx = case.batches()[0]
    _, cache = R.network_forward(X[:, idx], args[0], "tanh", "sigmoid")
    grads = R.network_backward(args[0], cache, X[:, idx], Y[:, idx], "tanh", "sigmoid")
    m, u = len(idx), UNIT_ROUNDOFF["float32"]
    # the bounds keep the second-order terms (tolerance._matmul_bound): each term of the
    # mean is (|x| + E_x), so two more roundings add 2u (|dZ| + E_dZ)(|A| + E_A)^T / m
    EdZ2, EdZ1, EA1 = one.bounds["dZ2"], one.bounds["dZ1"], one.bounds["A1"]
    np.testing.assert_allclose(two.bounds["dW2"] - one.bounds["dW2"],
                               2 * u * (np.abs(grads["dZ2"]) + EdZ2) @ (np.abs(cache["A1"]) + EA1).T / m,
                               rtol=1e-9)
    np.testing.assert_allclose(two.bounds["db1"] - one.bounds["db1"],
                               2 * u * (np.abs(grads["dZ1"]) + EdZ1).sum(axis=1, keepdims=True) / m,
                               rtol=1e-9)
    for s in per_example_stages(2):
        np.testing.assert_array_equal(two.bounds[s], one.bounds[s])


def test_compare_ranks_names_the_rank_and_its_columns():
    """The reference's own values split over 2 ranks conform; one wrong column of rank 1's
    Z1 is named with its rank and columns, a wrong copy of dW1 on rank 0 with its rank."""
    case = DPCase("numpy", "manual:x", 2, "float64", batch="odd")
    exp = dp_expected(case)
    off = shard_offsets(63, 2)
    ranks = [{s: (v[:, a:b] if s in per_example_stages(2) else v) for s, v in exp.ref.items()}
             for a, b in zip(off, off[1:])]
    assert compare_ranks(case, ranks, exp).ok
    ranks[1] = dict(ranks[1], Z1=ranks[1]["Z1"].copy())
    ranks[1]["Z1"][0, 5] += 1e-6
    _, first = compare_ranks(case, ranks, exp).first_divergence()
    assert (first.stage, first.note) == ("Z1", "rank 1, columns 32:63")
    ranks[1] = dict(ranks[1], Z1=exp.ref["Z1"][:, 32:63])
    ranks[0] = dict(ranks[0], dW1=exp.ref["dW1"] * (1 + 1e-9))
    _, first = compare_ranks(case, ranks, exp).first_divergence()
    assert (first.stage, first.note) == ("dW1", "rank 0")


def test_check_data_parallel_prints_the_table(dp_results, monkeypatch, capsys):
    """`netparity check --data-parallel 2` on results of this session's launches (its own
    launch is the slow test below): a table per configuration with a column per mode, the
    convention difference reported as measured, exit code 0."""
    import netparity.distributed as D
    from netparity.cli import main
    by_id = {}
    for b in dp_backends():
        by_id.update(dp_results("default", b, N))
    monkeypatch.setattr(D, "run_dp_cases", lambda cases, **kw: [by_id[c.id] for c in cases])
    code = main(["check", "--data-parallel", "2", "--dtype", "float64", "--no-color"])
    out = capsys.readouterr().out
    assert "float64 tanh/sigmoid 2x4x1 gd odd 1 step, 2 workers (shards 32+31)" in out
    assert "float64 tanh/sigmoid 2x4x1 gd full 1 step, 2 workers (shards 200+200)" in out
    for b in dp_backends():
        for mode in backend_spec(b).data_parallel:
            assert f"{b}/{mode}" in out
    conventions = [c for c in by_id.values() if c.ran and convention_of(c.case) and c.case.dtype == "float64"]
    assert f"{len(conventions)} differ by their documented convention, 0 fail" in out
    assert code == 0


def test_check_data_parallel_rejects_what_cannot_run(capsys):
    from netparity.cli import main
    assert main(["check", "--data-parallel", "4", "--batch", "odd", "--backend", "numpy"]) == 2
    assert "numpy has no data-parallel modes" in capsys.readouterr().err
    assert main(["check", "--batch", "odd"]) == 2
    assert "needs --data-parallel N" in capsys.readouterr().err


# ------------------------------------------------------------------ slow: N = 1, 2, 4, the product

PRODUCT = [c for w in (1, 2, 4) for b in dp_backends() for c in _product_cases(b, w)]


@pytest.mark.slow
@pytest.mark.parametrize("case", _params(PRODUCT))
def test_data_parallel_product(dp_results, case):
    res = _result(dp_results, case, "product")
    if convention_of(case):
        assert outcome(res) == "convention", "the convention did not show: every stage conforms"
    else:
        res.raise_if_failed()


@pytest.mark.slow
def test_check_data_parallel_on_the_engines(capsys):
    from netparity.cli import main
    code = main(["check", "--data-parallel", "2", "--dtype", "float32", "--batch", "odd", "--no-color"])
    out = capsys.readouterr().out
    assert "float32 tanh/sigmoid 2x4x1 gd odd 1 step, 2 workers (shards 32+31)" in out
    assert "0 fail" in out and code == 0


def _torch_launch():
    if import_error("torch"):
        pytest.skip(f"torch does not import here: {import_error('torch')}")
    from torch_impl.distributed import launch
    return launch


def _processes_running(marker):
    """Processes whose command line contains ``marker`` (Linux /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_torch_launch_names_the_failing_rank_and_shows_its_log(tmp_path):
    """A rank that exits with an error: RuntimeError naming it and its exit status, with
    the end of its log (here main's own message: the job is for 3 workers, not 2)."""
    launch = _torch_launch()
    (tmp_path / "job.json").write_text('{"workers": 3, "cases": []}')
    with pytest.raises(RuntimeError) as e:
        launch(str(tmp_path), 2, timeout=120)
    message = str(e.value)
    assert message.startswith(("rank 0 exited with 1:\n", "rank 1 exited with 1:\n")), message
    assert message.rstrip().endswith("RuntimeError: the job is for 3 workers, WORLD_SIZE is 2"), message
    # an error of the job itself is not a set-up failure: it is never run again
    assert not (tmp_path / "rendezvous.log").exists()


def test_torch_launch_starts_again_when_the_process_group_is_not_set_up(tmp_path, monkeypatch, capfd):
    """Rank 0 fails its process-group set-up in the first attempt (planted; gloo's
    connectFullMesh does so now and then on a loaded machine): launch stops the other rank,
    says so on stderr and in rendezvous.log, and the second attempt runs the job."""
    launch = _torch_launch()
    monkeypatch.setenv("NETPARITY_PLANT_RENDEZVOUS_FAILURE", "1")
    (tmp_path / "job.json").write_text('{"workers": 2, "device": "cpu", "cases": []}')
    attempt = launch(str(tmp_path), 2, timeout=120)
    # 2, or 3 when gloo itself failed the second set-up (the flake this retry is for)
    assert attempt in (2, 3)
    err = capfd.readouterr().err
    assert "was not set up (attempt 1 of 3): RuntimeError: planted rendezvous failure; starting the job again" in err, err
    kept = (tmp_path / "rendezvous.log").read_text()
    assert "attempt 1 of 3" in kept and "rank 0: " in kept, kept
    assert kept.count("was not set up") == attempt - 1, kept
    for r in range(2):
        assert "Error" not in (tmp_path / f"rank{r}.log").read_text()
    assert _processes_running(str(tmp_path)) == []


def test_torch_launch_gives_up_after_its_attempts(tmp_path, monkeypatch):
    """A set-up that fails every time: RuntimeError after ``attempts`` tries, with the last
    failing rank's log; no rank is left waiting in its own set-up."""
    launch = _torch_launch()
    monkeypatch.setenv("NETPARITY_PLANT_RENDEZVOUS_FAILURE", "2")
    (tmp_path / "job.json").write_text('{"workers": 2, "device": "cpu", "cases": []}')
    with pytest.raises(RuntimeError, match="could not be set up in 2 attempts") as e:
        launch(str(tmp_path), 2, timeout=120, attempts=2)
    assert "planted rendezvous failure" in str(e.value)
    assert (tmp_path / "rendezvous.log").read_text().count("was not set up") == 2
    assert _processes_running(str(tmp_path)) == []


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="lists processes from /proc")
def test_torch_launch_stops_its_ranks_on_timeout(tmp_path):
    """TimeoutError after ``timeout`` seconds, and no rank left running: the ranks (still
    importing torch after 0.2 s) are stopped before launch returns."""
    launch = _torch_launch()
    (tmp_path / "job.json").write_text('{"workers": 2, "cases": []}')
    with pytest.raises(TimeoutError, match="did not finish within 0.2 s"):
        launch(str(tmp_path), 2, timeout=0.2)
    assert _processes_running(str(tmp_path)) == []


def test_torch_launch_of_an_empty_cpu_job_returns(tmp_path):
    """Two gloo ranks of a CPU job with no cases: each joins the process group through the
    file rendezvous, runs nothing and leaves; launch returns and every log is empty of
    errors."""
    launch = _torch_launch()
    (tmp_path / "job.json").write_text('{"workers": 2, "device": "cpu", "cases": []}')
    try:
        launch(str(tmp_path), 2, timeout=120)
    except RuntimeError as e:
        pytest.fail(f"an empty CPU job failed: {e}")
    for r in range(2):
        assert "Error" not in (tmp_path / f"rank{r}.log").read_text()
