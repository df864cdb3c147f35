"""Mutation testing of the backend packages: does the test suite fail on each small bug?

Small AST-level bugs are planted in a backend package, one at a time, and the default
test command must fail with an assertion on each.

A mutant is one edit of one expression of ``reference/``, ``torch_impl/`` or ``jax_impl/``
(the packages of netparity.backends.REGISTRY):

    binop      + -> -, - -> +, * -> /, / -> *, @ -> *, ** -> *, // -> /, % -> //
    compare    > -> >=, >= -> >, < -> <=, <= -> <, == -> !=, != -> ==, in <-> not in,
               is <-> is not
    negate     -x -> x
    constant   an int n -> n + 1; a float c -> 2c (0.0 -> 1.0)
    reduce     sum -> mean, mean -> sum (np./torch./jnp./method calls)
    transpose  x.T -> x
    keepdims   keepdims=True / keepdim=True removed
    swap       the two operands of dot, matmul, _matmul_nt, power, subtract, divide; the two
               branches of where

Strings, f-strings and decorators are never mutated. Each mutant is spliced into the
source text (only the mutated expression changes) and the result is checked to parse to
the original AST with exactly that node replaced. Its id (``file:function:hash``) does
not change when unrelated code moves.

Each run works in a scratch copy of the tree (the working tree is never written): for
every mutant the one file is rewritten there, the default test command runs on the
package's test files (``-m "not slow" -p no:randomly -p no:cacheprovider -n 0``, plus
``--backend NAME`` for a mirror), and the result is classified from what the pytest
plugin tools/mutation_plugin.py recorded:

    KILLED    pytest exit 1 and a test failed with an assertion (AssertionError, e.g.
              ConformanceError, or pytest's Failed from pytest.raises / pytest.fail)
    SURVIVED  every test passed
    CRASH     collection/import error, or every failing test raised something else (the
              run goes on after such a test, so that a crash does not hide a later
              assertion)
    TIMEOUT   the run took longer than --timeout (default: 3 x the control's time + 60 s)
    EQUIVALENT  listed in docs/mutation_equivalents.txt with a reason; not run

Crashes and timeouts are never counted as kills. Before the mutants of a package, a
control mutant (an expression replaced by its own unparsed text: the same AST) runs the
same tests; it must survive, otherwise the suite or this tool is broken and the run exits
with status 2. Its per-test times order the mutants' runs: fastest tests first, so a
mutant usually dies in a cheap test (the run stops at the first assertion failure).

    python tools/mutate.py --list [--package torch_impl]
    python tools/mutate.py --package torch_impl --sample 40 --seed 1 --json out.json
    python tools/mutate.py --ids ID [ID ...] --tests tests/test_public_api.py
    python tools/mutate.py --rescore old.json --json new.json   # after editing the equivalents
    python tools/mutate.py --rescore a.json b.json --json all.json --markdown report.md
    python tools/mutate.py --update old.json --tests ... --json new.json   # after adding tests

``--rescore`` merges runs of different packages into one report; ``--markdown`` writes
it as a page (docs/mutation.md). ``--update`` re-runs, with the current tests, the
mutants of an earlier run that were not killed (and the control), and keeps the kills:
a test that failed with an assertion still does, so a kill cannot be undone by adding
tests (the run stops at its first assertion failure, whatever runs after it).

Exit status: 0 when every mutant run was killed (or equivalent), 1 when some survived,
crashed or timed out, 2 when a control mutant did not survive.
"""
import argparse
import ast
import copy
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from netparity import fileio  # noqa: E402  every result file written atomically

EQUIVALENTS = os.path.join(ROOT, "docs", "mutation_equivalents.txt")
PLUGIN = "mutation_plugin"  # tools/mutation_plugin.py, imported by the pytest it starts

BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
              ast.MatMult: ast.Mult, ast.Pow: ast.Mult, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv}
COMPARE_SWAP = {ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt,
                ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                ast.Is: ast.IsNot, ast.IsNot: ast.Is}
REDUCE_SWAP = {"sum": "mean", "mean": "sum"}
# non-commutative two-operand functions whose operands are cheap to swap; where(c, a, b)
# swaps its branches. Commutative ones (multiply, maximum) would give equivalent mutants.
SWAP_FUNCS = {"dot", "matmul", "_matmul_nt", "power", "subtract", "divide"}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: "@",
          ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%"}


