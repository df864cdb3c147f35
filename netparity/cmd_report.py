"""`netparity report --out DIR`: a self-contained equivalence report.

Writes DIR/report.html (one file: images embedded as base64 data: URIs, styles inline,
no external resources, no scripts) and DIR/report.md with its PNGs beside it. Sections:
the environment fingerprint; a per-stage error heat map from a `netparity check` run;
the cost curves of the three backends on the planar data with their drift from the
reference; the decision boundaries side by side; the latest benchmark results; and
``backward_propagation`` of the three article modules side by side, read from the
project's own source with ``inspect.getsource``.
"""
import argparse
import base64
import html
import inspect
import io
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_RESULTS = os.path.join(ROOT, "bench", "results")

SECTIONS = [
    ("environment", "Environment fingerprint"),
    ("heatmap", "Per-stage errors against the reference"),
    ("costs", "Cost curves and drift"),
    ("boundaries", "Decision boundaries"),
    ("bench", "Benchmarks"),
    ("source", "The same function in three frameworks"),
]


def add_arguments(parser):
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory for report.html, report.md and the PNGs")
    parser.add_argument("--steps", type=int, default=3000,
                        help="gradient-descent iterations of the cost curves (article net, lr 1.2)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer steps (200) and a smaller check slice (float64+float32, "
                             "manual path): for tests")
    parser.add_argument("--bench-dir", default=BENCH_RESULTS,
                        help="where to read the latest benchmark results (bench.md, *.png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    """Rows: stages; columns: backend/path/dtype; colour: log10(error / bound)."""
    from matplotlib.colors import LinearSegmentedColormap
    from netparity.runner import column_name
    cols, stages = [], []
    for res in outcomes:
        if not res.ran:
            continue
        worst = res.worst_per_stage()
        cols.append((f"{column_name(res.case)}\n{res.case.dtype}", worst))
        for s in worst:
            if s not in stages:
                stages.append(s)
    floor = -6.0
    M = np.full((len(stages), len(cols)), np.nan)
    for j, (_, worst) in enumerate(cols):
        for i, s in enumerate(stages):
            r = worst.get(s)
            if r is not None:
                M[i, j] = 2.0 if not math.isfinite(r.ratio) else (
                    floor if r.ratio <= 0 else max(floor, math.log10(r.ratio)))
    fig = _figure(max(6.0, 1.25 * len(cols) + 2.5), 0.32 * len(stages) + 2.0)
    ax = fig.add_subplot(1, 1, 1)
    # green well inside the bound, yellow within a factor 10 of it, red beyond it
    cmap = LinearSegmentedColormap.from_list(
        "ratio", [(0, "#1a9850"), (0.5, "#66bd63"), (0.625, "#d9ef8b"), (0.7499, "#fdae61"),
                  (0.75, "#d73027"), (1, "#7f0000")])
    im = ax.imshow(M, aspect="auto", cmap=cmap, vmin=floor, vmax=2.0)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([c for c, _ in cols], fontsize=8)
    ax.set_yticks(range(len(stages)))
    ax.set_yticklabels(stages, fontsize=8)
    for i in range(len(stages)):
        for j in range(len(cols)):
            if not np.isnan(M[i, j]):
                r = cols[j][1][stages[i]]
                txt = "0" if r.ratio == 0 else ("fail" if not math.isfinite(r.ratio) else f"{r.ratio:.0e}")
                ax.text(j, i, txt, ha="center", va="center", fontsize=6.5,
                        color="white" if M[i, j] < -4.5 or M[i, j] > 0 else "black")
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("log10(error / bound)   (0 = at the bound; 0 error shown at -6)", fontsize=8)
    ax.set_title("max error / bound per stage (forward, cost, backward, update; pass <= 1)",
                 fontsize=10)
    fig.tight_layout()
    return fig


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


def cost_figure(curves_by_dtype):
    from netparity.backends import backend_spec
    fig = _figure(11, 7.6)
    axes = fig.subplots(2, len(curves_by_dtype), squeeze=False)
    for j, (dtype, curves) in enumerate(curves_by_dtype.items()):
        ax, ad = axes[0, j], axes[1, j]
        ref_costs = curves["numpy"][2]
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
        ax.set_title(f"cost per iteration, {dtype}", fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("cost")
        ax.legend()
        eps = np.finfo(dtype).eps
        ad.axhline(eps * np.max(ref_costs), color="grey", lw=0.8, linestyle="--",
                   label=f"eps x max cost ({eps:.1e})")
        ad.set_title(f"drift: |cost - reference cost|, {dtype} (log; zeros not drawn)", fontsize=10)
        ad.set_xlabel("iteration")
        ad.set_ylabel("|difference|")
        ad.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                  frameon=False)
    fig.tight_layout()
    return fig


def boundary_figure(curves):
    import reference as R
    X, Y = R.load_dataset("planar")
    pad = 0.5
    xs = np.linspace(X[0].min() - pad, X[0].max() + pad, 250)
    ys = np.linspace(X[1].min() - pad, X[1].max() + pad, 250)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.stack([gx.ravel(), gy.ravel()])
    fig = _figure(4.0 * len(curves), 4.2)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    preds = {}
    for ax, (name, (bk, params, _)) in zip(axes, curves.items()):
        # each backend predicts with its own network_predict, in its own arrays
        p = bk.network_predict(params, bk.from_numpy(grid, "float64"), "tanh", "sigmoid")
        regions = np.asarray(bk.to_numpy(p)).reshape(gx.shape).astype(float)
        preds[name] = regions
        acc = float(np.mean(np.asarray(bk.to_numpy(
            bk.network_predict(params, bk.from_numpy(X, "float64"), "tanh", "sigmoid"))).ravel()
            == (Y[0] > 0.5)))
        ax.contourf(gx, gy, regions, alpha=0.3, cmap="Spectral", levels=[-0.5, 0.5, 1.5])
        ax.scatter(X[0], X[1], c=Y[0], s=8, cmap="Spectral", edgecolors="k", linewidths=0.2)
        same = ("" if name == "numpy" else
                f", {int(np.sum(regions != preds['numpy']))} grid points differ from numpy")
        ax.set_title(f"{name}: accuracy {acc:.1%}{same}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ sections

def fingerprint_rows():
    from netparity.fingerprint import fingerprint
    return [(k, v if isinstance(v, str) else repr(v)) for k, v in fingerprint().items()]


def source_of(name="backward_propagation"):
    """(backend, module file, source) of ``name`` in every registered backend's public API
    (through any validation wrapper, to the function that computes)."""
    from netparity.backends import REGISTRY, get_backend
    out = []
    for backend, spec in REGISTRY.items():
        try:
            fn = inspect.unwrap(getattr(get_backend(backend), name))
        except ImportError as e:
            out.append((backend, spec.module, f"# not importable here: {e}"))
            continue
        path = inspect.getsourcefile(fn)
        path = os.path.relpath(path, ROOT) if path.startswith(ROOT) else path
        out.append((backend, path, inspect.getsource(fn)))
    return out


def read_bench(bench_dir):
    """(markdown text or None, [png paths])."""
    md = os.path.join(bench_dir, "bench.md")
    text = None
    if os.path.exists(md):
        with open(md) as f:
            text = f.read().strip()
    pngs = sorted(os.path.join(bench_dir, p) for p in os.listdir(bench_dir)
                  if p.endswith(".png")) if os.path.isdir(bench_dir) else []
    return text, pngs


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
.scroll{overflow-x:auto}.src{display:flex;gap:.8em;align-items:stretch}
.src>div{flex:1;min-width:0}.src pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;
font-size:.74em;white-space:pre-wrap;margin:0;height:calc(100% - 2.2em)}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:.5em}.grid img{max-width:49%}
.note{color:#555;font-size:.9em}code{background:#f2f2f2;padding:0 .2em}
"""


def _data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def write_report(out_dir, outcomes, curves_by_dtype, figures, bench, sources, fp_rows, meta):
    """figures: {basename: png bytes}; writes report.html, report.md and the PNGs."""
    from netparity.runner import summary
    from netparity import fileio  # every file atomically: never a truncated PNG or page
    os.makedirs(out_dir, exist_ok=True)
    for name, png in figures.items():
        fileio.write_bytes(os.path.join(out_dir, name), png)
    check_text, ok = summary(outcomes)
    check_cmd = meta["check_cmd"]
    heads = dict(SECTIONS)

    # ---- markdown
    md = ["# netparity equivalence report", "",
          f"Generated {meta['when']} by `netparity report` in {meta['elapsed']:.0f} s.", ""]
    md += [f"## {heads['environment']}", "", "| key | value |", "|---|---|"]
    md += [f"| {k} | `{v}` |" for k, v in fp_rows]
    md += ["", f"## {heads['heatmap']}", "",
           f"Slice checked: `{check_cmd}`. Every stage of every case is compared with the "
           "NumPy reference in the same dtype (bound 2E) and, for float32, with the float64 "
           "oracle (bound E); the colour is log10 of the worse error/bound ratio.", "",
           f"**{'PASS' if ok else 'FAIL'}**: {check_text.splitlines()[0]}", "",
           "![per-stage error heat map](heatmap.png)", ""]
    md += [f"## {heads['costs']}", "",
           f"The article's network (planar data, 2-4-1, tanh hidden, sigmoid output, weights "
           f"randn*0.01 seed 1, batch gradient descent at lr 1.2) trained for {meta['steps']} "
           "iterations by every backend from the same initial weights, in float64 and float32. "
           "Top: the cost curves overlaid (they coincide). Bottom: the pointwise |difference| "
           "from the reference's cost on a log scale: the drift, a few ulps of the cost that "
           "rounding differences carry forward.", "", "![cost curves and drift](costs.png)", ""]
    md += ["| dtype | backend | final cost | max drift from numpy |", "|---|---|---:|---:|"]
    for dtype, curves in curves_by_dtype.items():
        ref = curves["numpy"][2]
        for name, (_, _, c) in curves.items():
            md.append(f"| {dtype} | {name} | {c[-1]:.10f} | {np.max(np.abs(c - ref)):.2e} |")
    md += ["", f"## {heads['boundaries']}", "",
           "Each backend's float64 network after training, predicting over a grid with its own "
           "`network_predict`.", "", "![decision boundaries](boundaries.png)", ""]
    md += [f"## {heads['bench']}", ""]
    bench_text, bench_pngs = bench
    if bench_text is None and not bench_pngs:
        md += ["no benchmark results (run `netparity bench --quick --plots bench/results`)", ""]
    else:
        md += [meta["bench_source"], ""]
        if bench_text:
            md += [bench_text.replace("\n# ", "\n### "), ""]
        for p in bench_pngs:
            md += [f"![{os.path.basename(p)}](bench_{os.path.basename(p)})", ""]
    md += [f"## {heads['source']}", "",
           "`backward_propagation` of the article, read from the project's own modules with "
           "`inspect.getsource`.", ""]
    for backend, path, src in sources:
        md += [f"### {backend} (`{path}`)", "", "```python", src.rstrip(), "```", ""]
    fileio.write_text(os.path.join(out_dir, "report.md"), "\n".join(md))

    # ---- html
    def img(name, alt):
        return f'<img src="{_data_uri(figures[name])}" alt="{html.escape(alt)}">'

    h = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
         "<meta name='viewport' content='width=device-width, initial-scale=1'>",
         "<title>netparity equivalence report</title>", f"<style>{CSS}</style></head><body>",
         "<h1>netparity equivalence report</h1>",
         f"<p class='note'>Generated {html.escape(meta['when'])} by <code>netparity report</code> "
         f"in {meta['elapsed']:.0f} s. One NumPy reference, mirrored in PyTorch and JAX; every "
         "number below comes from the project's own conformance machinery.</p>",
         "<nav><ul>" + "".join(f"<li><a href='#{k}'>{html.escape(t)}</a></li>" for k, t in SECTIONS)
         + "</ul></nav>"]
    h += [f"<h2 id='environment'>{heads['environment']}</h2><table>"]
    h += [f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in fp_rows]
    h += ["</table>"]
    h += [f"<h2 id='heatmap'>{heads['heatmap']}</h2>",
          f"<p>Slice checked: <code>{html.escape(check_cmd)}</code>. Every stage of every case "
          "is compared with the NumPy reference in the same dtype (bound 2E) and, for float32, "
          "with the float64 oracle (bound E); the colour is log10 of the worse error/bound "
          "ratio (green: far inside the a-priori bound, red: beyond it).</p>",
          f"<p class='{'ok' if ok else 'bad'}'>{'PASS' if ok else 'FAIL'}: "
          f"{html.escape(check_text.splitlines()[0])}</p>", img("heatmap.png", "per-stage error heat map")]
    h += [f"<h2 id='costs'>{heads['costs']}</h2>",
          f"<p>The article's network (planar data, 2-4-1, tanh hidden, sigmoid output, weights "
          f"randn&middot;0.01 seed 1, batch gradient descent at lr 1.2) trained for {meta['steps']} "
          "iterations by every backend from the same initial weights, in float64 and float32. "
          "Top: the cost curves overlaid (they coincide). Bottom: the pointwise |difference| from "
          "the reference's cost on a log scale &mdash; the drift, a few ulps of the cost that "
          "rounding differences carry forward.</p>", img("costs.png", "cost curves and drift"),
          "<table><tr><th>dtype</th><th>backend</th><th>final cost</th><th>max drift from numpy</th></tr>"]
    for dtype, curves in curves_by_dtype.items():
        ref = curves["numpy"][2]
        for name, (_, _, c) in curves.items():
            h.append(f"<tr><td>{dtype}</td><td>{name}</td><td>{c[-1]:.10f}</td>"
                     f"<td>{np.max(np.abs(c - ref)):.2e}</td></tr>")
    h += ["</table>"]
    h += [f"<h2 id='boundaries'>{heads['boundaries']}</h2>",
          "<p>Each backend's float64 network after training, predicting over a grid with its own "
          "<code>network_predict</code>.</p>", img("boundaries.png", "decision boundaries")]
    h += [f"<h2 id='bench'>{heads['bench']}</h2>"]
    if bench_text is None and not bench_pngs:
        h += ["<p>no benchmark results (run <code>netparity bench --quick --plots "
              "bench/results</code>)</p>"]
    else:
        # a reader wants the pictures and the headline numbers; the full table (one row
        # per benchmark, ~130) is there, folded
        machine, full, bench_summary = split_bench(bench_text or "")
        h += [f"<p class='note'>{html.escape(meta['bench_source'])}</p>"]
        if machine:
            h += [md_table_to_html(machine)]
        h += ["<div class='grid'>"] + [img("bench_" + os.path.basename(p), os.path.basename(p))
                                       for p in bench_pngs] + ["</div>"]
        if bench_summary:
            h += [md_table_to_html(bench_summary)]
        if full:
            n = sum(1 for line in full.splitlines() if line.startswith("| ")) - 1
            h += [f"<details><summary>Every benchmark ({n} rows)</summary>",
                  md_table_to_html(full), "</details>"]
    h += [f"<h2 id='source'>{heads['source']}</h2>",
          "<p><code>backward_propagation</code> of the article, read from the project's own "
          "modules with <code>inspect.getsource</code>.</p><div class='src'>"]
    for backend, path, src in sources:
        h += [f"<div><h3>{backend} <code>{html.escape(path)}</code></h3>"
              f"<pre><code>{html.escape(src.rstrip())}</code></pre></div>"]
    h += ["</div></body></html>"]
    fileio.write_text(os.path.join(out_dir, "report.html"), "\n".join(h))


