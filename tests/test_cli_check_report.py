"""`netparity check` and `netparity report`: exit codes, the JSON against compare_stages
called directly, a deliberately broken backend, the report's sections and images, and
(where chromium is installed) the report rendered by a headless browser."""
from html.parser import HTMLParser
import json
import math
import os
import re
import shutil
import subprocess

import pytest

from conftest import suite_numeric_state
from netparity.backends import get_backend
from netparity.cli import main
from netparity.cmd_report import SECTIONS
from netparity.compare import compare_stages
from netparity.stagenames import stages_for_path
from netparity.stages import Case, expected, run_backend

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def _rows(path):
    with open(path) as f:
        return json.load(f)


def test_check_passes_and_its_json_equals_compare_stages(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "check.json"
    rc = main(["check", "--backend", "torch", "--path", "manual", "--dtype", "float32",
               "--no-progress", "--no-color", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "torch/manual" in text and "dW1" in text and "all within bound" in text
    assert "\033[" not in text  # --no-color (and not a TTY)
    data = _rows(out)
    assert data["ok"] is True and "numpy" in data["fingerprint"]
    case = Case("torch", "manual", "cpu", "float32")
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch, case.steps)
    got = run_backend(case)
    order = stages_for_path(e.order, case.path, case.optimizer)
    want = {("reference", r.stage): r for r in compare_stages(e.ref, got, e.bounds, order, case.dtype)}
    want.update({("oracle", r.stage): r for r in
                 compare_stages(e.oracle, got, e.bounds, order, case.dtype, factor=1.0)})
    rows = data["results"]
    assert {(r["against"], r["stage"]) for r in rows} == set(want)
    for row in rows:
        assert row["case"] == case.id
        r = want[(row["against"], row["stage"])]
        for k in ("max_abs", "max_rel", "max_ulp", "bound", "ratio", "ok"):
            v = getattr(r, k)  # JSON has no nan/inf: null (no ULPs near zero, no bound)
            assert row[k] == (None if isinstance(v, float) and not math.isfinite(v) else v), (row, k)


def test_check_fails_on_a_broken_backend(monkeypatch, tmp_path, capsys):
    pytest.importorskip("torch")
    bk = get_backend("torch")  # the module the registry hands out
    real = bk.network_backward

    def broken(*args, **kwargs):
        grads = dict(real(*args, **kwargs))
        grads["dW1"] = grads["dW1"] * 2
        return grads

    monkeypatch.setattr(bk, "network_backward", broken)
    out = tmp_path / "check.json"
    rc = main(["check", "--backend", "torch", "--path", "manual", "--path", "autodiff",
               "--dtype", "float64", "--no-progress", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 1
    assert "first diverging stage 'dW1'" in text
    rows = _rows(out)["results"]
    bad = {(r["case"], r["stage"]) for r in rows if not r["ok"]}
    manual = Case("torch", "manual").id
    assert (manual, "dW1") in bad and (manual, "W1'") in bad
    assert not any(c == Case("torch", "autodiff").id for c, _ in bad)  # autograd is untouched


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    pytest.importorskip("matplotlib")
    d = tmp_path_factory.mktemp("report")
    with suite_numeric_state():
        rc = main(["report", "--out", str(d), "--quick", "--no-progress"])
    assert rc == 0
    return d


def test_report_has_every_section_and_only_embedded_images(report_dir):
    html_text = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    for _, heading in SECTIONS:
        assert heading in html_text and f"## {heading}" in md
    srcs = re.findall(r"<img[^>]*\bsrc=\"([^\"]*)\"", html_text)
    assert len(srcs) >= 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    # one self-contained file: nothing fetched from elsewhere
    assert not re.search(r"(src|href)=[\"'](?!data:|#)", html_text)
    assert "<link" not in html_text and "<script" not in html_text
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"heatmap.png", "costs.png", "boundaries.png"} <= set(pngs)
    for p in pngs:
        assert (report_dir / p).read_bytes()[:8] == PNG_MAGIC


# the nine course functions the side-by-side view must show (issue: "Teaching")
COURSE_FUNCTIONS = ["init", "forward", "cost", "backward", "update", "momentum", "adam", "decay",
                    "minibatch"]


class Blocks(HTMLParser):
    """The report's side-by-side tables: {function id: (header titles, [(row id, [cell
    texts], [cell rowspans])])}, every element id, and the heat map's overlay links."""

    def __init__(self):
        super().__init__()
        self.blocks, self.ids, self.links = {}, set(), []
        self.current = self.row = self.cell = None
        self.in_head = self.in_hm = False
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "div" and a.get("class") == "hm":
            self.in_hm = True
        if tag == "a" and self.in_hm:
            self.links.append((a["href"], a.get("title", ""), a.get("style", "")))
        if tag == "h3" and a.get("id", "").startswith("sbs-"):
            self.current = a["id"][len("sbs-"):]
            self.blocks[self.current] = ([], [])
        if self.current is None:
            return
        if tag == "thead":
            self.in_head = True
        if tag == "tr" and not self.in_head:
            self.row = (a.get("id"), [], [])
            self.blocks[self.current][1].append(self.row)
        if tag in ("td", "th"):
            self.cell = [tag, "", int(a.get("rowspan", 1))]

    def handle_endtag(self, tag):
        if tag == "div" and self.in_hm:
            self.in_hm = False
        if self.current is None:
            return
        if tag == "thead":
            self.in_head = False
        if tag in ("td", "th") and self.cell:
            kind, text, span = self.cell
            if self.in_head:
                self.blocks[self.current][0].append(text.strip())
            elif kind == "td":
                self.row[1].append(text.strip())
                self.row[2].append(span)
            self.cell = None
        if tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data


def expected_columns():
    """Every implementation the report must show: each available backend's gradient paths
    (its registry entry) other than the compiled one, by the title its teaching data gives."""
    from netparity.backends import available_backends, backend_spec
    from netparity.sidebyside import backend_columns
    out = []
    for name in available_backends():
        cols = backend_columns(name)
        if not cols:  # a backend without teaching data (a plugin): its API functions, one column
            out.append(f"{name} (manual)")
            continue
        for path in backend_spec(name).paths:
            if path != "compiled":
                assert path in cols, f"backend {name!r} has no side-by-side column for its path {path!r}"
                out.append(cols[path]["title"])
    return out


def test_report_has_a_side_by_side_block_for_each_course_function(report_dir):
    """Each of the nine course functions: a block with a column for every available
    implementation, a row per formula (an anchor each), and no empty cell, in the HTML;
    a table with the same columns in the Markdown."""
    from netparity.sidebyside import FUNCTIONS, anchor
    assert [f.key for f in FUNCTIONS] == COURSE_FUNCTIONS
    p = Blocks()
    p.feed((report_dir / "report.html").read_text())
    md = (report_dir / "report.md").read_text()
    titles = expected_columns()
    from netparity.backends import available_backends
    if {"torch", "jax"} <= set(available_backends()):
        assert len(titles) >= 7  # NumPy; each mirror's manual, autodiff and idiomatic paths
    assert set(p.blocks) == set(COURSE_FUNCTIONS)
    for fn in FUNCTIONS:
        head, rows = p.blocks[fn.key]
        assert head[0] == "formula" and head[1:] == titles, (fn.key, head)
        assert [r[0] for r in rows] == [anchor(fn.key, r.key) for r in fn.rows]
        spanning = 0  # cells of the first row that span every row ("the same code as ...")
        for i, (_, cells, spans) in enumerate(rows):
            assert all(cells), (fn.key, i, cells)
            if i == 0:
                spanning = sum(1 for s in spans if s == len(rows) and s > 1)
                assert len(cells) == len(titles)
            else:
                assert len(cells) + spanning == len(titles), (fn.key, i)
        assert f"### {fn.title}" in md
        assert "| formula | " + " | ".join(titles) + " |" in md


def test_report_defines_its_words_and_works_the_numbers(report_dir):
    html_text = (report_dir / "report.html").read_text()
    md = (report_dir / "report.md").read_text()
    for term in ("ULP", "machine epsilon eps vs unit roundoff u", "E, the bound",
                 "2E against the reference", "the float64 oracle", "TF32"):
        assert f"<dt>{term}</dt>" in html_text and f"- **{term}**" in md
    for title in ("Summation order", "Why db shows many ULPs on correct code", "Fused multiply-add",
                  "The autodiff x m convention"):
        assert f"<h3>{title}</h3>" in html_text and f"### {title}" in md
    assert "machine-dependent" in md and "cudnn.allow_tf32" in md


def test_report_heat_map_cells_link_to_the_lines_of_their_stage(report_dir):
    """Every cell of the heat map is a link to the side-by-side row computing its stage
    (by the course's formulas: dW1 -> dW = dZ A^T / m, A2 -> the output activation of a
    2-layer net, W1' -> the update)."""
    p = Blocks()
    p.feed((report_dir / "report.html").read_text())
    assert len(p.links) >= 4 * 17  # the quick slice: 4 cases of 17+ stages
    targets = {}
    for href, title, style in p.links:
        assert href.startswith("#") and href[1:] in p.ids, href
        box = [float(v) for v in re.findall(r"([-\d.]+)%", style)]
        assert len(box) == 4 and all(0 <= v <= 100 for v in box), style
        targets.setdefault(title.split(",")[0], set()).add(href)
    want = {"Z1": "#sbs-forward-Z", "A1": "#sbs-forward-A", "A2": "#sbs-forward-AL",
            "cost_literal": "#sbs-cost-literal", "cost_stable": "#sbs-cost-stable",
            "dZ2": "#sbs-backward-dZL", "dZ1": "#sbs-backward-dZ", "dW1": "#sbs-backward-dW",
            "db2": "#sbs-backward-db", "dA0": "#sbs-backward-dA", "W1'": "#sbs-update-P",
            "b2'": "#sbs-update-P"}
    for stage, href in want.items():
        assert targets.get(stage) == {href}, (stage, targets.get(stage))


CHECK_SCRIPT_HEAD = """<script>window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(String(e.message||e.target&&e.target.src||e))},true);
</script>"""
CHECK_SCRIPT_TAIL = """<script>window.addEventListener('load',function(){
var imgs=Array.prototype.slice.call(document.images);
var broken=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).length;
document.title='CHECK '+JSON.stringify({imgs:imgs.length,broken:broken,errors:window.__errors});});
</script>"""


def _chromium(args, tmp_path, timeout=60):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: the headless-browser "
                    "check of the report is skipped (.ci/run installs it)")
def test_report_renders_in_a_headless_browser(report_dir, tmp_path):
    page = report_dir / "report.html"
    shot = tmp_path / "shot.png"
    p = _chromium(["--window-size=1200,2400", "--hide-scrollbars", f"--screenshot={shot}",
                   page.as_uri()], tmp_path)
    assert shot.exists(), p.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 50_000  # a blank page is a few kB

    probe = tmp_path / "probe.html"
    text = page.read_text().replace("</head>", CHECK_SCRIPT_HEAD + "</head>", 1)
    probe.write_text(text.replace("</body>", CHECK_SCRIPT_TAIL + "</body>", 1))
    p = _chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                   "--dump-dom", probe.as_uri()], tmp_path)
    m = re.search(r"<title>CHECK (.*?)</title>", p.stdout)
    assert m, (p.stdout[:500], p.stderr[-2000:])
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result["imgs"] >= 3 and result["broken"] == 0 and result["errors"] == [], result
    console = [l for l in p.stderr.splitlines() if "CONSOLE" in l]
    assert not console, console