def backend_packages():
    """package -> backend name, from the registry (the one list of backends)."""
    sys.path.insert(0, ROOT)
    from netparity.backends import BUILTIN, REGISTRY
    return {spec.module: name for name, spec in REGISTRY.items() if name in BUILTIN}


@dataclass
class Mutant:
    id: str
    package: str
    path: str          # relative to the repository root
    qualname: str      # enclosing function/class, "<module>" at top level
    line: int
    kind: str
    original: str      # source text of the expression
    replacement: str   # source text spliced in
    start: int = field(default=0, repr=False)   # character offsets of the splice
    end: int = field(default=0, repr=False)

    def describe(self):
        return f"{self.path}:{self.line} {self.qualname}: {_short(self.original)} -> {_short(self.replacement)}"


def _short(text, n=70):
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 3] + "..."


# ------------------------------------------------------------------ finding mutants

def _offsets(source):
    """Character offset of (line, utf-8 byte column), the way ast reports positions."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def at(lineno, col):
        line = lines[lineno - 1]
        return starts[lineno - 1] + len(line.encode()[:col].decode())
    return at


def _call_name(call):
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _is_text_or_sequence(node):
    return (isinstance(node, (ast.JoinedStr, ast.Tuple, ast.List))
            or isinstance(node, ast.Constant) and isinstance(node.value, str))


def _alternatives(node):
    """(kind, mutated copy of node) for every mutation of this node itself."""
    out = []
    operands = ((node.left, node.right) if isinstance(node, ast.BinOp) else
                (node.target, node.value) if isinstance(node, ast.AugAssign) else ())
    if any(_is_text_or_sequence(x) for x in operands):
        return out  # "d" + k, names + ("softmax",): concatenation, not arithmetic
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINOP_SWAP:
        new = copy.deepcopy(node)
        new.op = BINOP_SWAP[type(node.op)]()
        out.append((f"binop {SYMBOL[type(node.op)]} -> {SYMBOL[type(new.op)]}", new))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in COMPARE_SWAP:
                new = copy.deepcopy(node)
                new.ops[i] = COMPARE_SWAP[type(op)]()
                out.append((f"compare {type(op).__name__} -> {type(new.ops[i]).__name__}", new))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        out.append(("negate dropped", copy.deepcopy(node.operand)))
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        v = node.value
        new_v = v + 1 if isinstance(v, int) else (2 * v if v != 0 else 1.0)
        out.append((f"constant {v!r} -> {new_v!r}", ast.Constant(new_v)))
    elif isinstance(node, ast.Attribute) and node.attr == "T" and isinstance(node.ctx, ast.Load):
        out.append(("transpose dropped", copy.deepcopy(node.value)))
    elif isinstance(node, ast.Call):
        name = _call_name(node)
        if isinstance(node.func, ast.Attribute) and name in REDUCE_SWAP:
            new = copy.deepcopy(node)
            new.func.attr = REDUCE_SWAP[name]
            out.append((f"reduce {name} -> {REDUCE_SWAP[name]}", new))
        for i, kw in enumerate(node.keywords):
            if kw.arg in ("keepdims", "keepdim"):
                new = copy.deepcopy(node)
                del new.keywords[i]
                out.append((f"{kw.arg} removed", new))
        pos = [a for a in node.args if not isinstance(a, ast.Starred)]
        if len(pos) == len(node.args):
            if name in SWAP_FUNCS and len(pos) == 2:
                new = copy.deepcopy(node)
                new.args = [new.args[1], new.args[0]]
                out.append((f"swap {name} operands", new))
            elif name == "where" and len(pos) == 3:
                new = copy.deepcopy(node)
                new.args = [new.args[0], new.args[2], new.args[1]]
                out.append(("swap where branches", new))
    return out


class _Finder(ast.NodeVisitor):
    """Collects (qualname, node) of every mutable node, skipping strings, f-strings,
    docstrings, decorators and annotations."""

    def __init__(self):
        self.scope, self.found = [], []

    def _visit_def(self, node):
        self.scope.append(node.name)  # default values belong to the function's signature
        for arg in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(arg)
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_def

    def visit_ClassDef(self, node):
        self.scope.append(node.name)
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    def visit_JoinedStr(self, node):
        pass

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def generic_visit(self, node):
        if _alternatives(node):
            self.found.append((".".join(self.scope) or "<module>", node))
        super().generic_visit(node)


def _same_position(a, b):
    return (type(a) is type(b) and a.lineno == b.lineno and a.col_offset == b.col_offset
            and a.end_lineno == b.end_lineno and a.end_col_offset == b.end_col_offset)


class _Replace(ast.NodeTransformer):
    def __init__(self, target, new):
        self.target, self.new = target, new

    def visit(self, node):
        if hasattr(node, "lineno") and _same_position(node, self.target):
            return self.new
        return super().visit(node)


def _splice(source, node, new, at):
    """(start, end, text): the node's source span and the replacement text."""
    start = at(node.lineno, node.col_offset)
    end = at(node.end_lineno, node.end_col_offset)
    text = ast.unparse(new)
    if isinstance(node, ast.expr):
        text = f"({text})"
    return start, end, text


