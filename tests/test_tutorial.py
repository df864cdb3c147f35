"""docs/tutorial.md's numbers match a run: the machine-independent ones (the first cost,
the accuracies after 3 000 and 10 000 iterations) exactly, rerun here with the reference;
the machine-dependent ones (marked so in the text) by the claim the text makes about them."""
import importlib.util
import os
import re

import numpy as np
import pytest

import reference as R
from netparity.backends import available_backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("tutorial_numbers", os.path.join(ROOT, "tools", "tutorial_numbers.py"))
tn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tn)


@pytest.fixture(scope="module")
def doc():
    with open(tn.TUTORIAL, encoding="utf-8") as f:
        return tn.marked(f.read())


def test_the_machine_independent_numbers_are_a_runs(doc):
    fresh = tn.article_numbers()
    assert {k: doc[k] for k in fresh} == fresh
    assert set(doc) - set(fresh) <= tn.MACHINE_DEPENDENT


def test_the_gradient_differences_are_a_few_ulps_as_the_text_says(doc):
    X, Y = R.load_planar_dataset()
    params = R.initialize_parameters(2, 4, 1)
    _, cache = R.forward_propagation(X, params)
    ulp = float(np.spacing(np.max(np.abs(R.backward_propagation(params, cache, X, Y)["dW1"]))))
    fresh = tn.gradient_numbers()
    for name in [b for b in ("torch", "jax") if b in available_backends()]:
        for value in (float(doc[f"dw1_{name}"]), float(fresh[f"dw1_{name}"])):
            assert value <= 16 * ulp, (name, value, ulp)


def test_the_quoted_outputs_have_the_shape_and_verdict_of_a_run(doc):
    assert re.fullmatch(r"\d+ case\(s\) checked, 0 skipped, \d+ stage comparisons, worst error/bound "
                        r"(\S+); all within bound", doc["check_summary"])
    assert float(doc["check_summary"].split("worst error/bound ")[1].split(";")[0]) <= 1
    lines = doc["train_all"].strip().strip("`").strip().splitlines()
    assert lines[0].startswith("agreement with numpy (float64, 3000 updates")
    assert all(line.endswith("0 of 400 predictions differ") for line in lines[1:]) and len(lines) == 3
