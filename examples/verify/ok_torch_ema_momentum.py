"""The course's momentum (v = beta v + (1 - beta) dW; W -= lr v) written with
torch.optim.SGD, which is heavy-ball (v = beta v + dW): the same thing once the learning
rate is lr * (1 - beta). REFERENCE_OPTIMIZER asks netparity to compare with the course's
form explicitly. `netparity verify examples/verify/ok_torch_ema_momentum.py` exits 0."""
import torch
from torch import nn

FRAMEWORK = "torch"
OUTPUT = "sigmoid"
STEPS = 3
LR, BETA = 0.5, 0.9
REFERENCE_OPTIMIZER = {"name": "momentum", "learning_rate": LR, "beta": BETA}   # EMA form


def make_model(layer_dims):
    n_x, n_h, n_y = layer_dims
    return nn.Sequential(nn.Linear(n_x, n_h), nn.Tanh(), nn.Linear(n_h, n_y))


def make_optimizer(params):
    return torch.optim.SGD(params, lr=LR * (1 - BETA), momentum=BETA)


def make_loss():
    return nn.BCEWithLogitsLoss()
