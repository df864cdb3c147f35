"""One training step and the training loop; the torch mirror of reference/training.py.
The loop replays ``reference.data.batch_order``, so every backend sees the same batches
in the same order.

``train_scan`` (JAX's name for the same thing) runs many full-batch updates as ONE
compiled program: torch.compile of a ``torch.scan`` over the updates, with inductor's C++
wrapper (no Python between kernels) and the small weight products of
``network.weight_product`` fused into the elementwise loops. It is the fastest correct
path at small sizes on the CPU (planar 2-4-1 x 400: ~10 us per update against ~200 us
eager; measured in bench/); the article's ``optimize(compiled=True)`` runs on it.
"""
import contextlib
import functools

import torch

from reference.data import batch_order
from reference.training import NonFiniteError
from .costs import cross_entropy, cross_entropy_from_logits
from .network import network_backward, network_forward
from reference.optim import Optimizer
from .optim import apply_update, init_optimizer_state, optimizer_step, step_scalars
from reference.costs import unknown_cost


def compute_stage_cost(AL, cache, Y, output, cost):
    if cost == "stable":
        # the cache holds A0 and (Z, A) per layer, so it has 2L + 1 entries
        return cross_entropy_from_logits(cache[f"Z{len(cache) // 2}"], Y, output)
    if cost == "literal":
        return cross_entropy(AL, Y, output)
    raise unknown_cost(cost)


def train_step(parameters, state, X, Y, hidden="tanh", output="sigmoid",
               optimizer=Optimizer(), cost="stable"):
    """Returns (parameters, state, cost, grads) after one update on (X, Y)."""
    AL, cache = network_forward(X, parameters, hidden, output)
    J = compute_stage_cost(AL, cache, Y, output, cost)
    grads = network_backward(parameters, cache, X, Y, hidden, output)
    parameters, state = optimizer_step(parameters, grads, state, optimizer)
    return parameters, state, J, grads


def gradient_norms(grads):
    """Frobenius norm of every dW/db, to spot exploding or vanishing gradients."""
    return {k: float(torch.linalg.norm(v)) for k, v in grads.items() if k[:2] in ("dW", "db")}


def first_non_finite(arrays):
    """Name of the first entry of a dict holding a nan/inf, else None."""
    for k, v in arrays.items():
        if not bool(torch.isfinite(v).all()):
            return k
    return None


def train(parameters, X, Y, hidden="tanh", output="sigmoid", optimizer=Optimizer(),
          num_epochs=1, batch_size=None, seed=0, cost="stable", callback=None,
          check_finite=True):
    """Runs num_epochs epochs; returns (parameters, state, costs), costs a 1-D tensor in
    X's dtype with costs[k] the cost of update k's batch (before the update).
    ``callback(k, cost, grads)`` is called after each update."""
    state = init_optimizer_state(parameters, optimizer)
    costs = []
    for epoch in range(num_epochs):
        for idx in batch_order(X.shape[1], batch_size, seed, epoch):
            k = state["t"]
            if len(idx) == X.shape[1]:
                # batch GD: the natural order, no gather (a copy of X and Y and a host-to-device
                # index copy per update: 0.41 against 0.22 ms per article step, measured)
                Xb, Yb = X, Y
            else:
                idx = torch.from_numpy(idx).to(X.device)  # one host-to-device copy per batch
                Xb, Yb = X[:, idx], Y[:, idx]
            parameters, state, J, grads = train_step(parameters, state, Xb, Yb,
                                                     hidden, output, optimizer, cost)
            if check_finite:
                bad = ("cost" if not bool(torch.isfinite(J)) else first_non_finite(grads)
                       or first_non_finite(parameters))
                if bad:
                    raise NonFiniteError(k, bad)
            costs.append(J)
            if callback is not None:
                callback(k, J, grads)
    if not costs:
        return parameters, state, torch.empty(0, dtype=X.dtype, device=X.device)
    return parameters, state, torch.stack(costs).to(X.dtype)


# ------------------------------------------------------------------ the compiled loop

