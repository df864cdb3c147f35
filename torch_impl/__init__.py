"""netparity's PyTorch mirror of the NumPy reference: the same flat API (docs/API.md),
taking and returning torch tensors. Weights, data sets and mini-batch orders come from
the reference (this package never draws random numbers); ``Optimizer`` and
``NonFiniteError`` are the reference's own classes. Importing it changes no global torch
state (default dtype, precision flags, threads are the caller's business).
"""
# the reference's own constants and classes: one definition each, shared by every backend
from reference.activations import LEAKY_SLOPE, HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from reference.costs import COSTS
from reference.network import INITIALIZERS
from reference.optim import OPTIMIZERS, SCHEDULES, Optimizer
from reference.training import NonFiniteError
from .activations import activation, activation_grad, softmax
from .article import (layer_sizes, initialize_parameters, sigmoid, forward_propagation,
                      compute_cost, backward_propagation, update_parameters, optimize, model,
                      predict)
from .costs import cross_entropy, cross_entropy_from_logits
from reference.data import DATASETS, load_dataset, load_planar_dataset, batch_order, one_hot
from .network import (initialize_network, network_forward, network_backward,
                      network_backward_autodiff, num_layers)
from .network import predict as network_predict
from .optim import init_optimizer_state, learning_rate_at, optimizer_step
from .training import train_step, train, train_scan, gradient_norms

NAME = "torch"
from ._convert import from_numpy, to_numpy, tree_from_numpy, tree_to_numpy
from .backend import (GRAD_PATHS, devices, compile_status, make_train_step, save_weights,
                      load_weights)

# the remedies (docs/remedies.md): Remedies is the reference's; the draws (weights, dropout
# masks) are the reference's, converted; validated below like every public function
from reference.remedies import Remedies  # noqa: E402,F401
from .remedies import (initialize_remedy_network, init_bn_state, dropout_masks,  # noqa: E402,F401
                       step_masks, remedy_forward, remedy_cost, remedy_backward,
                       remedy_backward_autodiff, remedy_step)

# the reference's validation (reference/validate.py, docs/errors.md): same checks, same
# messages; internal callers (train's loop, compiled steps) use the unvalidated functions
from reference.validate import guard_api as _guard_api  # noqa: E402
from .backend import OPS as _OPS  # noqa: E402
globals().update(_guard_api(globals(), _OPS))
from .idiomatic import Net, run_idiomatic, run_idiomatic_remedies  # noqa: E402,F401  the idiomatic nn.Module path
