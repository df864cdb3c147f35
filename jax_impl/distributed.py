"""Data-parallel runs on JAX sharding: the worker side of the job contract of
``netparity.distributed`` (job.json + <case>.in.npz in, <case>.rank<r>.npz out; no pickle).

    launch(job_dir, workers, timeout=600)

runs ``python -m jax_impl.distributed JOB_DIR`` in a fresh process with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (read when JAX creates its CPU
client, so it must be set before JAX starts: the calling process's JAX is untouched).
The N host devices form a 1-axis ``Mesh`` "data"; a batch's examples (columns here, rows
in flax) are split over it in blocks of ceil(m / N), the last shorter: the "rank" r of the
contract is device r of the mesh. The modes:

    manual:jit      the mirror's network_forward / network_backward / optimizer_step in one
                    jax.jit on the batch sharded by NamedSharding(mesh, P(None, "data")),
                    parameters replicated: the compiler partitions the global formulas and
                    inserts the all-reduce of dW, db and the costs. An uneven batch cannot
                    be device_put sharded (ValueError), so it is put replicated and split
                    by a sharding constraint inside the jit (XLA pads the last shard).
    manual:psum     the same formulas per device in shard_map, each batch mean reduced by
                    hand: psum(w_r G_r), w_r = (local width) / m. An uneven batch is padded
                    to N blocks with a mask, as JAX users pad: a padded example gets the
                    target Y = A (its error A - Y, hence its dZ, dW, db terms, are exactly
                    0) and is left out of the costs.
    idiomatic:jit   flax.nnx Net + optax through idiomatic.run_steps with
                    data_sharding=NamedSharding(mesh, P("data")) (rows): compiler-reduced.

Rank r's file holds the per-example stages (the job's "per_example" names) of its
columns: the device's own shard where the output is split that way, else (XLA returned
it replicated: uneven batches) the columns of the global array, which is the same
program's result. The reduced stages: device r's copy (shard_map returns every device's
copy; jit returns replicated arrays). ``bug`` (tests only) plants a reduction bug in
manual:psum: "sum", "rank_mean", "local_state", "reorder" (torch_impl/distributed.py).
"""
from functools import partial
import json
import os
import subprocess
import sys
import traceback

import jax
import numpy as np
from netparity import fileio

BUGS = ("sum", "rank_mean", "local_state", "reorder")
BUG_MODES = ("manual:psum",)   # the modes that take ``bug`` (the hand-written reduction)


