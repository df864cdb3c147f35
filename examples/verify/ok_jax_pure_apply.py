"""No module at all: a pure apply(params, x) over a params dict, and optax.sgd with the
course's momentum (EMA = heavy-ball with lr * (1 - beta)), on mini-batches of 100.
`netparity verify examples/verify/ok_jax_pure_apply.py` exits 0."""
import jax.numpy as jnp
import optax

FRAMEWORK = "jax"
OUTPUT = "sigmoid"
STEPS = 4
BATCH_SIZE = 100
LR, BETA = 0.5, 0.9
REFERENCE_OPTIMIZER = {"name": "momentum", "learning_rate": LR, "beta": BETA}


def init_params(layer_dims):
    # only the structure matters: netparity loads the reference's weights into it
    return {f"dense{l}": {"kernel": jnp.zeros((n_in, n_out)), "bias": jnp.zeros((n_out,))}
            for l, (n_in, n_out) in enumerate(zip(layer_dims[:-1], layer_dims[1:]), 1)}


def apply(params, x):
    h = jnp.tanh(x @ params["dense1"]["kernel"] + params["dense1"]["bias"])
    return h @ params["dense2"]["kernel"] + params["dense2"]["bias"]


def make_optimizer():
    return optax.sgd(LR * (1 - BETA), momentum=BETA)


def make_loss():
    return lambda logits, y: optax.sigmoid_binary_cross_entropy(logits, y).mean()
