"""The course's functions side by side: which lines of every implementation compute each
formula, read from the project's own source (``inspect.getsource``), aligned by formula.

The course functions and their formula rows are defined here, framework-free (the
specification, docs/spec.md). Where each backend computes a row is that backend's own
data: a ``teaching`` module in its package (``reference/teaching.py``,
``torch_impl/teaching.py``, ``jax_impl/teaching.py``), found through the registry, so no
framework is named here. Its ``COLUMNS`` maps a gradient path to a column:

    COLUMNS = {"manual": {"title": "PyTorch manual", "cells": {
        "forward": [("torch_impl.network:network_forward", {"Z": r"regex", "A": r"regex"}),
                    ("note", {"AL": "text"})],
        ...}},
      "autodiff": {"title": "PyTorch autograd", "cells": {"forward": "manual", ...}}}

A cell is a list of items: ``("module:qualname", {row: regex})`` (each regex must match
exactly one line of that object's source; a statement continued over several lines is
shown whole) or ``("note", {row: text})``; or the name of another column of the same
backend whose cell is the same code (e.g. autograd's forward pass *is* the manual one).
Every row of every function must be covered in every column: ``build`` reports any gap or
pattern that does not match, and a test holds the committed data to that.

API differences are highlighted: in each row, an identifier of a cell that the NumPy
cell of that row does not use is marked (``torch.sum`` vs ``np.sum``, ``keepdim``).
"""
from dataclasses import dataclass, field
import html
import importlib
import inspect
import os
import re
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Row:
    key: str
    formula: str            # the course's formula, plain text


@dataclass(frozen=True)
class CourseFunction:
    key: str
    title: str
    rows: tuple
    doc: str = ""


FUNCTIONS = (
    CourseFunction("init", "Initialisation", (
        Row("layer", "one layer: W[l] is (n_l, n_{l-1}), b[l] is (n_l, 1)"),
        Row("W", "W[l] = randn(n_l, n_{l-1}) * 0.01 from RandomState(1): the reference draws, every other implementation copies"),
        Row("b", "b[l] = 0"),
    ), "Every implementation starts from the reference's draws: the mirrors never draw random numbers."),
    CourseFunction("forward", "Forward pass", (
        Row("Z", "Z[l] = W[l] A[l-1] + b[l]"),
        Row("A", "A[l] = g(Z[l]), hidden layers (tanh)"),
        Row("AL", "A[L] = sigmoid(Z[L]) = 1 / (1 + exp(-Z[L]))"),
    ), "Examples are columns in the course (X is (n_x, m)); the idiomatic models take rows."),
    CourseFunction("cost", "Cost (literal and stable)", (
        Row("literal", "J = -(1/m) sum(Y log A + (1 - Y) log(1 - A))"),
        Row("stable", "J = (1/m) sum(max(Z, 0) - Z Y + log(1 + exp(-|Z|))), from the logits Z = Z[L]"),
    ), "The same number in exact arithmetic; the literal one is nan/inf once A rounds to 0 or 1."),
    CourseFunction("backward", "Backward pass", (
        Row("dZL", "dZ[L] = A[L] - Y"),
        Row("dW", "dW[l] = dZ[l] A[l-1]^T / m"),
        Row("db", "db[l] = (sum over the columns of dZ[l]) / m"),
        Row("dA", "dA[l-1] = W[l]^T dZ[l]"),
        Row("dZ", "dZ[l-1] = dA[l-1] * g'(Z[l-1]), tanh' = 1 - A^2"),
        Row("scale", "dZ and dA are m times dJ/dZ, dJ/dA (the course's convention); autodiff gives dJ/dZ"),
    ), "Autodiff differentiates the cost J = (1/m) sum(...), so its dJ/dZ is the course's dZ divided "
       "by m: every autodiff column multiplies by m (row 'scale')."),
    CourseFunction("update", "Gradient-descent update", (
        Row("P", "P := P - lr dP for every parameter P"),
    )),
    CourseFunction("momentum", "Momentum", (
        Row("v", "v := beta v + (1 - beta) dP"),
        Row("P", "P := P - lr v"),
    ), "The course's form is an exponential average; torch.optim.SGD and optax.sgd keep "
       "v / (1 - beta) instead (heavy ball), so the idiomatic columns scale lr by (1 - beta)."),
    CourseFunction("adam", "Adam", (
        Row("v", "v := beta1 v + (1 - beta1) dP"),
        Row("s", "s := beta2 s + (1 - beta2) dP^2"),
        Row("hat", "t := t + 1; bias corrections 1 - beta1^t and 1 - beta2^t"),
        Row("P", "P := P - lr (v / (1 - beta1^t)) / (sqrt(s / (1 - beta2^t)) + eps)"),
    )),
    CourseFunction("decay", "Learning-rate decay", (
        Row("inverse_time", "lr_k = lr0 / (1 + rate floor(k / steps))  (the course's decay)"),
        Row("exponential", "lr_k = lr0 rate^(k / steps)"),
        Row("step", "lr_k = lr0 rate^floor(k / steps)"),
    ), "k is the number of updates done before this one."),
    CourseFunction("minibatch", "The mini-batch loop", (
        Row("epoch", "every epoch: a seeded permutation of the m columns, cut into batches (reference.batch_order)"),
        Row("batch", "the batch: X[:, idx], Y[:, idx]"),
        Row("step", "one step on the batch: forward, cost, backward, update"),
        Row("cost", "record the batch's cost J (before the update)"),
    ), "Every implementation replays the reference's batch order, so all see the same batches."),
)
FUNCTIONS_BY_KEY = {f.key: f for f in FUNCTIONS}


