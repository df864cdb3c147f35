"""The article's ``optimize`` (batch GD, 2-4-1 tanh/sigmoid) on every backend, in the
config's dtype: each mirror's ``optimize`` is its fastest path (torch: eager loop under
inference_mode; JAX: one jit around lax.scan), so per-step time over the reference's is
the headline speed-up. ``netparity bench`` computes it from the saved JSON two ways: the
ratio of the two benchmarks' medians, and a *paired* ratio (below), which a shared,
noisy 2-core machine cannot bias: load that comes and goes between two benchmarks run
a minute apart changes their ratio, but hits both halves of a pair alike."""
import statistics
import time

import pytest

import reference
from netparity.backends import REGISTRY
from harness import info_for, measure, module, skip_reason, syncer

ITERATIONS = {"smoke": 5, "quick": 2000, "full": 2000}
PAIRED_ROUNDS = {"smoke": 0, "quick": 15, "full": 21}
REF_ITERATIONS = 200  # ~30 ms of reference.optimize per pair half


def paired_speedup(ref_fn, ref_steps, fn, steps, sync, rounds):
    """Median over ``rounds`` alternating pairs of (reference s/step) / (mirror s/step);
    which one runs first alternates, so neither always gets the warmer cache."""
    def per_step(f, n):
        t0 = time.perf_counter()
        f()
        return (time.perf_counter() - t0) / n
    ratios = []
    for i in range(rounds):
        if i % 2:
            t_ref, t = per_step(ref_fn, ref_steps), per_step(lambda: sync(fn()), steps)
        else:
            t, t_ref = per_step(lambda: sync(fn()), steps), per_step(ref_fn, ref_steps)
        ratios.append(t_ref / t)
    return statistics.median(ratios), ratios


@pytest.mark.parametrize("backend", list(REGISTRY))
def test_optimize(benchmark, bench_size, article_cfg, backend):
    reason = skip_reason(backend, "optimize", "cpu")
    if reason:
        pytest.skip(reason)
    cfg, mod, n = article_cfg, module(backend), ITERATIONS[bench_size]
    Xn, Yn = cfg.data()
    X, Y = mod.from_numpy(Xn), mod.from_numpy(Yn)
    params = mod.tree_from_numpy(cfg.parameters())
    info = info_for(backend, "optimize", "cpu", cfg, "optimize", n, input_grad=False)
    traces = lambda: None  # noqa: E731
    if backend == "jax":
        import jax_impl.article
        from harness import jit_trace_count, xla_cost
        cost = xla_cost(jax_impl.article._optimize, params, X, Y, jax_impl.from_numpy(1.2),
                        num_iterations=n, record=False)
        if cost:  # the scan body once: one iteration
            info["xla_flops"], info["xla_bytes"] = (v * n for v in cost)
        before = jit_trace_count(jax_impl.article._optimize)  # after lowering: not counted
        traces = lambda: jit_trace_count(jax_impl.article._optimize) - before  # noqa: E731
    fn, sync = (lambda: mod.optimize(params, X, Y, num_iterations=n)[0]), syncer(backend, "cpu")
    # >= 9 rounds: the headline medians should not rest on 3 samples of a noisy machine
    measure(benchmark, fn, sync, bench_size, info, traces, min_rounds=9)
    rounds = PAIRED_ROUNDS[bench_size]
    if backend != "numpy" and rounds:
        p_ref = cfg.parameters()
        med, ratios = paired_speedup(
            lambda: reference.optimize(p_ref, Xn, Yn, num_iterations=REF_ITERATIONS),
            REF_ITERATIONS, fn, n, sync, rounds)
        benchmark.extra_info.update(paired_speedup=med, paired_ratios=ratios)
