"""Cross-entropy costs, literal (from activations) and stable (from logits); the torch
mirror of reference/costs.py, whose docstring gives the formulas and the nan regimes.

Both return a 0-d tensor in the input dtype (``float(J)`` gives the Python scalar).
"""
import torch

from reference.activations import check_activation, OUTPUT_ACTIVATIONS


def cross_entropy(AL, Y, output="sigmoid"):
    """Literal cost from activations AL (n_y, m) and labels Y (n_y, m)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    m = Y.shape[1]
    # torch never warns on log(0) = -inf or 0 * -inf = nan: no errstate needed
    if output == "sigmoid":
        loss = Y * torch.log(AL) + (1 - Y) * torch.log(1 - AL)
    else:
        loss = Y * torch.log(AL)
    return -torch.sum(loss) / m


def cross_entropy_from_logits(ZL, Y, output="sigmoid"):
    """Stable cost from logits ZL (n_y, m) and labels Y (n_y, m)."""
    check_activation(output, OUTPUT_ACTIVATIONS)
    m = Y.shape[1]
    if output == "sigmoid":
        # torch.maximum, not relu/clamp: its autograd splits a tie 0.5/0.5, so at ZL = 0
        # (e.g. b = 0 behind dead ReLUs) the gradient is 0.5 - y = sigmoid(0) - y exactly
        # (|z|' = 0 there); relu would give -y and clamp_min 1 - y.
        loss = (torch.maximum(ZL, torch.zeros_like(ZL)) - ZL * Y
                + torch.log1p(torch.exp(-torch.abs(ZL))))
    else:
        zmax = ZL.amax(dim=0, keepdim=True)
        lse = zmax + torch.log(torch.sum(torch.exp(ZL - zmax), dim=0, keepdim=True))
        loss = lse - torch.sum(Y * ZL, dim=0, keepdim=True)
    return torch.sum(loss) / m
