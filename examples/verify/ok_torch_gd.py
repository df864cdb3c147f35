"""The article's network as a PyTorch user writes it: nn.Sequential of nn.Linear, tanh,
BCEWithLogitsLoss and plain SGD. `netparity verify examples/verify/ok_torch_gd.py` exits 0.

netparity copies the reference's initial weights into the two nn.Linear layers, infers
the reference optimiser from yours (SGD, lr 1.2 -> gradient descent at 1.2) and checks
every stage of 3 full-batch updates on the planar data."""
import torch
from torch import nn

FRAMEWORK = "torch"
OUTPUT = "sigmoid"      # planar data, one output unit
HIDDEN = "tanh"
STEPS = 3


def make_model(layer_dims):
    n_x, n_h, n_y = layer_dims
    return nn.Sequential(nn.Linear(n_x, n_h), nn.Tanh(), nn.Linear(n_h, n_y))  # returns logits


def make_optimizer(params):
    return torch.optim.SGD(params, lr=1.2)


def make_loss():
    return nn.BCEWithLogitsLoss()   # the mean over m examples = the course's cost for n_y = 1
