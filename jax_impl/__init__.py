"""netparity's JAX mirror of the NumPy reference: the same flat public API (docs/API.md),
taking and returning jax arrays; weights, data and batch order come from the reference.

The one global setting: importing this package turns on ``jax_enable_x64`` (float64
exists in JAX only with it). It applies to the whole process; every function here passes
explicit dtypes, so float32 inputs still compute in float32. Matmul precision is left to
the caller (``jax.default_matmul_precision``); on CPU it makes no difference (float32
matmuls run in float32 at every setting; the reduced-precision passes are GPU/TPU ones).
"""
import jax as _jax

_jax.config.update("jax_enable_x64", True)

# the reference's own constants and classes: one definition each, shared by every backend
from reference.activations import LEAKY_SLOPE, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from reference.costs import COSTS
from reference.network import INITIALIZERS
from reference.optim import OPTIMIZERS, SCHEDULES, Optimizer
from reference.training import NonFiniteError
from .activations import activation, activation_grad, softmax
from .article import (layer_sizes, initialize_parameters, sigmoid, forward_propagation,  # noqa: E402
                      compute_cost, backward_propagation, update_parameters, optimize, model,
                      predict)
from .costs import cross_entropy, cross_entropy_from_logits  # noqa: E402
# data sets and batch order are the reference's (NumPy arrays; convert with from_numpy)
from reference.data import DATASETS, load_dataset, load_planar_dataset, batch_order, one_hot  # noqa: E402
from .network import (initialize_network, network_forward, network_backward,  # noqa: E402
                      network_backward_autodiff, num_layers)
from .network import predict as network_predict  # noqa: E402
from .optim import init_optimizer_state, learning_rate_at, optimizer_step
from .training import train_step, train, train_scan, gradient_norms

NAME = "jax"
from ._convert import devices, from_numpy, to_numpy, tree_from_numpy, tree_to_numpy
from .backend import GRAD_PATHS, compile_status, make_train_step, save_weights, load_weights

# the remedies (docs/remedies.md): Remedies is the reference's; the draws (weights, dropout
# masks) are the reference's, converted; validated below like every public function
from reference.remedies import Remedies  # noqa: E402,F401
from .remedies import (initialize_remedy_network, init_bn_state, dropout_masks,  # noqa: E402,F401
                       step_masks, remedy_forward, remedy_cost, remedy_backward,
                       remedy_backward_autodiff, remedy_step)

# the reference's validation (reference/validate.py, docs/errors.md): same checks, same
# messages, run outside any jit; a tracer's values are unknown (None): only its shape and
# dtype are checked. Internal callers (loops, lax.scan bodies) skip validation.
from reference.validate import guard_api as _guard_api  # noqa: E402
from ._convert import OPS as _OPS
globals().update(_guard_api(globals(), _OPS))
from .idiomatic import run_idiomatic, run_idiomatic_remedies  # noqa: E402,F401  the idiomatic flax.nnx/optax path (needs flax, optax)
