"""Files on every backend (docs/errors.md, "Weight files" and "Files the project writes").

Reading: truncated, corrupted, foreign, hostile (a zip bomb, a lying .npy header) and
mismatched files give one ValueError naming the file and the problem, decided from the
zip directory and the .npy headers before any array data is decompressed.
Writing: names and dtypes are checked before a file exists; bfloat16, big-endian and
clashing names round-trip; every file the project writes goes through netparity.fileio
(temporary file in the same folder, renamed), which leaves no temporary file behind on
an error, on SIGTERM, or (at the next write) after kill -9, and gives the permissions
open() would.
"""
import ast
import io
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from netparity import fileio
from netparity.backends import REGISTRY, available_backends, get_backend

R = get_backend("numpy")
BACKENDS = available_backends()
DIMS = [2, 3, 1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def saved(B, tmp_path, params=None):
    path = tmp_path / "w.npz"
    B.save_weights(path, B.tree_from_numpy(params or R.initialize_network(DIMS)))
    return path


def ref_error(call):
    """The reference's (type, message) for the same file: mirrors must match it."""
    try:
        call(R)
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    return None, None


def leftovers(folder):
    return sorted(os.listdir(folder))


def write_npz(path, members, compression=zipfile.ZIP_STORED):
    """A zip of .npy members written by hand: {name: array or raw bytes}."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, v in members.items():
            with zf.open(name, "w") as f:
                if isinstance(v, bytes):
                    f.write(v)
                else:
                    np.lib.format.write_array(f, v, allow_pickle=True)


FORMAT = np.array("netparity-weights-v1")


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("backend", BACKENDS)
def test_roundtrip_with_layer_dims(backend, tmp_path):
    B = get_backend(backend)
    loaded = B.load_weights(saved(B, tmp_path), layer_dims=DIMS)
    want = R.initialize_network(DIMS)
    assert list(loaded) == list(want)
    for k in want:
        np.testing.assert_array_equal(B.to_numpy(loaded[k]), want[k])


def _bfloat16_params(B):
    try:
        return B.tree_from_numpy(R.initialize_network(DIMS, init="xavier"), "bfloat16")
    except TypeError as e:  # NumPy holds bfloat16 only with ml_dtypes
        pytest.skip(f"{B.NAME} cannot hold bfloat16 here: {e}")


@pytest.mark.parametrize("reader", BACKENDS)
@pytest.mark.parametrize("writer", BACKENDS)
def test_bfloat16_round_trips_between_backends(writer, reader, tmp_path):
    """Item 12: bfloat16 parameters are saved (as their bit patterns) and come back as
    bfloat16 with the same values, whichever backend writes and reads."""
    W, Rd = get_backend(writer), get_backend(reader)
    P = _bfloat16_params(W)
    _bfloat16_params(Rd)  # the reader must be able to hold them too
    W.save_weights(tmp_path / "w.npz", P)
    loaded = Rd.load_weights(tmp_path / "w.npz", layer_dims=DIMS)
    assert list(loaded) == list(P)
    for k in P:
        assert str(loaded[k].dtype).rsplit(".", 1)[-1] == "bfloat16"
        want = np.asarray(W.to_numpy(P[k]), dtype=np.float32)  # bfloat16 -> float32 is exact
        np.testing.assert_array_equal(np.asarray(Rd.to_numpy(loaded[k]), dtype=np.float32), want)
        assert np.any(want != 0) or k.startswith("b")


@pytest.mark.parametrize("backend", BACKENDS)
def test_big_endian_file_loads_as_native_floats(backend, tmp_path):
    """Item 12: a file with big-endian float64 arrays (written by NumPy on any machine)
    gives the same native float64 values on every backend."""
    P = R.initialize_network(DIMS)
    path = tmp_path / "be.npz"
    write_npz(path, {"__format__.npy": FORMAT,
                     **{f"{k}.npy": v.astype(">f8") for k, v in P.items()}})
    loaded = get_backend(backend).load_weights(path, layer_dims=DIMS)
    for k, v in P.items():
        got = get_backend(backend).to_numpy(loaded[k])
        assert got.dtype == np.float64 and got.dtype.isnative
        np.testing.assert_array_equal(got, v)


def test_big_endian_arrays_are_saved_little_endian(tmp_path):
    P = {k: v.astype(">f8") for k, v in R.initialize_network(DIMS).items()}
    R.save_weights(tmp_path / "w.npz", P)
    with zipfile.ZipFile(tmp_path / "w.npz") as zf:
        with zf.open("W1.npy") as f:
            np.lib.format.read_magic(f)
            assert np.lib.format.read_array_header_1_0(f)[2] == np.dtype("<f8")
    loaded = R.load_weights(tmp_path / "w.npz")
    for k in P:
        np.testing.assert_array_equal(loaded[k], P[k])


@pytest.mark.parametrize("backend", BACKENDS)
def test_names_numpy_savez_would_have_swallowed_round_trip(backend, tmp_path):
    """Item 13: names that are np.savez's own arguments are ordinary names here."""
    B = get_backend(backend)
    P = {"allow_pickle": np.ones((2, 2)), "file": np.zeros((1, 3)), "args": np.eye(2)}
    B.save_weights(tmp_path / "w.npz", B.tree_from_numpy(P))
    loaded = B.load_weights(tmp_path / "w.npz")
    assert list(loaded) == list(P)
    for k in P:
        np.testing.assert_array_equal(B.to_numpy(loaded[k]), P[k])


# ------------------------------------------------------------------ refused at save

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("params, exc, phrase", [
    ({1: np.ones((2, 2))}, TypeError, "parameters: key 1 is a int; weight names must be strings"),
    ({"__format__": np.ones((2, 2))}, ValueError, "parameters: key '__format__' is not a weight name"),
    ({"a/b": np.ones((2, 2))}, ValueError, "parameters: key 'a/b' is not a weight name"),
    ({"": np.ones((2, 2))}, ValueError, "parameters: key '' is not a weight name"),
    ({}, ValueError, "parameters: nothing to save (empty dict)"),
    ({"W1": np.ones((2, 2), dtype=np.int64)}, TypeError, "parameters: W1 has dtype int64"),
    ({"W1": np.array(["text"])}, TypeError, "expected a floating-point dtype"),
], ids=["int-key", "dunder-key", "slash-key", "empty-key", "empty-dict", "int-array", "str-array"])
def test_bad_names_and_dtypes_refused_before_any_file(backend, params, exc, phrase, tmp_path):
    """Item 13: key names and dtypes are checked at save, with the reference's message on
    every backend, and no file (not even a temporary one) is created."""
    B = get_backend(backend)
    if REGISTRY[backend].arrays != "numpy.ndarray" and any(v.dtype.kind == "U" for v in params.values()):
        pytest.skip(f"a string array exists in NumPy only, not as a {REGISTRY[backend].arrays}")
    arrays = {k: v if v.dtype.kind == "U" else B.from_numpy(v) for k, v in params.items()}
    with pytest.raises(exc) as e:
        B.save_weights(tmp_path / "w.npz", arrays)
    assert phrase in str(e.value)
    assert (type(e.value), str(e.value)) == ref_error(lambda M: M.save_weights(tmp_path / "w.npz", params))
    assert leftovers(tmp_path) == []


def test_float128_refused_at_save(tmp_path):
    if not hasattr(np, "float128"):
        pytest.skip("no float128 on this platform")
    with pytest.raises(TypeError, match="W1 has dtype float128; expected a floating-point dtype"):
        R.save_weights(tmp_path / "w.npz", {"W1": np.ones((2, 2), dtype=np.float128)})
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ refused at load

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("keep", [0, 10, 100, -30, -1])
def test_truncated_file(backend, keep, tmp_path):
    B = get_backend(backend)
    path = saved(B, tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:keep])
    with pytest.raises(ValueError, match="unreadable weight file|not a netparity weight file"):
        B.load_weights(path)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes(backend, seed, tmp_path):
    B = get_backend(backend)
    path = tmp_path / "junk.npz"
    path.write_bytes(np.random.RandomState(seed).bytes(2000))
    with pytest.raises(ValueError, match="unreadable weight file"):
        B.load_weights(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupted_payload(backend, tmp_path):
    """Flip bytes inside the archive (after the header): still a clear ValueError."""
    B = get_backend(backend)
    path = saved(B, tmp_path)
    raw = bytearray(path.read_bytes())
    for i in range(60, len(raw) - 60, 7):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="unreadable weight file|not a netparity weight file"):
        B.load_weights(path)


