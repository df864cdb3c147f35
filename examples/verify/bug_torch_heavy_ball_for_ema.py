"""Classic mistake: torch.optim.SGD(momentum=beta) taken for the course's momentum. torch's
is heavy-ball (v = beta v + dW), the course's an exponential average (v = beta v +
(1 - beta) dW): the first update is 1/(1 - beta) = 10 times too large. `netparity verify`
exits 1 at W1' of step 1 and says how to fix it (lr * (1 - beta))."""
import torch
from torch import nn

FRAMEWORK = "torch"
OUTPUT = "sigmoid"
STEPS = 2
LR, BETA = 0.5, 0.9
REFERENCE_OPTIMIZER = {"name": "momentum", "learning_rate": LR, "beta": BETA}   # the course's EMA


def make_model(layer_dims):
    n_x, n_h, n_y = layer_dims
    return nn.Sequential(nn.Linear(n_x, n_h), nn.Tanh(), nn.Linear(n_h, n_y))


def make_optimizer(params):
    return torch.optim.SGD(params, lr=LR, momentum=BETA)    # bug: heavy-ball, lr not scaled


def make_loss():
    return nn.BCEWithLogitsLoss()
