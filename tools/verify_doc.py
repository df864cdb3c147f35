"""Regenerates docs/verify.md: the walk-through of `netparity verify` with the real output
of every example in examples/verify/ (run here, now; the numbers' last digits depend on
the machine's BLAS and libm).

    .venv/bin/python tools/verify_doc.py            # rewrites docs/verify.md
"""
import contextlib
import glob
import io
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

INTRO = """# `netparity verify`: check your own model against the reference

`netparity check` proves that netparity's own mirrors agree with the NumPy reference.
`netparity verify` asks the question you care about: **does my PyTorch (or flax/optax)
code compute what the course's NumPy computes, and if not, where does it part?**

```bash
.venv/bin/netparity verify my_model.py            # exit 0: agrees; 1: diverges; 2: unusable input
.venv/bin/netparity verify my_model.py --steps 5 --dtype float32 --batch-size 64 --json out.json
.venv/bin/netparity verify my_model.py --optimizer momentum --lr 0.5 --beta 0.9   # "is mine the course's EMA momentum?"
```

From Python: `netparity.verify.verify("my_model.py")` returns a `VerifyResult`
(`.ok`, `.first_divergence()`, `.hints`, `.checks` with one `runner.CaseResult` per step).

## The file you write

| name | required | meaning |
|---|---|---|
| `FRAMEWORK` | yes | `"torch"` or `"jax"` |
| `make_model(layer_dims)` | yes (torch; jax: or `apply` + `init_params`) | a `torch.nn.Module` / `flax.nnx.Module` taking rows `(m, n_x)` and returning **logits** `(m, n_y)`; its Linear / Dense layers, in order, are the reference's layers 1..L |
| `make_optimizer(params)` | yes | torch: a `torch.optim` optimiser on `params`; jax: `make_optimizer()` returns an optax transformation |
| `make_loss()` | yes | `loss(logits, y) -> scalar`, `y` the labels as rows `(m, n_y)` (one-hot for softmax) |
| `OUTPUT` | no (`"sigmoid"`) | `"sigmoid"`: the planar data (n_y = 1); `"softmax"`: the spirals data (n_y = 3) |
| `HIDDEN` | no (`"tanh"`) | the hidden activation your model uses (sigmoid, tanh, relu, leaky_relu) |
| `LAYER_DIMS` | no (`(n_x, 4, n_y)`) | the layer sizes `make_model` receives |
| `STEPS`, `BATCH_SIZE`, `DTYPE` | no (`2`, full batch, `"float64"`) | updates to check, mini-batch size (batches in the reference's order), dtype |
| `REFERENCE_OPTIMIZER` | no (torch: inferred; jax: required) | the reference optimiser to compare with, e.g. `{"name": "momentum", "learning_rate": 0.5, "beta": 0.9}` |
| `make_scheduler(optimizer)` | no | a `torch.optim.lr_scheduler` |
| `train_step(model, optimizer, loss_fn, x, y)` | no (torch) | your own loop body (default: zero_grad, forward, loss, backward, step) |
| `load_parameters(model, parameters)` | no | your own loader of the reference's `W1 b1 ...` (NumPy, `W` is `(out, in)`, `b` is `(out, 1)`) into the model (jax: returns the model) |

## What it does

1. Draws the reference's initial weights (`reference.initialize_network`, seed 1) and
   copies them into your model's Linear/Dense layers in order (torch `weight = W`, flax
   `kernel = W.T`; a layer that does not fit is named in the error).
2. Runs your optimiser for k = 1, 2, ... `STEPS` updates on the reference's data and batch
   order, each time from the start, capturing every stage it can: `Zl` and `Al` (forward
   hooks / the module's intermediates), both costs, `dZl` and `dA{l-1}` (tensor hooks /
   zero taps), every `dWl` and `dbl`, the updated parameters and the optimiser state mapped
   to the reference's `vdP`, `sdP`, `t` (conventions tables: `torch_impl/conventions.py`,
   `jax_impl/conventions.py`).
3. Compares them with the reference through `netparity.runner` - the same helper, bounds
   and table as `netparity check` (error / bound per stage; pass <= 1) - and stops at the
   first step that diverges, naming its first diverging stage in forward-then-backward order.
4. Where the divergence matches a known convention difference, prints a hint with the
   conventions key (`[grad.zero_grad]`, `[momentum.ema]`, ...).

The network it compares with is the course's: Linear/Dense layers and activations. A model
with a layer that no weights can make that network's (batch, layer, group or instance
norm; dropout with p > 0, which draws its own mask in train mode) is refused before any
work, exit code 2, with the layer and where it sits (`model.1`, `model.bn`), instead of a
run that could only "diverge at A1". Dropout with p = 0 is the identity and passes.
netparity's own batch norm and dropout are checked against the reference's by
`netparity check --batch-norm` / `--keep-prob` ([remedies.md](remedies.md)).

## The examples, with their real output

Every file in `examples/verify/` is run by `tests/test_verify.py`, which holds each one to
its exit code, step, stage and hint. `ok_*` files agree with the reference; `bug_*` files
each contain one classic mistake.
"""


def run(path):
    from netparity.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = main(["verify", path, "--no-color"])
    return rc, buf.getvalue().rstrip()


def doc_string(path):
    import ast
    with open(path) as f:
        return ast.get_docstring(ast.parse(f.read())) or ""


def main():
    parts = [INTRO]
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "verify", "*.py")),
                       key=lambda p: (not os.path.basename(p).startswith("ok_"), p)):
        name = os.path.basename(path)
        rc, out = run(path)
        with open(path) as f:
            src = f.read()
        body = src.split('"""', 2)[2].strip() if src.startswith('"""') else src
        parts += [f"### `{name}` (exit code {rc})", "", doc_string(path), "",
                  "```python", body, "```", "", f"`netparity verify examples/verify/{name}` prints:", "",
                  "```", out, "```", ""]
        print(f"{name}: exit {rc}", file=sys.stderr)
    from netparity import fileio
    fileio.write_text(os.path.join(ROOT, "docs", "verify.md"), "\n".join(parts))


if __name__ == "__main__":
    main()