def _foreign_files(tmp_path):
    P = R.initialize_network(DIMS)
    files = {}
    files["npy"] = tmp_path / "single.npy"
    np.save(files["npy"], P["W1"])
    files["text-member"] = tmp_path / "text.npz"
    write_npz(files["text-member"], {"__format__.npy": FORMAT, "W1.npy": P["W1"],
                                     "notes.txt": b"hello"})
    files["object-array"] = tmp_path / "obj.npz"
    write_npz(files["object-array"], {"__format__.npy": FORMAT,
                                      "W1.npy": np.array([{"evil": 1}], dtype=object)})
    files["float128"] = tmp_path / "f128.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f16", "fortran_order": False,
                                                  "shape": (3, 2)})
    write_npz(files["float128"], {"__format__.npy": FORMAT,
                                  "W1.npy": b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + bytes(96)})
    files["lying-header"] = tmp_path / "lie.npz"  # declares 8 TB, holds 8 bytes
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10 ** 6, 10 ** 6)})
    write_npz(files["lying-header"], {"__format__.npy": FORMAT,
                                      "W1.npy": header.getvalue() + bytes(8)})
    files["not-an-npy-member"] = tmp_path / "garbage.npz"
    write_npz(files["not-an-npy-member"], {"__format__.npy": FORMAT, "W1.npy": b"not numpy"})
    files["directory"] = tmp_path / "adir"
    files["directory"].mkdir()
    files["missing"] = tmp_path / "missing.npz"
    files["foreign-npz"] = tmp_path / "plain.npz"
    np.savez(files["foreign-npz"], W1=P["W1"])
    return files


