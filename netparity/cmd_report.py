"""`netparity report --out DIR`: a self-contained equivalence report that shows *why* the
frameworks agree.

Writes DIR/report.html (one file: images embedded as base64 data: URIs, styles inline,
no external resources, no scripts) and DIR/report.md with its PNGs beside it. Sections:
the environment fingerprint (annotated); a per-stage error heat map from a `netparity
check` run, coloured by check's own thresholds, each cell a link to the lines that
compute that stage; what the numbers mean (a glossary and worked numbers: summation
order, the cancellation in db, fused multiply-add, the autodiff x m convention); the
course's nine functions side by side in every implementation (netparity.sidebyside),
read from the project's own source; the cost curves with their drift against the
one-ulp shadow-run envelope; the decision boundaries; the vanishing-gradient demonstration
(netparity.remedy_training: a deep sigmoid network's per-layer gradient norms and cost
with and without batch norm and residual connections); and the latest benchmark results,
labelled with the date and machine they come from. The remedy flags (--batch-norm,
--residual, --l2, --keep-prob) add their configuration to the checked slice (on the toy
deep net) and to the demonstration.
"""
import base64
import html
import io
import json
import math
import os
import re
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_RESULTS = os.path.join(ROOT, "bench", "results")

SECTIONS = [
    ("environment", "Environment fingerprint"),
    ("heatmap", "Per-stage errors against the reference"),
    ("explain", "What the numbers mean"),
    ("source", "The course's functions side by side"),
    ("costs", "Cost curves and drift"),
    ("boundaries", "Decision boundaries"),
    ("vanishing", "Vanishing gradients and the remedies"),
    ("bench", "Benchmarks"),
]

# what a few fingerprint entries mean for the numbers of this report
FINGERPRINT_NOTES = {
    "torch_threads": "torch's intra-op threads while this report ran (the thread policy: one "
                     "thread for networks this small, netparity.numerics.thread_policy)",
    "precision_flags": "float32 matmul precision: allow_tf32 False and 'highest' mean full float32 "
                       "products (TF32 off). cudnn.allow_tf32 True is torch's default for cuDNN "
                       "convolutions, which this network does not use (see TF32 below)",
    "numpy_blas": "the BLAS behind the reference's matrix products: its summation order sets the "
                  "reference's last digits",
    "torch_blas": "the BLAS behind torch's CPU matrix products",
}


