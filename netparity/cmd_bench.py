"""`netparity bench`: runs bench/ through pytest-benchmark, then renders the saved JSON
as a markdown table (time per step, speed-up over the NumPy reference, GFLOP/s, roofline
fraction) and PNG plots; ``--compare OLD NEW`` prints per-benchmark time ratios.

Nothing is written into the repository unless asked for: the JSON (and the .md table
beside it) goes to ``--json PATH``, else into the ``--plots`` folder, else into a fresh
temporary folder whose path is printed. The pytest run keeps no cache (``-p
no:cacheprovider``, no bytecode) and runs in a temporary working directory.
``--compare`` and ``--render-only`` need only the saved JSON; a run needs the bench/
suite of a source checkout and pytest-benchmark, and says so when either is missing.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

from netparity import fileio, floor, roofline
from netparity.backends import REGISTRY
from netparity.cli_checks import UsageError, check_bench_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH_DIR, "results")  # the committed run (what `report` shows)
INSTALL_HINT = ("netparity bench runs the bench/ suite of a source checkout: clone the "
                "repository and run `pip install -e '.[bench]'` in it (an installed "
                "package has --compare and --render-only only)")


def add_arguments(parser):
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="planar + medium configs only")
    size.add_argument("--smoke", action="store_true", help="one tiny config, 2 rounds (CI)")
    size.add_argument("--large", action="store_true",
                      help=">= 20 000 examples or 784 features (incl. the conformance medium size)")
    parser.add_argument("--json", default=None,
                        help="where to save the pytest-benchmark JSON; the markdown table goes "
                             "next to it (.md). Default: DIR/bench.json with --plots DIR, else "
                             "a new temporary folder (printed); to update the committed "
                             f"results: --json {os.path.relpath(RESULTS, ROOT)}/bench.json")
    parser.add_argument("--compare", nargs=2, metavar=("OLD.json", "NEW.json"),
                        help="print NEW/OLD median ratios of two saved runs; runs nothing")
    parser.add_argument("--select", metavar="EXPR",
                        help="only benchmarks matching this pytest -k expression, e.g. "
                             "'optimize or jax-scan' or 'planar and not torch'")
    parser.add_argument("--plots", metavar="DIR", help="write PNG plots to DIR")
    parser.add_argument("--render-only", action="store_true",
                        help="render the table/plots of an existing --json without running")


def default_json(args):
    """--plots DIR/bench.json, else bench.json in a new temporary folder: never the
    repository's committed results unless --json names them."""
    if args.plots:
        return os.path.join(args.plots, "bench.json")
    return os.path.join(tempfile.mkdtemp(prefix="netparity-bench-"), "bench.json")


def missing_requirements():
    """Why a benchmark run cannot start here (None if it can)."""
    if not os.path.isfile(os.path.join(BENCH_DIR, "conftest.py")):
        return INSTALL_HINT
    missing = [m for m in ("pytest", "pytest_benchmark") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"netparity bench needs {' and '.join(missing).replace('_', '-')}: "
                "pip install 'netparity[bench]' (or pip install pytest pytest-benchmark)")
    return None


class _RunFailed(Exception):
    pass


def run_suite(args, size):
    """pytest-benchmark over bench/, its JSON written atomically to args.json; returns
    pytest's exit code."""
    # -v prints one line per benchmark as it finishes: the progress display.
    # -p no:randomly: keep the configured order (pytest-randomly would shuffle it).
    # -p no:cacheprovider and PYTHONDONTWRITEBYTECODE: write nothing into the checkout;
    # the working directory is a temporary one (pytest-benchmark's storage is relative to it)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    rc = None
    try:
        with fileio.atomic_path(args.json) as tmp, tempfile.TemporaryDirectory() as cwd:
            cmd = [sys.executable, "-m", "pytest", BENCH_DIR, "-v", "-p", "no:randomly",
                   "-p", "no:cacheprovider", f"--bench-size={size}", f"--benchmark-json={tmp}",
                   "--benchmark-columns=median,rounds,iterations", "--benchmark-sort=fullname"]
            if args.select:
                cmd += ["-k", args.select]
            print("$", " ".join(cmd), flush=True)
            rc = subprocess.call(cmd, cwd=cwd, env=env)
            if rc not in (0, 5) or os.path.getsize(tmp) == 0:
                raise _RunFailed()  # keep an earlier result file as it was
    except _RunFailed:
        return rc or 1
    return rc


