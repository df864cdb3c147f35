"""forward, backward, one training step and a training loop (cfg.loop_steps batch-GD
steps) for every backend x variant x device: the variants each backend's benchmark hooks
declare (``harness.hooks``; the interface: reference/bench.py)."""
import pytest

from harness import cases, hooks, info_for, measure, paired_speedup, settings, skip_reason

PAIRED_ROUNDS, PAIRED_BUDGET_S = 9, 20.0


@pytest.mark.parametrize("backend, variant, device, op", cases(("forward", "backward", "step", "loop")))
def test_core(benchmark, bench_size, cfg, backend, variant, device, op):
    reason = skip_reason(backend, variant, device, bench_size)
    if reason:
        pytest.skip(reason)
    h = hooks(backend)
    made = h.make_ops(variant, device, cfg)
    steps = cfg.loop_steps if op == "loop" else 1
    info = info_for(backend, variant, device, cfg, op, steps)
    if made.costs.get(op):  # the compiler's own count of one step of the fused program
        info["xla_flops"], info["xla_bytes"] = (v * steps for v in made.costs[op])
    with settings(cfg, made) as extra:
        info.update(extra)
        measure(benchmark, made.ops[op], h.synchronize, bench_size, info,
                made.traces if op in ("step", "loop") else None)
        # a variant the hooks pair with another (the whole compiled loop with the eager
        # one): alternating rounds of both, which load on a shared machine hits alike
        base = getattr(h, "PAIRED", {}).get(variant)
        if base and op == "loop" and bench_size != "smoke":
            base_op = h.make_ops(base, device, cfg).ops["loop"]
            med, ratios = paired_speedup(base_op, steps, made.ops[op], steps, h.synchronize,
                                         PAIRED_ROUNDS, PAIRED_BUDGET_S)
            benchmark.extra_info.update(paired_with=base, paired_speedup=med, paired_ratios=ratios)