def anchor(function_key, row_key=None):
    """The HTML id of a function's block, or of one of its rows."""
    return f"sbs-{function_key}" + (f"-{row_key}" if row_key else "")


def stage_row(stage, L, optimizer="gd"):
    """(function key, row key) of the row that computes conformance ``stage`` of an
    L-layer network trained with ``optimizer``, or None."""
    base = stage.rstrip("'")
    if base.startswith("cost_"):
        return ("cost", base[len("cost_"):])
    m = re.fullmatch(r"([A-Za-z]+?)(\d*)", base)
    if not m:
        return None
    name, layer = m.group(1), int(m.group(2)) if m.group(2) else None
    if stage.endswith("'"):
        if name in ("W", "b"):
            return {"gd": ("update", "P"), "momentum": ("momentum", "P"),
                    "adam": ("adam", "P")}[optimizer]
        if name in ("vdW", "vdb"):
            return ("momentum", "v") if optimizer == "momentum" else ("adam", "v")
        if name in ("sdW", "sdb"):
            return ("adam", "s")
        if name == "t":
            return ("adam", "hat")
        return None
    if name == "Z":
        return ("forward", "Z")
    if name == "A":
        return ("forward", "AL" if layer == L else "A")
    if name == "dZ":
        return ("backward", "dZL" if layer == L else "dZ")
    if name in ("dW", "db", "dA"):
        return ("backward", name)
    return None


# ------------------------------------------------------------------ reading the source

@dataclass
class Cell:
    """One implementation's lines for one row: source lines (with the object they come
    from), or a note, or ``same`` (another column's title: the same code)."""
    lines: list = field(default_factory=list)     # [(source name, line text)]
    notes: list = field(default_factory=list)
    same: str | None = None


@dataclass
class Column:
    backend: str
    path: str
    title: str
    cells: dict              # function key -> {row key: Cell}
    sources: dict            # function key -> [(source name, file, source text)]
    error: str | None = None  # why the column could not be read (backend not importable)


def _resolve(name):
    module, qual = name.split(":")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return inspect.unwrap(obj)


def _source(name):
    """(file relative to the repository, dedented source lines) of ``module:qualname``."""
    obj = _resolve(name)
    path = inspect.getsourcefile(obj) or "?"
    rel = os.path.relpath(path, ROOT) if path.startswith(ROOT) else path
    return rel, textwrap.dedent(inspect.getsource(obj)).splitlines()


def _balance(text):
    # brackets opened minus closed, ignoring string contents (enough for this code)
    text = re.sub(r"(\"[^\"]*\"|'[^']*')", "", text.split("#")[0])
    return sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")


