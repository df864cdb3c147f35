"""Classic mistake: the model ends in nn.Sigmoid() and the loss is BCEWithLogitsLoss,
which applies the sigmoid again. The Linear layers agree with the reference (Z2 passes);
the output A2 = sigmoid(sigmoid(Z2)) does not. `netparity verify` exits 1 at A2."""
import torch
from torch import nn

FRAMEWORK = "torch"
OUTPUT = "sigmoid"
STEPS = 1


def make_model(layer_dims):
    n_x, n_h, n_y = layer_dims
    return nn.Sequential(nn.Linear(n_x, n_h), nn.Tanh(), nn.Linear(n_h, n_y), nn.Sigmoid())  # bug


def make_optimizer(params):
    return torch.optim.SGD(params, lr=1.2)


def make_loss():
    return nn.BCEWithLogitsLoss()
