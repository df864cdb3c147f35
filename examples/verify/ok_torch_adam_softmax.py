"""A 3-class softmax network (spirals data) with Adam on mini-batches of 64, as a PyTorch
user writes it. `netparity verify examples/verify/ok_torch_adam_softmax.py` exits 0."""
import torch
from torch import nn

FRAMEWORK = "torch"
OUTPUT = "softmax"      # spirals data, three classes (one-hot Y)
HIDDEN = "relu"
LAYER_DIMS = (2, 8, 3)
STEPS = 3
BATCH_SIZE = 64


def make_model(layer_dims):
    n_x, n_h, n_y = layer_dims
    return nn.Sequential(nn.Linear(n_x, n_h), nn.ReLU(), nn.Linear(n_h, n_y))


def make_optimizer(params):
    return torch.optim.Adam(params, lr=0.01)


def make_loss():
    # y arrives as one-hot rows (m, 3): CrossEntropyLoss takes them as class probabilities
    return nn.CrossEntropyLoss()