def statement_at(lines, i):
    """Line i and, while its brackets are open, the lines that continue it."""
    out, depth = [lines[i]], _balance(lines[i])
    j = i + 1
    while depth > 0 and j < len(lines):
        out.append(lines[j])
        depth += _balance(lines[j])
        j += 1
    return "\n".join(textwrap.dedent("\n".join(out)).splitlines())


def find_line(lines, pattern):
    """The index of the one line matching ``pattern``; ValueError if none or several."""
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    if len(hits) != 1:
        raise ValueError(f"pattern {pattern!r} matches {len(hits)} lines (expected exactly one)")
    return hits[0]


def backend_columns(backend):
    """A backend's ``teaching.COLUMNS`` (its package's teaching module), or {} if it has
    none (``build`` then shows its API functions whole: fallback_column)."""
    from netparity.backends import backend_spec
    try:
        mod = importlib.import_module(backend_spec(backend).module + ".teaching")
    except ModuleNotFoundError as e:
        if e.name and e.name.endswith(".teaching"):
            return {}
        raise
    return mod.COLUMNS


def read_column(backend, path, spec, all_specs):
    """Column ``path`` of ``backend`` from its teaching data: every cell's lines read from
    the source. Problems (a pattern that does not match, a row not covered) are collected
    in the returned list, not raised, so that ``build`` can report all of them."""
    problems, cells, sources = [], {}, {}
    for fn in FUNCTIONS:
        entry = spec["cells"].get(fn.key)
        rows = {r.key: Cell() for r in fn.rows}
        cells[fn.key], sources[fn.key] = rows, []
        where = f"{backend}/{path} {fn.key}"
        if entry is None:
            problems.append(f"{where}: no cell")
            continue
        if isinstance(entry, str):
            other = all_specs.get(entry)
            if other is None:
                problems.append(f"{where}: 'same as' names an unknown column {entry!r}")
                continue
            for c in rows.values():
                c.same = other["title"]
            continue
        for source, mapping in entry:
            unknown = set(mapping) - set(rows)
            if unknown:
                problems.append(f"{where}: unknown row(s) {sorted(unknown)}")
            if source == "note":
                for row, text in mapping.items():
                    if row in rows:
                        rows[row].notes.append(text)
                continue
            try:
                rel, lines = _source(source)
            except (ImportError, AttributeError, OSError, TypeError) as e:
                problems.append(f"{where}: cannot read {source}: {type(e).__name__}: {e}")
                continue
            sources[fn.key].append((source, rel, "\n".join(lines)))
            for row, patterns in mapping.items():
                if row not in rows:
                    continue
                for pattern in (patterns,) if isinstance(patterns, str) else patterns:
                    try:
                        rows[row].lines.append((source, statement_at(lines, find_line(lines, pattern))))
                    except ValueError as e:
                        problems.append(f"{where} row {row!r} in {source}: {e}")
        for row, c in rows.items():
            if not (c.lines or c.notes or c.same):
                problems.append(f"{where}: row {row!r} not covered")
    return Column(backend, path, spec["title"], cells, sources), problems


# the flat API function (docs/API.md) that computes each course function: what a backend
# without teaching data shows, whole
API_FUNCTIONS = {"init": ("initialize_network",), "forward": ("network_forward",),
                 "cost": ("cross_entropy", "cross_entropy_from_logits"), "backward": ("network_backward",),
                 "update": ("optimizer_step",), "momentum": ("optimizer_step",),
                 "adam": ("optimizer_step",), "decay": ("learning_rate_at",), "minibatch": ("train",)}


def fallback_column(backend):
    """A backend with no teaching module (a plugin): one column whose cells say so, with
    its API functions for each course function shown whole (every backend has the same
    names, docs/API.md)."""
    from netparity.backends import backend_spec
    module = backend_spec(backend).module
    cells, sources = {}, {}
    for fn in FUNCTIONS:
        note = (f"no line-by-line data ({module}/teaching.py does not exist): "
                f"{', '.join(API_FUNCTIONS[fn.key])} whole, under the table")
        cells[fn.key] = {r.key: Cell(notes=[note]) for r in fn.rows}
        sources[fn.key] = []
        for api in API_FUNCTIONS[fn.key]:
            try:
                rel, lines = _source(f"{module}:{api}")
            except (ImportError, AttributeError, OSError, TypeError):
                continue
            sources[fn.key].append((f"{module}:{api}", rel, "\n".join(lines)))
    return Column(backend, "manual", f"{backend} (manual)", cells, sources)


