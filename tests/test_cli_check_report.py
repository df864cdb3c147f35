"""`netparity check` and `netparity report`: exit codes, the JSON against compare_stages
called directly, a deliberately broken backend, the report's sections and images, and
(where chromium is installed) the report rendered by a headless browser."""
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
    # the three backward_propagation sources, from the project's files
    for path in ("reference/article.py", "torch_impl/article.py", "jax_impl/article.py"):
        assert path in md
    assert md.count("def backward_propagation(parameters, cache, X, Y):") == 3
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"heatmap.png", "costs.png", "boundaries.png"} <= set(pngs)
    for p in pngs:
        assert (report_dir / p).read_bytes()[:8] == PNG_MAGIC


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
