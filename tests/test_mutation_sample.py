"""A fixed sample of tools/mutate.py in CI: three mutants of the torch mirror that the suite
must kill, one that must be reported as a crash (never a kill), and the control mutant
that must survive. The run is restricted to three cheap tests of tests/test_public_api.py
(one pytest process per mutant, ~5 s each); the full measurement is docs/mutation.md.

Fails when the tool would count a crash as a kill, when the control (a no-op edit) fails
(the tool or the suite is broken), or when the working tree is touched."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = ["tests/test_public_api.py::test_article_step_function_by_function",
         "tests/test_public_api.py::test_network_predict_on_ties",
         "tests/test_public_api.py::test_gradient_norms"]
EXPECTED = {
    # the survivors: the article's cost summed with mean (off by a factor m) ...
    "torch_impl/article.py:compute_cost:0844c53a": "KILLED",
    # ... and predict >= 0.5, which only an output exactly on the boundary exposes
    "torch_impl/network.py:predict:58a5a319": "KILLED",
    # dW = dZ A^T * m instead of / m
    "torch_impl/network.py:network_backward:46f82bb1": "KILLED",
    # the article's dZ2 @ A1 (transpose dropped): a shape error, an exception, not a kill
    "torch_impl/article.py:backward_propagation:4ad2ae7a": "CRASH",
}


def tree_digest(package):
    h = hashlib.sha256()
    for name in sorted(os.listdir(os.path.join(ROOT, package))):
        if name.endswith(".py"):
            with open(os.path.join(ROOT, package, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_fixed_mutants_are_classified_and_the_control_survives(tmp_path):
    pytest.importorskip("torch_impl", reason="the sample mutates the torch mirror")
    before = tree_digest("torch_impl")
    out = tmp_path / "mutation.json"
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "mutate.py"), "--ids", *EXPECTED,
                        "--tests", *TESTS, "--json", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(out.read_text())
    control = report["packages"]["torch_impl"]["control"]
    assert control["status"] == "SURVIVED", control
    assert control["passed"] > 0
    got = {m["id"]: m["status"] for m in report["mutants"]}
    assert got == EXPECTED, "\n".join(f"{m['id']}: {m['status']} {m['detail']}" for m in report["mutants"])
    # one mutant is not killed (the crash), so the tool says so in its exit status
    assert r.returncode == 1, r.stdout[-3000:]
    counts = report["packages"]["torch_impl"]["counts"]
    assert counts["KILLED"] == 3 and counts["CRASH"] == 1
    assert report["packages"]["torch_impl"]["kill_rate"] == 1.0  # 3 of 3 that ran to a verdict
    assert report["packages"]["torch_impl"]["kill_rate_strict"] == 0.75  # the crash is not a kill
    assert tree_digest("torch_impl") == before, "the working tree was modified"
