"""netparity's NumPy reference: the specification every other backend is held to.

Pure NumPy, no torch or jax. Flat public API (the same names in torch_impl, jax_impl).
"""
from .activations import (LEAKY_SLOPE, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, activation,
                          activation_grad, softmax)
from .article import (layer_sizes, initialize_parameters, sigmoid, forward_propagation,
                      compute_cost, backward_propagation, update_parameters, optimize, model,
                      predict)
from .costs import cross_entropy, cross_entropy_from_logits
from .data import DATASETS, load_dataset, load_planar_dataset, batch_order, one_hot
from .network import (INITIALIZERS, initialize_network, network_forward, network_backward,
                      num_layers)
from .network import predict as network_predict
from .optim import (OPTIMIZERS, SCHEDULES, Optimizer, init_optimizer_state, learning_rate_at,
                    optimizer_step)
from .training import (COSTS, NonFiniteError, train_step, train, gradient_norms)
from .remedies import (Remedies, initialize_remedy_network, init_bn_state, dropout_masks,
                       step_masks, remedy_forward, remedy_cost, remedy_backward, remedy_step)

NAME = "numpy"
from .backend import (GRAD_PATHS, devices, compile_status, from_numpy, to_numpy, tree_from_numpy,
                      tree_to_numpy, make_train_step, save_weights, load_weights)

# every public function that takes user data validates it (reference/validate.py,
# docs/errors.md); internal callers use the unvalidated implementations
from .validate import NUMPY_OPS as _OPS, guard_api as _guard_api  # noqa: E402
globals().update(_guard_api(globals(), _OPS))
