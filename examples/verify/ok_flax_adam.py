"""The article's network as a JAX user writes it: a flax.nnx module of nnx.Linear layers,
optax.adam and optax's sigmoid cross-entropy. `netparity verify examples/verify/ok_flax_adam.py`
exits 0. optax transformations are closures whose hyper-parameters cannot be read back,
so the file names the reference optimiser to compare with."""
import jax.numpy as jnp
import optax
from flax import nnx

FRAMEWORK = "jax"
OUTPUT = "sigmoid"
STEPS = 3
REFERENCE_OPTIMIZER = {"name": "adam", "learning_rate": 0.01}


class MLP(nnx.Module):
    def __init__(self, layer_dims, rngs):
        n_x, n_h, n_y = layer_dims
        self.hidden = nnx.Linear(n_x, n_h, param_dtype=jnp.float64, rngs=rngs)
        self.out = nnx.Linear(n_h, n_y, param_dtype=jnp.float64, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))     # logits


def make_model(layer_dims):
    return MLP(layer_dims, nnx.Rngs(0))


def make_optimizer():
    return optax.adam(0.01)


def make_loss():
    # the mean over the m examples (n_y = 1 here: over n_y * m entries is the same)
    return lambda logits, y: optax.sigmoid_binary_cross_entropy(logits, y).mean()