# ------------------------------------------------------------------ command

def run(args):
    from netparity.backends import available_backends, backend_spec
    from netparity.cli_checks import check_report_args
    from netparity.numerics import step_work, thread_policy
    from netparity.runner import run_cases, select_cases, summary
    check_report_args(args)  # arguments and the --out directory, before any work (exit 2)
    t0 = time.time()
    steps = 200 if args.quick else args.steps
    mirrors = [b for b in available_backends() if backend_spec(b).mirror]
    paths = ["manual"] if args.quick else ["manual", "autodiff", "idiomatic"]
    check_cmd = "netparity check " + " ".join(f"--backend {b}" for b in mirrors) + " " + " ".join(
        f"--path {p}" for p in paths) + " (float64, float32; tanh/sigmoid 2-4-1, gd, full batch, 1 step)"
    print("checking ...", file=sys.stderr)
    # the article's network: a small problem, one thread (netparity.numerics.thread_policy)
    with thread_policy(step_work((2, 4, 1), 400)):
        outcomes = run_cases(select_cases(mirrors, paths), progress=not args.no_progress)
        print(f"training the article's network for {steps} iterations ...", file=sys.stderr)
        curves = {dt: train_curves(steps, dt) for dt in ("float64", "float32")}
    figures = {"heatmap.png": _png(heatmap_figure(outcomes)),
               "costs.png": _png(cost_figure(curves)),
               "boundaries.png": _png(boundary_figure(curves["float64"]))}
    bench = read_bench(args.bench_dir)
    for p in bench[1]:
        with open(p, "rb") as f:
            figures["bench_" + os.path.basename(p)] = f.read()
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "elapsed": time.time() - t0,
            "steps": steps, "check_cmd": check_cmd,
            "bench_source": bench_source(args.bench_dir, bench[0])}
    write_report(args.out, outcomes, curves, figures, bench, source_of(), fingerprint_rows(), meta)
    print(f"wrote {os.path.join(args.out, 'report.html')} and {os.path.join(args.out, 'report.md')} "
          f"({time.time() - t0:.0f} s)")
    _, ok = summary(outcomes)
    return 0 if ok else 1
