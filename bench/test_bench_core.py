"""forward, backward, one training step and a training loop (cfg.loop_steps batch-GD
steps) for every backend x variant x device; see harness.VARIANTS."""
import pytest

from harness import VARIANTS, info_for, make_ops, measure, skip_reason, syncer, variant_id

CASES = [pytest.param(key, op, id=f"{op}-{variant_id(*key)}",
                      marks=[pytest.mark.compiled] if key[1] in ("compile", "jit", "scan") else [])
         for op in ("forward", "backward", "step", "loop")
         for key, ops in VARIANTS.items() if op in ops]


@pytest.mark.parametrize("key, op", CASES)
def test_core(benchmark, bench_size, cfg, key, op):
    backend, variant, device = key
    if variant == "compile" and bench_size == "smoke":  # checked first: compile_status() compiles
        pytest.skip("smoke size: torch.compile takes ~20 s to compile on a CPU, over the CI budget")
    reason = skip_reason(backend, variant, device)
    if reason:
        pytest.skip(reason)
    if variant == "compile":
        import torch._dynamo
        # a fresh compile per config: otherwise the second shape turns on dynamic shapes
        torch._dynamo.reset()
        from torch._dynamo.utils import counters
        counters.clear()
    ops, traces, xla = make_ops(backend, variant, device, cfg)
    if variant == "compile":
        # frames torch.compile compiled for this benchmark (first call, warm-ups and every
        # timed round): 1 means no recompilation
        traces = lambda: counters["frames"]["ok"]  # noqa: E731
    steps = cfg.loop_steps if op == "loop" else 1
    info = info_for(backend, variant, device, cfg, op, steps)
    if xla.get(op):  # XLA's own count of one step of the fused program
        info["xla_flops"], info["xla_bytes"] = (v * steps for v in xla[op])
    measure(benchmark, ops[op], syncer(backend, device), bench_size, info,
            traces if op in ("step", "loop") else lambda: None)
