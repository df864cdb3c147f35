"""Classic mistake: the training step never calls optimizer.zero_grad(), so backward()
adds each step's gradients to the previous ones. Step 1 is right; at step 2 dW2 is the
sum of the gradients of steps 1 and 2. `netparity verify` exits 1, names dW2 at step 2
and says why."""
import torch
from torch import nn

FRAMEWORK = "torch"
OUTPUT = "sigmoid"
STEPS = 2


def make_model(layer_dims):
    n_x, n_h, n_y = layer_dims
    return nn.Sequential(nn.Linear(n_x, n_h), nn.Tanh(), nn.Linear(n_h, n_y))


def make_optimizer(params):
    return torch.optim.SGD(params, lr=1.2)


def make_loss():
    return nn.BCEWithLogitsLoss()


def train_step(model, optimizer, loss_fn, x, y):
    loss = loss_fn(model(x), y)     # bug: no optimizer.zero_grad() first
    loss.backward()
    optimizer.step()
    return loss
