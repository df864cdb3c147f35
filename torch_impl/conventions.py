"""The reference's conventions next to idiomatic PyTorch's, as one table of data, and the
small functions that apply it (torch.optim optimiser <-> ``reference.Optimizer``, optimiser
state -> the reference's ``vdP``/``sdP``/``t``).

Every row has a short ``key`` that other code looks up (``CONVENTIONS_BY_KEY[key]``), e.g.
a verify hint that says which convention a divergence matches and how to fix it. The
numbers quoted in the rows are measured by tests/test_idiomatic_torch.py (torch 2.13 CPU).
"""
from dataclasses import dataclass

import torch

from reference.optim import Optimizer


@dataclass(frozen=True)
class Convention:
    key: str          # short id, stable (looked up by other code)
    concept: str
    reference: str    # the reference's form (reference/*.py)
    library: str      # what idiomatic torch does
    mapping: str      # how to make them agree, or why they cannot


CONVENTIONS = (
    Convention("layout.weight", "weight layout",
               "W^[l] is (n_l, n_{l-1})",
               "nn.Linear(n_{l-1}, n_l).weight is (out, in) = (n_l, n_{l-1})",
               "same array: weight = W (no transpose)"),
    Convention("layout.bias", "bias layout",
               "b^[l] is (n_l, 1), a column",
               "nn.Linear.bias is 1-D (n_l,)",
               "bias = b[:, 0]; b = bias[:, None]"),
    Convention("layout.examples", "examples",
               "columns: X (n_x, m), Y (n_y, m), Z^[l] = W A + b is (n_l, m)",
               "rows: input (m, n_x), logits (m, n_y), F.linear(x, W, b) = x W^T + b",
               "x = X.T; Z_torch = Z.T, A_torch = A.T, targets = Y.T"),
    Convention("init", "initial weights",
               "drawn by reference.initialize_network (RandomState(seed), float64, then cast)",
               "nn.Linear draws Kaiming-uniform weights and biases from torch's global RNG",
               "copy the reference's weights in (idiomatic.load_reference_parameters)"),
    Convention("output.logits", "what the model returns",
               "A^[L] = g(Z^[L]) (sigmoid or softmax), the cost takes A or Z",
               "modules return logits Z^[L]; the loss applies the output function",
               "A^[L] = torch.sigmoid(logits) / torch.softmax(logits, dim=1)"),
    Convention("grad.dZ_scale", "gradient scale of dZ, dA",
               "dZ^[l], dA^[l-1] are m * dJ/dZ, m * dJ/dA (the course's convention); dW, db are dJ/dW, dJ/db",
               "autograd (.grad, tensor hooks) gives dJ/dZ, dJ/dA",
               "dZ = m * dJ/dZ, dA = m * dJ/dA (m = batch size); dW = weight.grad, db = bias.grad[:, None]"),
    Convention("grad.zero_grad", "gradient accumulation",
               "every step computes its gradients afresh",
               "backward() adds into .grad",
               "optimizer.zero_grad() before each backward(); without it step k uses the sum of steps 1..k"),
    Convention("activation.relu_at_0", "relu'(0), leaky_relu'(0)",
               "0 and 0.01 (strict z > 0)",
               "torch.relu / F.relu: 0; F.leaky_relu(z, 0.01): 0.01",
               "same; torch.maximum(z, 0) (0.5) and clamp(min=0) (1) differ"),
    Convention("loss.bce_mean", "sigmoid cost normalisation",
               "J = (1/m) sum over all n_y * m entries",
               "nn.BCEWithLogitsLoss() (reduction='mean') divides by n_y * m",
               "nn.BCEWithLogitsLoss(reduction='sum')(logits, Y.T) / m; equal to 'mean' only for n_y = 1"),
    Convention("loss.ce", "softmax cost normalisation",
               "J = (1/m) sum_i sum_j -y_ij log a_ij",
               "nn.CrossEntropyLoss() (reduction='mean') divides by m (targets as probabilities or class indices)",
               "same; targets Y.T (probabilities) or Y.argmax(0) (indices, one-hot Y only)"),
    Convention("loss.bce_clamp", "literal sigmoid cost at saturation",
               "J = -(1/m) sum(y log a + (1-y) log(1-a)): inf once a rounds to 0 or 1; dZ = A - Y = +-1 there",
               "nn.BCELoss clamps each log at -100 (finite J); the gradient through a saturated torch.sigmoid is 0",
               "no fix in BCELoss; use nn.BCEWithLogitsLoss (the stable cost) on logits"),
    Convention("loss.nll_literal", "literal softmax cost",
               "J = -(1/m) sum(Y log softmax(Z))",
               "no loss module takes probabilities: nn.NLLLoss(torch.log(torch.softmax(logits, 1))) or the formula",
               "-(Y.T * torch.log(torch.softmax(logits, 1))).sum() / m (inf where a softmax entry underflows)"),
    Convention("momentum.ema", "momentum (course, default)",
               "v = beta v + (1 - beta) g;  P -= lr v",
               "torch.optim.SGD(momentum=beta): buf = beta buf + g (first buf = g);  P -= lr buf",
               "SGD(lr=lr * (1 - beta), momentum=beta); vdP = (1 - beta) * momentum_buffer"),
    Convention("momentum.heavy_ball", "momentum (heavy-ball form)",
               "momentum_form='heavy_ball': v = beta v + g;  P -= lr v",
               "torch.optim.SGD(lr=lr, momentum=beta)",
               "identical; vdP = momentum_buffer (torch starts at g = beta * 0 + g)"),
    Convention("momentum.dampening", "SGD dampening",
               "EMA: v_1 = (1 - beta) g_1",
               "SGD(momentum=beta, dampening=beta): buf_1 = g_1 (the first step is undampened), then EMA",
               "not EMA (first update 1/(1-beta) times the course's); use the lr * (1 - beta) mapping"),
    Convention("sgd.fma", "the SGD update's rounding",
               "P - lr * g: two roundings",
               "param.add_(g, alpha=-lr): one fused multiply-add",
               "never bitwise equal; within the tolerance policy's bound"),
    Convention("adam.state", "Adam state",
               "vdP, sdP, t (Python int); corrected eps: P -= lr m_hat / (sqrt(s_hat) + eps)",
               "torch.optim.Adam: exp_avg, exp_avg_sq, step (a float tensor); same eps placement",
               "vdP = exp_avg, sdP = exp_avg_sq, t = int(step); Adam(lr, betas=(beta1, beta2), eps=epsilon)"),
    Convention("adam.uncorrected", "Adam epsilon, Keras/TF form",
               "adam_epsilon='uncorrected': P -= lr sqrt(1-beta2^t)/(1-beta1^t) m / (sqrt(s) + eps)",
               "no torch.optim equivalent",
               "not expressible: torch_optimizer_for raises"),
    Convention("schedule.constant", "constant learning rate",
               "lr_k = lr0", "no scheduler", "none"),
    Convention("schedule.exponential", "exponential decay",
               "lr_k = lr0 * rate ** (k / steps) (closed form)",
               "ExponentialLR(gamma): lr_k = lr_{k-1} * gamma (a recursive product)",
               "gamma = rate ** (1 / steps); drifts from the closed form by ~k ulp"),
    Convention("schedule.step", "step decay",
               "lr_k = lr0 * rate ** floor(k / steps)",
               "StepLR(step_size, gamma): lr *= gamma every step_size steps (recursive)",
               "StepLR(step_size=steps, gamma=rate); drifts by ~k/steps ulp"),
    Convention("schedule.inverse_time", "inverse-time decay",
               "lr_k = lr0 / (1 + rate * floor(k / steps))",
               "no native scheduler",
               "LambdaLR(factor 1 / (1 + rate * floor(k / steps))) (InverseTimeLR here); lr0 * factor is within 1 ulp"),
    Convention("ddp.per_rank_mean", "data-parallel gradient, unequal shards",
               "the batch mean: (1/m) sum over the batch's m examples, however they are split",
               "DistributedDataParallel averages the ranks' gradients, (1/N) sum_r G_r, G_r the mean over "
               "rank r's m_r examples: the batch mean only when every m_r = m / N (DistributedSampler "
               "equalises the shards by repeating examples, which the mean then counts twice)",
               "weight rank r by m_r / m: a DDP comm hook multiplying the bucket by m_r / m before the "
               "all-reduce (torch_impl.distributed, mode idiomatic:ddp_weighted), or each rank's loss "
               "times N m_r / m; measured in docs/scale_out.md"),
    # ---- the remedies (docs/remedies.md); measured by tests/test_remedy_conventions.py
    Convention("batchnorm.momentum", "batch norm running averages",
               "r <- mu r + (1 - mu) batch, mu = bn_momentum = 0.9: the weight of the OLD value (the course's EMA)",
               "nn.BatchNorm1d(momentum=0.1): r <- (1 - momentum) r + momentum batch, the weight of the NEW value "
               "(momentum=None: the cumulative average)",
               "momentum = 1 - bn_momentum (torch's default 0.1 is the course's 0.9); BatchNorm1d(momentum=0.9), "
               "the course's number copied, is bn_momentum = 0.1"),
    Convention("batchnorm.running_var", "batch norm running variance",
               "bn_running_var='biased' (default): averages the batch variance it normalises with, (1/m) sum (z - mu)^2",
               "nn.BatchNorm1d normalises with the biased variance but averages the unbiased m/(m-1) times it",
               "bn_running_var='unbiased' is torch's; run_idiomatic_remedies raises for 'biased' (no torch option)"),
    Convention("batchnorm.eps", "batch norm epsilon",
               "bn_eps = 1e-5 inside the square root: (z - mu) / sqrt(var + eps)",
               "nn.BatchNorm1d(eps=1e-5), the same placement (Keras' BatchNormalization: epsilon=1e-3)",
               "eps = bn_eps; a port from Keras needs bn_eps = 1e-3 (it shrinks Zn where var is not >> eps)"),
    Convention("batchnorm.train_eval", "batch norm train / eval",
               "remedy_forward(train=True): batch statistics, running averages updated; train=False: the running ones",
               "model.train() / model.eval() switch every BatchNorm1d (and Dropout); the mode persists on the module",
               "model.train() for the steps, model.eval() to predict; a forgotten eval() normalises with the test "
               "batch's statistics and moves the running averages"),
    Convention("residual.placement", "where the skip is added",
               "residual='before': A^[l] = g(Z^[l] + S) (the course's a^[l+2] = g(z^[l+2] + a^[l])); 'after': g(Z) + S",
               "no residual module: the addition is code in forward (torchvision's ResNet adds before its last relu)",
               "h = zt + s before the activation for 'before'; a = g(zt) + s for 'after' (RemedyNet)"),
    Convention("l2.weight_decay", "L2 regularisation",
               "cost + (lambda / 2m) sum ‖W‖^2 over the weight matrices only: dW += (lambda / m) W, never b, gamma, beta",
               "SGD/Adam(weight_decay=wd) add wd * p to the gradient of EVERY parameter of the group, with a constant wd; "
               ".grad does not include it",
               "weight_decay = lambda / m (per batch size) in a group of the weights (W, Ws), weight_decay=0 for "
               "b, gamma, beta (idiomatic.remedy_optimizer); the reference's dW = .grad + wd * W"),
    Convention("l2.adamw", "L2 with Adam",
               "the L2 gradient (lambda / m) W enters Adam's moments (L2, then adapted)",
               "Adam(weight_decay=wd) is that; AdamW(weight_decay=wd) decays decoupled, p <- p (1 - lr wd), "
               "outside the moments (default weight_decay=0.01)",
               "Adam(weight_decay=lambda / m) with the weights' group is the course's; AdamW is another method"),
    Convention("dropout.keep_prob", "dropout probability",
               "keep_prob: D = rand < keep_prob, A * D / keep_prob (inverted dropout); no dropout at eval",
               "nn.Dropout(p): p is the DROP probability; train: x * mask * 1/(1 - p); eval(): identity",
               "p = 1 - keep_prob (nn.Dropout(0.2) is keep_prob 0.8); nn.Dropout(keep_prob) keeps 1 - keep_prob"),
    Convention("dropout.mask", "dropout mask",
               "D{l} drawn by the reference (NumPy RandomState(1000 + step)); every backend receives it",
               "nn.Dropout draws its mask from torch's global generator (torch.bernoulli); multiplies by the "
               "rounded 1/(1 - p) where the reference divides by keep_prob",
               "idiomatic.InjectedDropout: nn.Dropout's semantics with the given mask, dividing by keep_prob"),
)

