"""Where this package computes each formula of the course, per gradient path: data for the
side-by-side view of ``netparity report`` (format: netparity/sidebyside.py; a test checks
that every pattern matches exactly one line of the named source).
"""

COLUMNS = {
    "manual": {
        "title": "PyTorch manual",
        "cells": {
            "init": [
                ("note", {"layer": "the reference's shapes: W[l] (n_l, n_{l-1}), b[l] (n_l, 1)"}),
                ("torch_impl.network:initialize_network", {
                    "W": (r"parameters = _reference_initialize_network\(",
                          r"return \{k: from_numpy\(v, dtype, device\)"),
                    "b": r"return \{k: from_numpy\(v, dtype, device\)"}),
            ],
            "forward": [
                ("torch_impl.network:network_forward", {
                    "Z": r'Z = weight_product\(parameters\[f"W\{l\}"\], A\)',
                    "A": r"A = activation\(", "AL": r"A = activation\("}),
                ("torch_impl.activations:tanh", {"A": r"return torch\.tanh"}),
                ("torch_impl.activations:_sigmoid_formula", {"AL": r"return 1 / \(1 \+ torch\.exp"}),
            ],
            "cost": [
                ("torch_impl.costs:cross_entropy", {
                    "literal": (r"loss = Y \* torch\.log\(AL\) \+", r"return -torch\.sum")}),
                ("torch_impl.costs:cross_entropy_from_logits", {
                    "stable": (r"loss = \(torch\.maximum\(ZL", r"return torch\.sum\(loss\) / m")}),
            ],
            "backward": [
                ("torch_impl.network:network_backward", {
                    "dZL": r'dZ = cache\[f"A\{L\}"\] - Y',
                    "dW": r'grads\[f"dW\{l\}"\] = ',
                    "db": r'grads\[f"db\{l\}"\] = ',
                    "dA": r'dA = weight_t_product\(W, dZ\)',
                    "dZ": r"dZ = dA \* activation_grad"}),
                ("torch_impl.activations:tanh_grad", {"dZ": r"return 1 - a \* a"}),
                ("note", {"scale": "the course's formulas: dZ = A - Y directly, no factor"}),
            ],
            "update": [
                ("torch_impl.optim:apply_update", {"P": r'new_params\[k\] = p - scalars\["lr"\] \* g'}),
            ],
            "momentum": [
                ("torch_impl.optim:apply_update", {
                    "v": r'v = beta \* state\[f"vd\{k\}"\] \+ \(1 - beta\) \* g',
                    "P": r'new_params\[k\] = p - scalars\["lr"\] \* v'}),
            ],
            "adam": [
                ("torch_impl.optim:apply_update", {
                    "v": r'v = b1 \* state\[f"vd\{k\}"\]',
                    "s": r's = b2 \* state\[f"sd\{k\}"\]',
                    "P": r'new_params\[k\] = p - scalars\["lr"\] \* \(v / scalars\["c1"\]\)'}),
                ("torch_impl.optim:step_scalars", {
                    "hat": (r"^\s*t = k \+ 1$", r"c1, c2 = 1 - optimizer\.beta1 \*\* t")}),
            ],
            "decay": [
                ("torch_impl.optim:step_scalars", {
                    "inverse_time": r"lr = learning_rate_at\(optimizer, k\)",
                    "exponential": r"lr = learning_rate_at\(optimizer, k\)",
                    "step": r"lr = learning_rate_at\(optimizer, k\)"}),
                ("note", {"inverse_time": "learning_rate_at is the reference's own (a Python float)",
                          "exponential": "learning_rate_at is the reference's own (a Python float)",
                          "step": "learning_rate_at is the reference's own (a Python float)"}),
            ],
            "minibatch": [
                ("torch_impl.training:train", {
                    "epoch": (r"for epoch in range\(num_epochs\)", r"for idx in batch_order\("),
                    "batch": (r"idx = torch\.from_numpy\(idx\)", r"parameters, state, J, grads = train_step\("),
                    "cost": r"costs\.append\(J\)"}),
                ("torch_impl.training:train_step", {
                    "step": (r"AL, cache = network_forward\(", r"J = compute_stage_cost\(",
                             r"grads = network_backward\(", r"parameters, state = optimizer_step\(")}),
            ],
        },
    },
    "autodiff": {
        "title": "PyTorch autograd",
        "cells": {
            "init": "manual",
            "forward": "manual",
            "cost": [
                ("torch_impl.network:cost_and_autodiff_grads", {
                    "literal": r"J = cross_entropy\(AL, Y, output\)",
                    "stable": r'J = cross_entropy_from_logits\(cache\[f"Z\{L\}"\]'}),
                ("note", {"literal": "PyTorch manual's formula, recorded by autograd",
                          "stable": "PyTorch manual's formula, recorded by autograd"}),
            ],
            "backward": [
                ("torch_impl.network:cost_and_autodiff_grads", {
                    "dZL": r"values = torch\.autograd\.grad\(J, inputs\)",
                    "dW": (r"params = \{k: v\.detach\(\)\.requires_grad_\(True\)",
                           r"values = torch\.autograd\.grad\(J, inputs\)"),
                    "db": r"values = torch\.autograd\.grad\(J, inputs\)",
                    "dA": r"values = torch\.autograd\.grad\(J, inputs\)",
                    "dZ": r"values = torch\.autograd\.grad\(J, inputs\)",
                    "scale": r'return J\.detach\(\), \{k: m \* g if'}),
                ("note", {"dZ": "g' from torch.tanh's own backward (1 - tanh^2)"}),
            ],
            "update": "manual",
            "momentum": "manual",
            "adam": "manual",
            "decay": "manual",
            "minibatch": [
                ("torch_impl.backend:make_train_step", {
                    "step": (r"autodiff = cost_and_func_grads if compiled else cost_and_autodiff_grads",
                             r"J, grads = autodiff\(parameters")}),
                ("note", {"epoch": "PyTorch manual's loop, with make_train_step(..., grad_path='autodiff')",
                          "batch": "as PyTorch manual",
                          "cost": "as PyTorch manual"}),
            ],
        },
    },
    "idiomatic": {
        "title": "PyTorch idiomatic (nn.Module, loss.backward(), torch.optim)",
        "cells": {
            "init": [
                ("torch_impl.idiomatic:Net.__init__", {
                    "layer": r"nn\.utils\.skip_init\(nn\.Linear",
                    "W": r'p\.fill_\(float\("nan"\)\)'}),
                ("torch_impl.idiomatic:load_reference_parameters", {
                    "W": r"lin\.weight\.copy_\(",
                    "b": r"lin\.bias\.copy_\("}),
            ],
            "forward": [
                ("torch_impl.idiomatic:Net.forward", {
                    "Z": r"x = g\(layer\(x\)\)",
                    "A": (r"g = HIDDEN\[self\.hidden\]", r"x = g\(layer\(x\)\)"),
                    "AL": r"return self\.layers\[-1\]\(x\)"}),
                ("torch_impl.idiomatic:output_activation", {"AL": r"return torch\.sigmoid\(logits\)"}),
                ("note", {"Z": "nn.Linear on rows x = X^T: x W^T + b = Z^T"}),
            ],
            "cost": [
                ("torch_impl.idiomatic:make_loss", {
                    "stable": r"return _sum_over_m\(nn\.BCEWithLogitsLoss\(",
                    "literal": (r'bce = nn\.BCELoss\(reduction="sum"\)',
                                r"return _sum_over_m\(lambda z, y: bce\(")}),
                ("torch_impl.idiomatic:_sum_over_m", {
                    "stable": r"return fn\(logits, y\) / logits\.shape\[0\]",
                    "literal": r"return fn\(logits, y\) / logits\.shape\[0\]"}),
            ],
            "backward": [
                ("torch_impl.idiomatic:idiomatic_step", {
                    "dZL": r"loss\.backward\(\)",
                    "dW": (r"torch_optimizer\.zero_grad\(\)", r"loss\.backward\(\)"),
                    "db": r"loss\.backward\(\)",
                    "dA": r"loss\.backward\(\)",
                    "dZ": r"loss\.backward\(\)"}),
                ("torch_impl.idiomatic:_Capture._grads", {
                    "dW": r'self\.out\[f"dW\{i\}"\] = lin\.weight\.grad',
                    "db": r'self\.out\[f"db\{i\}"\] = lin\.bias\.grad'}),
                ("torch_impl.idiomatic:_Capture._store_grad", {
                    "scale": r"self\.out\[key\] = \(self\.m \* g\)"}),
            ],
            "update": [
                ("torch_impl.conventions:torch_optimizer_for", {"P": r"opt = torch\.optim\.SGD\(params, lr=lr\)$"}),
                ("torch_impl.idiomatic:idiomatic_step", {"P": r"torch_optimizer\.step\(\)"}),
            ],
            "momentum": [
                ("torch_impl.conventions:torch_optimizer_for", {
                    "v": r"opt = torch\.optim\.SGD\(params, lr=lr \* \(1 - optimizer\.beta\)"}),
                ("torch_impl.conventions:state_to_reference", {
                    "v": r"v = \(1 - optimizer\.beta\) \* buf"}),
                ("torch_impl.idiomatic:idiomatic_step", {"P": r"torch_optimizer\.step\(\)"}),
                ("note", {"P": "SGD keeps buf = v / (1 - beta) and steps lr (1 - beta) buf = lr v"}),
            ],
            "adam": [
                ("torch_impl.conventions:torch_optimizer_for", {
                    "v": r"opt = torch\.optim\.Adam\(params", "s": r"opt = torch\.optim\.Adam\(params",
                    "hat": r"opt = torch\.optim\.Adam\(params", "P": r"opt = torch\.optim\.Adam\(params"}),
                ("torch_impl.conventions:state_to_reference", {
                    "v": r'\(\("vd", "exp_avg"\), \("sd", "exp_avg_sq"\)\)',
                    "s": r'\(\("vd", "exp_avg"\), \("sd", "exp_avg_sq"\)\)',
                    "hat": r'out\["t"\] = steps\.pop\(\)'}),
                ("torch_impl.idiomatic:idiomatic_step", {"P": r"torch_optimizer\.step\(\)"}),
            ],
            "decay": [
                ("torch_impl.conventions:_scheduler_for", {
                    "inverse_time": r"return InverseTimeLR\(opt",
                    "exponential": r"ExponentialLR\(opt",
                    "step": r"StepLR\(opt"}),
                ("torch_impl.conventions:InverseTimeLR.__init__", {
                    "inverse_time": r"super\(\)\.__init__\(optimizer, lambda k"}),
                ("torch_impl.conventions:exponential_gamma", {
                    "exponential": r"return decay_rate \*\* \(1 / decay_steps\)"}),
                ("note", {"exponential": "a recursive product lr *= gamma: ~k ulp from the closed form",
                          "step": "recursive too: lr *= gamma every step_size updates"}),
            ],
            "minibatch": [
                ("torch_impl.idiomatic:run_steps", {
                    "epoch": r"for k, idx in enumerate\(batches\)",
                    "batch": r"x, y = _rows\(X, idx",
                    "step": (r"loss = step_fn\(model", r"^\s+scheduler\.step\(\)$"),
                    "cost": r"costs\.append\(float\(loss\.detach\(\)\)\)"}),
                ("torch_impl.idiomatic:_rows", {"batch": r"return from_numpy\(np\.ascontiguousarray\(X\[:, idx\]\.T\)"}),
                ("note", {"epoch": "the reference's batch order, passed in (netparity.stages.batch_sequence)"}),
            ],
        },
    },
}
