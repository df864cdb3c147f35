"""The article's ``optimize`` (batch GD, 2-4-1 tanh/sigmoid) on every backend, in the
config's dtype: each mirror's ``optimize`` is its fastest path (torch: eager no-grad
loop; JAX: one jit around lax.scan), so per-step time over the reference's is the
headline speed-up. The ratio is computed by ``netparity bench`` from the saved JSON."""
import pytest

from harness import info_for, measure, module, skip_reason, syncer

ITERATIONS = {"smoke": 5, "quick": 2000, "full": 2000}


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_optimize(benchmark, bench_size, article_cfg, backend):
    reason = skip_reason(backend, "optimize", "cpu")
    if reason:
        pytest.skip(reason)
    cfg, mod, n = article_cfg, module(backend), ITERATIONS[bench_size]
    X, Y = cfg.data()
    X, Y = mod.from_numpy(X), mod.from_numpy(Y)
    params = mod.tree_from_numpy(cfg.parameters())
    info = info_for(backend, "optimize", "cpu", cfg, "optimize", n, input_grad=False)
    traces = lambda: None  # noqa: E731
    if backend == "jax":
        import jax_impl.article
        from harness import jit_trace_count
        before = jit_trace_count(jax_impl.article._optimize)
        traces = lambda: jit_trace_count(jax_impl.article._optimize) - before  # noqa: E731
    measure(benchmark, lambda: mod.optimize(params, X, Y, num_iterations=n)[0],
            syncer(backend, "cpu"), bench_size, info, traces)
