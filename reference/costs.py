"""Cross-entropy costs: the article's literal formula and a stable one from logits.

literal  (from the activations A = g(Z)):
    sigmoid: J = -(1/m) sum(Y log A + (1 - Y) log(1 - A))
    softmax: J = -(1/m) sum(Y log A)
  Once A saturates to exactly 0 or 1 (float32: |z| > ~17 for 1 - A, ~104 for A) a log
  returns -inf and 0 * -inf = nan: the literal cost is nan or inf.

stable   (from the logits Z, never nan for finite Z):
    sigmoid: J = (1/m) sum(max(z, 0) - z y + log1p(exp(-|z|)))
    softmax: J = (1/m) sum(logsumexp(z) - sum_j y_j z_j)
  Same value in exact arithmetic; its gradient w.r.t. Z is (A - Y)/m, identical to the
  literal one's, which is why backward uses dZ^[L] = A^[L] - Y for both.

Both return a 0-d array in the input dtype (``float(J)`` gives the Python scalar).
"""

import numpy as np

from .activations import check_activation, OUTPUT_ACTIVATIONS

COSTS = ("stable", "literal")


def unknown_cost(cost):
    """The one error for a cost name that is not in COSTS (raise it)."""
    return ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")


def check_cost(cost):
    if cost not in COSTS:
        raise unknown_cost(cost)
    return cost



def cross_entropy(AL, Y, output="sigmoid"):
    """Literal cost from activations AL (n_y, m) and labels Y (n_y, m)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    m = Y.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        if output == "sigmoid":
            loss = Y * np.log(AL) + (1 - Y) * np.log(1 - AL)
        else:
            loss = Y * np.log(AL)
    return -np.sum(loss) / m


def cross_entropy_from_logits(ZL, Y, output="sigmoid"):
    """Stable cost from logits ZL (n_y, m) and labels Y (n_y, m)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    m = Y.shape[1]
    if output == "sigmoid":
        loss = np.maximum(ZL, 0) - ZL * Y + np.log1p(np.exp(-np.abs(ZL)))
    else:
        zmax = ZL.max(axis=0, keepdims=True)
        lse = zmax + np.log(np.sum(np.exp(ZL - zmax), axis=0, keepdims=True))
        loss = lse - np.sum(Y * ZL, axis=0, keepdims=True)
    return np.sum(loss) / m
