"""`netparity verify` on the example user files: the correct ones pass, each classic
mistake fails at the step and stage where it enters, with the hint that names it.

The expectations below are written from the mistakes themselves, not from a run:
a forgotten zero_grad is invisible at step 1 and adds step 1's gradient at step 2 (the
first gradient stage in backward order is dW2); a sigmoid before BCEWithLogitsLoss
leaves Z2 right and A2 wrong; reduction="sum" makes the cost m times larger (the first
stage computed from the loss is cost_stable); heavy-ball momentum makes the first
update 1/(1-beta) times larger (W1', the first updated parameter)."""
import glob
import json
import os

import pytest

from netparity.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples", "verify")

# file -> (exit code, step, first diverging stage, the conventions key the hint cites)
EXPECTED = {
    "ok_torch_gd.py": (0, None, None, None),
    "ok_torch_adam_softmax.py": (0, None, None, None),
    "ok_torch_ema_momentum.py": (0, None, None, None),
    "bug_torch_missing_zero_grad.py": (1, 2, "dW2", "grad.zero_grad"),
    "bug_torch_sigmoid_before_bce.py": (1, 1, "A2", "output.logits"),
    "bug_torch_reduction_sum.py": (1, 1, "cost_stable", "m = 400 times"),
    "bug_torch_heavy_ball_for_ema.py": (1, 1, "W1'", "momentum.ema"),
}


def test_every_example_has_an_expectation():
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.py")))
    assert files and set(files) == set(EXPECTED), set(files) ^ set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_exit_code_first_stage_and_hint(name, tmp_path, capsys):
    code, step, stage, hint = EXPECTED[name]
    if "torch" in name:
        pytest.importorskip("torch")
    out = tmp_path / "verify.json"
    rc = main(["verify", os.path.join(EXAMPLES, name), "--no-color", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == code, text
    data = json.loads(out.read_text())
    assert data["ok"] is (code == 0)
    if code == 0:
        assert data["first_divergence"] is None and "OK: all" in text
        assert all(s["ok"] for s in data["steps"])
        # something was compared: forward, cost, backward and update stages of every step
        assert all({"Z1", "cost_stable", "dW1", "W1'"} <= {r["stage"] for r in s["stages"]}
                   for s in data["steps"])
        return
    first = data["first_divergence"]
    assert (first["step"], first["stage"]) == (step, stage), text
    assert f"first diverging stage {stage!r} at step {step}" in text
    assert any(hint in h for h in data["hints"]), data["hints"]
    # the steps before the divergence were checked and passed
    assert [s["ok"] for s in data["steps"]] == [True] * (step - 1) + [False]


def test_bad_files_and_options_exit_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.py"
    empty.write_text("FRAMEWORK = 'torch'\n")
    assert main(["verify", str(empty)]) == 2
    assert "defines no make_model()" in capsys.readouterr().err
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert main(["verify", str(bad)]) == 2
    assert "RuntimeError: boom" in capsys.readouterr().err
    ok = os.path.join(EXAMPLES, "ok_torch_gd.py")
    assert main(["verify", ok, "--lr", "0.1"]) == 2
    assert "need --optimizer" in capsys.readouterr().err


def test_naming_the_reference_optimizer_turns_a_pass_into_a_named_failure(capsys):
    """ok_torch_gd is SGD at lr 1.2; asked "is it gradient descent at 0.5?" it must fail
    at the first updated parameter, not before."""
    pytest.importorskip("torch")
    rc = main(["verify", os.path.join(EXAMPLES, "ok_torch_gd.py"), "--optimizer", "gd", "--lr", "0.5",
               "--no-color"])
    text = capsys.readouterr().out
    assert rc == 1 and "first diverging stage \"W1'\" at step 1" in text, text