# ------------------------------------------------------------------ check's table and help

@pytest.fixture(scope="module")
def default_outcomes():
    from netparity.runner import run_cases, select_cases
    with suite_numeric_state():
        return run_cases(select_cases(), progress=False)


def test_check_table_fits_100_columns_and_aligns(default_outcomes):
    """The default slice (4 columns) wraps into blocks of whole columns, the stage names
    repeated; every number sits in the same character columns on every row."""
    from netparity.cmd_check import render
    text = render(default_outcomes, colour=False, width=100)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    rows = [line for line in lines if line.strip().startswith("dW1 ")]
    assert len(rows) == 4  # 2 dtypes x 2 blocks
    for header_idx, line in enumerate(lines):
        if line.strip().startswith("stage "):
            block = lines[header_idx + 1:header_idx + 10]
            # the 'x' closing each ratio and the 'u' of each ULP count: same positions on every row
            for ch in "xu":
                cols = {tuple(i for i, c in enumerate(row) if c == ch) for row in block}
                assert len(cols) == 1, (ch, block)
    wide = render(default_outcomes, colour=False, width=200)
    assert sum(1 for line in wide.splitlines() if line.strip().startswith("stage ")) == 2  # no wrap
    for word in ("ULP", "bound 2E", "float64 oracle", "docs/tolerances.md"):
        assert word in text


