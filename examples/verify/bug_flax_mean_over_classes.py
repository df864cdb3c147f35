"""Classic mistake with several outputs: the cross-entropy averaged over every entry of
the (m, n_y) label array, `(-y * log_softmax(z)).mean()`, where the course averages over
the m examples only (sum over the classes, then divide by m). With three classes the cost
and every gradient are a third of the reference's. `netparity verify` exits 1 at
cost_stable and says the cost is the reference's / n_y. The same happens with
`optax.sigmoid_binary_cross_entropy(...).mean()` for a multi-output sigmoid."""
import jax
import jax.numpy as jnp
import optax
from flax import nnx

FRAMEWORK = "jax"
OUTPUT = "softmax"      # the spirals data: three classes, one-hot labels
STEPS = 1
REFERENCE_OPTIMIZER = {"name": "gd", "learning_rate": 0.5}


class MLP(nnx.Module):
    def __init__(self, layer_dims, rngs):
        n_x, n_h, n_y = layer_dims
        self.hidden = nnx.Linear(n_x, n_h, param_dtype=jnp.float64, rngs=rngs)
        self.out = nnx.Linear(n_h, n_y, param_dtype=jnp.float64, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


def make_model(layer_dims):
    return MLP(layer_dims, nnx.Rngs(0))


def make_optimizer():
    return optax.sgd(0.5)


def make_loss():
    # right: optax.softmax_cross_entropy(logits, y).mean() (one loss per example)
    return lambda logits, y: (-y * jax.nn.log_softmax(logits)).mean()     # bug: per entry
