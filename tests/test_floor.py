"""The compute floor (netparity.floor): the operation counts of a step derived by hand,
the floor's arithmetic from given rates, and the rates measured on this machine."""
import math

import pytest

from netparity import floor


def test_step_ops_of_the_article_network_by_hand():
    """2-4-1 x 400, tanh hidden, sigmoid output."""
    dims, m = (2, 4, 1), 400
    forward = (2 * 4 * 2 * m + 4 * m) + (2 * 1 * 4 * m + 1 * m)  # W A + b, two layers: 11 600
    c = floor.step_ops(dims, m, "forward")
    assert c["flops"] == forward == 11600
    assert (c["tanh"], c["sigmoid"], c["cost_sigmoid"], c["softmax"]) == (4 * m, m, 0, 0)
    backward = (m                                   # dZ2 = A2 - Y
                + 2 * 4 * 2 * m + 4 * 2 + 4 * m + 4  # dW1 (+ /m), db1 (sums, /m)
                + 2 * 4 * 2 * m                      # dA0 = W1^T dZ1
                + 2 * 1 * 4 * m + 1 * 4 + m + 1      # dW2, db2
                + 2 * 1 * 4 * m                      # dA1 = W2^T dZ2
                + 3 * 4 * m)                         # dZ1 = dA1 (1 - A1^2)
    b = floor.step_ops(dims, m, "backward")
    assert b["flops"] == backward and b["tanh"] == b["sigmoid"] == 0
    s = floor.step_ops(dims, m, "step")
    assert s["flops"] == forward + m + backward + 2 * 17  # + the cost's sum + the update
    assert s["cost_sigmoid"] == m and s["tanh"] == 4 * m
    o = floor.step_ops(dims, m, "optimize", steps=10)
    # the article's optimize: no cost, no dA0
    assert o["flops"] == 10 * (s["flops"] - m - 2 * 4 * 2 * m)
    assert o["cost_sigmoid"] == 0 and o["tanh"] == 10 * 4 * m
    soft = floor.step_ops((784, 128, 10), 4000, "step", output="softmax")
    assert soft["softmax"] == soft["cost_softmax"] == 10 * 4000 and soft["sigmoid"] == 0


def test_floor_seconds_from_given_rates():
    rates = {"flops_float64": 1e9, "tanh_float64": 1e8, "sigmoid_float64": 5e7,
             "cost_sigmoid_float64": 2.5e7}
    counts = {"flops": 3000, "tanh": 200, "sigmoid": 100, "cost_sigmoid": 50, "softmax": 0,
              "cost_softmax": 0}
    want = 3000 / 1e9 + 200 / 1e8 + 100 / 5e7 + 50 / 2.5e7  # 3 + 2 + 2 + 2 us
    assert math.isclose(floor.floor_seconds(counts, "float64", rates), want, rel_tol=1e-12)
    assert math.isclose(floor.fraction(2 * want, counts, "float64", rates), 0.5, rel_tol=1e-12)
    assert floor.breakdown(counts, "float64", rates) == pytest.approx(
        {"arithmetic": 3e-6, "tanh": 2e-6, "sigmoid": 2e-6, "cost_sigmoid": 2e-6})
    assert floor.floor_seconds(counts, "float32", rates) is None  # no float32 rates


def test_rates_are_measured_for_every_class_and_dtype():
    rates = floor.measure_rates(repeats=1, backends=["numpy"])
    for dtype in ("float64", "float32"):
        assert rates[f"flops_{dtype}"] > 1e8  # any CPU of this decade: > 0.1 GFLOP/s
        for cls in floor.TRANSCENDENTAL:
            # from 1e6 (a slow scalar libm on a busy core) to 1e11 elements per second
            assert 1e6 < rates[f"{cls}_{dtype}"] < 1e11, (cls, dtype, rates)
            assert rates[f"{cls}_{dtype}_by"] == "numpy"


def test_gap_rows_per_example_floor_and_fit_by_hand():
    """The gap table (netparity.cmd_bench.gap_rows): the floor's cost per example of the
    2-4-1 step derived by hand (96 FLOPs: forward 29, cost sum 1, dZ2 1, dW1 16, db1 4,
    dA0 16, dW2 8, db2 1, dA1 8, dZ1 12; 4 tanh, 1 sigmoid, 1 stable cost per example),
    one core's share, and the fixed cost / per-example cost of the sweep as given."""
    from netparity.cmd_bench import gap_rows
    rates = {"flops_float64": 1e9, "tanh_float64": 1e8, "sigmoid_float64": 5e7,
             "cost_sigmoid_float64": 2.5e7, "cores": 2}
    per_example = 96 / 1e9 + 4 / 1e8 + 1 / 5e7 + 1 / 2.5e7
    cols = [16, 100, 400, 1600]
    sweep = {"columns": cols, "seconds_per_step": [2e-6 + 3e-8 * m for m in cols],
             "kernels": 20, "fixed_seconds": 2e-6, "seconds_per_column": 3e-8}
    (row,) = gap_rows({"machine_info": {"floor": rates, "floor_gap": {"jax": {"float64": sweep}}}})
    assert row["floor_ns_per_column"] == pytest.approx(1e9 * per_example, rel=1e-12)
    assert row["floor_ns_per_column_one_core"] == pytest.approx(2e9 * per_example, rel=1e-12)
    assert row["us_at_400"] == pytest.approx(2 + 0.03 * 400)
    assert (row["fixed_us"], row["kernels"]) == (pytest.approx(2.0), 20)


def test_loop_kernels_counts_the_while_body_of_compiled_hlo():
    """The kernels per iteration read from XLA's compiled text: fusions, dots, custom calls
    and copies of the while body only (not the condition, not the entry)."""
    pytest.importorskip("jax", reason="jax not installed")
    from jax_impl.bench import _loop_kernels
    text = "\n".join([
        "%fused_computation (p: f64[4]) -> f64[4] {",
        "  ROOT %m = f64[4] multiply(%p, %p)",
        "}",
        "%body.1 (t: (s64[], f64[4])) -> (s64[], f64[4]) {",
        "  %a = f64[4] fusion(%x), kind=kLoop, calls=%fused_computation",
        "  %b = f64[4] dot(%a, %a)",
        "  %c = f64[4] copy(%b)",
        "  %d = f64[4] custom-call(%c)",
        "  ROOT %t = (s64[], f64[4]) tuple(%i, %d)",
        "}",
        "%cond.2 (t: (s64[], f64[4])) -> pred[] {",
        "  %e = pred[] fusion(%i), kind=kLoop, calls=%cmp",
        "}",
        "ENTRY %main (x: f64[4]) -> f64[4] {",
        "  %w = (s64[], f64[4]) while(%init), condition=%cond.2, body=%body.1",
        "  %f = f64[4] fusion(%w), kind=kLoop, calls=%fused_computation",
        "}",
    ])
    assert _loop_kernels(text) == 4