def add_arguments(parser):
    from netparity.cli import HelpFormatter
    parser.formatter_class = HelpFormatter
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory for report.html, report.md and the PNGs")
    parser.add_argument("--steps", type=int, default=3000,
                        help="gradient-descent iterations of the cost curves (article net, lr 1.2)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer steps (200) and a smaller check slice (float64+float32, "
                             "manual path): for tests")
    parser.add_argument("--bench-dir", default=BENCH_RESULTS,
                        help="where to read the latest benchmark results (bench.md, bench.json, *.png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    from netparity.backends import REGISTRY
    parser.add_argument("--demo-backend", choices=list(REGISTRY), default="numpy",
                        help="backend that trains the vanishing-gradient demonstration")
    from netparity.cli_checks import add_remedy_arguments
    add_remedy_arguments(parser, "the checked slice (toy deep net 2-4-4-3-1, besides the plain "
                                 "cases) and, as one more run, the vanishing-gradient demonstration")


# ------------------------------------------------------------------ figures

def _figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def heatmap_figure(outcomes):
    """Rows: stages; columns: backend/path/dtype; colour: check's verdict of the ratio
    error / bound (runner.VERDICTS: the same thresholds as check's colours).

    Returns (figure, links): links are (stage, column label, ratio text, (left, top,
    width, height) in percent of the image) for every cell, for an HTML overlay that
    makes each cell a link to the lines computing its stage."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from netparity.runner import VERDICTS, column_name
    cols, stages = [], []
    for res in outcomes:
        if not res.ran:
            continue
        worst = res.worst_per_stage()
        cols.append((f"{column_name(res.case)}\n{res.case.dtype}", worst, res.case))
        for s in worst:
            if s not in stages:
                stages.append(s)
    floor, top = -6.0, 3.0
    M = np.full((len(stages), len(cols)), np.nan)
    for j, (_, worst, _) in enumerate(cols):
        for i, s in enumerate(stages):
            r = worst.get(s)
            if r is not None:
                M[i, j] = top if not math.isfinite(r.ratio) else (
                    floor if r.ratio <= 0 else min(top, max(floor, math.log10(r.ratio))))
    fig = _figure(max(6.5, 1.05 * len(cols) + 3.5), 0.3 * len(stages) + 2.2)
    ax = fig.add_subplot(1, 1, 1)
    # one colour per verdict, with check's thresholds as the boundaries (log10 of the ratio)
    edges = [floor] + [math.log10(limit) for _, limit, _ in VERDICTS[:-1]] + [top]
    cmap = ListedColormap([colour for _, _, colour in VERDICTS])
    im = ax.imshow(M, aspect="auto", cmap=cmap, norm=BoundaryNorm(edges, cmap.N))
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([c for c, _, _ in cols], fontsize=8)
    ax.set_yticks(range(len(stages)))
    ax.set_yticklabels(stages, fontsize=8)
    texts = {}
    for i in range(len(stages)):
        for j in range(len(cols)):
            if np.isnan(M[i, j]):  # a stage this path does not produce (check says why)
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=6.5, color="grey")
            else:
                r = cols[j][1][stages[i]]
                txt = "0" if r.ratio == 0 else ("fail" if not math.isfinite(r.ratio) else f"{r.ratio:.0e}")
                texts[i, j] = txt
                ax.text(j, i, txt, ha="center", va="center", fontsize=6.5,
                        color="white" if M[i, j] > 0 else "black")
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, ticks=[(a + b) / 2 for a, b in zip(edges, edges[1:])])
    cb.ax.set_yticklabels([f"{name}\n{lo}" for (name, _, _), lo in
                           zip(VERDICTS, ["ratio < 0.1", "0.1 <= ratio <= 1", "ratio > 1"])], fontsize=7)
    ax.set_title("error / bound per stage (the worse of 'vs reference, 2E' and 'vs float64 oracle, E')",
                 fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    W, H = fig.bbox.width, fig.bbox.height
    links = []
    for (i, j), txt in texts.items():
        (x0, y0), (x1, y1) = ax.transData.transform([(j - 0.5, i + 0.5), (j + 0.5, i - 0.5)])
        box = (100 * x0 / W, 100 * (H - y1) / H, 100 * (x1 - x0) / W, 100 * (y1 - y0) / H)
        links.append((stages[i], cols[j][0].replace("\n", " "), txt, cols[j][2], box))
    return fig, links


def train_curves(steps, dtype):
    """Costs and final parameters of the article's network (planar data, 2-4-1, tanh,
    sigmoid, batch GD at lr 1.2) trained by every available backend through its own
    ``train``."""
    import reference as R
    from netparity.backends import available_backends, get_backend
    X, Y = R.load_dataset("planar")
    p0 = R.initialize_network([2, 4, 1], init="article", seed=1)
    opt = R.Optimizer("gd", learning_rate=1.2)
    out = {}
    for name in available_backends():
        bk = get_backend(name)
        params = bk.tree_from_numpy(p0, dtype)
        Xd, Yd = bk.from_numpy(X, dtype), bk.from_numpy(Y, dtype)
        params, _, costs = bk.train(params, Xd, Yd, "tanh", "sigmoid", opt, num_epochs=steps,
                                    check_finite=False)
        costs = np.asarray(bk.to_numpy(costs), dtype=np.float64)
        out[name] = (bk, params, costs)
    return out


def shadow_envelope(steps, dtype):
    """The one-ulp shadow run of the reference (netparity.trajectory): the running max of
    |cost - shadow cost| (what the dynamics make of a one-rounding change of the weights),
    and the trajectory check's bound 10 (t + 1) envelope."""
    import reference as R
    from netparity.trajectory import SAFETY, reference_trajectory
    tr = reference_trajectory((2, 4, 1), "article", "planar", dtype, "tanh", "sigmoid", "gd-1.2",
                              R.Optimizer("gd", learning_rate=1.2), steps, None)
    env = tr.envelope(tr.costs, tr.shadow_costs)
    return env, SAFETY * np.arange(1, env.size + 1) * env