def _check_splice(source, tree, node, new, start, end, text):
    """The spliced source parses to the original tree with exactly ``node`` replaced."""
    want = ast.dump(_Replace(node, new).visit(copy.deepcopy(tree)))
    got = ast.dump(ast.parse(source[:start] + text + source[end:]))
    if got != want:
        raise RuntimeError(f"splice at line {node.lineno} does not give the intended AST")


def _mutant_id(path, qualname, original, text, nth):
    digest = hashlib.sha1(f"{path}|{qualname}|{' '.join(original.split())}|{text}|{nth}".encode())
    return f"{path}:{qualname}:{digest.hexdigest()[:8]}"


def find_mutants(package, root=ROOT):
    """Every mutant of a package (the files under ``root``), in file and source order."""
    mutants = []
    for name in sorted(os.listdir(os.path.join(root, package))):
        if not name.endswith(".py"):
            continue
        path = f"{package}/{name}"
        with open(os.path.join(root, path), encoding="utf-8") as f:
            source = f.read()
        tree = ast.parse(source)
        at = _offsets(source)
        finder = _Finder()
        finder.visit(tree)
        seen = {}
        for qualname, node in finder.found:
            for kind, new in _alternatives(node):
                start, end, text = _splice(source, node, new, at)
                original = source[start:end]
                _check_splice(source, tree, node, new, start, end, text)
                key = (qualname, " ".join(original.split()), text)
                seen[key] = seen.get(key, 0) + 1
                mutants.append(Mutant(_mutant_id(path, qualname, original, text, seen[key]),
                                      package, path, qualname, node.lineno, kind, original, text,
                                      start, end))
    return mutants


def control_mutant(package, root=ROOT):
    """The package's first binary operation replaced by its own unparsed text: new
    source, same AST. It must survive: if it does not, the run is not measuring the code."""
    for m in find_mutants(package, root):
        if m.kind.startswith("binop") and not m.path.endswith("__init__.py"):
            with open(os.path.join(root, m.path), encoding="utf-8") as f:
                source = f.read()
            tree = ast.parse(source)
            at = _offsets(source)
            node = next(n for n in ast.walk(tree) if isinstance(n, ast.BinOp)
                        and at(n.lineno, n.col_offset) == m.start and at(n.end_lineno, n.end_col_offset) == m.end)
            text = f"({ast.unparse(node)})"
            assert ast.dump(ast.parse(source[:m.start] + text + source[m.end:])) == ast.dump(tree)
            return Mutant(f"{m.path}:{m.qualname}:control", package, m.path, m.qualname, m.line,
                          "control (same AST)", m.original, text, m.start, m.end)
    raise RuntimeError(f"no binary operation in {package} to build the control mutant on")


def load_equivalents(path=EQUIVALENTS):
    """{mutant id: reason} from lines ``ID  reason`` (# starts a comment)."""
    if not os.path.exists(path):
        return {}
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                mid, _, reason = line.partition(" ")
                table[mid] = reason.strip()
    return table