FOREIGN = [
    ("npy", "not a netparity weight file (a single .npy array"),
    ("text-member", "unreadable weight file (member 'notes.txt' is not a .npy array"),
    ("object-array", "unreadable weight file (W1 has dtype object (|O); a weight file holds "
                     "float16, float32 or float64)"),
    ("float128", "unreadable weight file (W1 has dtype float128 (<f16)"),
    ("lying-header", "unreadable weight file (W1 declares shape (1000000, 1000000) float64 "
                     "(8000000000000 bytes) but its member holds 8 bytes of data)"),
    ("not-an-npy-member", "unreadable weight file (member 'W1.npy' is not a .npy array"),
    ("directory", "unreadable weight file (a directory)"),
    ("missing", "unreadable weight file (no such file)"),
    ("foreign-npz", "not a netparity weight file (netparity-weights-v1: no __format__ member)"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind, phrase", FOREIGN, ids=[k for k, _ in FOREIGN])
def test_foreign_and_hostile_files_are_one_value_error(backend, kind, phrase, tmp_path):
    """Item 11: whatever the file, ValueError "<path>: <problem>", the same on every
    backend (no TypeError, AttributeError, MemoryError; no object is ever unpickled)."""
    path = _foreign_files(tmp_path)[kind]
    B = get_backend(backend)
    with pytest.raises(ValueError) as e:
        B.load_weights(path)
    assert str(e.value).startswith(f"{path}: ") and phrase in str(e.value), str(e.value)
    assert (ValueError, str(e.value)) == ref_error(lambda M: M.load_weights(path))


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory):
    """1.2 MB on disk, 272 MB of float64 zeros once inflated: more than MAX_WEIGHT_BYTES
    (256 MiB) and than any network of DIMS."""
    shape = (4, 8_500_000)
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("__format__.npy", "w") as f:
            np.lib.format.write_array(f, FORMAT)
        with zf.open("W1.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                     "shape": shape})
            chunk, left = bytes(1 << 20), 8 * shape[0] * shape[1]
            while left > 0:
                f.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
    assert os.path.getsize(path) < 2e6
    return path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer_dims", [None, DIMS], ids=["no-layer-dims", "layer-dims"])
def test_zip_bomb_refused_before_decompressing(backend, layer_dims, zip_bomb):
    """Item 10: refused from the zip directory's sizes; Python allocations while loading
    (NumPy's included, traced by tracemalloc) stay under 4 MB, not 272 MB."""
    B = get_backend(backend)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="weight file too large") as e:
            B.load_weights(zip_bomb, layer_dims=layer_dims)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4e6, peak
    assert str(e.value).startswith(f"{zip_bomb}: weight file too large (the archive declares ")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims, phrase", [
    ([2, 4, 1], r"W1 has shape \(3, 2\), expected \(4, 2\)"),
    ([2, 3, 1, 1], "missing W3 b3"),
    ([2, 1], "unexpected W2 b2"),
])
def test_mismatched_layer_dims(backend, dims, phrase, tmp_path):
    B = get_backend(backend)
    path = saved(B, tmp_path)
    with pytest.raises(ValueError, match="weights do not match layer_dims") as e:
        B.load_weights(path, layer_dims=dims)
    assert e.match(phrase)
    assert (ValueError, str(e.value)) == ref_error(lambda M: M.load_weights(path, layer_dims=dims))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("count, phrase", [
    (4096, "__bfloat16__ lists x0 x1 "),  # as many names as MAX_MEMBERS: read, then checked
    (4097, "member '__bfloat16__' has dtype <U5; expected a short string"),  # one more: refused
])
def test_bfloat16_list_of_at_most_max_members_names(backend, count, phrase, tmp_path):
    """The __bfloat16__ member may list up to MAX_MEMBERS (4096) names; a longer list is
    refused from its header, before it is read."""
    names = np.array(["W1"] + [f"x{i}" for i in range(count - 1)])
    path = tmp_path / "w.npz"
    write_npz(path, {"__format__.npy": FORMAT, "__bfloat16__.npy": names,
                     "W1.npy": np.zeros((3, 2), np.uint16)})
    with pytest.raises(ValueError) as e:
        get_backend(backend).load_weights(path)
    assert str(e.value).startswith(f"{path}: unreadable weight file ({phrase}"), str(e.value)[:300]


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_keys(backend, tmp_path):
    B = get_backend(backend)
    path = tmp_path / "w.npz"
    B.save_weights(path, B.tree_from_numpy({"W1": np.ones((3, 2)), "foo": np.ones((3, 1))}))
    with pytest.raises(ValueError, match="missing b1 W2 b2; unexpected foo"):
        B.load_weights(path, layer_dims=DIMS)


