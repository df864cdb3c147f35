"""Data-parallel runs on torch.distributed: the worker side of the job contract of
``netparity.distributed`` (job.json + <case>.in.npz in, <case>.rank<r>.npz out; no pickle).

    python -m torch_impl.distributed JOB_DIR      one rank; RANK and WORLD_SIZE from the
                                                  environment, as torchrun sets them
    launch(job_dir, workers, timeout=600)         N such ranks on this machine

Across machines the ranks are started by torchrun itself (docs/scale_out.md):
``torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400
-m torch_impl.distributed JOB_DIR``; they rendezvous through torchrun's MASTER_ADDR /
MASTER_PORT (init_method "env://"). ``launch`` starts the same module N times with
torchrun's per-worker environment (RANK, LOCAL_RANK, WORLD_SIZE, OMP_NUM_THREADS=1) and a
file rendezvous in the job directory instead of a TCP port (no free port to find, two
test sessions cannot collide; torchrun's agent process would add ~3 s of start-up here).
The process group is gloo (CPU); NCCL is the GPU one, not run here.

Rank r takes columns ``offsets[r]:offsets[r + 1]`` of every batch and runs the case's mode:

    manual:all_reduce        the mirror's formulas (network_forward / network_backward /
                             optimizer_step) on the rank's shard, then each batch mean
                             (dW, db, the costs) as sum_r (m_r / m) G_r by dist.all_reduce
    idiomatic:ddp            DistributedDataParallel around idiomatic.Net, torch.optim, the
                             idiomatic run_steps adapter: DDP averages the ranks' gradients
                             (1/N) sum_r G_r, the per-rank-mean convention
                             (conventions row "ddp.per_rank_mean")
    idiomatic:ddp_weighted   the same with a DDP comm hook weighting rank r by m_r / m
                             before the all-reduce: the global batch mean on unequal shards

Every rank writes, for the last step: the per-example stages (Z, A, dZ, dA) of its own
columns, and its own copy of the reduced ones (the costs, dW, db, the updated parameters
and optimiser state). The costs are always reduced with the weights m_r / m (what a
training loop logs as the batch loss), so a gradient-reduction bug is named at the
gradient. ``bug`` (tests only) plants a reduction bug in manual:all_reduce: "sum" (no
weights: sum_r G_r), "rank_mean" ((1/N) sum_r G_r), "local_state" (the optimiser state
advanced with the rank's own gradient), "reorder" (the rank reverses its examples).
"""
from datetime import timedelta
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np
import torch
import torch.distributed as dist

from reference.optim import Optimizer
from netparity import fileio

BUGS = ("sum", "rank_mean", "local_state", "reorder")
BUG_MODES = ("manual:all_reduce",)   # the modes that take ``bug`` (the hand-written reduction)
RENDEZVOUS = "NETPARITY_RENDEZVOUS"   # an init_method for launch()'s ranks; unset: env://


RENDEZVOUS_FAILED = 75   # a rank's exit status when its process group could not be set up
ATTEMPTS = 3             # launch()'s tries at setting up the process group
ATTEMPT = "NETPARITY_ATTEMPT"   # which of launch()'s attempts a rank belongs to (1, 2, ...)
PLANT_RENDEZVOUS_FAILURE = "NETPARITY_PLANT_RENDEZVOUS_FAILURE"   # tests only: see main()


def launch(job_dir, workers, timeout=600, attempts=ATTEMPTS):
    """Run every case of ``job_dir`` on ``workers`` gloo ranks, each a process
    ``python -m torch_impl.distributed JOB_DIR``. RuntimeError (with the rank's log) when
    a rank fails, TimeoutError after ``timeout`` seconds; the ranks are stopped either way.

    A job whose process group cannot be set up is started again from a fresh rendezvous,
    up to ``attempts`` times in all, within the same ``timeout``. gloo's connectFullMesh
    fails now and then between two ranks on one loaded machine ("Connection closed by
    peer" while the peer is alive and still in its own set-up: measured here about 1 job
    in 20 with four 2-rank jobs side by side; PyTorch's own CI shows the same). Nothing of
    the job has run then, so a retry hides no result; each one is said on stderr and kept
    in ``rendezvous.log`` with the failing rank's log. Returns the attempt that ran."""
    job_dir = os.path.abspath(job_dir)
    deadline = time.monotonic() + timeout
    notes = []
    for attempt in range(1, attempts + 1):
        failure = _run_ranks(job_dir, workers, timeout, deadline, attempt)
        if failure is None:
            return attempt
        note = (f"torch.distributed: the process group of {workers} gloo ranks was not set up "
                f"(attempt {attempt} of {attempts}): {_last_line(failure)}")
        notes.append(note + "\n" + failure)
        fileio.write_text(os.path.join(job_dir, "rendezvous.log"), "\n".join(notes) + "\n")
        print(note + ("; starting the job again" if attempt < attempts else ""), file=sys.stderr)
    raise RuntimeError(f"the process group of {workers} gloo ranks could not be set up in "
                       f"{attempts} attempts; the last failing rank's log:\n{failure}")