def test_check_says_why_a_path_has_no_forward_rows():
    pytest.importorskip("jax")
    from netparity.cmd_check import render
    from netparity.runner import run_case
    with suite_numeric_state():
        outcomes = [run_case(Case("jax", p, dtype="float64")) for p in ("manual", "compiled")]
    text = render(outcomes, width=100)
    z1 = next(line for line in text.splitlines() if line.strip().startswith("Z1 "))
    assert z1.rstrip().endswith("n/a")
    assert "n/a on the compiled path: one compiled step returns its cost and gradients, not its " \
           "forward cache (Z, A) nor the literal cost" in text


def test_check_colours_and_the_heat_map_share_one_scale(default_outcomes):
    """Each heat-map cell has the colour of check's verdict for its ratio."""
    from matplotlib.colors import to_rgba
    from netparity.cmd_check import GREEN, RED, YELLOW, colour_for
    from netparity.cmd_report import heatmap_figure
    from netparity.runner import VERDICTS, verdict
    assert [colour_for(r) for r in (0.0, 0.05, 0.1, 0.5, 1.0, 1.5, float("inf"))] == \
        [GREEN, GREEN, YELLOW, YELLOW, YELLOW, RED, RED]
    fig, links = heatmap_figure(default_outcomes)
    im = fig.axes[0].images[0]
    M = im.get_array()
    colours = {name: to_rgba(c) for name, _, c in VERDICTS}
    stages = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    checked = 0
    for j, res in enumerate(default_outcomes):
        for stage, r in res.worst_per_stage().items():
            i = stages.index(stage)
            assert tuple(im.cmap(im.norm(M[i, j]))) == colours[verdict(r.ratio)], (stage, r.ratio)
            checked += 1
    assert checked == len(links) > 60


