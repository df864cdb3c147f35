"""Regenerates the numbers of docs/tutorial.md from runs made here, now.

Every number of the tutorial sits between markers, ``<!-- n:NAME -->value<!-- /n -->``;
this script computes each one and writes it in (through netparity.fileio). The last
digits of the machine-dependent ones (MACHINE_DEPENDENT: differences of a few ULPs, the
check's worst ratio, the agreement block) depend on the BLAS, libm and CPU; the others
(accuracies, costs to six decimals) are the same on every IEEE machine.

    .venv/bin/python tools/tutorial_numbers.py          # rewrites docs/tutorial.md
    .venv/bin/python tools/tutorial_numbers.py --check  # exit 1 if the tutorial is stale
"""
import contextlib
import io
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
TUTORIAL = os.path.join(ROOT, "docs", "tutorial.md")
MARKER = re.compile(r"<!-- n:(\w+) -->(.*?)<!-- /n -->", re.S)
MACHINE_DEPENDENT = {"dw1_torch", "dw1_jax", "check_summary", "train_all"}


def article_numbers():
    """The article's run with the reference: the first cost and the accuracies after
    3 000 and 10 000 iterations (gradient descent at lr 1.2, the CLI's default run)."""
    import numpy as np
    import reference as R
    X, Y = R.load_planar_dataset()
    opt = R.Optimizer("gd", learning_rate=1.2)
    p = R.initialize_network([2, 4, 1])
    out = {"cost0": f"{float(R.cross_entropy_from_logits(R.network_forward(X, p)[1]['Z2'], Y)):.6f}"}
    done = 0
    for n in (3000, 10000):
        p, _, _ = R.train(p, X, Y, optimizer=opt, num_epochs=n - done)
        done = n
        out[f"acc_{n}"] = f"{100 * float(np.mean(R.network_predict(p, X) == (Y > 0.5))):.2f} %"
    return out


def gradient_numbers():
    """max |dW1 - reference dW1| of the tutorial's snippet (float64, backward_propagation)."""
    import numpy as np
    import reference as R
    from netparity.backends import available_backends, get_backend
    X, Y = R.load_planar_dataset()
    params = R.initialize_parameters(2, 4, 1)
    A2, cache = R.forward_propagation(X, params)
    grads = R.backward_propagation(params, cache, X, Y)
    out = {}
    for name in ("torch", "jax"):
        if name not in available_backends():
            continue
        bk = get_backend(name)
        Xb, Yb = bk.from_numpy(X, "float64"), bk.from_numpy(Y, "float64")
        p = bk.tree_from_numpy(params, "float64")
        _, cache_b = bk.forward_propagation(Xb, p)
        g = bk.backward_propagation(p, cache_b, Xb, Yb)
        out[f"dw1_{name}"] = f"{float(np.max(np.abs(bk.to_numpy(g['dW1']) - grads['dW1']))):.1e}"
    return out


def command_numbers():
    """The check's summary line and train --backend all's agreement block, as printed."""
    from netparity.cli import main
    out = {}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        main(["check", "--no-progress", "--no-color"])
    out["check_summary"] = buf.getvalue().strip().splitlines()[-1]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        main(["train", "--backend", "all", "--iterations", "3000", "--no-progress", "--print-every", "0"])
    lines = buf.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("agreement with numpy"))
    out["train_all"] = "\n```\n" + "\n".join(lines[start:]) + "\n```\n"
    return out


def numbers(commands=True):
    out = {**article_numbers(), **gradient_numbers()}
    if commands:
        out.update(command_numbers())
    return out


def marked(text):
    """{name: value} of the tutorial's markers."""
    return {m.group(1): m.group(2) for m in MARKER.finditer(text)}


def main(argv):
    from netparity import fileio
    with open(TUTORIAL, encoding="utf-8") as f:
        text = f.read()
    fresh = numbers()
    missing = set(marked(text)) - set(fresh)
    if missing:
        raise SystemExit(f"markers without a number: {sorted(missing)}")
    new = MARKER.sub(lambda m: f"<!-- n:{m.group(1)} -->{fresh[m.group(1)]}<!-- /n -->", text)
    if "--check" in argv:
        stale = {k: (v, fresh[k]) for k, v in marked(text).items() if v != fresh[k]}
        print("\n".join(f"{k}: tutorial {a!r}, now {b!r}" for k, (a, b) in stale.items()) or "up to date")
        return 1 if stale else 0
    fileio.write_text(TUTORIAL, new)
    print(f"wrote {TUTORIAL}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
