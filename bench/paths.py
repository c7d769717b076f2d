"""Where data, caches, checkpoints and results live by default (each overridable)."""
from __future__ import annotations

import os
from pathlib import Path


PACKAGE_DATA = Path(__file__).parent / "data"  # data shipped inside the package (e.g. the MNIST test digits)


def cache_dir() -> Path:
    """``$BENCH_CACHE_DIR``, else ``~/.cache/vpbench``: downloads and decoded-frame caches."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "vpbench")


def data_dir(folder: str, explicit: str | os.PathLike | None = None) -> Path | None:
    """A dataset's raw-data folder given by the user: ``explicit`` (``--data-dir``), else
    ``$BENCH_DATA_DIR/<folder>``; ``None`` when neither is set (the dataset then uses its download
    folder in the cache). ``folder`` is the dataset's ``data_folder``."""
    if explicit:
        return Path(explicit)
    if os.environ.get("BENCH_DATA_DIR"):
        return Path(os.environ["BENCH_DATA_DIR"]) / folder
    return None