def launch(job_dir, workers, timeout=600):
    """Run every case of ``job_dir`` on ``workers`` host devices, in a subprocess."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={workers}").strip()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    cache = jax.config.jax_compilation_cache_dir
    if cache and "JAX_COMPILATION_CACHE_DIR" not in env:
        # the calling process's persistent compilation cache (the test suite keeps one):
        # entries are keyed by the computation and the device count, results unchanged
        env.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    proc = subprocess.run([sys.executable, "-m", "jax_impl.distributed", os.path.abspath(job_dir)],
                          env=env, timeout=timeout, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the JAX data-parallel process exited with {proc.returncode}:\n"
                           f"{proc.stderr[-3000:]}")


def engine():
    """What runs the data-parallel modes (for the environment fingerprint)."""
    return (f"jax {jax.__version__} sharding: N host devices by XLA_FLAGS="
            "--xla_force_host_platform_device_count=N in a subprocess")


# ---------------------------------------------------------------- in the subprocess

def main(job_dir):
    from jax.sharding import AxisType, Mesh
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    workers = job["workers"]
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        # one process per host (docs/scale_out.md; not run on this machine): the mesh then
        # spans every host's devices and each process writes the ranks of its own devices
        jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"],
                                   int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"]))
    platform = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}[job.get("device", "cpu")]
    devices = jax.devices(platform)
    if len(devices) < workers:
        raise RuntimeError(f"{len(devices)} {platform} device(s), {workers} needed (for the CPU: "
                           "XLA_FLAGS was read before it was set)")
    # Auto axes: the compiler decides the layout of every intermediate (GSPMD), which is
    # what "gradients reduced by the compiler" means (Explicit axes type every sharding)
    mesh = Mesh(np.array(devices[:workers]), ("data",), axis_types=(AxisType.Auto,))
    for case in job["cases"]:
        name = case["name"]
        try:
            with np.load(os.path.join(job_dir, f"{name}.in.npz"), allow_pickle=False) as z:
                data = dict(z)
            meta = {}
            per_rank = MODES[case["mode"]](case, data, mesh, meta)
            for r, stages in enumerate(per_rank):
                if stages is not None:   # None: a device of another host (its process writes it)
                    fileio.save_npz(os.path.join(job_dir, f"{name}.rank{r}.npz"), **stages)
            fileio.write_json(os.path.join(job_dir, f"{name}.meta.json"), meta)
        except Exception:
            fileio.write_text(os.path.join(job_dir, f"{name}.rank0.error.txt"), traceback.format_exc())


def _parameters(data):
    return {k: data[k] for k in data if k[0] in "Wb" and k[1:].isdigit()}


def _offsets(data, k):
    return [int(o) for o in data[f"offsets{k}"]]


def _mine(device):
    return device.process_index == jax.process_index()


def _columns_of(arr, device, lo, hi):
    """(columns lo:hi of ``arr`` as device ``device`` holds them, whether they came from
    its own shard of a split array): from that shard when it contains them, else from the
    device's whole copy (XLA returned the array replicated, as for uneven batches)."""
    n = arr.shape[-1]
    for s in arr.addressable_shards:
        if s.device != device:
            continue
        sl = s.index[-1]
        start, stop = sl.start or 0, n if sl.stop is None else sl.stop
        if start <= lo and hi <= stop:
            return np.asarray(s.data)[..., lo - start:hi - start], stop - start < n
    raise ValueError(f"device {device} holds no copy of columns {lo}:{hi}")


def _copy_on(arr, device):
    """Device ``device``'s copy of a replicated array."""
    for s in arr.addressable_shards:
        if s.device == device and s.data.shape == arr.shape:
            return np.asarray(s.data)
    raise ValueError(f"device {device} holds no whole copy of a {arr.shape} array")


def _per_rank(case, out, mesh, offsets, meta):
    """Rank r's stages: its columns of the per-example ones, its copy of the others (None
    for another host's device). meta["device_shards"]: the per-example stages every
    device returned from its own shard."""
    per_example = set(case["per_example"])
    ranks, own = [], set(per_example & set(out))
    for r, dev in enumerate(mesh.devices.flat):
        if not _mine(dev):
            ranks.append(None)
            continue
        st = {}
        for name, v in out.items():
            if name in per_example:
                st[name], from_shard = _columns_of(v, dev, offsets[r], offsets[r + 1])
                if not from_shard:
                    own.discard(name)
            else:
                st[name] = _copy_on(v, dev)
        ranks.append(st)
    meta["device_shards"] = sorted(own)
    return ranks


# manual:jit ------------------------------------------------------------------------

@partial(jax.jit, static_argnames=("hidden", "output", "optimizer", "data"))
def _jit_step(params, state, X, Y, hidden, output, optimizer, data):
    import jax_impl as B
    X = jax.lax.with_sharding_constraint(X, data)
    Y = jax.lax.with_sharding_constraint(Y, data)
    AL, cache = B.network_forward(X, params, hidden, output)
    L = len(params) // 2
    out = {s: v for s, v in cache.items() if s != "A0"}
    out["cost_literal"] = B.cross_entropy(AL, Y, output)
    out["cost_stable"] = B.cross_entropy_from_logits(cache[f"Z{L}"], Y, output)
    grads = B.network_backward(params, cache, X, Y, hidden, output)
    out.update(grads)
    new_params, new_state = B.optimizer_step(params, grads, state, optimizer)
    return out, new_params, new_state


def _all_reduces(compiled):
    """All-reduce ops in a compiled program (XLA's SPMD partitioner inserts them)."""
    return compiled.as_text().count(" all-reduce(")


