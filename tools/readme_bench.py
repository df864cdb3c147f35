"""Writes README.md's benchmark table from the committed run (bench/results/bench.json),
between the markers ``<!-- bench:begin -->`` and ``<!-- bench:end -->``, so that the
README says what the committed run measured, where and when - never numbers typed in by
hand.

    .venv/bin/python tools/readme_bench.py            # rewrites the section of README.md
    .venv/bin/python tools/readme_bench.py --check    # exit 1 when the section is stale
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from netparity import cmd_bench  # noqa: E402
from netparity.backends import REGISTRY  # noqa: E402

README = os.path.join(ROOT, "README.md")
RESULTS = os.path.join(ROOT, "bench", "results", "bench.json")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# the README's columns: one per variant that is a way to run training (the bench.md table
# has every variant, autodiff and the thread-policy pairs included)
SKIP_VARIANT_SUFFIX = ("-cores",)
SKIP_VARIANTS = ("autodiff",)


def _ms(us):
    ms = us / 1e3
    return f"{ms:.3g}" if ms < 1000 else f"{ms:.0f}"


def _per_step(rs):
    """{(config, label): row}: a variant's training step - its one-step benchmark, or its
    loop per step for the whole-loop variants that have no step of their own."""
    out = {}
    for r in rs:
        if r["variant"].endswith(SKIP_VARIANT_SUFFIX) or r["variant"] in SKIP_VARIANTS:
            continue
        if r["device"] != "cpu" and r["op"] not in ("step", "loop"):
            continue
        key = (r["config"], r["label"])
        if r["op"] == "step" or (r["op"] == "loop" and key not in out):
            out[key] = r
    return out


def section(data):
    rs = cmd_bench.rows(data)
    steps = _per_step(rs)
    order = list(REGISTRY)
    eager = {r["label"]: r["variant"] in ("manual", "reference") for r in steps.values()}
    labels = sorted({label for _, label in steps},  # per backend in registry order, eager first
                    key=lambda lb: (order.index(lb.split("-")[0]) if lb.split("-")[0] in order else 99,
                                    not eager[lb], lb))
    configs = sorted({c for c, _ in steps}, key=lambda c: (cmd_bench._size_key(rs, c), c))
    peaks = data["machine_info"].get("roofline", {})
    lines = [f"Measured {cmd_bench.provenance(data)}; matmul peak "
             f"{peaks.get('flops_float32', 0) / 1e9:.1f} GFLOP/s float32, "
             f"{peaks.get('flops_float64', 0) / 1e9:.1f} GFLOP/s float64, memory "
             f"{peaks.get('bandwidth', 0) / 1e9:.1f} GB/s. Median ms per training step (a loop "
             "variant: its loop per step), speed-up over the NumPy reference in brackets; "
             "the fastest variant's fraction of the compute floor (netparity/floor.py) and of "
             "the memory roofline (streaming model):", "",
             "| config | " + " | ".join(labels) + " | fastest: floor / roofline |",
             "|---|" + "---:|" * len(labels) + "---|"]
    for c in configs:
        cells = []
        for lb in labels:
            r = steps.get((c, lb))
            if r is None:
                cells.append("–")
                continue
            sp = f" ({r['speedup']:.1f}×)" if r["speedup"] and not lb.startswith(cmd_bench.reference_backend()) else ""
            cells.append(_ms(r["us_per_step"]) + sp)
        mine = [steps[(c, lb)] for lb in labels if (c, lb) in steps]
        best = min(mine, key=lambda r: r["us_per_step"])
        fl = f"{best['floor']:.2f}" if best["floor"] is not None else "–"
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {best['label']} {fl} / {best['roofline']:.2f} |")
    opt = [r for r in rs if r["op"] == "optimize" and r["backend"] != cmd_bench.reference_backend()]
    if opt:
        lines += ["", "The article's `optimize` (planar, 2000 iterations), per step against "
                  "`reference.optimize`, paired (median of alternating rounds) and as the ratio of "
                  "the two benchmarks' medians:", ""]
        for r in sorted(opt, key=lambda r: (r["backend"], r["dtype"])):
            pr = f"{r['paired_speedup']:.1f}× paired, " if r.get("paired_speedup") else ""
            fl = f", {r['floor']:.2f} of the compute floor" if r["floor"] is not None else ""
            lines.append(f"- {r['backend']} {r['dtype']}: {r['us_per_step']:.1f} µs/step, {pr}"
                         f"{r['speedup']:.1f}× medians{fl} (compile {r['compile_s']:.1f} s, apart)")
    return "\n".join(lines)


def update(text, data):
    """README text with its benchmark section replaced by ``section(data)``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"README.md has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{section(data)}\n{END}{tail}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    p.add_argument("--json", default=RESULTS)
    p.add_argument("--readme", default=README)
    args = p.parse_args(argv)
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    new = update(text, cmd_bench.load(args.json))
    if args.check:
        if new != text:
            print(f"{args.readme}: the benchmark section is stale: run tools/readme_bench.py")
            return 1
        return 0
    if new != text:
        from netparity import fileio
        fileio.write_text(args.readme, new)
        print(f"wrote the benchmark section of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
