"""The notebook (notebooks/why_they_agree.ipynb) runs from top to bottom on a CPU, and
what it claims in prose is what its cells print; in git it is kept without outputs."""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "why_they_agree.ipynb")


def _cells():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)["cells"]


def test_the_notebook_is_kept_without_outputs():
    code = [c for c in _cells() if c["cell_type"] == "code"]
    assert code
    for c in code:
        assert c["outputs"] == [] and c["execution_count"] is None, "".join(c["source"])[:80]


def test_the_notebook_runs_and_shows_what_it_says():
    for mod in ("nbclient", "nbformat", "ipykernel"):
        pytest.importorskip(mod, reason=f"{mod} not installed (requirements-ci.txt pins it): "
                                        "the notebook is not executed")
    pytest.importorskip("torch", reason="the notebook's autograd and bug cells use torch")
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"a cell of the notebook failed:\n{e}")
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if o.output_type == "stream")
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if "image/png" in o.get("data", {}))
    # section 1: the gap after 1.0 is 2^-52; 1 + u rounds back to 1
    assert "= 2^-52: True" in text and "1 + u  == 1 ? True" in text and "1 + 2u == 1 ? False" in text
    # section 4: autograd's dJ/dZ2 is the course's dZ2 divided by m = 400
    assert "ratio            = [400. 400. 400.]" in text
    # section 5: the planted bug is named where it enters; autograd is untouched
    assert "first diverging stage 'dW1'" in text and "autodiff-cpu-float64-tanh-sigmoid-2x4x1-gd-full-1step -> passes" in text
    # section 6: the drift is inside the shadow run's bound
    ratio = float(text.split("largest drift / bound ")[1].split()[0])
    assert ratio <= 1
    assert images == 2  # the heat map and the drift plot