# ------------------------------------------------------------------ atomic writes

@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_save_to_directory_leaves_nothing(backend, tmp_path):
    B = get_backend(backend)
    target = tmp_path / "adir"
    target.mkdir()
    with pytest.raises(OSError):
        B.save_weights(target, B.tree_from_numpy(R.initialize_network(DIMS)))
    assert leftovers(tmp_path) == ["adir"] and leftovers(target) == []


def test_failed_save_mid_write_leaves_nothing(tmp_path, monkeypatch):
    """An error while writing removes the temporary file and keeps an existing file."""
    path = tmp_path / "w.npz"
    R.save_weights(path, R.initialize_network(DIMS))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(OSError, match="disk full"):
        R.save_weights(path, R.initialize_network([2, 5, 1]))
    assert leftovers(tmp_path) == ["w.npz"] and path.read_bytes() == before


@pytest.fixture
def small_file_limit():
    """set(n): the file system refuses to grow any file of this process past n bytes
    (RLIMIT_FSIZE: EFBIG, what a full disk's ENOSPC looks like to the writer)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    yield lambda n: resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.parametrize("write", [
    lambda p, n: fileio.write_bytes(p, b"x" * n),
    lambda p, n: fileio.write_text(p, "x" * n),
    lambda p, n: fileio.write_json(p, {"x": "y" * n}),
    lambda p, n: R.save_weights(p, {"W1": np.ones((n, 1))}),
], ids=["bytes", "text", "json", "weights"])
def test_disk_full_keeps_the_old_file(write, tmp_path, small_file_limit):
    """Item 16: a write that cannot finish leaves the earlier file as it was."""
    path = tmp_path / "out"
    path.write_bytes(b"old")
    small_file_limit(4096)
    with pytest.raises(OSError) as e:
        write(path, 10_000)
    small_file_limit(resource.RLIM_INFINITY)
    assert e.value.errno == 27  # EFBIG
    assert path.read_bytes() == b"old" and leftovers(tmp_path) == ["out"]


def test_unserialisable_json_touches_nothing(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{}")
    with pytest.raises(TypeError):
        fileio.write_json(path, {"x": object()})
    assert path.read_text() == "{}" and leftovers(tmp_path) == ["r.json"]


def test_figure_written_atomically_through_a_symlink(tmp_path):
    """save_figure: a PNG (format from the extension), and a symlinked target keeps its
    link while the file it points to is replaced."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(2, 2))
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    (tmp_path / "link.png").symlink_to(real)
    fileio.save_figure(fig, tmp_path / "link.png")
    assert (tmp_path / "link.png").is_symlink()
    assert real.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftovers(tmp_path) == ["link.png", "real.png"]