CONVENTIONS_BY_KEY = {c.key: c for c in CONVENTIONS}


def convention(key):
    """The row with this key (KeyError names the known keys)."""
    try:
        return CONVENTIONS_BY_KEY[key]
    except KeyError:
        raise KeyError(f"no convention {key!r}; known: {', '.join(CONVENTIONS_BY_KEY)}") from None


def markdown_table():
    """The table as Markdown (key | concept | reference | torch | mapping)."""
    rows = ["| key | concept | reference | torch | mapping / fix |", "|---|---|---|---|---|"]
    for c in CONVENTIONS:
        rows.append(f"| `{c.key}` | {c.concept} | {c.reference} | {c.library} | {c.mapping} |")
    return "\n".join(rows)


class InverseTimeLR(torch.optim.lr_scheduler.LambdaLR):
    """lr_k = lr0 * 1 / (1 + decay_rate * floor(k / decay_steps)): the reference's
    inverse-time schedule, which torch has no scheduler for. A named LambdaLR so that
    ``reference_optimizer_for`` can read its parameters back."""

    def __init__(self, optimizer, decay_rate, decay_steps=1):
        self.decay_rate, self.decay_steps = decay_rate, decay_steps
        super().__init__(optimizer, lambda k: 1 / (1 + decay_rate * (k // decay_steps)))


def torch_optimizer_for(optimizer, params):
    """(torch.optim optimiser, scheduler or None) that runs ``optimizer`` (a
    reference.Optimizer) on ``params`` (an iterable of tensors), by the table above.
    Raises ValueError for what torch.optim cannot express (adam_epsilon='uncorrected')."""
    params = list(params)
    lr = optimizer.learning_rate
    if optimizer.name == "gd":
        opt = torch.optim.SGD(params, lr=lr)
    elif optimizer.name == "momentum":
        if optimizer.momentum_form == "ema":
            # torch's buffer is buf = v / (1 - beta): the same update with lr * (1 - beta)
            opt = torch.optim.SGD(params, lr=lr * (1 - optimizer.beta), momentum=optimizer.beta)
        else:
            opt = torch.optim.SGD(params, lr=lr, momentum=optimizer.beta)
    else:
        if optimizer.adam_epsilon != "corrected":
            raise ValueError("adam_epsilon='uncorrected' (eps added to sqrt(s) before the bias "
                             "correction, Keras/TF) has no torch.optim equivalent; torch.optim.Adam "
                             "is the 'corrected' form")
        opt = torch.optim.Adam(params, lr=lr, betas=(optimizer.beta1, optimizer.beta2),
                               eps=optimizer.epsilon)
    return opt, _scheduler_for(optimizer, opt)


def _scheduler_for(optimizer, opt):
    rate, steps = optimizer.decay_rate, optimizer.decay_steps
    if optimizer.schedule == "constant":
        return None
    if optimizer.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=exponential_gamma(rate, steps))
    if optimizer.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=steps, gamma=rate)
    return InverseTimeLR(opt, rate, steps)


def _to_column(t):
    # a bias-shaped (n,) buffer in the reference's (n, 1) layout
    return t.reshape(-1, 1) if t.ndim == 1 else t


def state_to_reference(torch_optimizer, names, optimizer):
    """The optimiser state in the reference's names and layout, as tensors (the caller
    converts): ``vdP`` (momentum / Adam first moment), ``sdP`` (Adam second moment) and
    ``t`` (int) only where torch keeps a counter (Adam's ``step``; SGD keeps none).

    names: dict reference name -> torch Parameter, e.g. {"W1": fc1.weight, "b1": fc1.bias}.
    optimizer: the reference.Optimizer the state is read as (its momentum_form decides
    vdP = (1 - beta) * momentum_buffer (ema) or vdP = momentum_buffer (heavy_ball)).
    Buffers torch has not created yet (no step taken) are reported as zeros."""
    out = {}
    if optimizer.name == "gd":
        return out
    states = {k: torch_optimizer.state.get(p, {}) for k, p in names.items()}
    if optimizer.name == "adam":
        steps = {int(s["step"]) for s in states.values() if "step" in s}
        if len(steps) > 1:
            raise ValueError(f"parameters are at different Adam steps {sorted(steps)}")
        out["t"] = steps.pop() if steps else 0
    for k, p in names.items():   # per parameter vdP then sdP, as reference.optimizer_step
        s = states[k]
        if optimizer.name == "momentum":
            buf = s.get("momentum_buffer")
            buf = torch.zeros_like(p) if buf is None else buf.detach()
            v = (1 - optimizer.beta) * buf if optimizer.momentum_form == "ema" else buf.clone()
            out[f"vd{k}"] = _to_column(v)
        else:
            for ref_name, torch_name in (("vd", "exp_avg"), ("sd", "exp_avg_sq")):
                v = s[torch_name].detach().clone() if torch_name in s else torch.zeros_like(p)
                out[f"{ref_name}{k}"] = _to_column(v)
    return out


def _one_group(torch_optimizer):
    groups = torch_optimizer.param_groups
    keys = [k for k in groups[0] if k != "params"]
    for g in groups[1:]:
        if any(g[k] != groups[0][k] for k in keys):
            raise ValueError("parameter groups with different hyper-parameters have no single "
                             "reference optimiser; name the reference optimiser explicitly")
    return groups[0]


def _reject(group, what, **allowed):
    for k, ok in allowed.items():
        if k in group and group[k] != ok:
            raise ValueError(f"{what} with {k}={group[k]!r} has no reference equivalent "
                             f"(the reference supports {k}={ok!r})")


def reference_optimizer_for(torch_optimizer, scheduler=None):
    """The reference.Optimizer a user's torch optimiser (and scheduler) computes, read
    honestly: SGD(momentum=beta) is the heavy-ball form with the same lr (to ask "is mine
    the course's EMA?", name Optimizer('momentum', lr / (1 - beta), beta) explicitly).
    Raises ValueError for settings the reference does not have (nesterov, weight_decay,
    dampening, maximize, amsgrad, AdamW's decoupled decay, other optimisers/schedulers)."""
    g = _one_group(torch_optimizer)
    lr = g.get("initial_lr", g["lr"])   # a scheduler stores the base rate as initial_lr
    if isinstance(lr, torch.Tensor):
        lr = float(lr)
    if type(torch_optimizer) is torch.optim.SGD:
        _reject(g, "torch.optim.SGD", nesterov=False, weight_decay=0, maximize=False)
        if g["momentum"] == 0:
            opt = Optimizer("gd", learning_rate=lr)
        else:
            if g["dampening"] != 0:
                raise ValueError(f"torch.optim.SGD with dampening={g['dampening']} is not a reference "
                                 "optimiser: its first step is undampened, so even dampening=momentum "
                                 "is not the course's EMA; use SGD(lr=lr*(1-beta), momentum=beta) "
                                 "(convention 'momentum.dampening')")
            opt = Optimizer("momentum", learning_rate=lr, beta=g["momentum"], momentum_form="heavy_ball")
    elif type(torch_optimizer) in (torch.optim.Adam, torch.optim.AdamW):
        what = type(torch_optimizer).__name__
        _reject(g, f"torch.optim.{what}", amsgrad=False, weight_decay=0, maximize=False)
        b1, b2 = g["betas"]
        opt = Optimizer("adam", learning_rate=lr, beta1=float(b1), beta2=float(b2), epsilon=g["eps"])
    else:
        raise ValueError(f"{type(torch_optimizer).__name__} has no reference equivalent; supported: "
                         "torch.optim.SGD (momentum 0 or heavy-ball), torch.optim.Adam")
    return _with_schedule(opt, scheduler)


def _with_schedule(opt, scheduler):
    S = torch.optim.lr_scheduler
    if scheduler is None:
        return opt
    if isinstance(scheduler, InverseTimeLR):
        return opt.with_(schedule="inverse_time", decay_rate=scheduler.decay_rate,
                         decay_steps=scheduler.decay_steps)
    if type(scheduler) is S.ExponentialLR:
        # rate ** (k / 1) = gamma ** k: the reference's closed form of the same schedule
        return opt.with_(schedule="exponential", decay_rate=scheduler.gamma, decay_steps=1)
    if type(scheduler) is S.StepLR:
        return opt.with_(schedule="step", decay_rate=scheduler.gamma, decay_steps=scheduler.step_size)
    raise ValueError(f"{type(scheduler).__name__} has no reference schedule; supported: ExponentialLR, "
                     "StepLR, conventions.InverseTimeLR (name the reference optimiser explicitly otherwise)")


def exponential_gamma(decay_rate, decay_steps):
    """ExponentialLR's gamma for the reference's exponential schedule."""
    return decay_rate ** (1 / decay_steps)


__all__ = ["Convention", "CONVENTIONS", "CONVENTIONS_BY_KEY", "convention", "markdown_table",
           "InverseTimeLR", "torch_optimizer_for", "state_to_reference", "reference_optimizer_for",
           "exponential_gamma"]