def run(args):
    if args.json is None and not args.compare and not args.render_only:
        args.json = default_json(args)
    loaded = check_bench_args(args)  # inputs, outputs, conflicting options: before any work
    if args.compare:
        print(compare(*(loaded[p] for p in args.compare)))
        return 0
    if not args.render_only:
        problem = missing_requirements()
        if problem:
            raise UsageError(problem)
        size = "smoke" if args.smoke else "quick" if args.quick else "large" if args.large else "full"
        if args.plots:
            os.makedirs(args.plots, exist_ok=True)  # checked creatable; it holds the JSON too
        rc = run_suite(args, size)
        if rc not in (0, 5):
            return rc
    data = loaded.get(args.json) or load(args.json)
    table = render(data)
    print(table)
    md = os.path.splitext(args.json)[0] + ".md"
    fileio.write_text(md, table + "\n")
    print(f"wrote {args.json} and {md}")
    if args.plots:
        for path in plot(data, args.plots):
            print(f"wrote {path}")
    return 0


def load(path):
    import json
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# variant names of earlier runs -> today's (one name per concept across the project)
RENAMED_VARIANTS = {"autograd": "autodiff"}


def reference_backend():
    """The registry's one non-mirror backend: what every speed-up is measured against."""
    return next(name for name, spec in REGISTRY.items() if not spec.mirror)


def rows(data):
    """One dict per benchmark: its extra_info plus per-step median, GFLOP/s, roofline
    fraction (against the peaks stored in the JSON) and speed-up over the reference."""
    peaks = data["machine_info"].get("roofline") or roofline.measure_peaks()
    base_backend = reference_backend()
    out = []
    for b in data["benchmarks"]:
        e = dict(b["extra_info"])
        if "op" not in e:
            continue
        old = e.get("variant")
        if old in RENAMED_VARIANTS:
            e["variant"] = RENAMED_VARIANTS[old]
        t = b["stats"]["median"]
        e["name"] = b["name"].replace(f"-{old}", f"-{e['variant']}") if old in RENAMED_VARIANTS else b["name"]
        e["median_s"] = t
        e["us_per_step"] = 1e6 * t / e["steps"]
        e["gflops"] = e["flops"] / t / 1e9
        e["roofline"] = roofline.roofline_fraction(e["flops"], e["bytes"], t,
                                                   peaks[f"flops_{e['dtype']}"], peaks["bandwidth"])
        # the same bound with XLA's own flops/bytes of the fused program (JAX rows only):
        # the memory traffic that code really has, where the streaming model overcounts
        e["roofline_xla"] = (roofline.roofline_fraction(
            e["xla_flops"], e["xla_bytes"], t, peaks[f"flops_{e['dtype']}"], peaks["bandwidth"])
            if e.get("xla_bytes") else None)
        e["label"] = f"{e['backend']}-{e['variant']}" + ("" if e["device"] == "cpu" else f"-{e['device']}")
        e["floor_us"], e["floor"] = compute_floor(e, t, data["machine_info"].get("floor"))
        out.append(e)
    base = {(r["config"], r["op"]): r["us_per_step"] for r in out if r["backend"] == base_backend}
    for r in out:
        b = base.get((r["config"], r["op"]))
        r["speedup"] = b / r["us_per_step"] if b else None
    return out