def build(backends=None):
    """(columns, problems): every registered backend's columns in registry order (a
    backend that does not import gives columns with ``error`` set), and every problem
    found in the teaching data. ``backends``: names to include (default: all)."""
    from netparity.backends import REGISTRY, import_error
    columns, problems = [], []
    for name in backends or REGISTRY:
        reason = import_error(name)
        specs = {} if reason else backend_columns(name)
        if reason:
            columns.append(Column(name, "", name, {}, {}, error=reason))
            continue
        if not specs:
            columns.append(fallback_column(name))
        for path, spec in specs.items():
            col, probs = read_column(name, path, spec, specs)
            columns.append(col)
            problems += probs
    return columns, problems


# ------------------------------------------------------------------ highlighting

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_KEYWORDS = {"for", "in", "if", "else", "return", "def", "and", "or", "not", "is", "None", "lambda",
             "with", "as", "True", "False", "elif", "range", "enumerate"}


def identifiers(text):
    """The dotted identifiers of a code snippet (strings and comments left out)."""
    code = re.sub(r"(\"[^\"]*\"|'[^']*')", " ", "\n".join(line.split("#")[0] for line in text.splitlines()))
    return {t for t in _IDENT.findall(code) if t not in _KEYWORDS}


def _api_like(masked, m):
    """Whether an identifier is API rather than a local name: dotted (np.sum, loss.backward),
    called (optax.sgd(...), _matmul_nt(...)) or a keyword argument (keepdim=True)."""
    tok, rest = m.group(0), masked[m.end():]
    return "." in tok or rest.startswith("(") or (rest.startswith("=") and not rest.startswith("=="))


def highlight_html(text, baseline):
    """``text`` as HTML with its API names (dotted, called, keyword arguments) that
    ``baseline`` (a set of identifiers) does not contain in <mark>: the API differences."""
    out, pos = [], 0
    masked = re.sub(r"(\"[^\"]*\"|'[^']*'|#.*)", lambda m: " " * len(m.group(0)), text)
    for m in _IDENT.finditer(masked):
        out.append(html.escape(text[pos:m.start()]))
        tok = m.group(0)
        esc = html.escape(tok)
        new = tok not in baseline and tok not in _KEYWORDS and _api_like(masked, m)
        out.append(f"<mark>{esc}</mark>" if new else esc)
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def differences(text, baseline):
    return sorted(identifiers(text) - baseline)


# ------------------------------------------------------------------ rendering

CSS = """
.sbs-wrap{overflow-x:auto;border:1px solid #ddd;margin:.4em 0 1em}
table.sbs{border-collapse:separate;border-spacing:0;font-size:.8em}
table.sbs td,table.sbs th{border:0;border-bottom:1px solid #e4e4e4;border-right:1px solid #eee;padding:.25em .45em;vertical-align:top}
table.sbs th.formula{position:sticky;left:0;z-index:1;background:#f6f6f0;min-width:15em;max-width:19em;font-weight:normal;text-align:left}
table.sbs thead th{background:#f2f2f2;position:sticky;top:0}
table.sbs pre{margin:0;font-size:.92em;white-space:pre;background:none;border:0;padding:0}
table.sbs .same{color:#666;font-style:italic;background:#fbfbfb;text-align:center;vertical-align:middle}
table.sbs .note{color:#555;font-style:italic;font-size:.92em;white-space:normal;min-width:12em}
table.sbs tr:target th.formula,table.sbs tr:target td{background:#fff7d6}
mark{background:#ffe58a;padding:0}
"""


def _baseline(columns, fn_key, row_key):
    ref = next((c for c in columns if not c.error and c.backend == "numpy"), None)
    if ref is None:
        return set()
    return set().union(*(identifiers(t) for _, t in ref.cells[fn_key][row_key].lines)) if \
        ref.cells[fn_key][row_key].lines else set()


