"""Safe file output: atomic writes that follow the umask, early checks of output folders, recovery copies.

* :func:`atomic_write` writes a temporary file in the target's folder, fsyncs it and renames it over the
  target, so readers see the old file or the new one. Temporary files and folders are created with the
  default modes minus the user's umask (``tempfile.mkstemp`` would give 0600), so results, caches and
  reports are as readable as the checkpoints that ``torch.save`` writes.
* :func:`ensure_writable` runs before long work: a missing permission, a read-only or full file system, or
  a file where a folder should be fails at once, in one sentence naming the folder and the option to
  change, instead of after hours of computing.
* :func:`recover` keeps what was computed when its destination fails at write time anyway (a disk that
  filled up during the run): it writes a copy to ``<cache>/recovered/`` (``$BENCH_CACHE_DIR``), else to
  ``<system temp>/vpbench-recovered/``, and the caller's error says where.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import paths
from .errors import BenchError


def describe(error: OSError) -> str:
    """The system's words for ``error`` ("No space left on device"), without the errno and path."""
    return error.strerror or str(error) or type(error).__name__


def hidden_sibling(path: Path, kind: str) -> Path:
    """A fresh hidden name beside ``path`` for a temporary file or folder: ``.<name>.<pid>.<token>.<kind>``."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}"


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (which must not exist) holding ``data``, flushed to disk; mode 0666 minus the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part;
    a failure raises :class:`BenchError` naming the file and leaves no temporary file."""
    path = Path(path)
    temp = hidden_sibling(path, "tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_new(temp, data)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise BenchError(f"cannot write {path}: {describe(error)}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (the renames into it) to disk, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_writable(folder: str | os.PathLike, what: str, option: str, need: int = 0) -> Path:
    """Create ``folder`` if needed and check that a file can be written there with ``need`` bytes free;
    otherwise raise one :class:`BenchError` naming the folder (``what``, e.g. "results folder") and the
    ``option`` that chooses another one. Returns the folder."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise BenchError(f"{what} {folder} {where}, not a folder; move it away or pass another {option}")
    probe = hidden_sibling(folder / "probe", "tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_new(probe, b"")
        probe.unlink()
    except OSError as error:
        raise BenchError(
            f"cannot write to {what} {folder}: {describe(error)}; fix its permissions or pass another {option}"
        ) from None
    ensure_space(folder, need, what, option)
    return folder


def ensure_space(folder: Path, need: int, what: str, option: str) -> None:
    """Refuse (one :class:`BenchError`) when ``folder``'s file system has fewer than ``need`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise BenchError(
            f"{what} {folder} has {_size(free)} free, about {_size(need)} are needed; "
            f"free some space or pass another {option}"
        )


def recover(name: str, write: Callable[[Path], None]) -> Path | None:
    """Call ``write(target)`` for a fresh ``target`` path (``<time>-<name>``) in the first recovery folder
    that takes it; returns the target, or ``None`` when none could (``write`` must clean up after itself)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for folder in (paths.cache_dir() / "recovered", Path(tempfile.gettempdir()) / "vpbench-recovered"):
        target = folder / f"{stamp}-{os.getpid()}-{name}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write(target)
        except OSError:
            continue
        return target
    return None


def _size(count: float) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while count >= 1024 and power < len(units) - 1:
        count, power = count / 1024, power + 1
    return f"{count:.0f} bytes" if power == 0 else f"{count:.1f} {units[power]}"
