"""Exclusive locks between processes: one per checkpoint, one per result cell, one for ``summary.csv``.

The lock of ``path`` is ``fcntl.flock`` on the file ``.<name>.lock`` beside it. The kernel drops it when
its holder exits in any way (``kill -9`` included), so a lock is never stale, and lock files stay in
place: deleting one that another process has open would let a third process lock a new file of the
same name. The holder writes its pid, host, start time and command into the file, so a process that is
refused can name it. Within one process a lock is re-entrant (held locks are counted), so code that
holds a checkpoint's lock may call code that takes it again. A forked child (e.g. a ``DataLoader``
worker of a training run) closes its copies of the held lock files at once: it never holds its parent's
locks, so a trainer killed with ``kill -9`` frees its checkpoint at once, even while its data workers
are still winding down.

Platforms: Linux and macOS have ``flock``; on a network file system it works where the server supports
locks (Linux NFS clients map it to byte-range locks); where a file system refuses locks, a warning
says so and the work goes on unlocked. Windows has no ``fcntl``: there no lock is taken, and a
warning says once per process that nothing stops two processes from writing one checkpoint or cell.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from .errors import BenchError
from .storage import describe

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_held: dict[str, int] = {}  # lock file -> how many times this process holds it
_open: dict[str, int] = {}  # lock file -> the descriptor holding its lock in this process


def _forget_in_child() -> None:
    """After ``fork``, in the child: close the inherited lock descriptors (closing one of several
    descriptors of a ``flock`` leaves the lock with the others, i.e. with the parent)."""
    for fd in _open.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _open.clear()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def lock_file(path: Path) -> Path:
    """The lock file of ``path``: ``.<name>.lock`` in the same folder."""
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, what: str, advice: str, wait: bool = False) -> Iterator[None]:
    """Hold ``path``'s lock for the ``with`` block. When another process holds it, wait for it (``wait``)
    or raise :class:`BenchError`: "<what> is in use by process <pid> (<command>, since <time>); <advice>"."""
    file = lock_file(Path(path))
    key = os.path.abspath(file)
    if key in _held or fcntl is None:
        if fcntl is None:
            warnings.warn("file locks are not available on this platform: do not run two vpbench processes "
                          "on one checkpoint or result at the same time", stacklevel=3)
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise BenchError(f"cannot create the lock file {file}: {describe(error)}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise BenchError(f"{what} is in use by {_holder(fd)}; {advice}") from None
        except OSError as error:  # a file system without locks (some network mounts): go on unlocked
            warnings.warn(f"cannot lock {file} ({describe(error)}): nothing stops another process from "
                          f"writing {what} at the same time", stacklevel=3)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me()).encode() + b"\n", 0)
        _held[key], _open[key] = 1, fd
        try:
            yield
        finally:
            del _held[key], _open[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _me() -> dict[str, object]:
    command = os.environ.get("BENCH_COMMAND") or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": command if len(command) <= 160 else command[:157] + "..."}


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder described itself: "process 123 (bench train ..., since ...)"."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        where = "" if info["host"] == socket.gethostname() else f" on {info['host']}"
        return f"process {info['pid']}{where} (`{info['command']}`, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written its details yet
        return "another process"
