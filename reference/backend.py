"""What makes the reference a backend like the mirrors: conversions, devices, paths,
the step factory and the portable weight file (written and read here for every backend)."""
import math
import os
import zipfile
import zlib

import numpy as np

from .training import train_step
from .validate import NUMPY_OPS as OPS  # noqa: F401  what validation knows of this backend

GRAD_PATHS = ("manual",)


def devices():
    return ["cpu"]


def compile_status():
    return False, "NumPy has no compiler"


def from_numpy(x, dtype=None, device="cpu"):
    if device != "cpu":
        raise ValueError(f"the NumPy reference runs on cpu only, not {device!r}")
    return np.array(x, dtype=dtype, copy=True)


def to_numpy(x):
    """A NumPy copy: writing into it never changes ``x`` (the same on every backend)."""
    return np.array(x, copy=True)


def tree_from_numpy(d, dtype=None, device="cpu"):
    return {k: v if isinstance(v, (int, float)) else from_numpy(v, dtype, device)
            for k, v in d.items()}


def tree_to_numpy(d):
    return {k: v if isinstance(v, (int, float)) else to_numpy(v) for k, v in d.items()}


def make_train_step(hidden, output, optimizer, cost="stable", grad_path="manual", compiled=False):
    if grad_path not in GRAD_PATHS:
        raise ValueError(f"the NumPy reference has no gradient path {grad_path!r}; it has {GRAD_PATHS}")
    if compiled:
        raise ValueError(compile_status()[1])

    def step(parameters, state, X, Y):
        return train_step(parameters, state, X, Y, hidden, output, optimizer, cost)
    return step


WEIGHT_FORMAT = "netparity-weights-v1"
# The file: a zip (stored, not compressed) of .npy members, one per parameter ("W1.npy",
# little-endian float16/float32/float64), plus "__format__.npy" (the string above) and,
# when some parameters are bfloat16, "__bfloat16__.npy" (their names): those are stored
# as their uint16 bit patterns, since the .npy format has no bfloat16 (NumPy would write
# an opaque 'V2'). No member is ever unpickled.
BFLOAT16_MEMBER = "__bfloat16__"
# Without layer_dims, the most a file may declare in total (shapes x itemsizes, read from
# the .npy headers before any data is decompressed): 256 MiB, 32 M float64 parameters,
# ~300x the largest network of this project. With layer_dims the exact sizes are known.
MAX_WEIGHT_BYTES = 256 * 2 ** 20
MAX_MEMBERS = 4096
_HEADER_BYTES = 64 * 1024  # an .npy header is a few hundred bytes; NumPy caps it at 10 000
_STORED_DTYPES = {"float16": "<f2", "float32": "<f4", "float64": "<f8"}


def encode_weights(parameters):
    """NumPy arrays -> (arrays as written, names stored as bfloat16 bits): little-endian
    float16/32/64 as they are, ml_dtypes bfloat16 as its uint16 bit patterns."""
    arrays, bf16 = {}, []
    for k, v in parameters.items():
        name = v.dtype.name
        if name == "bfloat16":
            arrays[k] = np.ascontiguousarray(v).view(np.uint16).astype("<u2", copy=False)
            bf16.append(k)
        else:
            arrays[k] = v.astype(_STORED_DTYPES[name], copy=False)
    return arrays, bf16


