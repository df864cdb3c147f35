"""The backend registry: name -> module with the reference's API (docs/API.md).

Adding a framework means adding one package with that API and one line here; the whole
conformance matrix then covers it. Mirrors are imported lazily so that a machine
without torch or jax can still use the reference and the rest.
"""
import importlib

REGISTRY = {
    "numpy": "reference",
    "torch": "torch_impl",
    "jax": "jax_impl",
}
MIRRORS = ("torch", "jax")


def get_backend(name):
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name])


def available_backends():
    """Names whose module (and framework) imports on this machine."""
    names = []
    for name in REGISTRY:
        try:
            get_backend(name)
        except ImportError:
            continue
        names.append(name)
    return names
