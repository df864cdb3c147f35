"""tools/gpu_check.sh, the GPU checks prepared for a session lent a GPU machine: it parses,
and its selection (the `gpu` marker) holds every test that needs a GPU, so that no CUDA or
JAX-GPU case is left out of the one run such a session gets."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "gpu_check.sh")
# tests whose ids name a GPU device without needing one: they check the error a CPU-only
# machine gives for that device
NEEDS_NO_GPU = re.compile(r"^tests/test_cli_errors\.py::test_train_device_the_backend_cannot_use\[")


def test_the_script_parses_and_selects_by_the_gpu_marker():
    assert subprocess.run(["bash", "-n", SCRIPT]).returncode == 0
    with open(SCRIPT) as f:
        text = f.read()
    assert re.search(r"pytest -q -m gpu\b", text)


def test_every_test_with_a_gpu_device_is_marked_gpu():
    """Collected here (every GPU case collects, and skips, on a CPU machine): each test whose
    id names the cuda or gpu device carries the `gpu` marker, or is one of the CPU-side error
    tests. Unmarking the CUDA-graph test (tests/test_fast_paths.py) makes this fail."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly",
                           "-p", "no:cacheprovider", "-k", "cuda or gpu", "-m", "not gpu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    ids = [ln for ln in proc.stdout.splitlines() if "::" in ln]
    unmarked = [i for i in ids if re.search(r"[\[-](cuda|gpu)[\]-]", i) and not NEEDS_NO_GPU.match(i)]
    assert unmarked == [], "\n".join(unmarked)
    assert any(NEEDS_NO_GPU.match(i) for i in ids), proc.stdout[-2000:]   # the filter sees tests at all