def _scan_updates(parameters, buffers, X, Y, scalars, hidden, output, optimizer, cost, record):
    """len(scalars[...]) full-batch updates as one torch.scan: the carry is (parameters,
    optimiser buffers), the scanned input the per-update scalars of ``step_scalars``
    (learning rate, Adam's corrections: computed on the host exactly as eager does), the
    output the cost of each update's batch before the update (zeros when not record)."""
    from torch._higher_order_ops.scan import scan  # torch.scan: a prototype in torch 2.13

    def body(carry, s):
        params, bufs = carry
        AL, cache = network_forward(X, params, hidden, output)
        J = compute_stage_cost(AL, cache, Y, output, cost) if record else AL.new_zeros(())
        grads = network_backward(params, cache, X, Y, hidden, output)
        new_params, new_bufs = apply_update(params, grads, bufs, optimizer, s)
        # the carry's structure must not change: buffers in the order they came in
        return (new_params, {k: new_bufs[k] for k in bufs}), J

    (params, bufs), costs = scan(body, (parameters, buffers), scalars)
    return params, bufs, costs


@functools.lru_cache(maxsize=None)
def _compiled_updates(hidden, output, optimizer, cost, record):
    """One torch.compile'd loop per static configuration; shapes and dtypes compile once
    each (dynamic=False: a second shape must not turn the first into a slower symbolic
    program), the number of updates never (its axis is marked dynamic)."""
    def updates(parameters, buffers, X, Y, scalars):
        return _scan_updates(parameters, buffers, X, Y, scalars, hidden, output, optimizer,
                             cost, record)
    return torch.compile(updates, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})


@contextlib.contextmanager
def _compile_limits():
    # every configuration's loop shares one code object, whose compiles torch counts
    # together (8 by default, then it silently runs eagerly): allow one per shape in use
    import torch._dynamo
    with torch._dynamo.config.patch(recompile_limit=64):
        yield


def _scalar_table(optimizer, t0, num_steps, like):
    """{name: (num_steps,) tensor} of step_scalars for updates t0 .. t0 + num_steps - 1,
    in ``like``'s dtype and device (the cast eager arithmetic does with a Python float)."""
    rows = [step_scalars(optimizer, t0 + k) for k in range(num_steps)]
    table = {name: torch.tensor([r[name] for r in rows], dtype=torch.float64).to(like.dtype)
             .to(like.device) for name in rows[0]}
    for column in table.values():
        torch._dynamo.mark_dynamic(column, 0)
    return table


def compiled_updates(parameters, state, X, Y, hidden, output, optimizer, cost, num_steps,
                     record=True):
    """(parameters, state, costs) after ``num_steps`` >= 2 full-batch updates run as one
    compiled program (module docstring); the state's t counts on from state["t"]."""
    from .backend import compile_status
    ok, reason = compile_status()
    if not ok:
        raise RuntimeError(f"torch.compile is unavailable here: {reason}")
    buffers = {k: v for k, v in state.items() if k != "t"}
    scalars = _scalar_table(optimizer, state["t"], num_steps, X)
    run = _compiled_updates(hidden, output, optimizer, cost, record)
    # row-major data: the fused loops run along the examples (the contiguous axis)
    X, Y = X.contiguous(), Y.contiguous()
    with torch.no_grad(), _compile_limits():
        params, bufs, costs = run(parameters, buffers, X, Y, scalars)
    return ({k: params[k] for k in parameters},
            {"t": state["t"] + num_steps, **{k: bufs[k] for k in buffers}}, costs)