def write_weight_file(path, arrays, bfloat16_names=()):
    """Writes the file through netparity.fileio (temporary file in the same folder,
    fsync, rename; permissions as open() gives them). ``arrays``: name -> little-endian
    float16/32/64 array, or uint16 bit patterns for the names in ``bfloat16_names``."""
    from netparity.fileio import atomic_write
    members = {"__format__": np.array(WEIGHT_FORMAT)}
    if bfloat16_names:
        members[BFLOAT16_MEMBER] = np.array(list(bfloat16_names))
    members.update(arrays)
    with atomic_write(path, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for k, v in members.items():
                big = v.nbytes > 2 ** 31  # zip64 sizes must be announced before writing
                with zf.open(f"{k}.npy", "w", force_zip64=big) as member:
                    np.lib.format.write_array(member, np.asarray(v), allow_pickle=False)


def save_weights(path, parameters):
    """Writes ``parameters`` (NumPy arrays; names and dtypes checked before any file is
    created) to a .npz without pickle, atomically (netparity.fileio)."""
    arrays, bf16 = encode_weights(parameters)
    write_weight_file(path, arrays, bf16)


def expected_shapes(layer_dims):
    """{name: shape} of a network of ``layer_dims``: W^[l] (n_l, n_{l-1}), b^[l] (n_l, 1)."""
    want = {}
    for l in range(1, len(layer_dims)):
        want[f"W{l}"] = (int(layer_dims[l]), int(layer_dims[l - 1]))
        want[f"b{l}"] = (int(layer_dims[l]), 1)
    return want


def check_weights(path, shapes, layer_dims):
    """``shapes`` ({name: shape}, read from the headers) are those of a network of
    ``layer_dims``: W1 b1 ... WL bL exactly; ValueError naming the first difference."""
    from .validate import check_layer_dims
    check_layer_dims(layer_dims)
    want = expected_shapes(layer_dims)
    missing = [k for k in want if k not in shapes]
    extra = [k for k in shapes if k not in want]
    if missing or extra:
        parts = ([f"missing {' '.join(missing)}"] if missing else []) + \
                ([f"unexpected {' '.join(extra)}"] if extra else [])
        raise ValueError(f"{path}: weights do not match layer_dims {list(layer_dims)}: "
                         f"{'; '.join(parts)}")
    for k, shape in want.items():
        if tuple(shapes[k]) != shape:
            raise ValueError(f"{path}: weights do not match layer_dims {list(layer_dims)}: "
                             f"{k} has shape {tuple(shapes[k])}, expected {shape}")


class _Bad(Exception):
    """A problem with the file, as ValueError "<path>: <kind> (<detail>)", kind one of
    "unreadable weight file" (not an archive, truncated, corrupted, malformed or
    non-float members), "not a netparity weight file" (someone else's archive or
    array), "weight file too large" (declared sizes over the limit)."""

    def __init__(self, detail, kind="unreadable weight file"):
        super().__init__(f"{kind} ({detail})")


def _read_header(zf, info):
    """(shape, fortran_order, dtype, header length) of one .npy member, decompressing
    only its header."""
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError as e:
            raise _Bad(f"member {info.filename!r} is not a .npy array ({e})") from None
        read = {(1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise _Bad(f"member {info.filename!r}: unsupported .npy version {version}")
        try:
            shape, fortran, dtype = read(f, max_header_size=10000)
        except (ValueError, TypeError, SyntaxError) as e:
            raise _Bad(f"member {info.filename!r} has a malformed .npy header ({e})") from None
        return shape, fortran, dtype, f.tell()


def _member_kind(key, dtype, shape, bf16):
    """Which dtypes a member may declare: parameters are float16/32/64 (either byte
    order) or, when listed as bfloat16, uint16 bit patterns; metadata are strings."""
    if key in ("__format__", BFLOAT16_MEMBER):
        ok = dtype.kind == "U" and dtype.itemsize <= 4 * 64 and len(shape) <= 1 and \
            math.prod(shape) <= MAX_MEMBERS
        return ok, "a short string"
    if key in bf16:
        return dtype.kind == "u" and dtype.itemsize == 2, "bfloat16 bit patterns (uint16)"
    return dtype.kind == "f" and dtype.itemsize in (2, 4, 8), "float16, float32 or float64"


def read_weight_file(path, layer_dims=None):
    """(arrays, bfloat16 names): every parameter as a native-endian NumPy array (bfloat16
    ones as their uint16 bit patterns). Everything is checked from the zip directory and
    the .npy headers before any array data is decompressed: member names, dtypes,
    declared shapes and sizes (against ``layer_dims``, or MAX_WEIGHT_BYTES in total).
    Any problem: ValueError naming the file and the problem."""
    try:
        return _read(path, layer_dims)
    except _Bad as e:
        raise ValueError(f"{path}: {e}") from None
    except ValueError as e:
        if str(e).startswith(f"{path}: "):
            raise
        raise ValueError(f"{path}: unreadable weight file ({e})") from e
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError, UnicodeDecodeError, OverflowError) as e:
        raise ValueError(f"{path}: unreadable weight file ({type(e).__name__}: {e})") from e


def _read(path, layer_dims):
    if not os.path.exists(path):
        raise _Bad("no such file")
    if os.path.isdir(path):
        raise _Bad("a directory")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise _Bad("a single .npy array; a weight file is the .npz archive save_weights "
                   "writes", "not a netparity weight file")
    if not zipfile.is_zipfile(path):
        raise _Bad("not a zip archive: a weight file is an .npz")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _Bad(f"{len(infos)} members, more than the {MAX_MEMBERS} a weight file may "
                       "hold", "weight file too large")
        by_key = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or "/" in name or "\\" in name:
                raise _Bad(f"member {name!r} is not a .npy array (a weight file holds "
                           "<name>.npy members only)")
            key = name[:-4]
            if key in by_key:
                raise _Bad(f"member {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise _Bad(f"member {name!r} is encrypted")
            by_key[key] = info
        if "__format__" not in by_key:
            raise _Bad(f"{WEIGHT_FORMAT}: no __format__ member", "not a netparity weight file")
        # the zip directory's sizes first: nothing is decompressed for an absurd file
        want = None
        if layer_dims is not None:
            want = expected_shapes(layer_dims)
            limit = sum(8 * math.prod(s) + _HEADER_BYTES for s in want.values())
        else:
            limit = MAX_WEIGHT_BYTES
        limit += 2 * _HEADER_BYTES + 64 * MAX_MEMBERS  # the metadata members
        declared = sum(i.file_size for i in infos)
        if declared > limit:
            raise _Bad(f"the archive declares {declared} bytes uncompressed, more than the "
                       f"{limit} " + ("a network of layer_dims "
                                      f"{list(layer_dims)} needs" if want else
                                      "a weight file may hold (MAX_WEIGHT_BYTES; pass "
                                      "layer_dims to load a larger network)"),
                       "weight file too large")
        # then the .npy headers (a few hundred bytes each)
        headers = {k: _read_header(zf, i) for k, i in by_key.items()}
        meta = {}
        for k in ("__format__", BFLOAT16_MEMBER):
            if k in headers:
                meta[k] = _read_small(zf, by_key[k], headers[k], k)
        if str(meta["__format__"]) != WEIGHT_FORMAT:
            raise _Bad(f"{WEIGHT_FORMAT}: __format__ is {str(meta['__format__'])[:40]!r}",
                       "not a netparity weight file")
        bf16 = [str(n) for n in np.atleast_1d(meta.get(BFLOAT16_MEMBER, np.array([], "U1")))]
        params = [k for k in by_key if k not in meta]
        unknown = [n for n in bf16 if n not in params]
        if unknown:
            raise _Bad(f"{BFLOAT16_MEMBER} lists {' '.join(unknown)}, which the file does not hold")
        total = 0
        for k in params:
            shape, _, dtype, hlen = headers[k]
            ok, what = _member_kind(k, dtype, shape, bf16)
            if not ok:
                raise _Bad(f"{k} has dtype {dtype.name} ({dtype.str}); a weight file holds {what}")
            nbytes = math.prod(shape) * dtype.itemsize
            if by_key[k].file_size != hlen + nbytes:
                raise _Bad(f"{k} declares shape {shape} {dtype.name} ({nbytes} bytes) but its "
                           f"member holds {by_key[k].file_size - hlen} bytes of data")
            total += nbytes
        if want is None and total > MAX_WEIGHT_BYTES:
            raise _Bad(f"the arrays declare {total} bytes, more than MAX_WEIGHT_BYTES = "
                       f"{MAX_WEIGHT_BYTES}; pass layer_dims to load a larger network",
                       "weight file too large")
        if layer_dims is not None:
            check_weights(path, {k: headers[k][0] for k in params}, layer_dims)
        # only now the data, exactly the declared number of bytes per member
        arrays = {k: _read_data(zf, by_key[k], headers[k], k) for k in params}
    return arrays, bf16


def _read_data(zf, info, header, key):
    shape, fortran, dtype, hlen = header
    flat = np.empty(math.prod(shape), dtype=dtype)
    with zf.open(info) as f:
        f.read(hlen)
        view = memoryview(flat).cast("B")
        got = 0
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                raise _Bad(f"{key}: truncated data ({got} of {len(view)} bytes)")
            got += n
        if f.read(1):  # also makes zipfile verify the member's CRC
            raise _Bad(f"{key}: more data than its header declares")
    arr = flat.reshape(shape, order="F" if fortran else "C").astype(dtype.newbyteorder("="),
                                                                       copy=False)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _read_small(zf, info, header, key):
    shape, fortran, dtype, hlen = header
    ok, what = _member_kind(key, dtype, shape, ())
    if not ok:
        raise _Bad(f"member {key!r} has dtype {dtype.str}; expected {what}")
    return _read_data(zf, info, header, key)


def bfloat16_from_bits(bits, path, key):
    """uint16 bit patterns -> an ml_dtypes bfloat16 array (NumPy's only bfloat16)."""
    try:
        import ml_dtypes
    except ImportError:
        raise ValueError(f"{path}: {key} is bfloat16, which NumPy holds only with the "
                         "ml_dtypes package (pip install ml_dtypes; it comes with jax)") from None
    return bits.view(ml_dtypes.bfloat16)


def load_weights(path, dtype=None, device="cpu", layer_dims=None):
    """Reads a file written by any backend's ``save_weights``; never unpickles. With
    ``layer_dims`` the keys and shapes are checked against that network (from the
    headers, before any data is read); without, the file may declare at most
    MAX_WEIGHT_BYTES. Returns NumPy arrays in the file's dtypes (bfloat16 as ml_dtypes')
    or cast to ``dtype``."""
    path = os.fspath(path)
    arrays, bf16 = read_weight_file(path, layer_dims)
    for k in bf16:
        arrays[k] = bfloat16_from_bits(arrays[k], path, k)
    return tree_from_numpy(arrays, dtype, device)