def run_jit(case, data, mesh, meta):
    import jax_impl as B
    from jax.sharding import NamedSharding, PartitionSpec as P
    from reference.optim import Optimizer
    dtype, optimizer = case["dtype"], Optimizer(**case["optimizer"])
    rep, cols = NamedSharding(mesh, P()), NamedSharding(mesh, P(None, "data"))
    params = jax.device_put(B.tree_from_numpy(_parameters(data), dtype), rep)
    state = B.init_optimizer_state(params, optimizer)
    X, Y = data["X"], data["Y"]
    compiled = {}
    for k in range(case["steps"]):
        idx = data[f"batch{k}"]
        put = cols if len(idx) % mesh.size == 0 else rep
        Xb, Yb = jax.device_put((X[:, idx].astype(dtype), Y[:, idx].astype(dtype)), put)
        if len(idx) not in compiled:  # compiled ahead of time once: its program can be read
            compiled[len(idx)] = _jit_step.lower(params, state, Xb, Yb, case["hidden"], case["output"],
                                                 optimizer, cols).compile()
            meta["all_reduce_ops"] = _all_reduces(compiled[len(idx)])
        out, params, state = compiled[len(idx)](params, state, Xb, Yb)
    out.update({f"{p}'": v for p, v in params.items()})
    out.update({f"{s}'": v for s, v in state.items()})
    ranks = _per_rank(case, out, mesh, _offsets(data, case["steps"] - 1), meta)
    for r in filter(None, ranks):
        r["t'"] = np.asarray(int(r["t'"]))
    return ranks


# manual:psum -----------------------------------------------------------------------

def _local_step(params, state, X, Y, mask, hidden, output, optimizer, m, padded, bug):
    """One device's update in shard_map on its block X (n_x, s), Y (n_y, s), mask (1, s).
    Returns (per-example stages, every other stage with a leading axis of 1 (the device's
    copy), new parameters, new state)."""
    import jax.numpy as jnp
    import jax_impl as B
    ax = "data"
    if bug == "reorder":
        X, Y, mask = X[:, ::-1], Y[:, ::-1], mask[:, ::-1]
    s = X.shape[1]
    L = len(params) // 2
    AL, cache = B.network_forward(X, params, hidden, output)
    ZL = cache[f"Z{L}"]
    if padded:
        # a padded example fits exactly: its error A - Y, and so every term it adds to
        # dW, db, is 0; the costs sum over the real examples only
        Yfit = jnp.where(mask, Y, AL)

        def masked_mean(fn, A):  # each example's cost is the mirror's cost of a batch of one
            each = jax.vmap(lambda a, y: fn(a[:, None], y[:, None], output), in_axes=(1, 1))(A, Y)
            return jnp.sum(jnp.where(mask[0], each, 0)) / s
        local_costs = {"cost_literal": masked_mean(B.cross_entropy, AL),
                       "cost_stable": masked_mean(B.cross_entropy_from_logits, ZL)}
    else:
        Yfit = Y
        local_costs = {"cost_literal": B.cross_entropy(AL, Y, output),
                       "cost_stable": B.cross_entropy_from_logits(ZL, Y, output)}
    grads = B.network_backward(params, cache, X, Yfit, hidden, output)
    examples = {st: v for st, v in cache.items() if st != "A0"}
    examples.update({g: v for g, v in grads.items() if g[1] in "ZA"})
    w = s / m  # the local means divide by the block width s (= m_r unpadded): weight s / m
    means = {c: jax.lax.psum(v * w, ax) for c, v in local_costs.items()}
    m_r = jnp.sum(mask).astype(X.dtype)
    local = {g: (v * (s / m_r) if padded else v) for g, v in grads.items() if g[1] in "Wb"}
    if bug == "sum":
        reduced = {g: jax.lax.psum(v, ax) for g, v in local.items()}
    elif bug == "rank_mean":
        reduced = {g: jax.lax.pmean(v, ax) for g, v in local.items()}
    else:
        reduced = {g: jax.lax.psum(grads[g] * w, ax) for g in local}
    means.update(reduced)
    new_params, new_state = B.optimizer_step(params, reduced, state, optimizer)
    if bug == "local_state":
        _, new_state = B.optimizer_step(params, local, state, optimizer)
    means.update({f"{p}'": v for p, v in new_params.items()})
    means.update({f"{k}'": v for k, v in new_state.items()})
    # every device's copy, stacked on the "data" axis: nothing is assumed replicated
    return examples, {k: jnp.asarray(v)[None] for k, v in means.items()}, new_params, new_state


