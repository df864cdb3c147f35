"""The command line never shows a traceback (docs/errors.md, "Command line").

Bad input of every subcommand is one line on stderr and exit code 2, found before any
work starts (the ``no_work`` fixture fails the test if training, checking, the report's
runs or a benchmark run begin); Ctrl-C is one line and 130; a disk that fills up while a
result is written is one line and 1, and the earlier file survives; an unexpected error
is one line and 70. Everything runs in-process through ``netparity.cli.main`` except the
few cases that need a real signal or a separate installation.
"""
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import netparity.cmd_bench as cmd_bench
import netparity.cmd_check as cmd_check
import netparity.runner
import netparity.cmd_report as cmd_report
import netparity.cmd_train as cmd_train
from netparity.backends import available_backends, get_backend
from netparity.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "bench", "results")
RUN_MAIN = "import sys; from netparity.cli import main; sys.exit(main(sys.argv[1:]))"


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``netparity argv`` in this process."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors exit through SystemExit
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line(err, command, phrase, kind="error"):
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"netparity{' ' + command if command else ''}: {kind}"), lines[0]
    assert phrase in lines[0], lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Bad input must be refused before any of the commands' work starts."""
    def work(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")
    monkeypatch.setattr(cmd_train, "train_one", work)
    monkeypatch.setattr(cmd_train, "train_one_remedies", work)  # the remedy flags' training
    monkeypatch.setattr(cmd_report, "run_demo", work)  # the report's vanishing-gradient runs
    monkeypatch.setattr(netparity.runner, "run_cases", work)  # check and report run cases here
    monkeypatch.setattr(cmd_report, "train_curves", work)
    monkeypatch.setattr(cmd_bench.subprocess, "call", work)  # the benchmark run


def _cannot_create_in(folder):
    try:
        with open(os.path.join(folder, ".netparity-probe-by-test"), "x"):
            pass
    except OSError:
        return True
    os.unlink(os.path.join(folder, ".netparity-probe-by-test"))
    return False


@pytest.fixture
def paths(tmp_path):
    """Output locations that cannot work: a missing directory, a directory where a file
    is expected, a file where a directory is expected, a read-only directory (a
    chmod 555 folder; as root, where permission bits do not apply, /proc or /sys)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    readonly = next((str(d) for d in (ro, "/proc", "/sys") if _cannot_create_in(d)), None)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")

    class P:
        missing = str(tmp_path / "no" / "such" / "dir")
        adir = str(tmp_path / "adir")
        afile = str(tmp_path / "afile")
        new = str(tmp_path / "new-report")
    P.readonly = readonly
    yield P
    ro.chmod(0o755)


# ------------------------------------------------------------------ bad values, exit 2

# (id, argv(p), phrase of the one-line message); p: the ``paths`` fixture
BAD = [
    # item 1: counts
    ("check-steps-0", lambda p: ["check", "--steps", "0"], "--steps must be a positive integer, got 0"),
    ("check-steps-negative", lambda p: ["check", "--steps", "-1"], "--steps must be a positive integer, got -1"),
    ("check-steps-text", lambda p: ["check", "--steps", "two"], "argument --steps: invalid int value"),
    ("report-steps-0", lambda p: ["report", "--out", p.new, "--steps", "0"],
     "--steps must be a positive integer, got 0"),
    ("train-iterations-0", lambda p: ["train", "--iterations", "0"], "must be a positive integer"),
    # item 4: seeds and sizes
    ("train-seed-negative", lambda p: ["train", "--seed", "-1"], "argument --seed: must be in [0, 2**32 - 1], got -1"),
    ("train-seed-2**32", lambda p: ["train", "--seed", "4294967296"], "must be in [0, 2**32 - 1], got 4294967296"),
    ("train-seed-plus-epochs", lambda p: ["train", "--seed", "4294967295", "--epochs", "2"],
     "--seed + --epochs - 1 must be at most 2**32 - 1"),
    ("train-layers-1e10", lambda p: ["train", "--layers", "10000000000"],
     "--layers: 10000000000 units in one layer, more than the 10000 allowed"),
    ("train-layers-too-many-parameters", lambda p: ["train", "--layers", "5000,5000"],
     "parameters, more than the 10000000 allowed"),
    # item 5: inputs of bench --compare / --render-only
    ("bench-compare-missing", lambda p: ["bench", "--compare", p.missing + ".json", p.missing + ".json"],
     "no such file"),
    ("bench-compare-not-json", lambda p: ["bench", "--compare", p.afile, p.afile], "not a JSON file"),
    ("bench-compare-empty-object", lambda p: ["bench", "--compare", p.empty_json, p.empty_json],
     "not a pytest-benchmark JSON file (no 'benchmarks', 'machine_info')"),
    ("bench-compare-a-directory", lambda p: ["bench", "--compare", p.adir, p.adir], "is a directory"),
    ("bench-render-missing", lambda p: ["bench", "--render-only", "--json", p.missing + ".json"],
     "no such file"),
    ("bench-render-not-json", lambda p: ["bench", "--render-only", "--json", p.afile], "not a JSON file"),
    ("bench-render-empty-object", lambda p: ["bench", "--render-only", "--json", p.empty_json],
     "not a pytest-benchmark JSON file"),
    ("bench-render-row-without-stats", lambda p: ["bench", "--render-only", "--json", p.bad_row_json],
     "has no positive stats.median"),
    # item 8: options that would be silently ignored
    ("report-quick-with-steps", lambda p: ["report", "--out", p.new, "--quick", "--steps", "50"],
     "--steps has no effect with --quick"),
    ("train-save-weights-empty", lambda p: ["train", "--save-weights", ""], "--save-weights: empty path"),
    ("train-plot-empty", lambda p: ["train", "--plot", ""], "--plot '': empty path"),
    ("train-grad-norms-never-printed", lambda p: ["train", "--grad-norms", "--print-every", "0"],
     "--grad-norms prints with each cost line"),
    ("bench-compare-with-smoke", lambda p: ["bench", "--compare", p.run, p.run, "--smoke"],
     "--smoke has no effect with --compare"),
    ("bench-compare-with-plots", lambda p: ["bench", "--compare", p.run, p.run, "--plots", p.adir],
     "--plots has no effect with --compare"),
    ("bench-compare-with-json", lambda p: ["bench", "--compare", p.run, p.run, "--json", p.run],
     "--json has no effect with --compare"),
    ("bench-render-only-with-select", lambda p: ["bench", "--render-only", "--json", p.run, "--select", "x"],
     "--select has no effect with --render-only"),
    ("bench-render-only-without-json", lambda p: ["bench", "--render-only"],
     "--render-only needs --json PATH"),
    ("report-bench-dir-missing", lambda p: ["report", "--out", p.new, "--bench-dir", p.missing],
     "--bench-dir"),
    # the remedy flags (docs/remedies.md): values, a net too shallow for a skip, batch norm
    # over batches of one, options that cannot go together
    *[(f"{cmd}-keep-prob-{v}", (lambda cmd, v: lambda p: [*cmd, "--keep-prob", v])(argv, v),
       f"argument --keep-prob: must be a keep probability in (0, 1] (1: no dropout), got {v}")
      for cmd, argv in (("train", ["train"]), ("check", ["check"]), ("report", ["report", "--out", "x"]))
      for v in ("0", "1.5", "-0.2", "nan")],
    ("train-keep-prob-text", lambda p: ["train", "--keep-prob", "half"], "argument --keep-prob: not a number: 'half'"),
    *[(f"{cmd}-l2-{v}", (lambda cmd, v: lambda p: [*cmd, f"--l2={v}"])(argv, v),
       f"argument --l2: must be a finite lambda >= 0, got {v}")
      for cmd, argv in (("train", ["train"]), ("check", ["check"]), ("report", ["report", "--out", "x"]))
      for v in ("-0.1", "inf")],
    ("train-residual-unknown", lambda p: ["train", "--residual", "inside"], "argument --residual: invalid choice: 'inside'"),
    ("train-residual-too-shallow", lambda p: ["train", "--residual", "before", "--layers", "4,4"],
     "--residual: a residual connection skips from A[l-2] into hidden layer l = 3, 5, ...: it needs "
     "at least 3 hidden layers, the network [2, 4, 4, 1] has 2 (--layers)"),
    ("check-residual-too-shallow", lambda p: ["check", "--residual", "after", "--arch", "shallow"],
     "the network [2, 4, 1] has 1 (--arch shallow; try --arch deep, res or proj)"),
    ("train-batch-norm-batch-of-one", lambda p: ["train", "--batch-norm", "--batch-size", "1"],
     "--batch-norm normalises over each batch, and a batch of 1 example has variance 0"),
    ("train-batch-norm-last-batch-of-one", lambda p: ["train", "--batch-norm", "--batch-size", "57"],
     "--batch-size 57 on m = 400 leaves one"),
    ("check-batch-norm-sgd", lambda p: ["check", "--batch-norm", "--batch", "sgd"],
     "--batch sgd (batches of 1 example, variance 0) has nothing to normalise"),
    ("check-remedies-data-parallel", lambda p: ["check", "--l2", "0.1", "--data-parallel", "2"],
     "--data-parallel does not run the remedies"),
    ("check-remedy-arch-without-remedy", lambda p: ["check", "--arch", "res"],
     "--arch res is one of the remedies' nets: it needs a remedy flag"),
    ("check-resync-one-step", lambda p: ["check", "--resync"],
     "--resync checks the last of several updates from the reference's state before it: give --steps N with N >= 2"),
    ("check-resync-a-step-of-one", lambda p: ["check", "--resync", "--steps", "3", "--steps", "1"],
     "give --steps N with N >= 2"),
    ("check-resync-data-parallel", lambda p: ["check", "--resync", "--steps", "2", "--data-parallel", "2"],
     "--resync does not apply to --data-parallel"),
    # argparse's own errors, one line too
    ("no-command", lambda p: [], "the following arguments are required: command"),
    ("train-unknown-option", lambda p: ["train", "--layerz", "4"], "unrecognized arguments"),
    ("check-unknown-hidden", lambda p: ["check", "--hidden", "gelu"], "invalid choice: 'gelu'"),
]

# item 2: output paths that cannot be written, for every option that writes
FILE_OPTIONS = [("train", "--plot", []), ("train", "--save-weights", []),
                ("check", "--json", []), ("bench", "--json", ["--smoke"])]
DIR_OPTIONS = [("report", "--out", []), ("bench", "--plots", ["--smoke"])]
BAD += [(f"{cmd}{opt}-{kind}", (lambda cmd, opt, extra, where: lambda p: [cmd, *extra, opt, where(p)])(
            cmd, opt, extra, where), phrase)
        for cmd, opt, extra in FILE_OPTIONS
        for kind, where, phrase in [
            ("in-missing-directory", lambda p: os.path.join(p.missing, "out.x"), "does not exist"),
            ("is-a-directory", lambda p: p.adir, "is a directory"),
            ("read-only-location", lambda p: os.path.join(p.readonly, "out.x"), "cannot write in")]]
BAD += [(f"{cmd}{opt}-{kind}", (lambda cmd, opt, extra, where: lambda p: [cmd, *extra, opt, where(p)])(
            cmd, opt, extra, where), phrase)
        for cmd, opt, extra in DIR_OPTIONS
        for kind, where, phrase in [
            ("is-a-file", lambda p: p.afile, "exists and is not a directory"),
            ("under-a-file", lambda p: os.path.join(p.afile, "sub"), "is not a directory"),
            ("read-only-location", lambda p: os.path.join(p.readonly, "sub"), "cannot create it in")]]


def _bench_run(tmp_path):
    """A small saved run: the committed one's machine and its first three training-step rows."""
    with open(os.path.join(COMMITTED, "bench.json")) as f:
        data = json.load(f)
    data["benchmarks"] = [b for b in data["benchmarks"] if b["extra_info"].get("op") == "step"][:3]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("name, make_argv, phrase", BAD, ids=[c[0] for c in BAD])
def test_bad_value_is_one_line_and_exit_2_before_any_work(name, make_argv, phrase, paths,
                                                          tmp_path, capsys, no_work):
    if "read-only" in name and paths.readonly is None:
        pytest.skip("no read-only directory here (root ignores permission bits, and /proc "
                    "and /sys accept new files)")
    (tmp_path / "empty.json").write_text("{}")
    paths.empty_json = str(tmp_path / "empty.json")
    paths.run = _bench_run(tmp_path)
    bad = json.loads(open(paths.run).read())
    del bad["benchmarks"][1]["stats"]
    (tmp_path / "bad_row.json").write_text(json.dumps(bad))
    paths.bad_row_json = str(tmp_path / "bad_row.json")
    argv = make_argv(paths)
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2, (rc, out, err)
    # argparse reports options no subcommand knows from the top-level parser
    command = argv[0] if argv and "unrecognized" not in phrase else ""
    assert_one_line(err, command, phrase)
    assert not os.path.exists(paths.new)  # no output directory made for a refused run


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("device", ["bogus", "cuda", "gpu"])
def test_train_device_the_backend_cannot_use(backend, device, capsys, no_work):
    """Item 3: one message shape for an unknown and an absent device, on every backend."""
    B = get_backend(backend)
    try:
        B.from_numpy(np.zeros(1), None, device)
        pytest.skip(f"{backend} can use device {device!r} on this machine")
    except ValueError as e:
        why = str(e)
    rc, out, err = run_cli(["train", "--backend", backend, "--device", device], capsys)
    assert rc == 2
    assert_one_line(err, "train", f"--device {device}: {why}")
    assert re.search(rf"(unknown device '{device}'|device '{device}' is not available on this "
                     rf"machine); the {backend} backend has", why), why


def test_check_unknown_device_name(capsys, no_work):
    rc, out, err = run_cli(["check", "--device", "bogus"], capsys)
    assert rc == 2
    assert_one_line(err, "check", "--device bogus: no selected backend has such a device")


# ------------------------------------------------------------------ bench writes nothing into the repository

def _digest(folder):
    return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(folder))}


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def test_bench_default_outputs_stay_out_of_the_repository(monkeypatch, tmp_path, capsys):
    """Item 6: ``bench --smoke`` without --json writes its JSON and table to a fresh
    temporary folder, runs pytest outside the checkout with no cache, and leaves the
    committed results alone (the run itself is replaced by one that writes a saved run
    where it is told to)."""
    committed = _digest(COMMITTED)
    saved_run = open(_bench_run(tmp_path)).read()
    seen = {}

    def fake_call(cmd, cwd=None, env=None):
        target = next(a.split("=", 1)[1] for a in cmd if a.startswith("--benchmark-json="))
        seen.update(cmd=cmd, cwd=cwd, env=env or {}, target=target)
        if _inside(target, ROOT):
            return 3  # never write into the checkout, even in a failing test
        with open(target, "w") as f:
            f.write(saved_run)
        return 0
    monkeypatch.setattr(cmd_bench.subprocess, "call", fake_call)
    rc, out, err = run_cli(["bench", "--smoke"], capsys)
    assert not _inside(seen["target"], ROOT), seen["target"]
    assert rc == 0, err
    written = re.search(r"^wrote (\S+) and (\S+)$", out, re.M)
    assert written and not _inside(written.group(1), ROOT) and not _inside(written.group(2), ROOT)
    assert json.load(open(written.group(1))) == json.loads(saved_run)
    assert seen["cwd"] is not None and not _inside(seen["cwd"], ROOT)
    assert "no:cacheprovider" in seen["cmd"] and seen["env"].get("PYTHONDONTWRITEBYTECODE") == "1"
    assert _digest(COMMITTED) == committed


