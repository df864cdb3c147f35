"""Hidden-layer activations g and their derivatives g' (torch mirror of
reference/activations.py; same formulas, same conventions).

Everything computes in the dtype of its input: Python scalars such as 0.01 never
promote a tensor, and no tensor is created without an explicit dtype/device.

Derivative at exactly z = 0 (reference convention): relu'(0) = 0, leaky_relu'(0) = 0.01,
in the manual formulas below and in autograd alike. Checked in torch 2.13 at z = 0:
``torch.relu`` backward gives 0, ``torch.where(z > 0, z, 0.01 z)`` gives 0.01 (as does
``F.leaky_relu``), whereas ``torch.maximum(z, 0)`` gives 0.5 and ``torch.clamp(z, min=0)``
gives 1, which is why neither is used for an activation.
"""
import torch

from reference.activations import LEAKY_SLOPE, HIDDEN_ACTIVATIONS, check_activation


def _sigmoid_formula(z):
    # 1 / (1 + e^-z): the reference's formula (torch.sigmoid rounds differently more often);
    # e^-z = inf for z < -709 (float64) / -88 (float32) gives the correct exact 0.
    return 1 / (1 + torch.exp(-z))


class _Sigmoid(torch.autograd.Function):
    """The formula forward, backward g' = a (1 - a) from the output. Autograd through the
    formula itself gives nan once e^-z overflows (0 * inf; float32 already at z = -100),
    where the manual path (and the true derivative) gives 0."""

    @staticmethod
    def forward(z):
        return _sigmoid_formula(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad):
        a, = ctx.saved_tensors
        return grad * sigmoid_grad(None, a)


def sigmoid(z):
    if torch.is_grad_enabled() and z.requires_grad:
        return _Sigmoid.apply(z)
    return _sigmoid_formula(z)  # no graph to build: skip the autograd.Function overhead


def sigmoid_grad(z, a):
    # g' = g (1 - g), from the cached activation
    return a * (1 - a)


def tanh(z):
    return torch.tanh(z)


def tanh_grad(z, a):
    # g' = 1 - g^2
    return 1 - a * a


def relu(z):
    # value of max(z, 0); autograd gives 0 at z = 0 (see the module docstring)
    return torch.relu(z)


def relu_grad(z, a):
    # 1 for z > 0, else 0 (convention: 0 at z = 0)
    return (z > 0).to(z.dtype)


def leaky_relu(z):
    # autograd of torch.where takes the branch chosen by z > 0: 0.01 at z = 0
    return torch.where(z > 0, z, LEAKY_SLOPE * z)


def leaky_relu_grad(z, a):
    # 1 for z > 0, else 0.01 (convention: 0.01 at z = 0)
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE))


def softmax(z):
    # column-wise e^z_j / sum_k e^z_k, shifted by the column max against overflow
    e = torch.exp(z - z.amax(dim=0, keepdim=True))
    return e / e.sum(dim=0, keepdim=True)


_FORWARD = {"sigmoid": sigmoid, "tanh": tanh, "relu": relu, "leaky_relu": leaky_relu,
            "softmax": softmax}
_BACKWARD = {"sigmoid": sigmoid_grad, "tanh": tanh_grad, "relu": relu_grad,
             "leaky_relu": leaky_relu_grad}


def activation(name, z):
    """g(z) for a named activation."""
    check_activation(name, HIDDEN_ACTIVATIONS + ("softmax",))
    return _FORWARD[name](z)


def activation_grad(name, z, a):
    """g'(z) for a hidden activation, given z and a = g(z)."""
    check_activation(name)
    return _BACKWARD[name](z, a)