def compute_floor(e, seconds, rates):
    """(floor µs per step, floor / measured time) of one benchmark from its extra_info
    and the floor rates stored with the run (netparity.floor), or (None, None) for a
    run saved without them."""
    if not rates:
        return None, None
    dims = tuple(e["dims"])
    output = e.get("output") or ("softmax" if dims[-1] > 1 else "sigmoid")  # the configs' rule
    counts = floor.step_ops(dims, e["m"], e["op"], e["steps"], output=output)
    t = floor.floor_seconds(counts, e["dtype"], rates)
    return (None, None) if t is None else (1e6 * t / e["steps"], t / seconds)


def frameworks():
    """The package behind each registered backend's arrays (numpy, torch, jax): the
    versions a run's provenance names."""
    return list(dict.fromkeys(spec.arrays.split(".")[0] for spec in REGISTRY.values()))


def provenance(data, short=False):
    """Where and when a run was made, as one line: date, machine, cores, versions, size
    and how loaded the machine was (what every table and plot says about itself)."""
    mi = data.get("machine_info", {})
    prov = mi.get("provenance") or {}
    fp = prov.get("fingerprint") or {}
    when = (data.get("datetime") or "?")[:16].replace("T", " ") + " UTC"
    cpu = fp.get("cpu") or mi.get("cpu", {}).get("brand_raw", "?")
    cores = prov.get("cores") or mi.get("cpu", {}).get("count", "?")
    size = prov.get("size")
    versions = ", ".join(f"{k} {fp[k]}" for k in frameworks() if k in fp)
    head = f"{when}, {cpu}, {cores} cores"
    if not prov:
        return head + ("" if short else "; size, versions and load were not recorded by this run")
    load = ""
    if prov.get("load_start"):
        end = prov.get("load_end") or [float("nan")]
        load = (f"load average {prov['load_start'][0]:.1f} at start, {end[0]:.1f} at end "
                f"(nice {prov.get('nice')})")
    if short:
        return f"{head}, {size} run; {versions}; {load}"
    return f"{head}; {size} run; {versions}; python {fp.get('python', '?')}; {load}"


