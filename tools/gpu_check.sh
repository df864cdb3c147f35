#!/usr/bin/env bash
# The GPU checks as one prepared script, for a session that is lent a GPU machine (the
# device tool's `run`, 15 minutes of device time in all): every test marked `gpu` (the
# CUDA and JAX-GPU parametrisations of the conformance matrix, TF32, the CUDA-graph
# replay, ...), `netparity check` on the GPU devices with its JSON, and the GPU benchmarks.
# Nothing is installed: the machine's own python3 (torch, jax with its CUDA plugin, flax,
# optax, pytest, xdist, pytest-benchmark, hypothesis) runs this checkout via PYTHONPATH.
# Versions differ from requirements-ci.txt there; env.txt records them.
#
#   run(command="bash tools/gpu_check.sh", timeout_s=560)     # ~9 min budget, see below
#
# Writes to $OUT (the tool's folder; default ./gpu_out): env.txt, tests.log, tests.xml,
# check.log, check.json, bench.log, bench.json/.md. Commit what comes back under
# docs/gpu/ and fix what it shows. Each part has its own time limit (they add up to
# ~8.5 min) and a part that fails or runs out does not stop the next.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 NETPARITY_JAX_CACHE=0
T_TESTS=${T_TESTS:-270} T_CHECK=${T_CHECK:-60} T_BENCH=${T_BENCH:-170}

{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  $PY - <<'PY'
import platform, sys
print("python", platform.python_version(), sys.executable)
for name in ("numpy", "torch", "jax", "jaxlib", "flax", "optax", "pytest", "xdist", "pytest_benchmark", "hypothesis"):
    try:
        mod = __import__(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as e:  # noqa: BLE001 - a missing package is a line of the record
        print(name, "MISSING:", type(e).__name__, e)
import torch, jax
print("torch.cuda", torch.cuda.is_available(), torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
print("jax devices", jax.devices())
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== 1. every test marked gpu (${T_TESTS} s)"
timeout "$T_TESTS" $PY -m pytest -q -m gpu -n 8 -p no:cacheprovider -p no:randomly -rfEs \
    --junitxml="$OUT/tests.xml" > "$OUT/tests.log" 2>&1
echo "exit $?"; tail -n 25 "$OUT/tests.log"

echo "== 2. netparity check on the GPU devices (${T_CHECK} s)"
timeout "$T_CHECK" $PY -m netparity.cli check --device cuda --device gpu --dtype float32 --dtype float64 \
    --optimizer gd --optimizer adam --steps 1 --steps 3 --batch mini --no-progress --no-color \
    --json "$OUT/check.json" > "$OUT/check.log" 2>&1
echo "exit $?"; tail -n 4 "$OUT/check.log"

echo "== 3. GPU benchmarks (${T_BENCH} s)"
timeout "$T_BENCH" $PY -m netparity.cli bench --quick --select "cuda or gpu" --json "$OUT/bench.json" \
    > "$OUT/bench.log" 2>&1
echo "exit $?"; tail -n 30 "$OUT/bench.log"