# ------------------------------------------------------------------ running mutants

def copy_tree(dest):
    """The working tree's files (tracked and untracked-not-ignored) into ``dest``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = None
    if listed is None:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".benchmarks"))
        return
    for rel in filter(None, listed):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def test_files(package, backend, tests=None):
    """The default command's test files for a package: every test file for the reference
    (the specification every backend is compared with), every file but the
    reference-only ones (tests/test_reference_*.py) for a mirror."""
    if tests:
        return list(tests)
    names = sorted(n for n in os.listdir(os.path.join(ROOT, "tests"))
                   if n.startswith("test_") and n.endswith(".py"))
    if backend != "numpy":
        names = [n for n in names if not n.startswith("test_reference_")]
    return [f"tests/{n}" for n in names]


def pytest_command(files, backend):
    cmd = [sys.executable, "-m", "pytest", *files, "-q", "-m", "not slow", "-p", "no:randomly",
           "-p", "no:cacheprovider", "-p", PLUGIN, "--no-header", "-W", "ignore::DeprecationWarning"]
    try:
        import xdist  # noqa: F401
        cmd += ["-n", "0"]
    except ImportError:
        pass
    if backend != "numpy":
        cmd += ["--backend", backend]
    return cmd


def run_tests(scratch, cmd, package, order_file, timeout, jax_cache):
    """Run ``cmd`` in the scratch copy; returns (returncode or None on timeout, records, s)."""
    record = os.path.join(os.path.dirname(scratch), "record.jsonl")
    if os.path.exists(record):
        os.unlink(record)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([scratch, os.path.join(scratch, "tools")]),
           "PYTHONDONTWRITEBYTECODE": "1",  # a mutant of the same size and mtime must not hit a stale .pyc
           "MUTATION_RECORD": record, "MUTATION_ORDER": order_file or "", "MUTATION_PACKAGE": package,
           "NETPARITY_JAX_CACHE_DIR": jax_cache}
    t0 = time.perf_counter()
    # a new session: on timeout the whole group goes (torch.compile starts worker processes)
    proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = None
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): take the test run down too
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    seconds = time.perf_counter() - t0
    records = []
    if os.path.exists(record):
        with open(record) as f:
            records = [json.loads(line) for line in f if line.strip()]
    return rc, records, seconds, out.decode(errors="replace")


def classify(rc, records, control=None):
    """(status, detail) from pytest's exit code and the plugin's records."""
    if rc is None:
        return "TIMEOUT", "killed after the time limit"
    summary = next((r for r in reversed(records) if r["kind"] == "summary"), None)
    failures = [r for r in records if r["kind"] == "failure"]
    kills = [r for r in failures if r["assertion"]]
    if rc == 1 and kills:
        first = kills[0]
        return "KILLED", f"{first['nodeid']}: {first['exception'].rsplit('.', 1)[-1]}: {first['message']}"
    if rc == 0 and summary and summary["passed"] > 0:
        detail = f"{summary['passed']} passed"
        if control and summary["skipped"] > control.get("skipped", 0):
            detail += f", {summary['skipped'] - control['skipped']} more skipped than the control"
        return "SURVIVED", detail
    collect = [r for r in records if r["kind"] == "collect_error"]
    if collect:
        return "CRASH", f"collection error in {collect[0]['nodeid']}: {collect[0]['message']}"
    if failures:
        kinds = sorted({f"{r['exception'].rsplit('.', 1)[-1]} ({r['phase']})" for r in failures})
        return "CRASH", f"{len(failures)} failing tests, none by an assertion: {', '.join(kinds)}; " \
                        f"first {failures[0]['nodeid']}: {failures[0]['message']}"
    return "CRASH", f"pytest exit status {rc}, no test failure recorded"


def wilson(k, n, z=1.96):
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(results):
    counts = {s: 0 for s in ("KILLED", "SURVIVED", "CRASH", "TIMEOUT", "EQUIVALENT")}
    for r in results:
        counts[r["status"]] += 1
    decided = counts["KILLED"] + counts["SURVIVED"]
    strict = decided + counts["CRASH"] + counts["TIMEOUT"]
    return {"counts": counts,
            "kill_rate": counts["KILLED"] / decided if decided else None,
            "kill_rate_ci95": wilson(counts["KILLED"], decided),
            "kill_rate_strict": counts["KILLED"] / strict if strict else None,
            "kill_rate_strict_ci95": wilson(counts["KILLED"], strict)}


def package_tests(package, args):
    """The test files given (--tests), else those of the earlier run being updated
    (--update), else None (the default command's)."""
    if args.tests:
        return args.tests
    return (getattr(args, "old_tests", None) or {}).get(package)


def run_package(package, backend, mutants, args, scratch, jax_cache, log):
    """The control, then every mutant of one package, in the scratch copy."""
    files = test_files(package, backend, package_tests(package, args))
    cmd = pytest_command(files, backend)
    order_file = os.path.join(os.path.dirname(scratch), f"order-{package}.json")
    equivalents = load_equivalents(args.equivalents)

    def run(m, timeout, order):
        target = os.path.join(scratch, m.path)
        with open(target, encoding="utf-8") as f:
            original = f.read()
        with open(target, "w", encoding="utf-8") as f:
            f.write(original[:m.start] + m.replacement + original[m.end:])
        try:
            return run_tests(scratch, cmd, package, order, timeout, jax_cache)
        finally:
            with open(target, "w", encoding="utf-8") as f:
                f.write(original)

    control = control_mutant(package, scratch)
    log(f"[{package}] control {control.describe()}")
    rc, records, seconds, out = run(control, args.timeout or 3600, None)
    status, detail = classify(rc, records)
    summary = next((r for r in reversed(records) if r["kind"] == "summary"), {})
    pkg_file = summary.get("package_file")
    if pkg_file and not os.path.abspath(pkg_file).startswith(os.path.abspath(scratch)):
        status, detail = "CRASH", f"{package} was imported from {pkg_file}, not the scratch copy"
    control_result = {**asdict(control), "status": status, "detail": detail, "seconds": round(seconds, 1),
                      "passed": summary.get("passed", 0), "skipped": summary.get("skipped", 0)}
    log(f"[{package}] control {status} in {seconds:.0f} s: {detail}")
    if status != "SURVIVED":
        log(out[-3000:])
        return control_result, []
    fileio.write_json(order_file, summary["durations"])
    timeout = args.timeout or 3 * seconds + 60
    results = []
    for i, m in enumerate(mutants, 1):
        entry = {k: v for k, v in asdict(m).items() if k not in ("start", "end")}
        if m.id in equivalents:
            entry.update(status="EQUIVALENT", detail=equivalents[m.id], seconds=0.0)
        else:
            rc, records, seconds, out = run(m, timeout, order_file)
            status, detail = classify(rc, records, control_result)
            entry.update(status=status, detail=detail, seconds=round(seconds, 1))
        results.append(entry)
        log(f"[{package} {i}/{len(mutants)}] {entry['status']:<10} {entry['seconds']:6.1f} s  "
            f"{m.id}  {m.describe()}\n        {entry['detail'][:300]}")
    return control_result, results


def print_summary(report, log=print):
    for package, p in report["packages"].items():
        c = p["counts"]
        rate = "n/a" if p["kill_rate"] is None else f"{100 * p['kill_rate']:.1f} %"
        lo, hi = p["kill_rate_ci95"]
        log(f"{package}: control {p['control']['status']}; {c['KILLED']} killed, {c['SURVIVED']} survived, "
            f"{c['CRASH']} crashed, {c['TIMEOUT']} timed out, {c['EQUIVALENT']} equivalent; kill rate "
            f"{rate} (95 % CI {100 * lo:.0f}-{100 * hi:.0f} %) of {p['sampled']} sampled from {p['population']}")


def apply_equivalents(report, equivalents):
    """A listed mutant becomes EQUIVALENT whatever it did (its run's status is kept in
    ``ran``); the package summaries are recomputed."""
    for m in report["mutants"]:
        if m["id"] in equivalents and m["status"] != "EQUIVALENT":
            m["ran"], m["status"], m["detail"] = m["status"], "EQUIVALENT", equivalents[m["id"]]
    for package, p in report["packages"].items():
        p.update(summarize([m for m in report["mutants"] if m["package"] == package]))
    return report


def merge(reports):
    """One report of runs of different packages (a package in two runs: the later wins)."""
    out = {"command": [], "python": reports[0].get("python"), "packages": {}, "mutants": []}
    for r in reports:
        out["command"] += r["command"] if isinstance(r["command"], list) else [r["command"]]
        for package, p in r["packages"].items():
            out["packages"][package] = p
            out["mutants"] = [m for m in out["mutants"] if m["package"] != package]
            out["mutants"] += [m for m in r["mutants"] if m["package"] == package]
    return out


def rescore(paths, out, equivalents, markdown=None):
    """Earlier runs with the current equivalents table applied, merged into one report."""
    reports = []
    for path in paths:
        with open(path) as f:
            reports.append(json.load(f))
    report = apply_equivalents(merge(reports) if len(reports) > 1 else reports[0], equivalents)
    report["rescored_with"] = os.path.relpath(EQUIVALENTS, ROOT)
    if out:
        fileio.write_json(out, report)
    if markdown:
        write_markdown(markdown, report)
    print_summary(report)
    return 0


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _sample_of(report, package):
    """(seed, tests) of a package's sampled run, from its command line when the JSON
    predates those fields."""
    p = report["packages"][package]
    seed, tests = p.get("seed"), p.get("tests")
    commands = report["command"] if isinstance(report["command"], list) else [report["command"]]
    for c in commands:
        argv = c.split()
        if "--package" in argv and package in argv and "--sample" in argv:
            if seed is None:
                seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
            if tests is None and "--tests" in argv:
                tests = [a for a in argv[argv.index("--tests") + 1:] if a.startswith("tests/")]
                tests = tests[:next((i for i, a in enumerate(tests) if a.startswith("--")), len(tests))]
    return seed, tests


def markdown(report):
    """The report as a page: a table per package, then every mutant not killed, the
    crashes and timeouts apart, and the equivalents with their reasons."""
    commands = report["command"] if isinstance(report["command"], list) else [report["command"]]
    lines = ["# Mutation testing", "",
             "Generated by `tools/mutate.py` from `docs/mutation.json`; do not edit by hand. "
             "How the mutants are made and classified: the docstring of tools/mutate.py. "
             "A mutant is KILLED only when a test fails with an assertion; crashes and "
             "timeouts are listed apart and never counted as kills. The kill rate is "
             "killed / (killed + survived), the non-equivalent mutants that ran to a verdict; "
             "the strict rate also counts crashes and timeouts as not killed. Each mutant runs the "
             "default test command (`-m \"not slow\"`, with `--backend NAME` for a mirror) on the "
             "test files listed per package below; where these are fewer than the default "
             "command's files, a survivor might still be killed by the others, so the kill rate "
             "is a lower bound.", "",
             "Regenerate after editing docs/mutation_equivalents.txt: `python tools/mutate.py "
             "--rescore docs/mutation.json --json docs/mutation.json --markdown docs/mutation.md`.",
             "", "Commands of the runs:", ""]
    lines += [f"    {c}" for c in commands]
    lines += ["", "| package | population | sampled (seed) | killed | survived | crashed | timed out "
              "| equivalent | kill rate (95 % CI) | strict | control | run time |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|"]
    for package, p in report["packages"].items():
        c = p["counts"]
        lo, hi = p["kill_rate_ci95"]
        seed, _ = _sample_of(report, package)
        lines.append(f"| {package} | {p['population']} | {p['sampled']}"
                     f"{'' if seed is None else f' ({seed})'} | {c['KILLED']} | {c['SURVIVED']} "
                     f"| {c['CRASH']} | {c['TIMEOUT']} | {c['EQUIVALENT']} | {_pct(p['kill_rate'])} "
                     f"({100 * lo:.0f}-{100 * hi:.0f} %) | {_pct(p['kill_rate_strict'])} "
                     f"| {p['control']['status']} ({p['control'].get('passed', 0)} tests passed) "
                     f"| {p.get('seconds', 0):.0f} s |")
    for package, p in report["packages"].items():
        _, tests = _sample_of(report, package)
        if tests:
            lines += ["", f"Tests run for {package} ({p['control'].get('passed', 0)} passed on the control "
                          f"in {p['control'].get('seconds', 0):.0f} s): " + ", ".join(f"`{t}`" for t in tests)]
        if p.get("updated_from"):
            rc = p.get("rerun_control", {})
            lines += ["", f"{package}: after tests were added, {p['updated_from']}, on "
                          + ", ".join(f"`{t}`" for t in p.get("rerun_tests", []))
                          + f" (control {rc.get('status')}, {rc.get('passed', 0)} passed); such a "
                          "mutant's first verdict is in the JSON (`first_run`)."]
    sections = [("SURVIVED", "Survived"), ("CRASH", "Crashed (not kills)"),
                ("TIMEOUT", "Timed out (not kills)"), ("EQUIVALENT", "Equivalent mutants"),
                ("KILLED", "Killed")]
    for status, title in sections:
        rows = [m for m in report["mutants"] if m["status"] == status]
        lines += ["", f"## {title} ({len(rows)})", ""]
        if not rows:
            lines.append("None.")
            continue
        what = "reason" if status == "EQUIVALENT" else "detail"
        lines += [f"| mutant | where | change | {what} |", "|---|---|---|---|"]
        for m in rows:
            lines.append(f"| `{m['id']}` | {m['path']}:{m['line']} {_cell(m['qualname'])} "
                         f"| `{_cell(_short(m['original'], 60))}` → `{_cell(_short(m['replacement'], 60))}` "
                         f"| {_cell(m['detail'])[:200]} |")
    return "\n".join(lines) + "\n"


def updated(old, new, old_path):
    """``old`` with the re-run mutants' results of ``new`` (and its controls)."""
    rerun = {m["id"]: m for m in new["mutants"]}
    report = dict(old)
    report["command"] = ([old["command"]] if isinstance(old["command"], str) else old["command"]) + [new["command"]]
    report["mutants"] = []
    for m in old["mutants"]:
        if m["id"] in rerun:
            m = {**rerun[m["id"]], "first_run": {"status": m.get("ran", m["status"]), "detail": m["detail"]}}
        report["mutants"].append(m)
    report["packages"] = {}
    for package, p in old["packages"].items():
        q = new["packages"].get(package)
        report["packages"][package] = {
            **p,
            "tests": _sample_of(old, package)[1],
            "seconds": p.get("seconds", 0) + (q["seconds"] if q else 0),
            **summarize([m for m in report["mutants"] if m["package"] == package])}
        if q:
            n = sum(1 for m in report["mutants"] if m["package"] == package and "first_run" in m)
            report["packages"][package]["updated_from"] = \
                f"{n} mutants run again, the kills of the first run kept ({' '.join(new['command'].split()[2:])})"
            report["packages"][package]["rerun_tests"] = q["tests"]
            report["packages"][package]["rerun_control"] = q["control"]
    return report


def write_markdown(path, report):
    fileio.write_text(path, markdown(report))


def main(argv=None):
    packages = backend_packages()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", action="append", choices=list(packages),
                    help="mutate this package (repeatable; default: every registered backend's)")
    ap.add_argument("--sample", type=int, help="run N mutants per package, drawn with --seed")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    ap.add_argument("--ids", nargs="+", help="run exactly these mutant ids")
    ap.add_argument("--tests", nargs="+", help="test files to run instead of the package's default set")
    ap.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x control + 60)")
    ap.add_argument("--equivalents", default=EQUIVALENTS, help="table of equivalent mutants")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--markdown", help="write the report as a markdown page to this file")
    ap.add_argument("--rescore", metavar="JSON", nargs="+",
                    help="apply the equivalents table to earlier runs' JSON, merged into one "
                         "report (no run; with --json / --markdown)")
    ap.add_argument("--update", metavar="JSON",
                    help="run again the mutants of this earlier run that were not killed, "
                         "with its test files unless --tests; keep its kills, and write the "
                         "updated report (with --json)")
    ap.add_argument("--rerun", nargs="+", default=["SURVIVED", "CRASH", "TIMEOUT"],
                    choices=["SURVIVED", "CRASH", "TIMEOUT"],
                    help="with --update: the earlier statuses to run again (default: all three; "
                         "--ids picks some of them)")
    args = ap.parse_args(argv)
    if args.rescore:
        return rescore(args.rescore, args.json, load_equivalents(args.equivalents), args.markdown)
    old_report = None
    if args.update:
        if args.sample is not None or args.package:
            ap.error("--update takes its packages and mutants from the earlier run")
        with open(args.update) as f:
            old_report = json.load(f)
        chosen_ids = [m["id"] for m in old_report["mutants"] if m["status"] in args.rerun]
        if args.ids:  # a choice among those
            unknown = sorted(set(args.ids) - set(chosen_ids))
            if unknown:
                ap.error(f"not among the earlier run's {'/'.join(args.rerun)} mutants: {' '.join(unknown)}")
            chosen_ids = [i for i in chosen_ids if i in args.ids]
        args.ids = chosen_ids
        args.package = [p for p in old_report["packages"] if any(i.startswith(p + "/") for i in args.ids)]
        args.old_tests = {p: _sample_of(old_report, p)[1] for p in old_report["packages"]}
        if not args.ids:
            print("every mutant of the earlier run was killed or is equivalent: nothing to run")
            return 0

    chosen = args.package or list(packages)
    if args.ids:
        chosen = [p for p in chosen if any(i.startswith(p + "/") for i in args.ids)]

    def plan_for(root):
        """{package: (population, chosen mutants)} of the sources under ``root``; the
        sample of a package depends only on its mutants and the seed."""
        plan = {}
        for package in chosen:
            mutants = find_mutants(package, root)
            population = len(mutants)
            if args.ids:
                unknown = [i for i in args.ids if i.startswith(package + "/") and i not in {m.id for m in mutants}]
                if unknown:
                    ap.error(f"unknown mutant ids: {' '.join(unknown)}")
                mutants = [m for m in mutants if m.id in args.ids]
            elif args.sample is not None and args.sample < len(mutants):
                picked = set(random.Random(args.seed).sample(range(len(mutants)), args.sample))
                mutants = [m for k, m in enumerate(mutants) if k in picked]
            plan[package] = (population, mutants)
        return plan

    if args.list:
        equivalents = load_equivalents(args.equivalents)
        for package, (_, mutants) in plan_for(ROOT).items():
            for m in mutants:
                mark = "  [equivalent]" if m.id in equivalents else ""
                print(f"{m.id}  {m.kind:<28} {m.describe()}{mark}")
        print(f"{sum(len(v) for _, v in plan_for(ROOT).values())} mutants")
        return 0

    def log(line):
        print(line, flush=True)

    # SIGTERM as an exception, so that the scratch copy is removed and the test run killed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    report = {"command": "python tools/mutate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "python": sys.version.split()[0], "packages": {}, "mutants": []}
    broken = False
    with tempfile.TemporaryDirectory(prefix="netparity-mutate-") as tmp:
        scratch = os.path.join(tmp, "tree")
        # copy first, then read the mutants from the copy: one snapshot of the working
        # tree, whatever is edited there while the run goes on
        copy_tree(scratch)
        jax_cache = os.path.join(tmp, "jax-cache")  # shared by this run's pytest processes only
        for package, (population, mutants) in plan_for(scratch).items():
            t0 = time.perf_counter()
            control, results = run_package(package, packages[package], mutants, args, scratch,
                                           jax_cache, log)
            broken |= control["status"] != "SURVIVED"
            report["packages"][package] = {"population": population,
                                           "sampled": len(mutants),
                                           "seed": None if args.ids or args.sample is None else args.seed,
                                           "tests": test_files(package, packages[package],
                                                               package_tests(package, args)),
                                           "control": control,
                                           "seconds": round(time.perf_counter() - t0, 1),
                                           **summarize(results)}
            report["mutants"] += results
    if old_report is not None:
        report = updated(old_report, report, args.update)
    print_summary(report, log)
    if args.json:
        fileio.write_json(args.json, report)
    if args.markdown:
        write_markdown(args.markdown, report)
    if broken:
        log("a control mutant did not survive: the suite is broken (or this tool is)")
        return 2
    bad = [r for r in report["mutants"] if r["status"] not in ("KILLED", "EQUIVALENT")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
