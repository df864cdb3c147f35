"""Classic mistake: reduction="sum" where the course's cost is the mean over the m
examples: the cost, and every gradient, is m times too large. `netparity verify` exits 1
at cost_stable and says the cost is m times the reference's."""
import torch
from torch import nn

FRAMEWORK = "torch"
OUTPUT = "sigmoid"
STEPS = 1


def make_model(layer_dims):
    n_x, n_h, n_y = layer_dims
    return nn.Sequential(nn.Linear(n_x, n_h), nn.Tanh(), nn.Linear(n_h, n_y))


def make_optimizer(params):
    return torch.optim.SGD(params, lr=1.2)


def make_loss():
    return nn.BCEWithLogitsLoss(reduction="sum")   # bug: the course divides by m