@pytest.mark.parametrize("umask, existing, want", [
    (0o022, None, 0o644), (0o077, None, 0o600), (0o002, None, 0o664),
    (0o077, 0o644, 0o644), (0o022, 0o600, 0o600)],
    ids=["umask-022", "umask-077", "umask-002", "overwrite-keeps-644", "overwrite-keeps-600"])
def test_permissions_follow_the_umask(umask, existing, want, tmp_path):
    """Item 15: a new file gets 0666 minus the umask (as open() creates it); an
    overwritten file keeps its permission bits."""
    path = tmp_path / "w.npz"
    if existing is not None:
        path.write_bytes(b"old")
        path.chmod(existing)
    old = os.umask(umask)
    try:
        R.save_weights(path, R.initialize_network(DIMS))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == want


WRITER = """
import sys, numpy as np
import reference as R
P = {"W1": np.ones((2000, 2500))}  # 40 MB: each save takes long enough to be caught
print("ready", flush=True)
while True:
    R.save_weights(sys.argv[1], P)
"""


def _writer_caught_mid_save(tmp_path):
    """A process saving weights in a loop, and the moment a temporary file exists."""
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "w.npz")],
                         stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert p.stdout.readline() == "ready\n"
    deadline = time.time() + 30
    while not any(n.startswith(fileio.TMP_PREFIX) for n in os.listdir(tmp_path)):
        assert time.time() < deadline and p.poll() is None, "no save started"
        time.sleep(0.002)
    return p


def test_sigterm_mid_save_leaves_no_temporary_file(tmp_path):
    """Item 14: SIGTERM during a save removes its temporary file; the process still dies
    of SIGTERM, and the target is either absent or a complete file."""
    p = _writer_caught_mid_save(tmp_path)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == -signal.SIGTERM
    assert set(leftovers(tmp_path)) <= {"w.npz"}
    if leftovers(tmp_path):
        assert R.load_weights(tmp_path / "w.npz")["W1"].shape == (2000, 2500)


