"""A cache of decoded, preprocessed videos: one uint8 ``.npy`` array per video, memory-mapped on load.

Entries live in ``<cache_dir>/frames/<dataset>/<stem>-<key>.npy``. The key hashes the preprocessing
parameters together with the source file's resolved path, size and modification time, so a changed
parameter or a changed file simply misses (old entries stay until deleted by hand). Writes go to a
temporary file in the same folder that is then renamed into place, so concurrent runs never see, or
leave, a half-written entry; entries get the default file mode minus the umask. A cache folder that
cannot be written is a :class:`~bench.errors.BenchError` naming it and ``$BENCH_CACHE_DIR``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BenchError
from .storage import atomic_write

FORMAT_VERSION = 1
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class FrameCache:
    """Cached arrays of one dataset under one set of preprocessing ``params`` (JSON-able)."""

    def __init__(self, cache_dir: str | os.PathLike, dataset: str, params: dict[str, Any]):
        self.folder = Path(cache_dir) / "frames" / dataset
        self.params = {"format": FORMAT_VERSION, **params}

    def path(self, source: str | os.PathLike) -> Path:
        """Where the entry for video ``source`` is (raises ``OSError`` if ``source`` cannot be stat'ed)."""
        source = Path(source).resolve()
        stat = source.stat()
        ident = json.dumps([self.params, str(source), stat.st_size, stat.st_mtime_ns], sort_keys=True)
        key = hashlib.sha256(ident.encode()).hexdigest()[:20]
        return self.folder / f"{source.stem}-{key}.npy"

    def get(self, source: str | os.PathLike) -> np.ndarray | None:
        """The cached array for ``source`` (read-only memory map), or None when absent or unreadable."""
        try:
            return np.load(self.path(source), mmap_mode="r")
        except (OSError, ValueError):
            return None

    def frames(self, source: str | os.PathLike) -> int | None:
        """The number of frames cached for ``source`` (from the entry's header, without mapping it),
        or None when the entry is absent or not a complete uint8 array."""
        try:
            entry = self.path(source)
            with open(entry, "rb") as file:
                version = np.lib.format.read_magic(file)
                read_header = HEADER_READERS.get(version)
                if read_header is None:
                    return None
                shape, _, dtype = read_header(file)
                complete = dtype == np.uint8 and file.tell() + int(np.prod(shape)) == entry.stat().st_size
        except (OSError, ValueError):
            return None
        return shape[0] if complete and shape else None

    def load(self, source: str | os.PathLike, build: Callable[[Path], np.ndarray]) -> np.ndarray:
        """The cached array for ``source``, made with ``build(source)`` and stored first when missing."""
        cached = self.get(source)
        if cached is not None:
            return cached
        array = build(Path(source))
        target = self.path(source)
        self.put(target, array)
        return np.load(target, mmap_mode="r")

    def put(self, target: Path, array: np.ndarray) -> None:
        """Store ``array`` at ``target`` atomically (temporary file, then rename)."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array, dtype=np.uint8))
        try:
            atomic_write(target, buffer.getvalue())
        except BenchError as error:
            raise BenchError(
                f"{error}; set $BENCH_CACHE_DIR to a writable folder with room for the frame cache"
            ) from None
