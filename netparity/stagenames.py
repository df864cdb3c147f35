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
    "idiomatic": "torch.optim.SGD and optax's sgd keep no step counter t (Adam does)",
}


def stages_for_path(order, path, optimizer_name="gd"):
    """The stages a gradient path produces.

    compiled:  one compiled step returns its cost and gradients, not its forward cache
               (nor the literal cost, which it does not compute);
    idiomatic: framework optimisers keep a step counter only where they need one (Adam's
               bias corrections): torch.optim.SGD and optax's sgd have no ``t``.
    """
    if path == "compiled":
        return [s for s in order if not (s[0] in "ZA" or s == cost_key("literal"))]
    if path == "idiomatic" and optimizer_name != "adam":
        return [s for s in order if s != updated("t")]
    return list(order)
