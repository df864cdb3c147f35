"""Regenerates the report's screenshots in docs/img/ (report_<section>.png): a fresh
`netparity report` into a temporary folder, then each section shown alone by headless
chromium, 1200 pixels wide. The numbers in them are machine-dependent (they are this
machine's run); the script is how the committed ones were made.

    .venv/bin/python tools/report_screenshots.py            # the full report (a few minutes)
    .venv/bin/python tools/report_screenshots.py --quick    # report --quick (for a try)
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
IMG = os.path.join(ROOT, "docs", "img")

# section id -> window height in pixels (the section from its top; the rest is cut)
SHOTS = {"environment": 760, "heatmap": 1000, "explain": 1500, "source": 1150, "costs": 1200,
         "boundaries": 720, "bench": 1400}
# only that section; in the side-by-side one, only the backward pass
ALONE = ("<style>body>h1,body>nav,body>p.note{display:none}section{display:none}"
         "section#%s{display:block}section>h2{margin-top:0}"
         ".sbs-fn{display:none}.sbs-fn:has(#sbs-backward){display:block}</style></head>")


def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        raise SystemExit("needs chromium (apt-get install chromium)")
    return found


def shoot(browser, page, png, height, profile):
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--no-first-run", "--disable-background-networking", f"--user-data-dir={profile}",
                    f"--window-size=1200,{height}", f"--screenshot={png}", "file://" + page],
                   check=True, capture_output=True, timeout=120)


def main(argv):
    from netparity import fileio
    from netparity.cli import main as netparity
    browser = chromium()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "report")
        rc = netparity(["report", "--out", out, "--no-progress"] + (["--quick"] if "--quick" in argv else []))
        if rc != 0:
            raise SystemExit(f"netparity report exited {rc}")
        with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
            page = f.read()
        for section, height in SHOTS.items():
            alone = os.path.join(tmp, f"{section}.html")
            fileio.write_text(alone, page.replace("</head>", ALONE % section, 1))
            png = os.path.join(tmp, f"{section}.png")
            shoot(browser, alone, png, height, os.path.join(tmp, "profile"))
            with open(png, "rb") as f:
                fileio.write_bytes(os.path.join(IMG, f"report_{section}.png"), f.read())
            print(f"wrote docs/img/report_{section}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
