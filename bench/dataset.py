"""The dataset plugin contract.

A dataset yields uint8 clips ``(T, C, H, W)``:

* ``train_clips(length, seed)``: an endless iterator of random training windows (augmented as the
  protocol says), repeatable for a given seed;
* ``test_clips(length, stride)``: a fixed, ordered, reproducible :class:`ClipSet`.

Raw data come from ``data_dir``: ``--data-dir``, else ``$BENCH_DATA_DIR/<data_folder>``, else
``download_dir`` (``<cache>/data/<data_folder>``), the only folder a dataset may download into. Dataset-specific settings are declared in ``options`` (name -> (type, default, help)) and
passed as keyword arguments; ``params()`` returns everything that defines the data, for the
results' metadata and for cache keys. ``source`` says where the raw data come from and how
``data_dir`` is laid out; :meth:`Dataset.check_data` refuses missing data with it, cheaply, so
commands call it before any training starts or any file is written.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import paths
from .errors import BenchError


class ClipSet(Sequence):
    """A fixed, ordered set of uint8 clips ``(T, C, H, W)`` with random access."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        """Clips ``indices`` stacked as ``(B, T, C, H, W)``; override when a batch is cheaper."""
        return np.stack([self[i] for i in indices])


class Dataset:
    name: ClassVar[str] = ""
    frame_shape: ClassVar[tuple[int, int, int]] = (1, 64, 64)
    data_folder: ClassVar[str] = ""
    options: ClassVar[dict[str, tuple[type, Any, str]]] = {}
    label: ClassVar[str] = ""  # how tables and figures name it ("": its registry name)
    source: ClassVar[str] = ""  # where the raw data come from and the folder layout ("" for generated data)
    progress: bool = True  # progress bars for long preparation (decoding); off under --quiet

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        skip_bad: bool = False,
        **options: Any,
    ):
        self.cache_dir = Path(cache_dir) if cache_dir else paths.cache_dir()
        folder = self.data_folder or self.name
        self.download_dir = self.cache_dir / "data" / folder
        self.data_dir = paths.data_dir(folder, data_dir) or self.download_dir
        self.skip_bad = skip_bad
        unknown = set(options) - set(self.options)
        if unknown:
            known = ", ".join(self.options) or "none"
            raise BenchError(f"dataset {self.name!r} has no option {sorted(unknown)[0]!r}; its options are: {known}")
        self.settings = {key: default for key, (_, default, _) in self.options.items()}
        for key, value in options.items():
            if value is not None:
                self.settings[key] = parse_option(self.name, key, self.options[key][0], value)

    def train_clips(self, length: int, seed: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def test_clips(self, length: int, stride: int = 1) -> ClipSet:
        raise NotImplementedError

    def check_data(self, splits: Sequence[str] = ("train", "test")) -> None:
        """Raise :meth:`missing_data` when the raw data of ``splits`` are missing, without decoding or
        writing anything. The default has nothing to check (generated data)."""

    def missing_data(self, problem: str) -> BenchError:
        """The error for ``problem`` (one clause), saying where the data come from."""
        return BenchError(f"{problem}; {self.source}" if self.source else problem)

    def verify(self, echo: Callable[[str], Any], jobs: int = 1) -> str | None:
        """Tell ``echo`` which raw files the protocol expects and which are present, missing or
        unreadable; return a one-sentence problem, or ``None`` when the data are complete.
        The default only checks that the test clips load; datasets with files override it."""
        self.test_clips(20)
        echo(f"{self.name} in {self.data_dir}: the test clips load")
        return None

    def params(self) -> dict[str, Any]:
        """What defines this dataset's clips (for metadata and cache keys)."""
        return {"name": self.name, "frame_shape": list(self.frame_shape), **_jsonable(self.settings)}


def parse_option(dataset: str, key: str, kind: type, value: Any) -> Any:
    """Convert a ``KEY=VALUE`` string (or an already typed value) to the option's declared type."""
    if not isinstance(value, str) or kind is str:
        return value
    if kind is bool:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise BenchError(f"dataset {dataset!r}: option {key!r} must be true or false, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise BenchError(f"dataset {dataset!r}: option {key!r} must be {kind.__name__}, got {value!r}") from None


def _jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, Path) else value for key, value in settings.items()}
