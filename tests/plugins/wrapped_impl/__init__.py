"""A fourth backend for the registry test: the reference's API behind a wrapper of its own
(every public function counted on the way through), with its own name. It exists to
prove that a new backend is one package plus one registry entry: nothing else in the
harness is edited for it (tests/test_registry.py)."""
import functools

import reference as _R

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
        globals()[_name] = _counted(_name, _obj)
    else:
        globals()[_name] = _obj
