"""The backend registry: the single source of what the harness knows about a backend.

A backend is a package with the reference's API (docs/API.md) plus one ``BackendSpec``
here. Everything else - the conformance matrix, the determinism, fuzz, error and
weight-file tests, ``netparity check``, ``train`` and ``report`` - reads this registry;
no other file of the harness names a framework. Packages are imported lazily, so a
machine without torch or jax still runs the reference and everything else; a backend
that fails to import is reported (with the import error) wherever it would have run.

Out-of-tree backends: ``register(BackendSpec(...))`` from Python, or list modules that
call it in the environment variable ``NETPARITY_PLUGINS`` (comma-separated; imported
when this module is first imported, so the tests and the CLI see them too).
"""
from dataclasses import dataclass, field
import importlib
import os

# every gradient path the harness knows (what a Case can ask for):
#   manual     the course's formulas written out          (backend.network_backward)
#   autodiff   the framework's automatic differentiation  (backend.network_backward_autodiff)
#   compiled   one compiled step                          (backend.make_train_step(..., compiled=True))
#   idiomatic  the network as users of the framework write it (backend.run_idiomatic)
PATHS = ("manual", "autodiff", "compiled", "idiomatic")


@dataclass(frozen=True)
class BackendSpec:
    """What the harness needs to know about one backend.

    paths          the gradient paths it implements (a subset of PATHS)
    devices        every device name it may offer; ``module.devices()`` says which exist here
    missing_device why a device is absent, as a skip reason ({"cuda": "no CUDA device"})
    tf32_devices   devices where a float32 matmul may run in TF32 (a separately bounded axis)
    slow_compile   its compiler takes seconds per graph (the default test run then compiles
                   only a few representative cases)
    arrays         the array type it takes and returns ("torch.Tensor"); backends sharing
                   one are not foreign to each other (the mixed-framework checks pair the others)
    mirror         part of the default slices of ``check``/``report``/tests (the reference is not:
                   it is what the mirrors are compared with)
    style          (colour, line style) of its curves in plots
    data_parallel  its data-parallel modes "path:reduction" (path one of PATHS) -> None, or the
                   key of the convention row (in its conventions table) by which that mode
                   differs from the reference on unequal shards; ``<module>.distributed.launch``
                   runs them (netparity/distributed.py, docs/scale_out.md)
    bench          its benchmark hooks, a module (variants, ops, synchronisation, compile
                   counts; the interface: reference/bench.py); None: not benchmarked
    """
    name: str
    module: str
    paths: tuple = ("manual",)
    devices: tuple = ("cpu",)
    missing_device: dict = field(default_factory=dict)
    tf32_devices: tuple = ()
    slow_compile: bool = False
    arrays: str = "numpy.ndarray"
    mirror: bool = True
    style: tuple = ("#7f7f7f", "-.")
    data_parallel: dict = field(default_factory=dict)
    bench: str | None = None

    def __post_init__(self):
        bad = [p for p in self.paths if p not in PATHS]
        if bad:
            raise ValueError(f"backend {self.name!r}: unknown path(s) {bad}; expected a subset of {PATHS}")
        bad = [m for m in self.data_parallel if m.partition(":")[0] not in self.paths or not m.partition(":")[2]]
        if bad:
            raise ValueError(f"backend {self.name!r}: data-parallel mode(s) {bad} are not 'path:reduction' "
                             f"with a path of {self.paths}")

    def missing_device_reason(self, device):
        return self.missing_device.get(device, f"no {device} device") + " on this machine"


REGISTRY: dict[str, BackendSpec] = {}
_import_errors: dict[str, str | None] = {}  # name -> None (imports) or the reason it does not; filled on first use


def register(spec):
    """Add (or replace) a backend; returns the spec."""
    if not isinstance(spec, BackendSpec):
        raise TypeError(f"register() takes a BackendSpec, got {type(spec).__name__}")
    REGISTRY[spec.name] = spec
    _import_errors.pop(spec.name, None)
    return spec


def unregister(name):
    REGISTRY.pop(name, None)
    _import_errors.pop(name, None)


register(BackendSpec("numpy", "reference", paths=("manual",), mirror=False,
                     style=("#1f77b4", "-"), bench="reference.bench"))
# data parallel: manual:all_reduce  the mirror's formulas per rank, gradients all-reduced by hand
#                idiomatic:ddp     DistributedDataParallel around the nn.Module (per-rank mean)
#                idiomatic:ddp_weighted   ... with a comm hook weighting each rank by m_r / m
register(BackendSpec("torch", "torch_impl", paths=("manual", "autodiff", "compiled", "idiomatic"),
                     devices=("cpu", "cuda"), missing_device={"cuda": "no CUDA device"},
                     tf32_devices=("cuda",), slow_compile=True, arrays="torch.Tensor",
                     style=("#d62728", "--"), bench="torch_impl.bench",
                     data_parallel={"manual:all_reduce": None, "idiomatic:ddp": "ddp.per_rank_mean",
                                    "idiomatic:ddp_weighted": None}))
# data parallel: manual:jit   the mirror's formulas on a batch sharded over a Mesh, reduced by XLA
#                manual:psum  the same per device in shard_map, gradients psum-med by hand
#                idiomatic:jit  flax.nnx + optax under jit on the sharded batch
register(BackendSpec("jax", "jax_impl", paths=("manual", "autodiff", "compiled", "idiomatic"),
                     devices=("cpu", "gpu"), missing_device={"gpu": "no JAX GPU device"},
                     tf32_devices=("gpu",), arrays="jax.Array", style=("#2ca02c", ":"),
                     bench="jax_impl.bench",
                     data_parallel={"manual:jit": None, "manual:psum": None, "idiomatic:jit": None}))


def backend_spec(name):
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def get_backend(name):
    """The backend's module (ImportError when its framework is not installed)."""
    return importlib.import_module(backend_spec(name).module)


def import_error(name):
    """None when the backend imports here, else the reason it does not (cached)."""
    if name not in _import_errors:
        try:
            get_backend(name)
            _import_errors[name] = None
        except ImportError as e:
            _import_errors[name] = f"{type(e).__name__}: {e}"
    return _import_errors[name]


def available_backends():
    """Names whose module (and framework) imports on this machine, in registry order."""
    return [name for name in REGISTRY if import_error(name) is None]


def mirrors():
    """Registered backends compared with the reference by default (importable or not)."""
    return [name for name, spec in REGISTRY.items() if spec.mirror]


# the backends of this repository (the committed docs have a column each); plugins come after
BUILTIN = tuple(REGISTRY)


def _load_plugins():
    for mod in filter(None, (s.strip() for s in os.environ.get("NETPARITY_PLUGINS", "").split(","))):
        importlib.import_module(mod)


_load_plugins()