def test_kill_9_leftover_removed_by_the_next_write(tmp_path):
    """Item 14: kill -9 cannot be intercepted; the next write into that folder removes the
    dead writer's temporary file (its pid is in the name), keeping live writers' ones."""
    p = _writer_caught_mid_save(tmp_path)
    p.kill()
    p.wait(timeout=30)
    live = tmp_path / f"{fileio.TMP_PREFIX}{os.getpid()}-0123abcd-other.npz"
    live.write_bytes(b"a write of this (live) process")
    R.save_weights(tmp_path / "next.npz", R.initialize_network(DIMS))
    assert [n for n in leftovers(tmp_path) if n.startswith(fileio.TMP_PREFIX)] == [live.name]
    # and one older than STALE_AFTER_S goes whoever wrote it (another machine, pid reuse)
    os.utime(live, (time.time() - fileio.STALE_AFTER_S - 60,) * 2)
    fileio.remove_stale_temps(str(tmp_path))
    assert not live.exists()


# calls that write a file: method names (any receiver but the fileio module itself), and
# module functions (receiver: that module)
WRITE_METHODS = {"savefig", "savez", "savez_compressed", "write_text", "write_bytes", "tofile"}
WRITE_FUNCTIONS = {"np": {"save", "savetxt"}, "numpy": {"save", "savetxt"}, "json": {"dump"},
                   "pickle": {"dump"}, "shutil": {"copy", "copy2", "copyfile", "move"}}
EXEMPT = {
    ("tools/mutate.py", "copy_tree"): "builds its own throwaway copy of the repository",
    ("tools/mutate.py", "run"): "writes a mutant into (and restores) its throwaway copy",
    ("tools/mutation_plugin.py", "_write"): "appends one line per test to a run's live record",
    ("torch_impl/distributed.py", "_run_ranks"): "a worker's live log, streamed by its process (read on failure)",
    ("netparity/cmd_report.py", "_png"): "savefig into an in-memory buffer",
}


def _writes(tree):
    """(innermost enclosing function, line, what) of each file write in a module's AST."""
    out = []

    def visit(node, fn):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            fn = node.name
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "open":
                modes = node.args[1:2] + [k.value for k in node.keywords if k.arg == "mode"]
                if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                    out.append((fn, node.lineno, "open(..., write mode)"))
            elif isinstance(f, ast.Attribute):
                owner = f.value.id if isinstance(f.value, ast.Name) else None
                if (f.attr in WRITE_METHODS and owner != "fileio") or \
                        f.attr in WRITE_FUNCTIONS.get(owner, ()):
                    out.append((fn, node.lineno, f.attr))
        for child in ast.iter_child_nodes(node):
            visit(child, fn)
    visit(tree, "<module>")
    return out


def test_every_file_the_project_writes_goes_through_fileio():
    """Item 16, the class: no module writes a file itself (open for writing, savefig,
    np.save*, json.dump, write_text/bytes, copies) except netparity/fileio.py."""
    found = []
    for top in ("reference", "torch_impl", "jax_impl", "netparity", "tools", "bench"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for fname in files:
                if not fname.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fname), ROOT)
                if rel == os.path.join("netparity", "fileio.py"):
                    continue
                with open(os.path.join(ROOT, rel)) as f:
                    tree = ast.parse(f.read())
                found += [f"{rel}:{line} {what} in {fn}()" for fn, line, what in _writes(tree)
                          if (rel, fn) not in EXEMPT]
    assert found == [], "\n".join(sorted(set(found)))


def test_the_write_finder_finds_writes():
    """The AST scan above on hand-written code: it must see each kind of write."""
    src = ("def f(p, fig, d):\n    open(p, 'w').write('x')\n    fig.savefig(p)\n"
           "    np.savez(p, a=1)\n    json.dump(d, open(p, mode='a'))\n    P(p).write_text('x')\n"
           "    open(p).read()\n    fileio.write_text(p, 'x')\n    a.copy()\n")
    kinds = sorted(w for _, _, w in _writes(ast.parse(src)))
    assert kinds == ["dump", "open(..., write mode)", "open(..., write mode)", "savefig",
                     "savez", "write_text"]