def train_scan(parameters, X, Y, hidden="tanh", output="sigmoid", optimizer=Optimizer(),
               num_steps=1, cost="stable"):
    """num_steps full-batch updates on all of (X, Y) as one compiled program (module
    docstring); returns (parameters, state, costs) with costs[k] the cost before update
    k, like ``train`` with batch_size None. Compiled once per shapes/dtypes and static
    arguments in a process: 10-25 s cold on the shared 2-core machine, 2-5 s in a later
    process, whose inductor finds the compiled C++ kernels in its on-disk cache (torch
    2.13 caches no whole graph with a scan: "Can't cache HigherOrderOperator: scan", so
    tracing and lowering run again); a single update, and any update where
    torch.compile is unavailable, runs eagerly (the same formulas)."""
    from .backend import compile_status
    state = init_optimizer_state(parameters, optimizer)
    if num_steps >= 2 and compile_status()[0]:
        return compiled_updates(parameters, state, X, Y, hidden, output, optimizer, cost,
                                num_steps)
    costs = []
    for _ in range(num_steps):
        parameters, state, J, _ = train_step(parameters, state, X, Y, hidden, output,
                                             optimizer, cost)
        costs.append(J)
    return parameters, state, (torch.stack(costs) if costs
                               else torch.empty(0, dtype=X.dtype, device=X.device))


# ------------------------------------------------------------------ the CUDA-graph loop

def _cuda_capture(fn):
    """Capture ``fn`` (kernels on static tensors only) as one CUDA graph; returns its
    replay. The warm-up runs on a side stream, as torch.cuda.graphs requires."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()  # warm-up: lazy initialisation (cuBLAS handles, workspaces) outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def graphed_updates(parameters, state, X, Y, hidden="tanh", output="sigmoid",
                    optimizer=Optimizer(), cost="stable", num_steps=1, capture=None):
    """(parameters, state, costs) after ``num_steps`` full-batch updates, each one replay
    of ONE captured CUDA graph of an update: no Python and no kernel launch from the host
    between the kernels of an update (what eager pays per op at small sizes).

    A graph replays fixed kernels on fixed memory, so everything an update reads or
    writes is a static tensor: the parameters and optimiser buffers (each update writes
    its result back into them with ``copy_``), X, Y, the table of per-update scalars
    (``step_scalars``: learning rate, Adam's corrections, computed on the host as eager
    does) and an update counter on the device that the graph itself advances, so that
    update k reads row k of the table and writes the cost before it into costs[k].

    ``capture(fn) -> replay`` defaults to CUDA-graph capture (CUDA tensors only); the
    tests pass ``lambda fn: fn`` on the CPU to check the static-tensor logic, which is
    the same code, by replaying the update eagerly."""
    if capture is None:
        if X.device.type != "cuda":
            raise ValueError(f"CUDA graphs need CUDA tensors; X is on {X.device}")
        capture = _cuda_capture
    if num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}")
    with torch.no_grad():
        params = {k: v.detach().clone() for k, v in parameters.items()}
        bufs = {k: v.detach().clone() for k, v in state.items() if k != "t"}
        Xs, Ys = X.contiguous(), Y.contiguous()
        table = _scalar_table(optimizer, state["t"], num_steps, X)
        counter = torch.zeros((), dtype=torch.long, device=X.device)
        costs = torch.zeros(num_steps, dtype=X.dtype, device=X.device)
        saved = ({k: v.clone() for k, v in params.items()}, {k: v.clone() for k, v in bufs.items()})

        def update():
            s = {name: column[counter] for name, column in table.items()}
            AL, cache = network_forward(Xs, params, hidden, output)
            costs[counter] = compute_stage_cost(AL, cache, Ys, output, cost)
            grads = network_backward(params, cache, Xs, Ys, hidden, output)
            new_params, new_bufs = apply_update(params, grads, bufs, optimizer, s)
            for k in params:
                params[k].copy_(new_params[k])
            for k in bufs:
                bufs[k].copy_(new_bufs[k])
            counter.add_(1)

        replay = capture(update)
        # the capture's warm-up ran updates: start again from the given state
        for k in params:
            params[k].copy_(saved[0][k])
        for k in bufs:
            bufs[k].copy_(saved[1][k])
        counter.zero_()
        costs.zero_()
        for _ in range(num_steps):
            replay()
    return ({k: params[k] for k in parameters},
            {"t": state["t"] + num_steps, **{k: bufs[k] for k in bufs}}, costs)