def cost_figure(curves_by_dtype, shadows):
    from netparity.backends import backend_spec
    fig = _figure(11, 8.2)
    axes = fig.subplots(2, len(curves_by_dtype), squeeze=False)
    for j, (dtype, curves) in enumerate(curves_by_dtype.items()):
        ax, ad = axes[0, j], axes[1, j]
        ref_costs = curves["numpy"][2]
        t = np.arange(ref_costs.size)
        for name, (_, _, costs) in curves.items():
            c, ls = backend_spec(name).style
            ax.plot(np.arange(costs.size), costs, color=c, linestyle=ls, label=name, lw=1.6)
            if name != "numpy":
                d = np.abs(costs - ref_costs)
                # points, not lines: the drift sits on a few discrete ulp levels
                ad.semilogy(np.arange(d.size), np.where(d > 0, d, np.nan), ".", color=c, ms=2,
                            alpha=0.6)
                ad.semilogy(np.arange(d.size), np.maximum.accumulate(d), color=c, lw=1.2,
                            label=f"{name}: running max (dots: each iteration)")
        env, bound = shadows[dtype]
        ad.semilogy(t, np.where(env > 0, env, np.nan), color="black", lw=1.0,
                    label="one-ulp shadow run: running max |cost - shadow cost|")
        ad.semilogy(t, np.where(bound > 0, bound, np.nan), color="black", lw=0.8, linestyle="--",
                    label="trajectory bound 10 (t+1) x shadow envelope")
        ad.semilogy(t, np.spacing(np.abs(ref_costs).astype(dtype)), color="grey", lw=0.8,
                    linestyle=":", label=f"one ULP of the cost ({dtype})")
        ax.set_title(f"cost per iteration, {dtype}", fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("cost")
        ax.legend()
        ad.set_title(f"drift: |cost - reference cost|, {dtype} (log; zeros not drawn)", fontsize=10)
        ad.set_xlabel("iteration")
        ad.set_ylabel("|difference|")
        ad.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def boundary_figure(curves):
    from netparity.plots import draw_boundary
    import reference as R
    X, Y = R.load_dataset("planar")
    fig = _figure(4.3 * len(curves), 4.9)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    preds = {}
    for ax, (name, (bk, params, _)) in zip(axes, curves.items()):
        # each backend predicts with its own network_predict, in its own arrays
        def predict(grid):
            return bk.to_numpy(bk.network_predict(params, bk.from_numpy(grid, "float64"), "tanh", "sigmoid"))
        preds[name] = draw_boundary(ax, X, Y, predict)
        acc = float(np.mean(np.asarray(predict(X)).ravel() == (Y[0] > 0.5)))
        same = ("" if name == "numpy" else
                f"\n{int(np.sum(preds[name] != preds['numpy']))} grid points differ from numpy")
        ax.set_title(f"{name}: accuracy {acc:.2%}{same}", fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ the demonstration

def demo_intro(demo):
    s = demo.settings
    return (f"A deep network: {s['dataset']} data, layers {'-'.join(map(str, demo.layer_dims))} "
            f"({s['hidden_layers']} {s['hidden']} hidden layers of {s['width']} units), "
            f"{s['init']} weights (seed {s['seed']}), full-batch {s['optimizer']} at lr {s['lr']:g} "
            f"for {s['steps']} updates, trained by the {demo.backend} backend "
            "(netparity.remedy_training.train_remedies) from the same W draws with each "
            "configuration. Left: the Frobenius norm of every layer's dW at the first update "
            "(log scale); right: the cost per update.")


def demo_rows(demo):
    """(label, |dW1|, |dWL|, ratio, first cost, last cost) as text, from the run."""
    return [(label, f"{n1:.2e}", f"{nL:.2e}", f"{ratio:.1e}", f"{c0:.4f}", f"{c1:.4f}")
            for label, n1, nL, ratio, c0, c1 in demo.summary_rows()]


def demo_findings(demo):
    """The sentences of the section, each number read from the runs."""
    L = len(demo.layer_dims) - 1
    base = "without remedies"
    out = []
    if base in demo.runs:
        out.append(f"Without remedies ‖dW1‖ / ‖dW{L}‖ = {demo.ratio(base):.1e} at the first update: "
                   f"sigmoid' <= 1/4, so each layer shrinks the backward signal and the first layers "
                   f"barely move; the cost goes from {demo.runs[base].costs[0]:.4f} to "
                   f"{demo.final_cost(base):.4f} (log 2 = {math.log(2):.4f}: the network predicts "
                   "the mean).")
    for label in demo.runs:
        if label != base:
            out.append(f"{label}: ‖dW1‖ / ‖dW{L}‖ = {demo.ratio(label):.1e}, final cost "
                       f"{demo.final_cost(label):.4f}.")
    return out


def demo_markdown(demo):
    md = [demo_intro(demo), "", "![vanishing gradients](vanishing.png)", "",
          f"| configuration | ‖dW1‖ at update 1 | ‖dW{len(demo.layer_dims) - 1}‖ at update 1 | "
          "ratio | first cost | last cost |", "|---|---:|---:|---:|---:|---:|"]
    md += ["| " + " | ".join(r) + " |" for r in demo_rows(demo)]
    return md + [""] + [f + "  " for f in demo_findings(demo)] + [""]


def demo_html(demo, img):
    h = [f"<p>{html.escape(demo_intro(demo))}</p>", img("vanishing.png", "vanishing gradients"),
         f"<table><tr><th>configuration</th><th>‖dW1‖ at update 1</th>"
         f"<th>‖dW{len(demo.layer_dims) - 1}‖ at update 1</th><th>ratio</th><th>first cost</th>"
         "<th>last cost</th></tr>"]
    h += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in demo_rows(demo)]
    return h + ["</table>"] + [f"<p>{html.escape(f)}</p>" for f in demo_findings(demo)]


def run_demo(args, steps=None):
    """The demonstration of the report: DEMO_CONFIGS, plus the remedy flags' configuration."""
    from netparity.cli_checks import remedies_of
    from netparity.remedy_training import DEMO_CONFIGS, describe_remedies, vanishing_demo
    configs = dict(DEMO_CONFIGS)
    remedies = remedies_of(args)
    if remedies is not None and remedies not in configs.values():
        configs[f"flags: {describe_remedies(remedies)}"] = remedies
    return vanishing_demo(args.demo_backend, configs, steps)


# ------------------------------------------------------------------ sections

def fingerprint_rows():
    from netparity.fingerprint import fingerprint
    return [(k, v if isinstance(v, str) else repr(v)) for k, v in fingerprint().items()]


def read_bench(bench_dir):
    """(markdown text or None, [png paths], provenance line or None)."""
    md = os.path.join(bench_dir, "bench.md")
    text = None
    if os.path.exists(md):
        with open(md, encoding="utf-8") as f:
            text = f.read().strip()
    pngs = sorted(os.path.join(bench_dir, p) for p in os.listdir(bench_dir)
                  if p.endswith(".png")) if os.path.isdir(bench_dir) else []
    return text, pngs, bench_provenance(bench_dir)


def bench_provenance(bench_dir):
    """'the benchmark run of DATE on MACHINE' from the run's bench.json, or None."""
    path = os.path.join(bench_dir, "bench.json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    info = data.get("machine_info") or {}
    cpu = (info.get("cpu") or {}).get("brand_raw") or info.get("processor") or info.get("machine") or "?"
    cores = (info.get("cpu") or {}).get("count")
    when = str(data.get("datetime", "?"))[:16].replace("T", " ")
    return f"the benchmark run of {when} UTC on {cpu}" + (f" ({cores} cores)" if cores else "")


def user_text(text):
    """Bench tables as a reader sees them: no project-internal references."""
    return re.sub(r"\s*\(issue \d+\)", "", text)


def bench_source(bench_dir, text):
    """Whose benchmark results the report shows: this report measures none, so it says
    which run they come from (the provenance line of bench.md) and from where."""
    machine = split_bench(text)[0] if text else ""
    run = machine[len("Machine:"):].strip() if machine else "a run that recorded no provenance"
    if os.path.abspath(bench_dir) == os.path.abspath(BENCH_RESULTS):
        return (f"These are the committed results in bench/results/, not measured by this report: "
                f"{run}. Re-measure on this machine with `netparity bench --plots DIR` and "
                f"`netparity report --bench-dir DIR`.")
    return f"Results read from {bench_dir}, not measured by this report: {run}."


def split_bench(text):
    """bench.md as (machine line, full table, article speed-ups + targets)."""
    lines = text.splitlines()
    machine = lines[0] if lines and lines[0].startswith("Machine:") else ""
    rest = "\n".join(lines[1:] if machine else lines)
    i = rest.find("Article `optimize`")
    return (machine, rest, "") if i < 0 else (machine, rest[:i], rest[i:])


def md_table_to_html(text):
    """The markdown benchmark file as HTML: pipe tables become <table>, other lines <p>."""
    out, rows = [], []

    def flush():
        if rows:
            head, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]
            out.append("<div class='scroll'><table><thead><tr>"
                       + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                                 for r in body) + "</tbody></table></div>")
            rows.clear()

    for line in text.splitlines():
        if line.strip().startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        else:
            flush()
            if line.strip():
                text = html.escape(line.strip().lstrip('#').strip())
                parts = text.split("`")
                out.append("<p>" + "".join(f"<code>{p}</code>" if i % 2 else p
                                           for i, p in enumerate(parts)) + "</p>")
    flush()
    return "\n".join(out)


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}img{max-width:100%;height:auto;border:1px solid #eee}
.scroll{overflow-x:auto}pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;font-size:.78em;overflow-x:auto}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.bench img{display:block;margin:.5em 0 1.2em}
.note{color:#555;font-size:.9em}code{background:#f2f2f2;padding:0 .2em}
dl.glossary dt{font-weight:bold;margin-top:.5em}dl.glossary dd{margin-left:1.5em}
.hm{position:relative;display:inline-block;max-width:100%}.hm img{display:block}
.hm a{position:absolute;display:block}.hm a:hover,.hm a:focus{outline:2px solid #000}
"""


def _data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def stage_links(links):
    """{stage: anchor} of the side-by-side rows computing each heat-map stage."""
    from netparity.sidebyside import anchor, stage_row
    out = {}
    for stage, _, _, case, _ in links:
        row = stage_row(stage, len(case.layer_dims()) - 1, case.optimizer)
        if row:
            out[stage] = anchor(*row)
    return out


def write_report(out_dir, outcomes, curves_by_dtype, figures, bench, fp_rows, meta, teaching,
                 links):
    """figures: {basename: png bytes}; teaching: (side-by-side columns, glossary, worked
    text); links: the heat map's cells (heatmap_figure). Writes report.html, report.md and
    the PNGs."""
    from netparity.runner import summary
    from netparity import fileio  # every file atomically: never a truncated PNG or page
    from netparity import sidebyside
    os.makedirs(out_dir, exist_ok=True)
    for name, png in figures.items():
        fileio.write_bytes(os.path.join(out_dir, name), png)
    check_text, ok = summary(outcomes)
    check_cmd = meta["check_cmd"]
    heads = dict(SECTIONS)
    columns, glossary, worked = teaching
    anchors = stage_links(links)
    bench_text, bench_pngs, provenance = bench
    bench_text = user_text(bench_text) if bench_text else bench_text
    machine_note = ("Numbers are machine-dependent: the last digits of every error, cost and "
                    "timing depend on the BLAS, libm and CPU (the environment above); what holds "
                    "everywhere is that every ratio stays <= 1.")

    # ---- markdown
    md = ["# netparity equivalence report", "",
          f"Generated {meta['when']} by `netparity report` in {meta['elapsed']:.0f} s. "
          "One NumPy reference, mirrored in PyTorch and JAX; the specification is "
          "docs/spec.md of the project. " + machine_note, ""]
    md += [f"## {heads['environment']}", "", "| key | value | what it means here |", "|---|---|---|"]
    md += [f"| {k} | `{v}` | {FINGERPRINT_NOTES.get(k, '')} |" for k, v in fp_rows]
    md += ["", f"## {heads['heatmap']}", "",
           f"Slice checked: `{check_cmd}`. Every stage of every case is compared with the "
           "NumPy reference in the same dtype (bound 2E) and, for float32, with the float64 "
           "oracle (bound E); the colour is the verdict of the worse ratio error/bound, with "
           "`netparity check`'s thresholds (green < 0.1, yellow 0.1-1: both pass; red > 1: fail). "
           "The words are defined under 'What the numbers mean'.", "",
           f"**{'PASS' if ok else 'FAIL'}**: {check_text.splitlines()[0]}", "",
           "![per-stage error heat map](heatmap.png)", "",
           "Each stage is computed by the lines of the side-by-side section: "
           + " · ".join(f"[{s}](#{a})" for s, a in anchors.items()), ""]
    md += [f"## {heads['explain']}", ""]
    md += [f"- **{term}**: {text}" for term, text in glossary]
    md += [""]
    for title, paras in worked:
        md += [f"### {title}", ""] + [p + "  " for p in paras] + [""]
    md += [f"## {heads['source']}", "",
           "Every course function in every implementation, read from the project's own source "
           "with `inspect.getsource`, one row per formula. **Bold** names are the ones the NumPy "
           "reference does not use: the API differences.", ""]
    for fn in sidebyside.FUNCTIONS:
        md.append(sidebyside.markdown_block(fn, columns))
    md += [f"## {heads['costs']}", "",
           f"The article's network (planar data, 2-4-1, tanh hidden, sigmoid output, weights "
           f"randn*0.01 seed 1, batch gradient descent at lr 1.2) trained for {meta['steps']} "
           "iterations by every backend from the same initial weights, in float64 and float32. "
           "Top: the cost curves overlaid (they coincide). Bottom: the pointwise |difference| "
           "from the reference's cost on a log scale, against the shadow run: the reference "
           "started again from weights changed by one ulp. Its distance from the reference is "
           "what the dynamics make of a single rounding difference; a backend rounds "
           "differently at every step, hence the trajectory bound 10 (t + 1) x that envelope "
           "(docs/tolerances.md).", "", "![cost curves and drift](costs.png)", ""]
    md += ["| dtype | backend | final cost | max drift from numpy |", "|---|---|---:|---:|"]
    for dtype, curves in curves_by_dtype.items():
        ref = curves["numpy"][2]
        for name, (_, _, c) in curves.items():
            md.append(f"| {dtype} | {name} | {c[-1]:.10f} | {np.max(np.abs(c - ref)):.2e} |")
    md += ["", f"## {heads['boundaries']}", "",
           "Each backend's float64 network after training, predicting over a grid with its own "
           "`network_predict` (x1, x2: the two input features; colours: the classes).", "",
           "![decision boundaries](boundaries.png)", ""]
    md += [f"## {heads['vanishing']}", ""] + demo_markdown(meta["demo"])
    md += [f"## {heads['bench']}", ""]
    if bench_text is None and not bench_pngs:
        md += ["no benchmark results (run `netparity bench --quick --plots bench/results`)", ""]
    else:
        md += [meta["bench_source"] + " Timings are machine-dependent.", ""]
        if bench_text:
            md += [bench_text.replace("\n# ", "\n### "), ""]
        for p in bench_pngs:
            md += [f"![{os.path.basename(p)}](bench_{os.path.basename(p)})", ""]
    fileio.write_text(os.path.join(out_dir, "report.md"), "\n".join(md))

    # ---- html
    def img(name, alt):
        return f'<img src="{_data_uri(figures[name])}" alt="{html.escape(alt)}">'

    h = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
         "<meta name='viewport' content='width=device-width, initial-scale=1'>",
         "<title>netparity equivalence report</title>",
         f"<style>{CSS}{sidebyside.CSS}</style></head><body>",
         "<h1>netparity equivalence report</h1>",
         f"<p class='note'>Generated {html.escape(meta['when'])} by <code>netparity report</code> "
         f"in {meta['elapsed']:.0f} s. One NumPy reference (the specification: "
         "<code>docs/spec.md</code> of the project), mirrored in PyTorch and JAX; every number "
         f"below comes from the project's own conformance machinery. {html.escape(machine_note)}</p>",
         "<nav><ul>" + "".join(f"<li><a href='#{k}'>{html.escape(t)}</a></li>" for k, t in SECTIONS)
         + "</ul></nav>"]
    h += [f"<section id='environment'><h2>{heads['environment']}</h2><table>"
          "<tr><th>key</th><th>value</th><th>what it means here</th></tr>"]
    h += [f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td>"
          f"<td class='note'>{html.escape(FINGERPRINT_NOTES.get(k, ''))}</td></tr>" for k, v in fp_rows]
    h += ["</table>"]
    h += [f"</section><section id='heatmap'><h2>{heads['heatmap']}</h2>",
          f"<p>Slice checked: <code>{html.escape(check_cmd)}</code>. Every stage of every case "
          "is compared with the NumPy reference in the same dtype (bound 2E) and, for float32, "
          "with the float64 oracle (bound E); the colour is the verdict of the worse ratio "
          "error/bound with <code>netparity check</code>'s thresholds: green &lt; 0.1 and yellow "
          "0.1&ndash;1 both pass (yellow is closer to the bound), red &gt; 1 fails. "
          "<a href='#explain'>What these words mean</a>. Click a cell to see the lines of "
          "every implementation that compute its stage.</p>",
          f"<p class='{'ok' if ok else 'bad'}'>{'PASS' if ok else 'FAIL'}: "
          f"{html.escape(check_text.splitlines()[0])}</p>",
          "<div class='hm'>" + img("heatmap.png", "per-stage error heat map")]
    for stage, col, txt, _, (left, top, width, height) in links:
        target = anchors.get(stage)
        if target:
            h.append(f"<a href='#{target}' title='{html.escape(stage)}, {html.escape(col)}: "
                     f"error/bound {html.escape(txt)}' aria-label='{html.escape(stage)} {html.escape(col)}' "
                     f"style='left:{left:.3f}%;top:{top:.3f}%;width:{width:.3f}%;height:{height:.3f}%'></a>")
    h += ["</div>"]
    h += [f"</section><section id='explain'><h2>{heads['explain']}</h2><dl class='glossary'>"]
    h += [f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in glossary]
    h += ["</dl>"]
    for title, paras in worked:
        h += [f"<h3>{html.escape(title)}</h3>"] + [f"<p>{html.escape(p)}</p>" for p in paras]
    h += [f"</section><section id='source'><h2>{heads['source']}</h2>",
          "<p>Every course function in every implementation, read from the project's own source "
          "with <code>inspect.getsource</code>, one row per formula (scroll sideways; the formula "
          "column stays). <mark>Marked</mark> names are the ones the NumPy reference does not use: "
          "the API differences. Under each table, the whole functions.</p>"]
    for fn in sidebyside.FUNCTIONS:
        h.append(sidebyside.html_block(fn, columns))
    h += [f"</section><section id='costs'><h2>{heads['costs']}</h2>",
          f"<p>The article's network (planar data, 2-4-1, tanh hidden, sigmoid output, weights "
          f"randn&middot;0.01 seed 1, batch gradient descent at lr 1.2) trained for {meta['steps']} "
          "iterations by every backend from the same initial weights, in float64 and float32. "
          "Top: the cost curves overlaid (they coincide). Bottom: the pointwise |difference| from "
          "the reference's cost on a log scale, against the <em>shadow run</em>: the reference "
          "started again from weights changed by one ulp. Its distance from the reference (black) "
          "is what the dynamics make of a single rounding difference; a backend rounds "
          "differently at every step, hence the trajectory bound 10 (t + 1) &times; that "
          "envelope (dashed).</p>", img("costs.png", "cost curves and drift"),
          "<table><tr><th>dtype</th><th>backend</th><th>final cost</th><th>max drift from numpy</th></tr>"]
    for dtype, curves in curves_by_dtype.items():
        ref = curves["numpy"][2]
        for name, (_, _, c) in curves.items():
            h.append(f"<tr><td>{dtype}</td><td>{name}</td><td>{c[-1]:.10f}</td>"
                     f"<td>{np.max(np.abs(c - ref)):.2e}</td></tr>")
    h += ["</table>"]
    h += [f"</section><section id='boundaries'><h2>{heads['boundaries']}</h2>",
          "<p>Each backend's float64 network after training, predicting over a grid with its own "
          "<code>network_predict</code> (x1, x2: the two input features; colours: the classes).</p>",
          img("boundaries.png", "decision boundaries")]
    h += [f"</section><section id='vanishing'><h2>{heads['vanishing']}</h2>"]
    h += demo_html(meta["demo"], img)
    h += [f"</section><section id='bench'><h2>{heads['bench']}</h2>"]
    if bench_text is None and not bench_pngs:
        h += ["<p>no benchmark results (run <code>netparity bench --quick --plots "
              "bench/results</code>)</p>"]
    else:
        # a reader wants the pictures and the headline numbers; the full table (one row
        # per benchmark, ~130) is there, folded
        machine, full, bench_summary = split_bench(bench_text or "")
        h += [f"<p class='note'>{html.escape(meta['bench_source'])} Timings are machine-dependent.</p>"]
        if machine:
            h += [md_table_to_html(machine)]
        h += ["<div class='bench'>"] + [img("bench_" + os.path.basename(p), os.path.basename(p))
                                        for p in bench_pngs] + ["</div>"]
        if bench_summary:
            h += [md_table_to_html(bench_summary)]
        if full:
            n = sum(1 for line in full.splitlines() if line.startswith("| ")) - 1
            h += [f"<details><summary>Every benchmark ({n} rows)</summary>",
                  md_table_to_html(full), "</details>"]
    h += ["</section></body></html>"]
    fileio.write_text(os.path.join(out_dir, "report.html"), "\n".join(h))


# ------------------------------------------------------------------ command

def run(args):
    from netparity.backends import available_backends, backend_spec
    from netparity.cli_checks import check_report_args, remedies_of
    from netparity.numerics import step_work, thread_policy
    from netparity.runner import run_cases, select_cases, summary
    from netparity import explain, sidebyside
    check_report_args(args)  # arguments and the --out directory, before any work (exit 2)
    t0 = time.time()
    steps = 200 if args.quick else args.steps
    mirrors = [b for b in available_backends() if backend_spec(b).mirror]
    paths = ["manual"] if args.quick else ["manual", "autodiff", "idiomatic"]
    check_cmd = "netparity check " + " ".join(f"--backend {b}" for b in mirrors) + " " + " ".join(
        f"--path {p}" for p in paths) + " (float64, float32; tanh/sigmoid 2-4-1, gd, full batch, 1 step)"
    remedies = remedies_of(args)
    if remedies is not None:
        check_cmd += ("; and the same with " + " ".join(
            f for f, on in (("--batch-norm", remedies.batch_norm),
                            (f"--residual {remedies.residual}", remedies.residual != "none"),
                            (f"--l2 {remedies.l2:g}", remedies.l2),
                            (f"--keep-prob {remedies.keep_prob:g}", remedies.dropout)) if on)
                      + " on the deep net 2-4-4-3-1")
    # the article's network: a small problem, one thread (netparity.numerics.thread_policy)
    with thread_policy(step_work((2, 4, 1), 400)):
        print("checking ...", file=sys.stderr)
        cases = select_cases(mirrors, paths)
        remedies = remedies_of(args)
        if remedies is not None:  # the flags' configuration on the toy deep net, same slice
            from dataclasses import replace
            from netparity.remedy_training import remedy_config_name
            name = remedy_config_name(remedies)
            cases += [replace(c, arch="deep", remedy=name) for c in cases]
        outcomes = run_cases(cases, progress=not args.no_progress)
        print(f"training the article's network for {steps} iterations ...", file=sys.stderr)
        curves = {dt: train_curves(steps, dt) for dt in ("float64", "float32")}
        shadows = {dt: shadow_envelope(steps, dt) for dt in ("float64", "float32")}
        print("the vanishing-gradient demonstration ...", file=sys.stderr)
        from netparity.remedy_training import demo_figure
        demo = run_demo(args, 60 if args.quick else None)
        heat, links = heatmap_figure(outcomes)
        figures = {"heatmap.png": _png(heat),
                   "costs.png": _png(cost_figure(curves, shadows)),
                   "boundaries.png": _png(boundary_figure(curves["float64"])),
                   "vanishing.png": _png(demo_figure(demo))}
        bench = read_bench(args.bench_dir)
        for p in bench[1]:
            with open(p, "rb") as f:
                figures["bench_" + os.path.basename(p)] = f.read()
        columns, problems = sidebyside.build()
        if problems:  # the teaching data no longer matches the source: say so, show the rest
            print("side-by-side: " + "; ".join(problems), file=sys.stderr)
        teaching = (columns, explain.glossary(), explain.worked_text(explain.worked_numbers()))
        meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "elapsed": time.time() - t0,
                "steps": steps, "check_cmd": check_cmd, "demo": demo,
                "bench_source": bench_source(args.bench_dir, bench[0]),
                "bench_dir": os.path.relpath(args.bench_dir) if not os.path.relpath(
                    args.bench_dir).startswith("..") else args.bench_dir}
        write_report(args.out, outcomes, curves, figures, bench, fingerprint_rows(), meta,
                     teaching, links)
    text, ok = summary(outcomes)
    print(f"{'PASS' if ok else 'FAIL'}: {text}")
    print(f"wrote {os.path.join(args.out, 'report.html')} and {os.path.join(args.out, 'report.md')} "
          f"({time.time() - t0:.0f} s); open {os.path.join(args.out, 'report.html')} in a browser")
    return 0 if ok else 1
