"""Where the reference computes each formula of the course: data for the side-by-side view
of ``netparity report`` (netparity/sidebyside.py defines the functions and rows and
documents the format; a test checks that every pattern matches exactly one line of the
named source).
"""

COLUMNS = {
    "manual": {
        "title": "NumPy reference",
        "cells": {
            "init": [
                ("reference.network:initialize_network", {
                    "layer": r"fan_in, fan_out = layer_dims\[l - 1\], layer_dims\[l\]",
                    "W": (r"rng = np\.random\.RandomState\(seed\)", r'parameters\[f"W\{l\}"\] = '),
                    "b": r'parameters\[f"b\{l\}"\] = np\.zeros'}),
                ("reference.network:init_scale", {"W": r"return 0\.01"}),
            ],
            "forward": [
                ("reference.network:network_forward", {
                    "Z": r'Z = parameters\[f"W\{l\}"\] @ A',
                    "A": r"A = activation\(", "AL": r"A = activation\("}),
                ("reference.activations:tanh", {"A": r"return np\.tanh"}),
                ("reference.activations:sigmoid", {"AL": r"return 1 / \(1 \+ np\.exp"}),
            ],
            "cost": [
                ("reference.costs:cross_entropy", {
                    "literal": (r"loss = Y \* np\.log\(AL\) \+", r"return -np\.sum")}),
                ("reference.costs:cross_entropy_from_logits", {
                    "stable": (r"loss = np\.maximum\(ZL, 0\)", r"return np\.sum\(loss\) / m")}),
            ],
            "backward": [
                ("reference.network:network_backward", {
                    "dZL": r'dZ = cache\[f"A\{L\}"\] - Y',
                    "dW": r'grads\[f"dW\{l\}"\] = ',
                    "db": r'grads\[f"db\{l\}"\] = ',
                    "dA": r'dA = parameters\[f"W\{l\}"\]\.T @ dZ',
                    "dZ": r"dZ = dA \* activation_grad"}),
                ("reference.activations:tanh_grad", {"dZ": r"return 1 - a \* a"}),
                ("note", {"scale": "the formulas give dZ = A - Y directly: already the course's "
                                   "scaling (m dJ/dZ), no factor needed"}),
            ],
            "update": [
                ("reference.optim:optimizer_step", {"P": r"new_params\[k\] = p - lr \* g"}),
            ],
            "momentum": [
                ("reference.optim:optimizer_step", {
                    "v": r'v = beta \* state\[f"vd\{k\}"\] \+ \(1 - beta\) \* g',
                    "P": r"new_params\[k\] = p - lr \* v"}),
            ],
            "adam": [
                ("reference.optim:optimizer_step", {
                    "v": r'v = b1 \* state\[f"vd\{k\}"\]',
                    "s": r's = b2 \* state\[f"sd\{k\}"\]',
                    "hat": (r't = state\["t"\] \+ 1', r"c1, c2 = 1 - b1 \*\* t"),
                    "P": r"new_params\[k\] = p - lr \* \(v / c1\)"}),
            ],
            "decay": [
                ("reference.optim:learning_rate_at", {
                    "inverse_time": r"return lr0 / \(1 \+ rate",
                    "exponential": r"return lr0 \* rate \*\* \(k / steps\)",
                    "step": r"return lr0 \* rate \*\* \(k // steps\)"}),
            ],
            "minibatch": [
                ("reference.training:train", {
                    "epoch": (r"for epoch in range\(num_epochs\)", r"for idx in batch_order\("),
                    "batch": r"parameters, state, J, grads = train_step\(",
                    "cost": r"costs\.append\(J\)"}),
                ("reference.training:train_step", {
                    "step": (r"AL, cache = network_forward\(", r"J = compute_stage_cost\(",
                             r"grads = network_backward\(", r"parameters, state = optimizer_step\(")}),
            ],
        },
    },
}
