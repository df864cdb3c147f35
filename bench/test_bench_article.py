"""The article's ``optimize`` (batch GD, 2-4-1 tanh/sigmoid) on every backend, in the
config's dtype: each mirror's ``optimize`` is its fastest path (torch: eager loop under
inference_mode; JAX: one jit around lax.scan), so per-step time over the reference's is
the headline speed-up. ``netparity bench`` computes it from the saved JSON two ways: the
ratio of the two benchmarks' medians, and a *paired* ratio (below), which a shared,
noisy 2-core machine cannot bias: load that comes and goes between two benchmarks run
a minute apart changes their ratio, but hits both halves of a pair alike."""
import pytest

import reference
from netparity.backends import REGISTRY, backend_spec
from harness import hooks, info_for, measure, paired_speedup, settings, skip_reason

ITERATIONS = {"smoke": 5, "quick": 2000, "full": 2000}
PAIRED_ROUNDS = {"smoke": 0, "quick": 15, "full": 21}
REF_ITERATIONS = 200  # ~30 ms of reference.optimize per pair half


@pytest.mark.parametrize("backend", list(REGISTRY))
def test_optimize(benchmark, bench_size, article_cfg, backend):
    reason = skip_reason(backend, "optimize", "cpu", bench_size)
    if reason:
        pytest.skip(reason)
    cfg, h, n = article_cfg, hooks(backend), ITERATIONS[bench_size]
    Xn, Yn = cfg.data()
    made = h.make_optimize(cfg, n)
    info = info_for(backend, "optimize", "cpu", cfg, "optimize", n, input_grad=False)
    if made.costs.get("optimize"):  # the compiler's count of one iteration
        info["xla_flops"], info["xla_bytes"] = (v * n for v in made.costs["optimize"])
    fn, sync, traces = made.ops["optimize"], h.synchronize, made.traces
    with settings(cfg, made) as extra:
        info.update(extra)
        # >= 9 rounds: the headline medians should not rest on 3 samples of a noisy machine
        measure(benchmark, fn, sync, bench_size, info, traces, min_rounds=9)
        rounds = PAIRED_ROUNDS[bench_size]
        if backend_spec(backend).mirror and rounds:  # the reference is not paired with itself
            p_ref = cfg.parameters()
            med, ratios = paired_speedup(
                lambda: reference.optimize(p_ref, Xn, Yn, num_iterations=REF_ITERATIONS),
                REF_ITERATIONS, fn, n, sync, rounds)
            benchmark.extra_info.update(paired_speedup=med, paired_ratios=ratios)