def run_psum(case, data, mesh, meta):
    import jax_impl as B
    from jax.sharding import NamedSharding, PartitionSpec as P
    from reference.optim import Optimizer
    dtype, optimizer = case["dtype"], Optimizer(**case["optimizer"])
    N = mesh.size
    rep = NamedSharding(mesh, P())
    params = jax.device_put(B.tree_from_numpy(_parameters(data), dtype), rep)
    state = B.init_optimizer_state(params, optimizer)
    X, Y = data["X"], data["Y"]
    steps = {}
    for k in range(case["steps"]):
        idx = data[f"batch{k}"]
        m = len(idx)
        s = -(-m // N)   # ceil(m / N): the block width, the last block padded
        padded = s * N != m
        Xb = np.zeros((X.shape[0], s * N), dtype=dtype)
        Yb = np.zeros((Y.shape[0], s * N), dtype=dtype)
        mask = np.zeros((1, s * N), dtype=bool)
        Xb[:, :m], Yb[:, :m], mask[:, :m] = X[:, idx], Y[:, idx], True
        key = (m, padded)
        if key not in steps:
            body = partial(_local_step, hidden=case["hidden"], output=case["output"],
                           optimizer=optimizer, m=m, padded=padded, bug=case.get("bug"))
            col = P(None, "data")
            steps[key] = jax.jit(jax.shard_map(
                body, mesh=mesh, in_specs=(P(), P(), col, col, col),
                out_specs=(col, P("data"), P(), P()), check_vma=False)
            ).lower(params, state, Xb, Yb, mask).compile()
            meta["all_reduce_ops"] = _all_reduces(steps[key])
        per_example, per_device, params, state = steps[key](params, state, Xb, Yb, mask)
    off = _offsets(data, case["steps"] - 1)
    if off[:-1] != [r * s for r in range(N)]:
        raise ValueError(f"offsets {off} are not the padded blocks of ceil(m / N) = {s}")
    ranks = _per_rank(case, per_example, mesh, off, meta)
    for dev, st in zip(mesh.devices.flat, ranks):
        if st is not None:   # the device's own row of each stacked stage
            st.update({name: _row_on(v, dev) for name, v in per_device.items()})
            st["t'"] = np.asarray(int(st["t'"]))
    return ranks


def _row_on(stacked, device):
    """Device ``device``'s row of an array stacked over the "data" axis (N, ...)."""
    for s in stacked.addressable_shards:
        if s.device == device:
            return np.asarray(s.data)[0]
    raise ValueError(f"device {device} holds no row of a {stacked.shape} array")


# idiomatic:jit ---------------------------------------------------------------------

def run_idiomatic_jit(case, data, mesh, meta):
    from jax.sharding import NamedSharding, PartitionSpec as P
    from reference.optim import Optimizer
    from .idiomatic import run_idiomatic
    optimizer = Optimizer(**case["optimizer"])
    batches = [data[f"batch{k}"] for k in range(case["steps"])]
    stages = run_idiomatic(_parameters(data), data["X"], data["Y"], batches, case["hidden"],
                           case["output"], optimizer, case["dtype"],
                           data_sharding=NamedSharding(mesh, P("data")))
    # run_steps gathers the stages on this process (jax.device_get: one host only)
    off = _offsets(data, case["steps"] - 1)
    per_example = set(case["per_example"])
    return [{s: (v[..., off[r]:off[r + 1]] if s in per_example else v) for s, v in stages.items()}
            for r in range(mesh.size)]


MODES = {"manual:jit": run_jit, "manual:psum": run_psum, "idiomatic:jit": run_idiomatic_jit}


if __name__ == "__main__":
    main(sys.argv[1])
