"""Stage names: the one home of what every stage is called and in which order.

A step's stages, in forward-then-backward order (the order in which a bug propagates, so
the first diverging stage is where it entered):

    Z1 A1 ... ZL AL                 forward (A0 = X is an input, not a stage)
    cost_literal cost_stable        the two cross-entropies (reference/costs.py)
    dZL dWL dbL dA{L-1} ... dZ1 dW1 db1 dA0    backward (dZ, dA are m dJ/dZ, m dJ/dA)
    W1' b1' ... WL' bL'             the updated parameters
    t' vdW1' ... sdW1' ...          the optimiser state after the update
"""


def cost_key(cost):
    return f"cost_{cost}"


COST_STAGES = (cost_key("literal"), cost_key("stable"))


def forward_stages(L):
    return [f"{p}{l}" for l in range(1, L + 1) for p in ("Z", "A")]


def backward_stages(L):
    out = []
    for l in range(L, 0, -1):
        out += [f"dZ{l}", f"dW{l}", f"db{l}", f"dA{l - 1}"]
    return out


def updated(name):
    """The stage holding ``name`` (a parameter or state entry) after the update."""
    return f"{name}'"


def update_stages(L, state_keys):
    return ([updated(f"{p}{l}") for l in range(1, L + 1) for p in ("W", "b")]
            + [updated(k) for k in state_keys])


def stage_order(L, state_keys):
    """Every stage of one step of an L-layer network whose optimiser state has ``state_keys``."""
    return forward_stages(L) + list(COST_STAGES) + backward_stages(L) + update_stages(L, state_keys)


# why a path produces fewer stages than the reference (stages_for_path), for tables
PATH_OMITS = {
    "compiled": "one compiled step returns its cost and gradients, not its forward cache (Z, A) "
                "nor the literal cost",
    "idiomatic": "torch.optim.SGD and optax's sgd keep no step counter t (Adam does); a framework's "
                 "BatchNorm layer does not expose its batch statistics mu, var nor Zn",
}


IDIOMATIC_HIDDEN = ("mu", "var", "Zn")   # inside nn.BatchNorm1d / nnx.BatchNorm
_FORWARD_PREFIXES = ("Z", "A", "mu", "var", "Zn", "Zt", "S", "H")


def is_forward_stage(stage):
    """A forward-cache stage (Z3, A1, and the remedies' mu2 var2 Zn2 Zt2 S3 H3), not an
    update (mu_run2') nor a gradient."""
    head = stage.rstrip("0123456789")
    return head != stage and head in _FORWARD_PREFIXES


def stages_for_path(order, path, optimizer_name="gd"):
    """The stages a gradient path produces.

    compiled:  one compiled step returns its cost and gradients, not its forward cache
               (nor the literal cost, which it does not compute);
    idiomatic: framework optimisers keep a step counter only where they need one (Adam's
               bias corrections): torch.optim.SGD and optax's sgd have no ``t``.
    """
    if path == "compiled":
        return [s for s in order if not (is_forward_stage(s) or s == cost_key("literal"))]
    if path == "idiomatic":
        # a framework's BatchNorm layer returns its output (Zt) and its running estimates,
        # not the batch statistics nor the normalised values inside it
        order = [s for s in order if s.rstrip("0123456789") not in IDIOMATIC_HIDDEN]
        if optimizer_name != "adam":
            return [s for s in order if s != updated("t")]
    return list(order)


# ------------------------------------------------------------------ remedies (docs/remedies.md)
#
# Per hidden layer l, only the stages the layer has: Z mu var Zn Zt S H A forward;
# dH dZt dgamma dbeta dZ dW db dWs dA{l-1} backward; the costs cost_literal cost_l2
# cost_stable; the updates of every parameter (W b | gamma beta, Ws, per layer), the
# optimiser state, then the batch-norm running estimates mu_run' var_run'.

COST_L2 = cost_key("l2")
BN_STAGES = ("mu", "var", "Zn", "Zt")
BN_GRADS = ("dZt", "dgamma", "dbeta")
RUNNING = ("mu_run", "var_run")


def remedy_parameter_names(L, bn, projected):
    """W{l} b{l} | W{l} gamma{l} beta{l}, then Ws{l} where projected, l = 1..L."""
    out = []
    for l in range(1, L + 1):
        out += [f"W{l}"] + ([f"gamma{l}", f"beta{l}"] if l in bn else [f"b{l}"])
        if l in projected:
            out.append(f"Ws{l}")
    return out


def remedy_stage_order(L, bn=(), skips=(), projected=(), before=False, l2=False, state_keys=()):
    """Every stage of one remedy step. ``bn``: batch-normalised layers; ``skips``: layers
    with a skip, ``projected`` those through Ws; ``before``: the skip is added before the
    activation (then H, dH are stages); ``l2``: lambda > 0 (cost_l2 is a stage). With no
    remedy this is ``stage_order(L, state_keys)``."""
    fwd = []
    for l in range(1, L + 1):
        fwd.append(f"Z{l}")
        if l in bn:
            fwd += [f"{p}{l}" for p in BN_STAGES]
        if l in skips:
            fwd.append(f"S{l}")
            if before:
                fwd.append(f"H{l}")
        fwd.append(f"A{l}")
    costs = [cost_key("literal")] + ([COST_L2] if l2 else []) + [cost_key("stable")]
    bwd = []
    for l in range(L, 0, -1):
        if l in skips and before:
            bwd.append(f"dH{l}")
        if l in bn:
            bwd += [f"{p}{l}" for p in BN_GRADS]
        bwd += [f"dZ{l}", f"dW{l}"] + ([] if l in bn else [f"db{l}"])
        if l in projected:
            bwd.append(f"dWs{l}")
        bwd.append(f"dA{l - 1}")
    upd = ([updated(p) for p in remedy_parameter_names(L, bn, projected)]
           + [updated(k) for k in state_keys]
           + [updated(f"{p}{l}") for l in bn for p in RUNNING])
    return fwd + costs + bwd + upd
