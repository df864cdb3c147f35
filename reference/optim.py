"""Optimisers and learning-rate schedules as pure functions.

    state = init_optimizer_state(parameters, optimizer)
    parameters, state = optimizer_step(parameters, grads, state, optimizer)

State is a plain dict: ``t`` (number of updates done, a Python int) and, per parameter
P in W1 b1 ..., ``vdP`` (velocity / Adam first moment) and ``sdP`` (Adam second moment).
Buffers start at zero.

Conventions (frameworks disagree; both choices are options, defaults first):

momentum_form
  "ema"        v = beta v + (1 - beta) dP;  P -= lr v     (the deep-learning course)
  "heavy_ball" v = beta v + dP;             P -= lr v     (torch.optim.SGD, optax.sgd)
  torch initialises its buffer to the first gradient rather than to zero; for the
  heavy-ball form with no dampening that is the same thing (beta * 0 + g = g).
adam_epsilon
  "corrected"   P -= lr m_hat / (sqrt(v_hat) + eps)          (torch, optax, Kingma & Ba Alg. 1)
  "uncorrected" P -= lr_t m / (sqrt(v) + eps),
                lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t)  (Keras/TF; the paper's sec. 2 form)
  They differ only through where eps sits: eps_hat = eps sqrt(1 - beta2^t).

Schedules give the rate of update number k = state["t"] (0-based, before the update):
  constant      lr0
  inverse_time  lr0 / (1 + decay_rate * floor(k / decay_steps))
  exponential   lr0 * decay_rate ** (k / decay_steps)
  step          lr0 * decay_rate ** floor(k / decay_steps)
"""
from dataclasses import dataclass, replace
import math

import numpy as np

OPTIMIZERS = ("gd", "momentum", "adam")
SCHEDULES = ("constant", "inverse_time", "exponential", "step")
MOMENTUM_FORMS = ("ema", "heavy_ball")
ADAM_EPSILONS = ("corrected", "uncorrected")
_RANGES = {
    "learning_rate": "a positive finite number",
    "beta": "a number in [0, 1)",
    "beta1": "a number in [0, 1)",
    "beta2": "a number in [0, 1)",
    "epsilon": "a positive finite number",
}


@dataclass(frozen=True)
class Optimizer:
    """Hyper-parameters of one optimiser (hashable, so a jit can take it as static)."""
    name: str = "gd"
    learning_rate: float = 1.2
    beta: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    momentum_form: str = "ema"
    adam_epsilon: str = "corrected"
    schedule: str = "constant"
    decay_rate: float = 1.0
    decay_steps: int = 1

    def __post_init__(self):
        """Every hyper-parameter is checked here, once, for every backend (they all use
        this class): names against their lists; numbers must be real (int or float,
        NumPy scalars included, never bool or str) and finite, in range:
        learning_rate > 0, 0 <= beta, beta1, beta2 < 1, epsilon > 0, decay_rate > 0
        for the decaying schedules (a negative rate makes exponential complex, step a
        gradient ascent, inverse_time divide by zero), decay_steps an integer >= 1.
        Numbers are stored as Python floats: a NumPy float64 scalar would promote float32
        arithmetic (NEP 50), a Python float never does."""
        for field_name, value, allowed in (("optimizer", self.name, OPTIMIZERS),
                                           ("schedule", self.schedule, SCHEDULES),
                                           ("momentum_form", self.momentum_form, MOMENTUM_FORMS),
                                           ("adam_epsilon", self.adam_epsilon, ADAM_EPSILONS)):
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"unknown {field_name} {value!r}; expected one of {', '.join(allowed)}")
        for field_name, low, high, closed_low in (("learning_rate", 0.0, math.inf, False),
                                                  ("beta", 0.0, 1.0, True),
                                                  ("beta1", 0.0, 1.0, True),
                                                  ("beta2", 0.0, 1.0, True),
                                                  ("epsilon", 0.0, math.inf, False),
                                                  ("decay_rate", 0.0, math.inf,
                                                   self.schedule == "constant")):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value) or not (value >= low if closed_low else value > low) \
                    or not value < high:
                what = _RANGES.get(field_name) or (
                    f"a positive finite number for the {self.schedule!r} schedule"
                    if self.schedule != "constant" else
                    "a finite number >= 0 (the constant schedule ignores it)")
                raise ValueError(f"{field_name} must be {what}, got {value!r}")
            object.__setattr__(self, field_name, float(value))
        if isinstance(self.decay_steps, bool) or not isinstance(self.decay_steps, (int, np.integer)) \
                or self.decay_steps < 1:
            raise ValueError(f"decay_steps must be a positive integer, got {self.decay_steps!r}")
        object.__setattr__(self, "decay_steps", int(self.decay_steps))

    def with_(self, **changes):
        return replace(self, **changes)


def parameter_names(parameters):
    return list(parameters.keys())


def init_optimizer_state(parameters, optimizer):
    """Zero buffers shaped like the parameters, plus the update counter t = 0."""
    state = {"t": 0}
    if optimizer.name in ("momentum", "adam"):
        for k, p in parameters.items():
            state[f"vd{k}"] = np.zeros_like(p)
    if optimizer.name == "adam":
        for k, p in parameters.items():
            state[f"sd{k}"] = np.zeros_like(p)
    return state


def learning_rate_at(optimizer, k):
    """The learning rate of update number k (0-based), as a Python float."""
    lr0, rate, steps = optimizer.learning_rate, optimizer.decay_rate, optimizer.decay_steps
    if optimizer.schedule == "constant":
        return lr0
    if optimizer.schedule == "inverse_time":
        return lr0 / (1 + rate * (k // steps))
    if optimizer.schedule == "exponential":
        return lr0 * rate ** (k / steps)
    return lr0 * rate ** (k // steps)


def optimizer_step(parameters, grads, state, optimizer):
    """One update of every parameter P with its gradient ``grads["d" + P]``.

    Returns new dicts; the inputs are not modified. Arithmetic stays in the parameters'
    dtype: hyper-parameters are Python floats, which NumPy 2 never lets upcast an array.
    """
    t = state["t"] + 1
    lr = learning_rate_at(optimizer, state["t"])
    new_params, new_state = {}, {"t": t}
    for k, p in parameters.items():
        g = grads[f"d{k}"]
        if optimizer.name == "gd":
            new_params[k] = p - lr * g
        elif optimizer.name == "momentum":
            beta = optimizer.beta
            if optimizer.momentum_form == "ema":
                v = beta * state[f"vd{k}"] + (1 - beta) * g
            else:
                v = beta * state[f"vd{k}"] + g
            new_state[f"vd{k}"] = v
            new_params[k] = p - lr * v
        else:
            b1, b2, eps = optimizer.beta1, optimizer.beta2, optimizer.epsilon
            v = b1 * state[f"vd{k}"] + (1 - b1) * g
            s = b2 * state[f"sd{k}"] + (1 - b2) * (g * g)
            new_state[f"vd{k}"], new_state[f"sd{k}"] = v, s
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            if optimizer.adam_epsilon == "corrected":
                new_params[k] = p - lr * (v / c1) / (np.sqrt(s / c2) + eps)
            else:
                new_params[k] = p - (lr * math.sqrt(c2) / c1) * v / (np.sqrt(s) + eps)
    return new_params, new_state
