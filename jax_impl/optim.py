"""Optimisers and learning-rate schedules as pure functions: JAX mirror of
``reference.optim`` (conventions, forms and schedules in its docstring). ``Optimizer``
is the reference's frozen dataclass itself (hashable: a static argument of jax.jit).

State: ``t`` is a 0-d int32 jax array (not a Python int), so that inside jax.jit it is
traced and a new t does not recompile; ``vdP``/``sdP`` buffers start at zero. The
functions also accept a Python int t (a state converted from the reference's).
"""
import jax
import jax.numpy as jnp


def init_optimizer_state(parameters, optimizer):
    """Zero buffers shaped like the parameters, plus the update counter t = 0."""
    # t next to the parameters (zeros_like keeps their device and committed-ness: jax.jit
    # compiles an uncommitted and a committed argument separately)
    p0 = next(iter(parameters.values()))
    state = {"t": jnp.zeros_like(p0, dtype=jnp.int32, shape=())}
    if optimizer.name in ("momentum", "adam"):
        for k, p in parameters.items():
            state[f"vd{k}"] = jnp.zeros_like(p)
    if optimizer.name == "adam":
        for k, p in parameters.items():
            state[f"sd{k}"] = jnp.zeros_like(p)
    return state


def learning_rate_at(optimizer, k):
    """The learning rate of update number k (0-based) as a Python float, like the
    reference's and torch's: the float of exactly what ``optimizer_step`` uses. Under
    jax.jit (k traced) it stays a 0-d float64 array, as a traced value must."""
    lr = _learning_rate_at(optimizer, k)
    return lr if isinstance(lr, jax.core.Tracer) else float(lr)


def _learning_rate_at(optimizer, k):
    """The rate of update k as a 0-d float64 array; k may be traced. Same formulas as the
    reference: equal to it for inverse_time and step (XLA's pow is exact for integer
    exponents in the normal range), within ~5e-14 relative for exponential (fractional
    exponents: XLA's pow vs libm's, up to a few hundred ulps)."""
    lr0, rate, steps = optimizer.learning_rate, optimizer.decay_rate, optimizer.decay_steps
    k = jnp.asarray(k, dtype=jnp.int32)
    f64 = jnp.float64  # a Python float's precision, as in the reference
    if optimizer.schedule == "constant":
        return jnp.asarray(lr0, dtype=f64)
    if optimizer.schedule == "inverse_time":
        return lr0 / (1 + rate * (k // steps).astype(f64))
    if optimizer.schedule == "exponential":
        return lr0 * jnp.power(jnp.asarray(rate, dtype=f64), k.astype(f64) / steps)
    return lr0 * jnp.power(jnp.asarray(rate, dtype=f64), (k // steps).astype(f64))


def optimizer_step(parameters, grads, state, optimizer):
    """One update of every parameter P with its gradient ``grads["d" + P]``.

    Returns new dicts. Hyper-parameter arithmetic (lr, 1 - beta^t) is done in float64,
    like the reference's Python floats, then cast to each parameter's dtype, which is
    what NumPy does with a Python float next to a float32 array.
    """
    t = state["t"] + 1
    lr = _learning_rate_at(optimizer, state["t"])
    new_params, new_state = {}, {"t": t}
    for k, p in parameters.items():
        g = grads[f"d{k}"]
        dt = p.dtype
        if optimizer.name == "gd":
            new_params[k] = p - lr.astype(dt) * g
        elif optimizer.name == "momentum":
            beta = optimizer.beta
            if optimizer.momentum_form == "ema":
                v = beta * state[f"vd{k}"] + (1 - beta) * g
            else:
                v = beta * state[f"vd{k}"] + g
            new_state[f"vd{k}"] = v
            new_params[k] = p - lr.astype(dt) * v
        else:
            b1, b2, eps = optimizer.beta1, optimizer.beta2, optimizer.epsilon
            v = b1 * state[f"vd{k}"] + (1 - b1) * g
            s = b2 * state[f"sd{k}"] + (1 - b2) * (g * g)
            new_state[f"vd{k}"], new_state[f"sd{k}"] = v, s
            tf = jnp.asarray(t, dtype=jnp.float64)
            c1, c2 = 1 - jnp.power(b1, tf), 1 - jnp.power(b2, tf)
            if optimizer.adam_epsilon == "corrected":
                new_params[k] = p - lr.astype(dt) * (v / c1.astype(dt)) / (
                    jnp.sqrt(s / c2.astype(dt)) + eps)
            else:
                new_params[k] = p - (lr * jnp.sqrt(c2) / c1).astype(dt) * v / (jnp.sqrt(s) + eps)
    return new_params, new_state
