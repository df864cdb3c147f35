"""Classic mistake: loading the course's weights into flax by reshaping W to the kernel's
shape instead of transposing it. Every shape check passes (reshape makes them fit) and
the model runs; its first layer computes something else. `netparity verify` exits 1 at
Z1 and says the kernel is W reshaped, not transposed."""
import jax.numpy as jnp
import optax
from flax import nnx

FRAMEWORK = "jax"
OUTPUT = "sigmoid"
STEPS = 1
REFERENCE_OPTIMIZER = {"name": "gd", "learning_rate": 1.2}


class MLP(nnx.Module):
    def __init__(self, layer_dims, rngs):
        n_x, n_h, n_y = layer_dims
        self.layers = nnx.List([nnx.Linear(n_x, n_h, param_dtype=jnp.float64, rngs=rngs),
                                nnx.Linear(n_h, n_y, param_dtype=jnp.float64, rngs=rngs)])

    def __call__(self, x):
        return self.layers[1](jnp.tanh(self.layers[0](x)))


def make_model(layer_dims):
    return MLP(layer_dims, nnx.Rngs(0))


def load_parameters(model, parameters):
    for l, layer in enumerate(model.layers, 1):
        W, b = parameters[f"W{l}"], parameters[f"b{l}"]
        layer.kernel[...] = jnp.asarray(W).reshape(layer.kernel[...].shape)  # bug: not W.T
        layer.bias[...] = jnp.asarray(b[:, 0])
    return model


def make_optimizer():
    return optax.sgd(1.2)


def make_loss():
    return lambda logits, y: optax.sigmoid_binary_cross_entropy(logits, y).mean()
