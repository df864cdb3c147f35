"""Every file netparity writes (JSON, Markdown, HTML, PNG, weight files) goes through here.

A write never leaves a half-written file where a reader looks:

* the data goes to a temporary file **in the target's directory** (same file system, so
  the final ``os.replace`` is an atomic rename), is flushed and fsync'ed, and only then
  replaces the target. A failure at any point (disk full, an exception, Ctrl-C) removes
  the temporary file and leaves an existing target untouched.
* permissions are those ``open(path, "w")`` would give: a new file gets ``0o666`` minus
  the umask (the temporary file is created with that mode, so the kernel applies the
  umask and any default ACL); an overwritten file keeps its permission bits.
* SIGTERM and SIGHUP (whose default action kills the process without unwinding) remove
  the temporary files of writes in progress, then the process dies of the signal as it
  would have. SIGINT raises KeyboardInterrupt, which unwinds through the write and
  removes its temporary file. Handlers are installed only for the duration of a write,
  only where they are the default ones, and only from the main thread.
* ``kill -9`` cannot be intercepted: temporary files carry the writer's pid in their name
  (``.netparity-tmp-<pid>-<token>-<name>``), and every write removes the ones in its
  directory whose writer is gone (no such pid on this machine) or that are older than
  ``STALE_AFTER_S``.

Functions: ``atomic_write(path, mode)`` (a file object), ``atomic_path(path)`` (a temporary
path, for writers that want one), ``write_bytes``, ``write_text``, ``write_json``,
``save_figure``, ``remove_stale_temps``; and the CLI's pre-flight checks
``output_file_problem(path)`` / ``output_dir_problem(path)`` (a sentence, or None).
Standard library only: the NumPy reference imports it for its weight files.
"""
import contextlib
import errno
import json
import os
import re
import secrets
import signal
import stat
import threading
import time

TMP_PREFIX = ".netparity-tmp-"
_TMP_NAME = re.compile(r"^\.netparity-tmp-(\d+)-[0-9a-f]{8}-")
STALE_AFTER_S = 24 * 3600  # also covers writers on other machines (a shared file system)

# signals whose default action ends the process without running Python code
_FATAL_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))

_lock = threading.RLock()
_live: set[str] = set()      # temporary paths this process is writing now
_saved: dict = {}       # signum -> the handler we replaced (only while writes are in progress)
_depth = 0           # writes in progress that installed the handlers


# ------------------------------------------------------------------ signals

def _on_fatal_signal(signum, frame):
    """Remove the temporary files of the writes in progress, then die of the signal."""
    for tmp in list(_live):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers():
    global _depth
    if threading.current_thread() is not threading.main_thread():
        return False  # signal.signal works in the main thread only
    with _lock:
        if _depth == 0:
            for s in _FATAL_SIGNALS:
                if signal.getsignal(s) == signal.SIG_DFL:
                    _saved[s] = signal.signal(s, _on_fatal_signal)
        _depth += 1
    return True


def _restore_handlers():
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            for s, previous in _saved.items():
                if signal.getsignal(s) is _on_fatal_signal:  # nobody replaced ours meanwhile
                    signal.signal(s, previous)
            _saved.clear()


# ------------------------------------------------------------------ temporary files

def _target(path):
    """The file really written: a symlink is followed (as ``open`` would), so the link
    stays a link and its target is replaced."""
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"not a file path: {path!r}")
    return os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:
        return True  # unknown: keep the file
    return True


