"""Keeps bench/ from rotting: the roofline model on a hand-computed config, and the
smoke-size benchmark suite run once with timing disabled."""
import os
import subprocess
import sys

from netparity import roofline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_roofline_flops_of_the_article_network_by_hand():
    dims, m = (2, 4, 1), 400
    # forward matmuls: W1 (4x2) @ X (2x400) and W2 (1x4) @ A1 (4x400), 2 flops per MAC
    assert roofline.matmul_flops(dims, m) == 2 * 4 * 2 * 400 + 2 * 1 * 4 * 400 == 9600
    # + bias add and activation, 1 flop each per element of Z1 (4x400) and Z2 (1x400)
    assert roofline.forward_flops(dims, m) == 9600 + 2 * 4 * 400 + 2 * 1 * 400 == 13600
    # backward: dZ2 = A2 - Y (400); dW2, dA1 (2 x 3200), db2 (400); dZ1 = dA1 * g' (2 x 1600);
    # dW1, dA0 (2 x 6400), db1 (1600)
    assert roofline.backward_flops(dims, m) == 400 + 6400 + 400 + 3200 + 12800 + 1600 == 24800
    assert roofline.backward_flops(dims, m, input_grad=False) == 24800 - 6400
    assert roofline.num_parameters(dims) == 17
    flops, nbytes = roofline.step_cost(dims, m, 8, "loop", steps=10)
    assert flops == 10 * (13600 + 3 * 400 + 24800 + 2 * 17)
    assert nbytes > 0 and roofline.step_cost(dims, m, 4)[1] * 2 == roofline.step_cost(dims, m, 8)[1]
    assert roofline.roofline_fraction(1e9, 1e9, 1.0, 1e9, 1e10) == 1.0  # compute-bound at peak


def test_bench_suite_runs_at_smoke_size():
    r = subprocess.run([sys.executable, "-m", "pytest", "bench", "--bench-size", "smoke",
                        "--benchmark-disable", "-q", "-p", "no:randomly"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_targets_are_judged_on_the_stated_numbers():
    """netparity bench's target lines on hand-made rows: paired ratio decides the speed-up
    targets, the largest-traffic config decides the roofline one, any benchmark that
    compiled twice fails the compile-once target, and each target is reported even when
    another is not evaluated."""
    from netparity.cmd_bench import check_targets

    def row(**kw):
        base = dict(op="step", backend="jax", variant="scan", label="jax-scan", steps=1,
                    config="planar-x", dtype="float64", flops=1e6, bytes=1e6, speedup=None,
                    us_per_step=10.0, roofline=0.1, roofline_xla=None, name="n")
        return {**base, **kw}

    opt = [row(op="optimize", speedup=20.0, paired_speedup=9.0),  # medians say yes, pairs no
           row(op="optimize", dtype="float32", speedup=12.0, paired_speedup=14.5)]
    lines = check_targets(opt + [row(traces=1)])
    assert lines[0].startswith("MISSED: planar float64") and "9.0× paired" in lines[0]
    assert lines[1].startswith("met: planar float32")
    assert lines[2].startswith("not evaluated")
    assert lines[3].startswith("met: compiled once")
    big = [row(config="big", bytes=5e9, us_per_step=300.0, roofline=0.6, roofline_xla=0.7),
           row(config="big", bytes=5e9, us_per_step=900.0, roofline=0.9, label="slow")]
    lines = check_targets(big + [row(traces=2, name="twice")])
    assert lines[0].startswith("met: largest config big, fastest variant jax-scan")
    assert lines[1].startswith("MISSED: compiled once") and "twice" in lines[1]
    lines = check_targets([{**big[0], "roofline": 0.5, "roofline_xla": 0.6}])
    assert lines[0].startswith("MISSED: largest config big")


def test_bench_suite_names_no_framework():
    """bench/ reads every backend fact from the registry and the backends' own hooks
    (BackendSpec.bench): no name or string of its code names a mirror, its package or its
    framework (the reference is the source of the data and the paired baseline: allowed)."""
    import io
    import tokenize
    from netparity.backends import REGISTRY
    banned = {"jnp"}
    for spec in REGISTRY.values():
        if spec.mirror:  # the framework is the array type's package: torch.Tensor -> torch
            banned |= {spec.name, spec.module, spec.arrays.split(".")[0]}
    found = []
    for name in sorted(os.listdir(os.path.join(ROOT, "bench"))):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(ROOT, "bench", name), encoding="utf-8") as f:
            for tok in tokenize.generate_tokens(io.StringIO(f.read()).readline):
                is_literal = tok.type == tokenize.STRING and tok.string.strip("\"'") in banned
                if (tok.type == tokenize.NAME and tok.string in banned) or is_literal:
                    found.append(f"{name}:{tok.start[0]} {tok.string}")
    assert found == [], found


def test_results_of_earlier_runs_read_with_todays_variant_names():
    """A saved run from before the rename (torch's ``autograd`` variant, now ``autodiff``
    like the registry's gradient path) renders under the new name, with its numbers."""
    from netparity.cmd_bench import rows

    def bench(variant, median):
        info = dict(backend="torch", variant=variant, device="cpu", config="c", dims=[2, 4, 1],
                    m=400, dtype="float64", op="step", steps=1, flops=4e4, bytes=1e5,
                    compile_s=0.0)
        return {"name": f"test_core[c-step-torch-{variant}]", "extra_info": info,
                "stats": {"median": median}}

    peaks = {"flops_float64": 1e10, "flops_float32": 2e10, "bandwidth": 1e10}
    data = {"machine_info": {"roofline": peaks},
            "benchmarks": [bench("autograd", 2e-4), bench("manual", 1e-4)]}
    got = {r["label"]: r for r in rows(data)}
    assert sorted(got) == ["torch-autodiff", "torch-manual"]
    assert got["torch-autodiff"]["variant"] == "autodiff"
    assert got["torch-autodiff"]["name"] == "test_core[c-step-torch-autodiff]"
    assert got["torch-autodiff"]["us_per_step"] == 200.0
