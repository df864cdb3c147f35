"""A fourth backend for the registry test: the reference's computations behind a wrapper
of its own (every public function counted on the way through), with its own name and its
own validation (reference.validate with this backend's Ops, so its messages name
"wrapped"). It takes NumPy arrays, like the reference. It exists to prove that a new
backend is one package plus one registry entry: nothing else in the harness is edited
for it (tests/test_registry.py)."""
import functools

import numpy as _np

import reference as _R
from reference.validate import Ops as _Ops, guard_api as _guard_api

NAME = "wrapped"
CALLS = {}


def _counted(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        CALLS[name] = CALLS.get(name, 0) + 1
        return fn(*args, **kwargs)
    return wrapper


for _name in dir(_R):
    _obj = getattr(_R, _name)
    if _name.startswith("_") or _name == "NAME":
        continue
    if callable(_obj) and not isinstance(_obj, type):
        # the computation without the reference's own checks: this backend validates itself
        globals()[_name] = _counted(_name, getattr(_obj, "unvalidated", _obj))
    else:
        globals()[_name] = _obj

_OPS = _Ops(all_finite=lambda x: bool(_np.all(_np.isfinite(x))), host=_np.asarray, backend=NAME)
globals().update(_guard_api(globals(), _OPS))
