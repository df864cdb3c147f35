"""Long trajectories: how far may two correct implementations drift apart?

The per-step bounds of ``tolerance.py`` propagate |J| E with the absolute Jacobian, which
is rigorous to first order but grows like ||abs(J)||^t: after ~100 steps at lr 1.2 it
says nothing. For trajectories the suite uses a measured model instead:

    a "shadow" reference run starts from the same weights perturbed by one ulp (2u)
    of the compared dtype (W (1 + u s), s = +-1 from a fixed seed). Its distance D(t) from
    the reference is the dynamics' own amplification of a one-rounding difference (a
    finite-difference Lyapunov estimate). A backend rounds differently at every step, so
    its distance may be up to the sum of t + 1 such contributions:

        |x_b(t) - x_r(t)| <= SAFETY (t + 1) max_{s <= t} D(s) + 2 E_1(x),

    with E_1 the one-step bound of the stage (tolerance.py) as the floor and SAFETY = 10;
    for the final parameters D is the max over the whole array (norm-wise), t the last step.

Where D(t) reaches the size of the quantity itself the trajectories have parted: the
model then allows anything, and the suite reports the step where it happened instead of
pretending to check it.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import reference as R
from netparity.tolerance import UNIT_ROUNDOFF

SAFETY = 10.0


@dataclass
class Trajectory:
    costs: np.ndarray         # reference cost per update (same dtype), float64 copy
    shadow_costs: np.ndarray  # shadow reference
    params: dict              # final parameters (same dtype)
    shadow_params: dict

    def envelope(self, a, b):
        return np.maximum.accumulate(np.abs(a - b))

    def cost_bound(self, floor):
        t = np.arange(1, len(self.costs) + 1)
        return SAFETY * t * self.envelope(self.costs, self.shadow_costs) + floor

    def param_bound(self, key, floor):
        n = len(self.costs)
        # norm-wise (max over the array): an element's shadow distance can be near zero
        # by chance while its rounding history is not
        return SAFETY * n * np.max(np.abs(self.params[key] - self.shadow_params[key])) + floor

    def parting_step(self, rel=0.01):
        """First update whose shadow cost differs by more than rel (relative), or None."""
        d = np.abs(self.costs - self.shadow_costs) / np.abs(self.costs)
        hits = np.nonzero(d > rel)[0]
        return int(hits[0]) if hits.size else None


def perturb(params, dtype, seed=12345):
    rng = np.random.RandomState(seed)
    u = 2 * UNIT_ROUNDOFF[dtype]  # one ulp of 1: 1 + u itself would round back to 1
    return {k: v * (1 + u * rng.choice([-1.0, 1.0], size=v.shape)).astype(v.dtype) if k[0] == "W"
            else v for k, v in params.items()}


@lru_cache(maxsize=64)
def reference_trajectory(dims, init, data, dtype, hidden, output, opt_key, optimizer,
                         num_epochs, batch_size):
    X, Y = R.load_dataset(data)
    X, Y = X.astype(dtype), Y.astype(dtype)
    p0 = R.tree_from_numpy(R.initialize_network(list(dims), init=init, seed=1), dtype)
    runs = []
    for p in (p0, perturb(p0, dtype)):
        params, _, costs = R.train(p, X, Y, hidden, output, optimizer, num_epochs, batch_size,
                                   seed=0, check_finite=False)
        runs.append((costs.astype(np.float64), params))
    return Trajectory(runs[0][0], runs[1][0], runs[0][1], runs[1][1])
