"""The registry is the single source: a fourth backend is one package plus one registry
entry, and then runs through the whole harness with no other edit.

``tests/plugins/wrapped_impl`` is such a package (the reference's API behind a counting
wrapper) and ``tests/plugins/netparity_wrapped.py`` its one ``register(...)`` call, loaded
through ``NETPARITY_PLUGINS``. The test runs the suite's own files and ``netparity check`` /
``netparity report`` in a subprocess with it registered (the registry of this test
session stays as it is) and asserts that cases of the new backend were collected, ran and
passed in each of them."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from netparity.backends import (BackendSpec, REGISTRY, backend_spec, import_error, register,
                                unregister)
from netparity.runner import run_case, select_cases
from netparity.stages import Case

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# every test file that must pick a registered backend up without being edited
FILES = ["test_conformance.py", "test_errors.py", "test_determinism.py", "test_fuzz.py",
         "test_weights_files.py", "test_robustness.py", "test_trajectories.py"]


def _env():
    env = dict(os.environ, NETPARITY_PLUGINS="netparity_wrapped",
               PYTHONPATH=os.pathsep.join(filter(None, [os.path.join(HERE, "plugins"), ROOT,
                                                        os.environ.get("PYTHONPATH")])))
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


@pytest.fixture(scope="module")
def wrapped_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("wrapped")
    xml = d / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:randomly", "-m", "not slow",
           "--backend", "wrapped", f"--junitxml={xml}", *[os.path.join(HERE, f) for f in FILES]]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    cases = {}
    for tc in ET.parse(xml).getroot().iter("testcase"):
        name = tc.get("name")
        if "wrapped" not in name:
            continue
        outcome = ("failed" if tc.find("failure") is not None or tc.find("error") is not None
                   else "skipped" if tc.find("skipped") is not None else "passed")
        cases.setdefault(tc.get("classname").split(".")[-1], []).append((name, outcome))
    return proc, cases, d


@pytest.mark.parametrize("test_file", [f[:-3] for f in FILES])
def test_a_registered_fourth_backend_runs_through_every_test_file(wrapped_run, test_file):
    proc, cases, _ = wrapped_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    mine = cases.get(test_file, [])
    assert mine, f"{test_file}: no case of the registered backend 'wrapped' was collected"
    assert all(outcome == "passed" for _, outcome in mine), [c for c in mine if c[1] != "passed"]


def test_a_registered_fourth_backend_appears_in_check_and_report(wrapped_run):
    _, _, d = wrapped_run
    out = d / "check.json"
    proc = subprocess.run([sys.executable, "-m", "netparity.cli", "check", "--backend", "wrapped",
                           "--no-progress", "--json", str(out)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "wrapped/manual" in proc.stdout
    rows = json.loads(out.read_text())["results"]
    assert rows and all(r["backend"] == "wrapped" and r["ok"] for r in rows)
    # 'wrapped' computes with the reference's own functions: against the reference in the
    # same dtype every stage agrees bit for bit (float32 differs from the float64 oracle)
    same = [r for r in rows if r["against"] == "reference"]
    assert same and all(r["max_abs"] == 0 for r in same)
    rep = d / "report"
    proc = subprocess.run([sys.executable, "-m", "netparity.cli", "report", "--quick", "--no-progress",
                           "--out", str(rep)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    md = (rep / "report.md").read_text()
    assert "--backend wrapped" in md                # in the checked slice (heat map)
    assert "| float64 | wrapped |" in md            # trained, with its cost curve and drift
    # beside the others in the side-by-side view, its API functions whole (it has no teaching data)
    side = md.split("## The course's functions side by side")[1]
    assert side.count(" | wrapped (manual) |") == 9
    assert "network_backward whole, under the table" in side


def test_unimportable_backend_is_a_reported_skip_not_a_silent_omission():
    spec = register(BackendSpec("ghost", "no_such_package_for_netparity", paths=("manual",)))
    try:
        assert "No module named 'no_such_package_for_netparity'" in import_error("ghost")
        [case] = select_cases(["ghost"], ["manual"], dtypes=["float64"])
        result = run_case(case)
        assert not result.ran and "does not import here" in result.skipped
        assert "no_such_package_for_netparity" in result.skipped
    finally:
        unregister(spec.name)
    assert "ghost" not in REGISTRY


def test_paths_come_from_the_registry():
    # a path a backend does not declare is not selected (the reference has no autodiff)
    assert select_cases(["numpy"], ["manual", "autodiff"], dtypes=["float64"]) == [
        Case("numpy", "manual", dtype="float64")]
    with pytest.raises(ValueError, match="unknown path"):
        select_cases(["numpy"], ["autograd"])
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        backend_spec("nope")
    with pytest.raises(ValueError, match="unknown path"):
        BackendSpec("x", "x", paths=("grad",))