def remove_stale_temps(folder, now=None):
    """Removes this module's temporary files in ``folder`` whose writer is gone (pid not
    running on this machine, e.g. after ``kill -9``) or that are older than
    ``STALE_AFTER_S``; returns the names removed. Errors are ignored (another process may
    be cleaning up the same folder)."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TMP_NAME.match(e.name)
        if not m or os.path.join(folder, e.name) in _live:
            continue
        try:
            old = now - e.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if old or not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, e.name))
                removed.append(e.name)
    return removed


def _new_temp(target):
    """Creates (O_EXCL) an empty temporary file next to ``target``; returns (fd, path).
    The path is registered as live *before* it exists, so a signal at any moment finds it."""
    folder, name = os.path.split(target)
    for _ in range(100):
        tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name[:80]}")
        _live.add(tmp)
        try:
            # 0o666: the kernel applies the umask (and a directory's default ACL), as open() does
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            _live.discard(tmp)
            continue
        except BaseException:
            _live.discard(tmp)
            raise
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "could not create a unique temporary file", folder)


def _fsync_dir(folder):
    # the rename itself is durable only once the directory is synced (where supported)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _committed(path):
    """(fd, tmp) for the block; on success the temporary file replaces ``path``."""
    target = _target(path)
    folder = os.path.dirname(target)
    remove_stale_temps(folder)
    installed = _install_handlers()
    try:
        fd, tmp = _new_temp(target)
        try:
            try:
                yield fd, tmp
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)
            try:  # keep the permission bits of a file being overwritten
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            except FileNotFoundError:
                pass
            os.replace(tmp, target)
            _fsync_dir(folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            _live.discard(tmp)
    finally:
        if installed:
            _restore_handlers()


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """``with atomic_write(path, "w") as f: f.write(...)``: ``path`` is replaced when the
    block ends without an exception, and never holds a partial file."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', not {mode!r}")
    with _committed(path) as (fd, _):
        fd2 = os.dup(fd)  # the file object owns its own descriptor; _committed closes fd
        with open(fd2, mode, encoding=encoding if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path next to ``path`` for a writer that takes a file name (e.g.
    pytest-benchmark's ``--benchmark-json``); it replaces ``path`` when the block ends
    without an exception. The writer must have written it (FileNotFoundError otherwise)."""
    with _committed(path) as (_, tmp):
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)  # data the writer left in the page cache, to disk
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path, data):
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path, text, encoding="utf-8"):
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)


def save_npz(path, **arrays):
    """``np.savez`` (no pickle: plain arrays only), atomically."""
    import numpy as np
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def write_json(path, obj, indent=1):
    """The JSON text is built first: an object that cannot be serialised fails before
    any file is touched."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def save_figure(fig, path, **savefig_kwargs):
    """``fig.savefig`` into a temporary file, then renamed; the format comes from
    ``format=`` or the extension (png when there is none)."""
    fmt = savefig_kwargs.pop("format", None) or os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, **savefig_kwargs)


# ------------------------------------------------------------------ pre-flight checks

def _probe(folder):
    """None if a file can be created in ``folder`` (tried for real: permission bits,
    read-only mounts, ACLs and root all answer the same way), else the reason."""
    try:
        fd, tmp = _new_temp(os.path.join(folder, "probe"))
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    _live.discard(tmp)
    return None


def output_file_problem(path):
    """Why ``path`` cannot be written as a file, or None. Its directory must exist: a
    typo in a directory name is reported, not silently created."""
    if path is None or os.fspath(path) == "":
        return "empty path"
    path = os.fspath(path)
    if os.path.isdir(path):
        return "is a directory"
    if os.path.lexists(path):
        real = os.path.realpath(path)
        if os.path.exists(real) and not stat.S_ISREG(os.stat(real).st_mode):
            return "exists and is not a regular file"
        if os.path.exists(real) and not os.access(real, os.W_OK):
            return "exists and is read-only"
        path = real
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        return f"directory {folder} does not exist"
    if not os.path.isdir(folder):
        return f"{folder} is not a directory"
    reason = _probe(folder)
    return f"cannot write in {folder}: {reason}" if reason else None


def output_dir_problem(path):
    """Why ``path`` cannot be used as an output directory, or None. A missing directory
    is fine when it can be created (its nearest existing ancestor is writable)."""
    if path is None or os.fspath(path) == "":
        return "empty path"
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path):
        if not os.path.isdir(path):
            return "exists and is not a directory"
        reason = _probe(path)
        return f"cannot write in {path}: {reason}" if reason else None
    ancestor = os.path.dirname(path)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        return f"cannot create it: {ancestor} is not a directory"
    reason = _probe(ancestor)
    return f"cannot create it in {ancestor}: {reason}" if reason else None
