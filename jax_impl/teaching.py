"""Where this package computes each formula of the course, per gradient path: data for the
side-by-side view of ``netparity report`` (format: netparity/sidebyside.py; a test checks
that every pattern matches exactly one line of the named source).
"""

COLUMNS = {
    "manual": {
        "title": "JAX manual",
        "cells": {
            "init": [
                ("note", {"layer": "the reference's shapes: W[l] (n_l, n_{l-1}), b[l] (n_l, 1)"}),
                ("jax_impl.network:initialize_network", {
                    "W": r"return tree_from_numpy\(_ref\.initialize_network\(",
                    "b": r"return tree_from_numpy\(_ref\.initialize_network\("}),
            ],
            "forward": [
                ("jax_impl.network:network_forward", {
                    "Z": r'Z = parameters\[f"W\{l\}"\] @ A',
                    "A": r"A = activation\(", "AL": r"A = activation\("}),
                ("jax_impl.activations:tanh", {"A": r"return jnp\.tanh"}),
                ("jax_impl.activations:sigmoid", {"AL": r"return jax\.nn\.sigmoid\(z\)"}),
            ],
            "cost": [
                ("jax_impl.costs:cross_entropy", {
                    "literal": (r"loss = Y \* jnp\.log\(AL\) \+", r"return -jnp\.sum")}),
                ("jax_impl.costs:cross_entropy_from_logits", {
                    "stable": (r"loss = jnp\.logaddexp\(ZL, 0\) - ZL \* Y", r"return jnp\.sum\(loss\) / m")}),
                ("note", {"stable": "softplus(z) = logaddexp(z, 0) = max(z, 0) + log1p(exp(-|z|))"}),
            ],
            "backward": [
                ("jax_impl.network:network_backward", {
                    "dZL": r'dZ = cache\[f"A\{L\}"\] - Y',
                    "dW": r'grads\[f"dW\{l\}"\] = ',
                    "db": r'grads\[f"db\{l\}"\] = ',
                    "dA": r'dA = parameters\[f"W\{l\}"\]\.T @ dZ',
                    "dZ": r"dZ = dA \* activation_grad"}),
                ("jax_impl.network:_matmul_nt", {"dW": r"return jax\.lax\.dot_general"}),
                ("jax_impl.activations:tanh_grad", {"dZ": r"return 1 - a \* a"}),
                ("note", {"scale": "the course's formulas: dZ = A - Y directly, no factor"}),
            ],
            "update": [
                ("jax_impl.optim:optimizer_step", {"P": r"new_params\[k\] = p - lr\.astype\(dt\) \* g"}),
            ],
            "momentum": [
                ("jax_impl.optim:optimizer_step", {
                    "v": r'v = beta \* state\[f"vd\{k\}"\] \+ \(1 - beta\) \* g',
                    "P": r"new_params\[k\] = p - lr\.astype\(dt\) \* v"}),
            ],
            "adam": [
                ("jax_impl.optim:optimizer_step", {
                    "v": r'v = b1 \* state\[f"vd\{k\}"\]',
                    "s": r's = b2 \* state\[f"sd\{k\}"\]',
                    "hat": (r't = state\["t"\] \+ 1', r"c1, c2 = 1 - jnp\.power\(b1, tf\)"),
                    "P": r"new_params\[k\] = p - lr\.astype\(dt\) \* \(v / c1"}),
            ],
            "decay": [
                ("jax_impl.optim:_learning_rate_at", {
                    "inverse_time": r"return lr0 / \(1 \+ rate",
                    "exponential": r"return lr0 \* jnp\.power\(.*k\.astype\(f64\) / steps",
                    "step": r"return lr0 \* jnp\.power\(.*\(k // steps\)"}),
            ],
            "minibatch": [
                ("jax_impl.training:train", {
                    "epoch": (r"for epoch in range\(num_epochs\)", r"for idx in batch_order\("),
                    "batch": r"Xb, Yb = X\[:, idx\], Y\[:, idx\]",
                    "step": r"parameters, state, J, grads = _in_order\(",
                    "cost": r"costs\.append\(J\)"}),
                ("note", {"step": "train_step (forward, cost, backward, update) as one jax.jit-compiled call"}),
            ],
        },
    },
    "autodiff": {
        "title": "jax.grad",
        "cells": {
            "init": "manual",
            "forward": "manual",
            "cost": [
                ("jax_impl.network:_probed_cost", {
                    "literal": r"return cross_entropy\(A, Y, output\)",
                    "stable": r"return cross_entropy_from_logits\(Z, Y, output\)"}),
                ("note", {"literal": "JAX manual's formula, differentiated by jax.grad",
                          "stable": "JAX manual's formula, differentiated by jax.grad"}),
            ],
            "backward": [
                ("jax_impl.network:_cost_and_gradients", {
                    "dZL": r'grads\[f"dZ\{l\}"\] = m \* dprobe',
                    "dW": (r"J, \(dP, dprobe\) = jax\.value_and_grad\(", r'grads\[f"dW\{l\}"\] = dP'),
                    "db": r'grads\[f"db\{l\}"\] = dP',
                    "dA": r'grads\[f"dA\{l - 1\}"\] = m \* dprobe',
                    "dZ": r'grads\[f"dZ\{l\}"\] = m \* dprobe',
                    "scale": (r'grads\[f"dZ\{l\}"\] = m \* dprobe', r'grads\[f"dA\{l - 1\}"\] = m \* dprobe')}),
                ("note", {"dZ": "dJ/dZ is the gradient of a zero probe added to Z (_probed_cost)"}),
            ],
            "update": "manual",
            "momentum": "manual",
            "adam": "manual",
            "decay": "manual",
            "minibatch": [
                ("jax_impl.training:_step", {
                    "step": r"J, grads = cost_and_gradients_autodiff\("}),
                ("note", {"epoch": "JAX manual's loop, with make_train_step(..., grad_path='autodiff')",
                          "batch": "as JAX manual",
                          "cost": "as JAX manual"}),
            ],
        },
    },
    "idiomatic": {
        "title": "JAX idiomatic (flax.nnx, optax)",
        "cells": {
            "init": [
                ("jax_impl.idiomatic:Net.__init__", {"layer": r"self\.layers = nnx\.List\("}),
                ("jax_impl.idiomatic:_load_tree", {
                    "W": (r"kernel = W\.T if transpose else W", r'new\[layer\.path \+ \("kernel",\)\] = kernel'),
                    "b": r'new\[layer\.path \+ \("bias",\)\] = b\[:, 0\]'}),
                ("note", {"W": "flax kernels are (in, out) = W^T"}),
            ],
            "forward": [
                ("jax_impl.idiomatic:Net.__call__", {
                    "Z": r'z = self\._record\(f"Z\{l\}", layer\(a\)\)',
                    "A": r'a = self\._record\(f"A\{l\}", self\.activation\(z\)\)',
                    "AL": r"return self\.layers\[-1\]\(a\)"}),
                ("jax_impl.idiomatic:Net.activation", {"A": r"return HIDDEN\[self\.hidden\]\(z\)"}),
                ("jax_impl.idiomatic:Net.predict_proba", {"AL": r"return OUTPUT\[self\.output\]\(self\(x\)\)"}),
                ("note", {"Z": "nnx.Linear on rows x = X^T: x kernel + bias = Z^T"}),
            ],
            "cost": [
                ("jax_impl.idiomatic:sigmoid_stable", {
                    "stable": r"return optax\.sigmoid_binary_cross_entropy\(logits, labels\)"}),
                ("jax_impl.idiomatic:sigmoid_literal", {
                    "literal": (r"p = jax\.nn\.sigmoid\(logits\)", r"return -\(labels \* jnp\.log\(p\)")}),
            ],
            "backward": [
                ("jax_impl.idiomatic:_step", {
                    "dZL": r"\(J, \(logits, inter\)\), \(grads, d_pert, d_tap, d_x\) = jax\.value_and_grad\(",
                    "dW": r"\(J, \(logits, inter\)\), \(grads, d_pert, d_tap, d_x\) = jax\.value_and_grad\(",
                    "db": r"\(J, \(logits, inter\)\), \(grads, d_pert, d_tap, d_x\) = jax\.value_and_grad\(",
                    "dA": r"\(J, \(logits, inter\)\), \(grads, d_pert, d_tap, d_x\) = jax\.value_and_grad\(",
                    "dZ": r"\(J, \(logits, inter\)\), \(grads, d_pert, d_tap, d_x\) = jax\.value_and_grad\(",
                    "scale": r'"dZL": m \* d_tap'}),
                ("jax_impl.idiomatic:_stages", {
                    "dW": (r'g = tree_to_reference\(grads, layers, "d"\)', r's\[f"dW\{l\}"\], s\[f"db\{l\}"\] = '),
                    "db": r's\[f"dW\{l\}"\], s\[f"db\{l\}"\] = '}),
            ],
            "update": [
                ("jax_impl.conventions:_transform", {"P": r"return optax\.sgd\(lr\)$"}),
                ("jax_impl.idiomatic:_step", {
                    "P": (r"updates, opt_state = tx\.update\(grads", r"new_params = optax\.apply_updates\(")}),
            ],
            "momentum": [
                ("jax_impl.conventions:_transform", {
                    "v": r"return optax\.sgd\(schedule_for\(optimizer, dtype, 1 - optimizer\.beta\)"}),
                ("jax_impl.idiomatic:_step", {
                    "P": (r"updates, opt_state = tx\.update\(grads", r"new_params = optax\.apply_updates\(")}),
                ("note", {"P": "optax.sgd's trace is v / (1 - beta); its rate lr (1 - beta) makes the step lr v"}),
            ],
            "adam": [
                ("jax_impl.conventions:_transform", {
                    "v": r"return optax\.adam\(lr", "s": r"return optax\.adam\(lr",
                    "hat": r"return optax\.adam\(lr", "P": r"return optax\.adam\(lr"}),
                ("jax_impl.idiomatic:_step", {
                    "P": (r"updates, opt_state = tx\.update\(grads", r"new_params = optax\.apply_updates\(")}),
                ("note", {"hat": "t is optax's ScaleByAdamState.count (int32)"}),
            ],
            "decay": [
                ("jax_impl.conventions:schedule_for", {
                    "inverse_time": r"lr = lr0 / \(1 \+ rate \* jnp\.floor",
                    "exponential": r"lr = lr0 \* jnp\.power\(jnp\.float64\(rate\), k / steps\)",
                    "step": r"lr = lr0 \* jnp\.power\(jnp\.float64\(rate\), jnp\.floor"}),
                ("note", {"inverse_time": "a schedule count -> rate that optax calls with its step count",
                          "exponential": "in float64 from optax's count (optax.exponential_decay would use float32)",
                          "step": "in float64 from optax's count"}),
            ],
            "minibatch": [
                ("jax_impl.idiomatic:run_steps", {
                    "epoch": r"for idx in batches:",
                    "batch": (r"Xr, Yr = np\.array\(X\.T", r"x, y = jax\.device_put\(\(Xr\[idx\], Yr\[idx\]\), put\)"),
                    "step": r"p, opt_state, grads, out = step\(p, rest",
                    "cost": r'costs\.append\(out\["J"\]\)'}),
                ("note", {"epoch": "the reference's batch order, passed in (netparity.stages.batch_sequence)"}),
            ],
        },
    },
}