@pytest.mark.parametrize("command", ["train", "check", "report", "verify", "bench"])
def test_help_shows_each_default_once_and_never_none(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert not re.search(r"\(default: [^)]*\) \(default:", text), text


# ------------------------------------------------------------------ the remedy flags

def test_check_with_remedy_flags_runs_that_config_and_its_json_equals_compare_stages(tmp_path, capsys):
    """--batch-norm --keep-prob 0.8 (not a named config: a new REMEDY_CONFIGS entry) on the
    default remedy arch (deep): every row is compare_stages of that Case run directly."""
    pytest.importorskip("torch")
    import reference as R
    from netparity.stages import REMEDY_CONFIGS
    out = tmp_path / "check.json"
    rc = main(["check", "--backend", "torch", "--path", "manual", "--dtype", "float64",
               "--batch-norm", "--keep-prob", "0.8", "--no-progress", "--no-color", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "remedies bn-keep_0.8" in text and "dgamma1" in text and "all within bound" in text
    assert REMEDY_CONFIGS["bn-keep_0.8"] == R.Remedies(batch_norm=True, keep_prob=0.8)
    case = Case("torch", "manual", "cpu", "float64", arch="deep", remedy="bn-keep_0.8")
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
                 case.steps, remedy=case.remedy)
    got = run_backend(case)
    order = stages_for_path(e.order, case.path, case.optimizer)
    want = {r.stage: r for r in compare_stages(e.ref, got, e.bounds, order, case.dtype)}
    rows = _rows(out)["results"]
    assert {r["stage"] for r in rows} == set(want) and {"dgamma3", "mu_run2'"} <= set(want)
    for row in rows:
        assert row["case"] == case.id
        assert row["max_abs"] == want[row["stage"]].max_abs and row["ok"]


def test_check_with_remedy_flags_fails_on_a_broken_remedy_step(monkeypatch, capsys):
    """dgamma1 doubled on the manual path: check names it, the autodiff path is untouched."""
    pytest.importorskip("torch")
    bk = get_backend("torch")
    real = bk.remedy_step

    def broken(path, *args, **kwargs):
        stages, p, bn, s = real(path, *args, **kwargs)
        if path == "manual":
            stages = {**stages, "dgamma1": stages["dgamma1"] * 2}
        return stages, p, bn, s

    monkeypatch.setattr(bk, "remedy_step", broken)
    rc = main(["check", "--backend", "torch", "--path", "manual", "--path", "autodiff",
               "--dtype", "float64", "--batch-norm", "--residual", "before", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 1
    manual = Case("torch", "manual", arch="deep", remedy="bn-res_before").id
    assert f"{manual}: first diverging stage 'dgamma1'" in text
    assert "torch-autodiff" not in text.split("out of bound")[1]


def test_check_resync_checks_float32_batch_norm_where_the_chain_cannot(tmp_path, capsys):
    """float32 batch norm over 3 Adam updates: without --resync the case is a skip (its
    carried bound overflows); with it, the third update from the reference's state is
    compared stage by stage, the JSON rows being compare_stages of that resync Case."""
    argv = ["check", "--backend", "numpy", "--dtype", "float32", "--optimizer", "adam", "--batch", "mini",
            "--steps", "3", "--batch-norm", "--no-progress", "--no-color"]
    assert main(argv) == 2                                 # nothing ran: not a pass
    assert "no finite a-priori bound" in capsys.readouterr().out
    out = tmp_path / "check.json"
    assert main(argv + ["--resync", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "update 3 from the reference's state" in text and "all within bound" in text
    case = Case("numpy", "manual", "cpu", "float32", optimizer="adam", batch="mini", steps=3,
                arch="deep", remedy="bn", resync=True)
    e = expected(case.dtype, case.hidden, case.output, case.arch, case.optimizer, case.batch,
                 case.steps, remedy=case.remedy, resync=True)
    want = {r.stage: r for r in compare_stages(e.ref, run_backend(case), e.bounds, e.order, case.dtype)}
    rows = [r for r in _rows(out)["results"] if r["against"] == "reference"]
    assert {r["stage"] for r in rows} == set(want) and "t'" in want
    for row in rows:
        assert row["case"] == case.id and row["max_abs"] == want[row["stage"]].max_abs and row["ok"]


def test_report_vanishing_section_shows_the_runs_numbers(report_dir):
    """The demo's table is a fresh vanishing_demo run's (60 updates in --quick), computed
    here independently of the report; its picture is a PNG in both files."""
    from netparity.remedy_training import DEMO_CONFIGS, vanishing_demo
    md = (report_dir / "report.md").read_text()
    html_text = (report_dir / "report.html").read_text()
    section = md.split("## Vanishing gradients and the remedies")[1].split("\n## ")[0]
    assert "![vanishing gradients](vanishing.png)" in section
    assert (report_dir / "vanishing.png").read_bytes()[:8] == PNG_MAGIC
    demo = vanishing_demo("numpy", DEMO_CONFIGS, 60)
    rows = {r[0]: r[1:] for r in (
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in section.splitlines() if line.startswith("| ") and "---" not in line)}
    for label, n1, nL, ratio, c0, c1 in demo.summary_rows():
        assert rows[label] == [f"{n1:.2e}", f"{nL:.2e}", f"{ratio:.1e}", f"{c0:.4f}", f"{c1:.4f}"]
        assert f"<td>{label}</td><td>{n1:.2e}</td>" in html_text
    # the claim the section makes, in the report's own numbers
    assert float(rows["without remedies"][2]) < 1e-6 and float(rows["batch norm"][2]) > 1e-1
    assert float(rows["batch norm"][4]) < float(rows["without remedies"][4]) - 0.1
