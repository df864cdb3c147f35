"""forward, backward, one training step and a training loop (cfg.loop_steps batch-GD
steps) for every backend x variant x device: the variants each backend's benchmark hooks
declare (``harness.hooks``; the interface: reference/bench.py)."""
import pytest

from harness import cases, hooks, info_for, measure, skip_reason


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
    measure(benchmark, made.ops[op], h.synchronize, bench_size, info,
            made.traces if op in ("step", "loop") else None)