def render(data):
    rs = rows(data)
    peaks = data["machine_info"].get("roofline", {})
    lines = [f"Machine: {provenance(data)}; matmul peak "
             f"{peaks.get('flops_float32', 0) / 1e9:.1f} GFLOP/s float32, "
             f"{peaks.get('flops_float64', 0) / 1e9:.1f} GFLOP/s float64; "
             f"bandwidth {peaks.get('bandwidth', 0) / 1e9:.1f} GB/s", "",
             "| config | op | backend/variant | median µs/step | speed-up vs numpy | GFLOP/s "
             "| roofline fraction | XLA roofline fraction | floor µs/step | floor fraction "
             "| compile s | traces | threads |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    size = {c: _size_key(rs, c) for c in {r["config"] for r in rs}}
    for r in sorted(rs, key=lambda r: (size[r["config"]], r["config"], r["op"], r["us_per_step"])):
        sp = f"{r['speedup']:.2f}×" if r["speedup"] else "–"
        rx = f"{r['roofline_xla']:.3f}" if r["roofline_xla"] else "–"
        fl = (f"{r['floor_us']:.2f} | {r['floor']:.3f}" if r["floor"] is not None else "– | –")
        th = r.get("threads")
        lines.append(f"| {r['config']} | {r['op']} | {r['label']} | {r['us_per_step']:.1f} | {sp} "
                     f"| {r['gflops']:.3f} | {r['roofline']:.3f} | {rx} | {fl} | {r['compile_s']:.2f} "
                     f"| {r.get('traces', '')} | {'' if th is None else th} |")
    lines += (floor_section(rs, data) + gap_section(data) + threads_section(rs)
              + loop_section(rs))
    # the headline targets: each mirror's article optimize per step over the reference's
    targets = [r for r in rs if r["op"] == "optimize" and r["backend"] != reference_backend()]
    if targets:
        lines += ["", "Article `optimize` per step, speed-up over `reference.optimize` "
                  "(same run; paired: median of alternating reference/mirror rounds):", "",
                  "| config | dtype | backend | µs/step | speed-up (medians) | speed-up (paired) |",
                  "|---|---|---|---:|---:|---:|"]
        for r in sorted(targets, key=lambda r: (r["config"], -(r["speedup"] or 0))):
            pr = f"{r['paired_speedup']:.2f}×" if r.get("paired_speedup") else "–"
            sp = f"{r['speedup']:.2f}×" if r["speedup"] else "–"  # no reference in a --select run
            lines.append(f"| {r['config']} | {r['dtype']} | {r['backend']} "
                         f"| {r['us_per_step']:.2f} | {sp} | {pr} |")
    lines += ["", "Targets:", ""] + [f"- {t}" for t in check_targets(rs) + check_targets_round2(rs, gap_rows(data))]
    return "\n".join(lines)


def _per_step_rows(rs):
    """The rows comparable per training step: one step, or a loop's steps."""
    return [r for r in rs if r["op"] in ("step", "loop", "optimize")]


def floor_section(rs, data):
    """Per config: the floor of one step and of one optimize iteration, where it goes,
    and every backend's best fraction of it (any variant, per step)."""
    rates = data["machine_info"].get("floor")
    rows_ = [r for r in _per_step_rows(rs) if r["floor"] is not None]
    if not rates or not rows_:
        return ["", "Compute floor: not measured by this run (netparity.floor)."]
    backends = list(dict.fromkeys(r["backend"] for r in rs))
    out = ["", "Compute floor (netparity.floor: arithmetic at the matmul peak + measured "
           "tanh/sigmoid/softmax/cost rates, the best of every backend; no memory traffic, no "
           "call overhead): µs per step, and each backend's best fraction of it (floor / "
           "measured; 1 = at the floor):", "",
           "| config | op | floor µs/step | arithmetic / transcendental µs | "
           + " | ".join(backends) + " |", "|---|---|---:|---:|" + "---:|" * len(backends)]
    size = {c: _size_key(rs, c) for c in {r["config"] for r in rs}}
    keys = sorted({(r["config"], "optimize" if r["op"] == "optimize" else "step") for r in rows_},
                  key=lambda k: (size[k[0]], k[0], k[1]))
    for config, kind in keys:
        mine = [r for r in rows_ if r["config"] == config
                and (r["op"] == "optimize") == (kind == "optimize")]
        r0 = mine[0]
        dims = tuple(r0["dims"])
        output = r0.get("output") or ("softmax" if dims[-1] > 1 else "sigmoid")
        parts = floor.breakdown(floor.step_ops(dims, r0["m"], "optimize" if kind == "optimize" else "step",
                                               output=output), r0["dtype"], rates)
        arith = parts.pop("arithmetic")
        best = {b: max((r["floor"] for r in mine if r["backend"] == b), default=None) for b in backends}
        cells = " | ".join(f"{best[b]:.3f}" if best[b] else "–" for b in backends)
        floor_us = arith + sum(parts.values())
        out.append(f"| {config} | {kind} | {1e6 * floor_us:.2f} | {1e6 * arith:.2f} / "
                   f"{1e6 * sum(parts.values()):.2f} | {cells} |")
    return out


GAP_DIMS = (2, 4, 1)  # the article's network, on which the backends' floor_gap sweeps


def gap_rows(data):
    """Per (backend, dtype) of the run's floor_gap sweeps: the fixed cost per step and the
    cost per example (least squares over the sweep), against the floor's cost per example
    on all cores and on one (a step this small runs on one thread: splitting 400 columns
    over cores costs more in synchronisation than it saves)."""
    rates = data["machine_info"].get("floor")
    out = []
    for backend, per_dtype in (data["machine_info"].get("floor_gap") or {}).items():
        for dtype, g in per_dtype.items():
            f = [floor.floor_seconds(floor.step_ops(GAP_DIMS, m, "loop", steps=1), dtype, rates)
                 for m in (400, 1600)] if rates else [None, None]
            per_col = None if None in f else (f[1] - f[0]) / 1200
            cores = (rates or {}).get("cores", 1)
            at400 = dict(zip(g["columns"], g["seconds_per_step"])).get(400)
            out.append({"backend": backend, "dtype": dtype, "us_at_400": at400 and 1e6 * at400,
                        "fixed_us": 1e6 * g["fixed_seconds"], "kernels": g["kernels"],
                        "ns_per_column": 1e9 * g["seconds_per_column"],
                        "floor_ns_per_column": per_col and 1e9 * per_col,
                        "floor_ns_per_column_one_core": per_col and 1e9 * per_col * cores,
                        "floor_us_at_400": f[0] and 1e6 * f[0], "cores": cores,
                        "measured": g.get("measured"), "load": g.get("load"),
                        "columns": g["columns"]})
    return out


def gap_section(data):
    """What stands between the whole-loop path and the compute floor at planar size."""
    rows_ = gap_rows(data)
    if not rows_:
        return []
    out = ["", "What stands between the whole-loop path (scan) and the floor at planar size: "
           "its time per step over a sweep of the batch width m (2-4-1 net, m = "
           + ", ".join(map(str, rows_[0]["columns"])) + "), split by least squares into a fixed cost per step (the kernels XLA dispatches "
           "one after another, the loop) and a cost per example, against the floor's cost per "
           "example on all cores and on the one core a step this small runs on:", "",
           "| backend | dtype | µs/step at m = 400 | floor µs (all cores) | fixed µs/step | kernels/step "
           "| µs per kernel | ns per example | floor ns per example (all cores / one core) "
           "| per example ÷ one-core floor |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows_:
        fl = r["floor_ns_per_column"]
        out.append(f"| {r['backend']} | {r['dtype']} | {r['us_at_400']:.2f} | "
                   f"{r['floor_us_at_400']:.2f} | {r['fixed_us']:.2f} | {r['kernels']} | "
                   f"{r['fixed_us'] / r['kernels']:.3f} | {r['ns_per_column']:.2f} | "
                   f"{fl:.2f} / {r['floor_ns_per_column_one_core']:.2f} | "
                   f"{r['ns_per_column'] / r['floor_ns_per_column_one_core']:.2f}× |"
                   if fl else f"| {r['backend']} | {r['dtype']} | – | – | – | – | – | – | – | – |")
    when = sorted({(r["measured"], r["load"]) for r in rows_ if r["measured"]})
    if when:
        out += ["", "Sweep measured " + "; ".join(
            f"{m} (load average {load:.1f})" if load is not None else m for m, load in when)
            + ", with the run's floor rates."]
    out += ["", "Reading it: one thread can reach at most 1/cores of an all-cores floor, so a "
            "single-threaded step is at best 1/cores of it; the fixed cost is paid per "
            "step whatever m is (at m = 400 it is the share the floor does not model: "
            "dispatching each kernel); the per-example cost above the one-core floor is the "
            "code XLA generates for the arithmetic and transcendentals (its tanh, exp and "
            "log1p against the best measured rates)."]
    return out


def threads_section(rs):
    """What the thread policy changes: each ``-cores`` variant (one thread per core)
    against its own variant run at the policy's count, per config."""
    pairs = []
    for r in rs:
        if not r["variant"].endswith("-cores"):
            continue
        base = next((b for b in rs if b["backend"] == r["backend"] and b["op"] == r["op"]
                     and b["config"] == r["config"] and b["device"] == r["device"]
                     and b["variant"] == r["variant"][:-len("-cores")]), None)
        if base:
            pairs.append((base, r))
    if not pairs:
        return []
    out = ["", "Thread policy (netparity.numerics.thread_policy: one intra-op thread below "
           "2e8 FLOPs per step): the same step at the policy's count and at one thread per "
           "core (two benchmarks, not interleaved):", "",
           "| config | backend/variant | policy threads | µs/step | cores | µs/step | cores / policy |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for base, r in pairs:
        out.append(f"| {base['config']} | {base['label']} | {base.get('threads')} "
                   f"| {base['us_per_step']:.1f} | {r.get('threads')} | {r['us_per_step']:.1f} "
                   f"| {r['us_per_step'] / base['us_per_step']:.2f}× |")
    return out


def loop_pairs(rs):
    """(eager loop row, whole-loop compiled row) per backend and config: ``manual`` and
    ``scan`` loops of the same backend."""
    out = []
    for r in rs:
        if r["op"] == "loop" and r["variant"] == "scan":
            base = next((b for b in rs if b["backend"] == r["backend"] and b["op"] == "loop"
                         and b["config"] == r["config"] and b["device"] == r["device"]
                         and b["variant"] == "manual"), None)
            if base:
                out.append((base, r))
    return out


def loop_section(rs):
    pairs = loop_pairs(rs)
    if not pairs:
        return []
    out = ["", "Whole loop compiled (scan) against the eager loop, per step (compile time "
           "apart, in the compile s column); paired: median of alternating rounds of the two "
           "loops, eager / scan:", "",
           "| config | backend | eager µs/step | scan µs/step | eager / scan (medians) "
           "| eager / scan (paired) | scan compile s |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for base, r in pairs:
        pr = f"{r['paired_speedup']:.2f}×" if r.get("paired_speedup") else "–"
        out.append(f"| {r['config']} | {r['backend']} | {base['us_per_step']:.1f} "
                   f"| {r['us_per_step']:.1f} | {base['us_per_step'] / r['us_per_step']:.2f}× "
                   f"| {pr} | {r['compile_s']:.1f} |")
    return out


def loop_ratio(base, r):
    """eager / scan per step: the paired ratio where the run has one, else the medians'."""
    return r.get("paired_speedup") or base["us_per_step"] / r["us_per_step"]


FAST_PATH_SPEEDUP = 3.0  # every mirror's optimize at planar size, paired (issue 16)
FLOOR_WITHIN = 2.0       # whole-loop variants at planar size, of the compute floor


def check_targets_round2(rs, gaps=()):
    """Issue 16's targets, each a line saying met / MISSED / not evaluated with its numbers;
    a missed floor target says what stands in the way where the run measured it (gaps:
    gap_rows)."""
    out = []
    opt = [r for r in rs if r["op"] == "optimize" and r["backend"] != reference_backend()
           and r["config"].startswith("planar")]
    for backend in dict.fromkeys(r["backend"] for r in opt):
        for r in sorted((r for r in opt if r["backend"] == backend), key=lambda r: r["dtype"]):
            ratio = r.get("paired_speedup") or r["speedup"]
            kind = "paired" if r.get("paired_speedup") else "ratio of medians"
            if ratio is None:
                continue
            out.append(f"{'met' if ratio >= FAST_PATH_SPEEDUP else 'MISSED'}: {backend} `optimize` "
                       f"at {r['config']}: {ratio:.1f}× the reference per step ({kind}); "
                       f"target ≥ {FAST_PATH_SPEEDUP:g}×")
    scans = [r for r in rs if r["op"] == "loop" and r["variant"] == "scan"
             and r["config"].startswith("planar") and r["floor"] is not None]
    for r in scans:
        ok = r["floor"] >= 1 / FLOOR_WITHIN
        out.append(f"{'met' if ok else 'MISSED'}: {r['label']} at {r['config']}: "
                   f"{r['us_per_step']:.2f} µs/step, {r['floor']:.2f} of the compute floor "
                   f"({r['floor_us']:.2f} µs); target within {FLOOR_WITHIN:g}× (≥ {1 / FLOOR_WITHIN:.2f})"
                   + ("" if ok else gap_blockers(r, gaps)))
    pairs = loop_pairs(rs)
    if pairs:
        slower = [f"{r['label']} at {r['config']} (eager / scan {loop_ratio(b, r):.2f}×)"
                  for b, r in pairs if loop_ratio(b, r) < 1]
        out.append(f"{'MISSED' if slower else 'met'}: the whole-loop compiled path no slower than "
                   f"the eager loop per step at every benchmarked size ({len(pairs)} configs; "
                   f"paired ratios where measured)"
                   + (f"; slower: {', '.join(slower)}" if slower else ""))
    return out


def gap_blockers(r, gaps):
    """"; in the way: ..." for a missed floor target, from the backend's gap sweep."""
    g = next((g for g in gaps if g["backend"] == r["backend"] and g["dtype"] == r["dtype"]
              and g["floor_ns_per_column"]), None)
    if g is None:
        return ""
    return (f"; in the way (gap sweep, best of its runs: {g['us_at_400']:.2f} µs/step at m = 400, "
            f"where this benchmark's median adds the run's load): one thread reaches at most 1/{g['cores']} of the "
            f"all-cores floor; {g['fixed_us']:.2f} µs/step of fixed cost ({g['kernels']} kernels "
            f"dispatched one after another, {g['fixed_us'] / g['kernels']:.2f} µs each); and "
            f"{g['ns_per_column']:.1f} ns per example against the one-core floor's "
            f"{g['floor_ns_per_column_one_core']:.1f} ({g['ns_per_column'] / g['floor_ns_per_column_one_core']:.2f}×: "
            f"XLA's generated arithmetic and transcendentals)")


def _bytes_key(rs, config):
    return min(r["bytes"] / r["steps"] for r in rs if r["config"] == config)


def _size_key(rs, config):
    return min(r["flops"] / r["steps"] for r in rs if r["config"] == config)


TARGET_SPEEDUP = {"float64": 10.0, "float32": 14.0}
ROOFLINE_SLACK = 1.5


def check_targets(rs):
    """The performance targets, each as a line saying met / MISSED with its numbers."""
    out = []
    opt = [r for r in rs if r["op"] == "optimize" and r["backend"] != reference_backend()
           and r["config"].startswith("planar") and r["speedup"]]
    for dtype, want in TARGET_SPEEDUP.items():
        mine = [r for r in opt if r["dtype"] == dtype]
        if not mine:
            continue
        best = max(mine, key=lambda r: r.get("paired_speedup") or r["speedup"])
        paired = best.get("paired_speedup")
        # judged on the paired ratio where there is one: interleaved rounds see the same
        # machine load in both halves, where two medians taken a minute apart need not
        # (on the shared 2-core machine the two disagree by up to 40 %)
        ratio = paired if paired is not None else best["speedup"]
        out.append(f"{'met' if ratio >= want else 'MISSED'}: planar {dtype}, fastest mirror "
                   f"({best['backend']}) `optimize` "
                   + (f"{paired:.1f}× paired, " if paired is not None else "")
                   + f"{best['speedup']:.1f}× ratio of medians; target ≥ {want:g}×")
    train = [r for r in rs if r["op"] in ("step", "loop")]
    if train:
        # largest = most memory traffic per step: the memory-roofline target's config
        largest = max({r["config"] for r in train}, key=lambda c: _bytes_key(train, c))
        if _bytes_key(train, largest) < 1e9:
            out.append(f"not evaluated: the memory-roofline target needs a large config "
                       f"(largest here: {largest}; run the full size)")
        else:
            best = min((r for r in train if r["config"] == largest),
                       key=lambda r: r["us_per_step"])
            fracs = [f for f in (best["roofline"], best["roofline_xla"]) if f]
            ok = max(fracs) >= 1 / ROOFLINE_SLACK
            xla = (f", {best['roofline_xla']:.2f} with XLA's byte count"
                   if best["roofline_xla"] else "")
            out.append(f"{'met' if ok else 'MISSED'}: largest config {largest}, fastest variant "
                       f"{best['label']} ({best['op']}, {best['us_per_step'] / 1e3:.1f} ms/step) "
                       f"at {best['roofline']:.2f} of its roofline (streaming model){xla}; "
                       f"target ≥ {1 / ROOFLINE_SLACK:.2f} (within {ROOFLINE_SLACK}×)")
    traced = [r for r in rs if r.get("traces") is not None]
    if traced:
        bad = [r["name"] for r in traced if r["traces"] > 1]
        out.append(f"{'MISSED' if bad else 'met'}: compiled once (JAX traces, torch.compile "
                   f"frames) per benchmark "
                   f"{sorted({r['traces'] for r in traced})} (0 = reused an earlier benchmark's "
                   f"compile){'; over 1: ' + ', '.join(bad) if bad else ''}")
    return out


def plot(data, folder):
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    # one training step per variant; the whole-loop variants (jax-scan) only have a loop,
    # whose per-step time is the comparable number
    rs = [r for r in rows(data) if r["op"] == "step" or (r["op"] == "loop" and r["variant"] == "scan")]
    paths = []
    by_label = defaultdict(list)
    for r in rs:
        by_label[r["label"]].append(r)
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (label, group) in enumerate(sorted(by_label.items())):
        colour = f"C{i}"
        for dtype, style in (("float64", "o-"), ("float32", "s--")):
            mine = sorted((r for r in group if r["dtype"] == dtype), key=lambda r: r["flops"] / r["steps"])
            if mine:  # x: FLOPs of one step (a loop row's flops cover all its steps)
                ax.loglog([r["flops"] / r["steps"] for r in mine], [r["us_per_step"] for r in mine],
                          style, color=colour, label=f"{label} {dtype}")
    ax.set(xlabel="FLOPs per step (model)", ylabel="median µs per step",
           title="Training step: time vs size (solid float64, dashed float32)")
    ax.legend(fontsize=8)
    paths.append(_save(fig, folder, "time_vs_size.png", data))
    configs = sorted({r["config"] for r in rs}, key=lambda c: min(r["flops"] for r in rs if r["config"] == c))
    for key, ylabel, name, log in [("speedup", "speed-up over numpy reference", "speedup.png", True),
                                   ("roofline", "fraction of roofline bound", "roofline.png", True),
                                   ("floor", "fraction of the compute floor", "floor.png", True)]:
        if not any(r.get(key) for r in rs):
            continue  # a run saved without the floor's rates has no floor plot
        fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(configs)), 5))
        labels = sorted(by_label)
        width = 0.8 / max(len(labels), 1)
        for i, label in enumerate(labels):
            vals = {r["config"]: r[key] for r in by_label[label]}
            ax.bar([j + i * width for j in range(len(configs))],
                   [vals.get(c) or 0 for c in configs], width, label=label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(configs))])
        ax.set_xticklabels(configs, rotation=20, ha="right", fontsize=7)
        if log:
            ax.set_yscale("log")
        ax.set(ylabel=ylabel, title=f"Training step: {ylabel}")
        ax.legend(fontsize=7)
        paths.append(_save(fig, folder, name, data))
    return paths


def _save(fig, folder, name, data):
    import matplotlib.pyplot as plt
    path = os.path.join(folder, name)
    # every figure says where it was measured (a PNG travels without its table)
    fig.text(0.005, 0.005, "measured " + provenance(data, short=True), fontsize=6, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fileio.save_figure(fig, path, dpi=100)  # atomic: never a truncated PNG
    plt.close(fig)
    return path


def compare(old, new):
    """NEW median / OLD median per benchmark present in both (< 1: NEW is faster)."""
    o = {b["fullname"]: b["stats"]["median"] for b in old["benchmarks"]}
    lines = ["| benchmark | old µs | new µs | new/old |", "|---|---:|---:|---:|"]
    for b in new["benchmarks"]:
        if b["fullname"] in o:
            t0, t1 = o[b["fullname"]], b["stats"]["median"]
            lines.append(f"| {b['name']} | {1e6 * t0:.1f} | {1e6 * t1:.1f} | {t1 / t0:.2f} |")
    return "\n".join(lines)
