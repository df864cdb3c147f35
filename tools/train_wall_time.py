"""The wall time of `netparity train --backend all` on the planar net, per backend: the
benchmark behind "torch within 3x of NumPy" (docs/train_wall_time.md, which this writes).

Each run is a fresh process (`python -m netparity.cli train --backend all`, the article's
10 000 iterations); the times are the ones `train` prints per backend (its training loop,
from the first update to the last, the JAX compilation included in the first). REPEATS
runs, the median of each. For comparison, torch is also timed with the intra-op thread
count torch picks by itself (NETPARITY_THREADS set to the core count overrides the thread
policy), over fewer updates. Machine-dependent: the machine and its load are recorded.

    .venv/bin/python tools/train_wall_time.py          # about two minutes
"""
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
OUT = os.path.join(ROOT, "docs", "train_wall_time.md")
REPEATS = 3
LINE = re.compile(r"^\[(\w+)\] (\d+) updates in ([\d.]+) s", re.M)


def run(iterations, backend="all", threads=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    if threads:
        env["NETPARITY_THREADS"] = str(threads)
    p = subprocess.run([sys.executable, "-m", "netparity.cli", "train", "--backend", backend,
                        "--iterations", str(iterations), "--no-progress", "--print-every", "0"],
                       capture_output=True, text=True, env=env, check=True)
    return {name: (int(n), float(s)) for name, n, s in LINE.findall(p.stdout)}, p.stdout.splitlines()[0]


def main():
    from netparity import fileio
    from netparity.fingerprint import fingerprint
    fp = fingerprint()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    runs, header = [], ""
    for _ in range(REPEATS):
        r, header = run(10000)
        runs.append(r)
        print(r)
    names = list(runs[0])
    med = {n: statistics.median(r[n][1] for r in runs) for n in names}
    cores = os.cpu_count() or 1
    default_threads = None
    if "torch" in names and cores > 1:
        # torch's own thread count is so slow on a busy machine that 300 updates tell enough
        r, _ = run(300, "all", threads=cores)
        default_threads = r["torch"][1] / r["torch"][0]
    lines = ["# `netparity train --backend all`: wall time per backend", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `tools/train_wall_time.py` on "
             f"{fp['cpu']} ({cores} cores, load average {load:.1f} at the start), "
             f"{', '.join(f'{k} {fp[k]}' for k in ('numpy', 'torch', 'jax') if k in fp)}. "
             "Machine-dependent: rerun the script to measure yours.", "",
             f"Command: `netparity train --backend all` (the article's network, 10 000 iterations; "
             f"median of {REPEATS} fresh processes). Its first line: `{header}`", "",
             "| backend | seconds (median) | per update | vs numpy |", "|---|---:|---:|---:|"]
    for n in names:
        lines.append(f"| {n} | {med[n]:.2f} | {1e3 * med[n] / 10000:.3f} ms | {med[n] / med['numpy']:.2f}x |")
    if default_threads is not None:
        lines += ["", f"torch with {cores} intra-op threads instead (`NETPARITY_THREADS={cores}`, the count "
                  f"torch picks by itself; 300 updates): {1e3 * default_threads:.3f} ms per update, "
                  f"{default_threads * 10000 / med['numpy']:.0f}x numpy's time for the whole run. On a small "
                  "network every operation waits for a second thread that the busy machine has parked; "
                  "the thread policy (`netparity.numerics.thread_policy`) gives torch one thread."]
    lines += ["", "JAX's time includes its first update, which compiles the step (about a second here)."]
    fileio.write_text(OUT, "\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