def test_bench_json_defaults_into_a_new_plots_folder(monkeypatch, tmp_path, capsys):
    """With --plots DIR (made if missing) and no --json, the JSON and table go into DIR."""
    saved_run = open(_bench_run(tmp_path)).read()

    def fake_call(cmd, cwd=None, env=None):
        target = next(a.split("=", 1)[1] for a in cmd if a.startswith("--benchmark-json="))
        with open(target, "w") as f:
            f.write(saved_run)
        return 0
    monkeypatch.setattr(cmd_bench.subprocess, "call", fake_call)
    plots = tmp_path / "new" / "plots"
    rc, out, err = run_cli(["bench", "--smoke", "--plots", str(plots)], capsys)
    assert rc == 0, err
    # the committed run has the compute floor's rates, hence floor.png
    assert sorted(os.listdir(plots)) == ["bench.json", "bench.md", "floor.png", "roofline.png",
                                         "speedup.png", "time_vs_size.png"]
    assert json.load(open(plots / "bench.json")) == json.loads(saved_run)


@pytest.mark.slow
def test_real_smoke_bench_leaves_the_checkout_unchanged(tmp_path):
    """Item 6, for real: a smoke run from the repository root, through netparity bench
    and through pytest directly (as CI does), changes no file in it."""
    pytest.importorskip("pytest_benchmark")
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,
                            capture_output=True, text=True).stdout
    stamp = {p: os.stat(os.path.join(ROOT, p)).st_mtime_ns for p in (".pytest_cache", ".benchmarks")
             if os.path.exists(os.path.join(ROOT, p))}
    committed = _digest(COMMITTED)
    r = subprocess.run([sys.executable, "-c", RUN_MAIN, "bench", "--smoke"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "pytest", "bench", "--bench-size", "smoke",
                        "--benchmark-disable", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                        "-k", "numpy"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert r.returncode == 0, r.stdout[-2000:]
    assert _digest(COMMITTED) == committed
    assert subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,
                          capture_output=True, text=True).stdout == status
    assert {p: os.stat(os.path.join(ROOT, p)).st_mtime_ns for p in stamp} == stamp
    assert not os.path.exists(os.path.join(ROOT, ".benchmarks")) or ".benchmarks" in stamp


def test_bench_from_a_non_editable_install(tmp_path):
    """Item 7: the packages pyproject.toml installs, copied alone (what a wheel holds):
    ``bench --smoke`` says what to install in one line; ``--compare`` works."""
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        packages = tomllib.load(f)["tool"]["setuptools"]["packages"]
    site = tmp_path / "site-packages"
    for p in packages:
        shutil.copytree(os.path.join(ROOT, p), site / p, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", RUN_MAIN, "bench", "--smoke"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout[-1000:] + r.stderr[-2000:]
    assert_one_line(r.stderr, "bench", "pip install -e '.[bench]'")
    run = os.path.join(COMMITTED, "bench.json")
    r = subprocess.run([sys.executable, "-c", RUN_MAIN, "bench", "--compare", run, run],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| benchmark | old µs | new µs | new/old |" in r.stdout and " 1.00 |" in r.stdout


def test_bench_without_pytest_benchmark_says_what_to_install(monkeypatch, capsys):
    real = cmd_bench.importlib.util.find_spec
    monkeypatch.setattr(cmd_bench.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pytest_benchmark" else real(name, *a))
    monkeypatch.setattr(cmd_bench.subprocess, "call", lambda *a, **k: pytest.fail("ran without the plugin"))
    rc, out, err = run_cli(["bench", "--smoke"], capsys)
    assert rc == 2
    assert_one_line(err, "bench", "pip install 'netparity[bench]'")


# ------------------------------------------------------------------ failures after the work

def test_disk_full_while_writing_check_json_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    """Item 16: the file system refuses the write (RLIMIT_FSIZE, set just before the JSON
    is written: EFBIG like a full disk's ENOSPC). One line, exit 1, the earlier JSON intact
    and no temporary file left."""
    out = tmp_path / "check.json"
    old = json.dumps({"results": [], "ok": True}) + "\n"
    out.write_text(old)
    real_to_json = cmd_check.to_json
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def to_json_then_fill_the_disk(outcomes):
        data = real_to_json(outcomes)
        assert len(json.dumps(data)) > 2048  # the new file would not fit
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))
        return data
    monkeypatch.setattr(cmd_check, "to_json", to_json_then_fill_the_disk)
    try:
        rc, stdout, err = run_cli(["check", "--backend", "numpy", "--dtype", "float64",
                                   "--no-progress", "--json", str(out)], capsys)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert rc == 1, err
    assert_one_line(err, "check", "File too large")
    assert out.read_text() == old
    assert sorted(os.listdir(tmp_path)) == ["check.json"]


def test_unexpected_error_is_one_line_exit_70(monkeypatch, capsys):
    def bug(args):
        raise KeyError("a bug")
    monkeypatch.setattr(cmd_train, "run", bug)
    rc, out, err = run_cli(["train"], capsys)
    assert rc == 70
    assert_one_line(err, "train", "KeyError: 'a bug' (run with NETPARITY_DEBUG=1", kind="internal error")
    monkeypatch.setenv("NETPARITY_DEBUG", "1")
    with pytest.raises(KeyError, match="a bug"):
        main(["train"])


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    """Item 9: SIGINT in the middle of training (a real signal, so a subprocess)."""
    # a shell may start background jobs with SIGINT ignored, and a child inherits that:
    # the child puts Python's own handler back first
    code = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); " + RUN_MAIN
    p = subprocess.Popen([sys.executable, "-c", code, "train", "--iterations", "100000000",
                          "--print-every", "1000", "--no-progress"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1",
                              "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])})
    try:
        assert p.stdout.readline().startswith("planar:")
        assert p.stdout.readline().startswith("Cost after iteration 0")  # training runs
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130
    assert_one_line(err, "train", "interrupted", kind="interrupted")


def test_no_work_fixture_catches_work(capsys, no_work):
    """The guard itself: a valid command does start work, and the guard stops it."""
    rc, out, err = run_cli(["train", "--iterations", "1", "--no-progress"], capsys)
    assert rc == 70 and "work started before the arguments were checked" in err