def html_block(fn, columns):
    """One course function as an HTML table: a row per formula, a column per implementation."""
    ok = [c for c in columns if not c.error]
    out = [f"<div class='sbs-fn'><h3 id='{anchor(fn.key)}'>{html.escape(fn.title)}</h3>"]
    if fn.doc:
        out.append(f"<p class='note'>{html.escape(fn.doc)}</p>")
    out.append("<div class='sbs-wrap'><table class='sbs'><thead><tr><th class='formula'>formula</th>"
               + "".join(f"<th>{html.escape(c.title)}</th>" for c in columns) + "</tr></thead><tbody>")
    for i, row in enumerate(fn.rows):
        cells = [f"<tr id='{anchor(fn.key, row.key)}'><th class='formula'>{html.escape(row.formula)}</th>"]
        base = _baseline(ok, fn.key, row.key)
        for c in columns:
            if c.error:
                if i == 0:
                    cells.append(f"<td class='same' rowspan='{len(fn.rows)}'>not importable here: "
                                 f"{html.escape(c.error)}</td>")
                continue
            cell = c.cells[fn.key][row.key]
            if cell.same:
                if i == 0:
                    cells.append(f"<td class='same' rowspan='{len(fn.rows)}'>the same code as "
                                 f"{html.escape(cell.same)}</td>")
                continue
            parts = [f"<pre><code>{highlight_html(t, base if c.backend != 'numpy' else identifiers(t))}"
                     "</code></pre>" for _, t in cell.lines]
            parts += [f"<div class='note'>{html.escape(n)}</div>" for n in cell.notes]
            cells.append("<td>" + "".join(parts) + "</td>")
        out.append("".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    srcs = [(c, s) for c in ok for s in c.sources.get(fn.key, [])]
    if srcs:
        out.append(f"<details><summary>the {len(srcs)} functions these lines come from, whole</summary>")
        for c, (name, rel, text) in srcs:
            out.append(f"<h4>{html.escape(c.title)}: <code>{html.escape(name)}</code> "
                       f"(<code>{html.escape(rel)}</code>)</h4><pre><code>{html.escape(text)}</code></pre>")
        out.append("</details>")
    out.append("</div>")
    return "\n".join(out)


def _md_code(text, baseline):
    """A snippet for a Markdown table cell: inline HTML, identifiers new to NumPy in bold."""
    h = highlight_html(text, baseline).replace("<mark>", "<b>").replace("</mark>", "</b>")
    h = h.replace("|", "&#124;").replace("  ", "&nbsp; ")
    return "<code>" + h.replace("\n", "</code><br><code>") + "</code>"


def markdown_block(fn, columns):
    ok = [c for c in columns if not c.error]
    out = [f"### {fn.title}", "", f'<a id="{anchor(fn.key)}"></a>', ""]
    if fn.doc:
        out += [fn.doc, ""]
    out.append("| formula | " + " | ".join(c.title for c in columns) + " |")
    out.append("|---" * (len(columns) + 1) + "|")
    for row in fn.rows:
        base = _baseline(ok, fn.key, row.key)
        cells = []
        for c in columns:
            if c.error:
                cells.append(f"not importable here: {c.error}".replace("|", "&#124;"))
                continue
            cell = c.cells[fn.key][row.key]
            if cell.same:
                cells.append(f"*same code as {cell.same}*")
                continue
            parts = [_md_code(t, base if c.backend != "numpy" else identifiers(t)) for _, t in cell.lines]
            parts += [f"*{n}*".replace("|", "&#124;") for n in cell.notes]
            cells.append("<br>".join(parts))
        out.append(f'| <a id="{anchor(fn.key, row.key)}"></a>{row.formula.replace("|", "&#124;")} | '
                   + " | ".join(cells) + " |")
    srcs = [f"`{rel}` {name.split(':')[1]}" for c in ok for name, rel, _ in c.sources.get(fn.key, [])]
    if srcs:
        out += ["", "From: " + ", ".join(dict.fromkeys(srcs)) + "."]
    out.append("")
    return "\n".join(out)