def _run_ranks(job_dir, workers, timeout, deadline, attempt):
    """One attempt: None when every rank finished; the failing rank's log when a rank could
    not set up the process group (the other ranks, waiting in theirs, are stopped)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = dict(os.environ, WORLD_SIZE=str(workers), OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    # a fresh file per attempt: a FileStore file left by a failed attempt holds its keys
    base[RENDEZVOUS] = "file://" + os.path.join(job_dir, f"rendezvous.{attempt}")
    base[ATTEMPT] = str(attempt)
    procs, logs = [], []
    try:
        for r in range(workers):
            log = open(os.path.join(job_dir, f"rank{r}.log"), "w")
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, "-m", "torch_impl.distributed", job_dir],
                                          env=dict(base, RANK=str(r), LOCAL_RANK=str(r)),
                                          stdout=log, stderr=subprocess.STDOUT))
        while True:
            codes = [p.poll() for p in procs]
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank = next((r for r in failed if codes[r] == RENDEZVOUS_FAILED), failed[0])
                log = _tail(os.path.join(job_dir, f"rank{rank}.log"))
                if codes[rank] == RENDEZVOUS_FAILED:
                    return f"rank {rank}: {log}"
                raise RuntimeError(f"rank {rank} exited with {codes[rank]}:\n{log}")
            if all(c == 0 for c in codes):
                return None
            if time.monotonic() > deadline:
                raise TimeoutError(f"torch.distributed ranks did not finish within {timeout} s")
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


def _last_line(text):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _tail(path, n=3000):
    with open(path) as f:
        return f.read()[-n:]


def main(job_dir):
    """One rank: RANK, WORLD_SIZE (and LOCAL_RANK) from the environment, torchrun's or
    launch()'s. A "cpu" job runs on gloo; a "cuda" job on NCCL with rank r on GPU
    LOCAL_RANK (the multi-node path of docs/scale_out.md; not run on this machine)."""
    rank, workers = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    if job["workers"] != workers:
        raise RuntimeError(f"the job is for {job['workers']} workers, WORLD_SIZE is {workers}")
    device = job.get("device", "cpu")
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    torch.set_num_threads(1)  # N ranks share the cores; tiny matrices
    try:
        planted = int(os.environ.get(PLANT_RENDEZVOUS_FAILURE, "0"))
        if rank == 0 and int(os.environ.get(ATTEMPT, "1")) <= planted:
            # tests only: rank 0 fails its set-up in the first ``planted`` attempts of a launch
            raise RuntimeError("planted rendezvous failure")
        dist.init_process_group("nccl" if device == "cuda" else "gloo",
                                init_method=os.environ.get(RENDEZVOUS, "env://"), rank=rank,
                                world_size=workers, timeout=timedelta(seconds=300))
    except Exception:
        # the set-up failed before any case ran: launch() may start the job again
        traceback.print_exc()
        sys.exit(RENDEZVOUS_FAILED)
    try:
        for case in job["cases"]:
            case = dict(case, device=device)
            name = case["name"]
            try:
                with np.load(os.path.join(job_dir, f"{name}.in.npz"), allow_pickle=False) as z:
                    data = dict(z)
                stages = MODES[case["mode"]](case, data, rank, workers)
                fileio.save_npz(os.path.join(job_dir, f"{name}.rank{rank}.npz"), **stages)
            except Exception:
                # the ranks run the same code on same-shaped data, so they fail alike and go
                # on together; a rank left waiting in a collective errs after the timeout
                fileio.write_text(os.path.join(job_dir, f"{name}.rank{rank}.error.txt"), traceback.format_exc())
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- the reduction

def all_reduce_mean(local_mean, weight, workers, bug=None):
    """The batch mean from this rank's mean over its own m_r examples: sum_r w_r G_r with
    w_r = m_r / m (``weight``), by dist.all_reduce (a copy; the input is unchanged).
    bug "sum": sum_r G_r (no weights); "rank_mean": (1/N) sum_r G_r (DDP's convention)."""
    t = local_mean.detach().clone()
    if bug == "sum":
        pass
    elif bug == "rank_mean":
        t.div_(workers)
    else:
        t.mul_(weight)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _weighted_all_reduce_hook(state, bucket):
    """DDP comm hook: rank r's gradient bucket times m_r / m, summed over the ranks (DDP's
    own hook divides by N instead; a registered hook replaces that division)."""
    buf = bucket.buffer()
    buf.mul_(state["weight"])
    return dist.all_reduce(buf, async_op=True).get_future().then(lambda fut: fut.value()[0])


# ---------------------------------------------------------------- the modes

def _parameters(data):
    return {k: data[k] for k in data if k[0] in "Wb" and k[1:].isdigit()}


def _shard(data, k, rank):
    """(this rank's column indices of batch k, its weight m_r / m)."""
    off = data[f"offsets{k}"]
    return data[f"batch{k}"][off[rank]:off[rank + 1]], (off[rank + 1] - off[rank]) / off[-1]


def _numpy(v):
    if isinstance(v, int):
        return np.asarray(v)
    return v.detach().cpu().numpy()


def run_manual(case, data, rank, workers):
    """manual:all_reduce: the mirror's formulas per rank, batch means all-reduced by hand."""
    import torch_impl as B
    dtype, hidden, output, bug = case["dtype"], case["hidden"], case["output"], case.get("bug")
    device = case.get("device", "cpu")
    optimizer = Optimizer(**case["optimizer"])
    X, Y = data["X"], data["Y"]
    params = B.tree_from_numpy(_parameters(data), dtype, device)
    state = B.init_optimizer_state(params, optimizer)
    for k in range(case["steps"]):
        cols, w = _shard(data, k, rank)
        if bug == "reorder":
            cols = cols[::-1]
        Xr, Yr = B.from_numpy(X[:, cols], dtype, device), B.from_numpy(Y[:, cols], dtype, device)
        AL, cache = B.network_forward(Xr, params, hidden, output)
        L = len(params) // 2
        out = {s: v for s, v in cache.items() if s != "A0"}
        local_costs = {"cost_literal": B.cross_entropy(AL, Yr, output),
                       "cost_stable": B.cross_entropy_from_logits(cache[f"Z{L}"], Yr, output)}
        out.update({c: all_reduce_mean(v, w, workers) for c, v in local_costs.items()})
        grads = B.network_backward(params, cache, Xr, Yr, hidden, output)
        reduced = {g: all_reduce_mean(v, w, workers, bug) if g[1] in "Wb" else v
                   for g, v in grads.items()}
        out.update(reduced)
        new_params, new_state = B.optimizer_step(params, reduced, state, optimizer)
        if bug == "local_state":
            _, new_state = B.optimizer_step(params, grads, state, optimizer)
        params, state = new_params, new_state
    out.update({f"{p}'": v for p, v in params.items()})
    out.update({f"{s}'": v for s, v in state.items()})
    return {s: _numpy(v) for s, v in out.items()}


def run_ddp(case, data, rank, workers, weighted=False):
    """idiomatic:ddp(_weighted): DDP(Net) + torch.optim through the idiomatic adapter."""
    from torch.nn.parallel import DistributedDataParallel as DDP
    from .conventions import torch_optimizer_for
    from .idiomatic import Net, idiomatic_step, layer_dims_of, make_loss, run_steps
    dtype, hidden, output = case["dtype"], case["hidden"], case["output"]
    device = case.get("device", "cpu")
    optimizer = Optimizer(**case["optimizer"])
    p0 = _parameters(data)
    net = Net(layer_dims_of(p0), hidden, output, dtype, device)
    model = DDP(net, device_ids=[torch.cuda.current_device()] if device == "cuda" else None)
    hook_state = {"weight": 1.0}
    if weighted:
        model.register_comm_hook(hook_state, _weighted_all_reduce_hook)
    shards = [_shard(data, k, rank) for k in range(case["steps"])]
    weights = iter([w for _, w in shards])

    def step_fn(model, torch_optimizer, loss_fn, x, y):
        hook_state["weight"] = next(weights)   # this step's m_r / m
        return idiomatic_step(model, torch_optimizer, loss_fn, x, y)

    torch_optimizer, scheduler = torch_optimizer_for(optimizer, model.parameters())
    stages, _ = run_steps(model, torch_optimizer, make_loss(output), p0, data["X"], data["Y"],
                          [cols for cols, _ in shards], output, scheduler=scheduler, dtype=dtype,
                          device=device, step_fn=step_fn, reference_optimizer=optimizer)
    w = shards[-1][1]
    for c in ("cost_literal", "cost_stable"):
        cost = torch.from_numpy(np.asarray(stages[c])).to(device)
        stages[c] = _numpy(all_reduce_mean(cost, w, workers))
    return stages


MODES = {
    "manual:all_reduce": run_manual,
    "idiomatic:ddp": run_ddp,
    "idiomatic:ddp_weighted": lambda case, data, rank, workers: run_ddp(case, data, rank, workers, True),
}


def engine():
    """What runs the data-parallel modes here (for the environment fingerprint)."""
    backends = [b for b, ok in (("gloo", dist.is_gloo_available()), ("nccl", dist.is_nccl_available()),
                                ("mpi", dist.is_mpi_available())) if ok]
    return f"torch.distributed {torch.__version__} ({', '.join(backends) or 'no backend'}); gloo used"


if __name__ == "__main__":
    main(sys.argv[1])
