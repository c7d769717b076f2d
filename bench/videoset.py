"""What the video datasets (KTH, UCF101) share: the decoded-frame cache, windows, checks.

A :class:`VideoDataset` subclass says which files it expects and where they are
(:meth:`~VideoDataset.inventory`) and how one decoded video is preprocessed
(:meth:`~VideoDataset.preprocess`). Preprocessed videos are cached as uint8
``(T, C, H, stored_width)`` arrays (:mod:`bench.framecache`). Clips are windows of ``length``
frames taken every ``sample_every``-th raw frame and cropped to ``frame_shape``'s width: at
``test_crop`` for test clips; for training at a random offset below ``stored_width - width`` (the
authors' 0..4 for 85 -> 80 px), then flipped left-right with probability 1/2.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import joblib
import numpy as np
from tqdm.auto import tqdm

from . import video
from .dataset import ClipSet, Dataset
from .errors import BenchError
from .framecache import FrameCache

SHOWN = 10  # names `verify` lists per category before "... and N more"


@dataclass(frozen=True)
class Video:
    """One video of the protocol; ``segments`` are 0-based ``[start, stop)`` frame ranges (None: whole)."""

    name: str
    split: str  # "train" or "test"
    path: Path | None  # None when the file is missing
    segments: tuple[tuple[int, int], ...] | None = None


@dataclass
class Inventory:
    """The protocol's videos against what ``data_dir`` holds (what ``bench data verify`` reports)."""

    videos: list[Video]
    extra: list[Path] = field(default_factory=list)  # video-like files the protocol does not use

    def present(self, split: str | None = None) -> list[Video]:
        return [v for v in self.videos if v.path is not None and split in (None, v.split)]

    def missing(self) -> list[Video]:
        return [v for v in self.videos if v.path is None]


@dataclass
class Prepared:
    """Videos whose cache entries are ready (name -> entry path, frame count) and the failures."""

    entries: dict[str, tuple[Path, int]]
    failures: list[str]


class VideoDataset(Dataset):
    sample_every: ClassVar[int] = 1
    stored_width: ClassVar[int] = 80
    test_crop: ClassVar[int] = 0
    require_all: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.used: dict[str, dict[str, int]] = {}  # split -> videos used, missing, bad (for the metadata)

    # --- what a subclass provides -------------------------------------------------------------
    def inventory(self) -> Inventory:
        raise NotImplementedError

    def preprocessing(self) -> dict[str, Any]:
        """The parameters that define :meth:`preprocess` (part of the cache key)."""
        raise NotImplementedError

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """Decoded uint8 ``(T, H, W, 3)`` RGB -> stored uint8 ``(T, C, H, stored_width)``."""
        raise NotImplementedError

    # --- shared machinery ---------------------------------------------------------------------
    @property
    def cache(self) -> FrameCache:
        return FrameCache(self.cache_dir, self.name, self.preprocessing())

    def params(self) -> dict[str, Any]:
        """Adds the preprocessing and, once clips were made, which videos each split used."""
        return {**super().params(), "preprocessing": self.preprocessing(), "sample_every": self.sample_every,
                "test_crop_offset": self.test_crop, **({"videos": self.used} if self.used else {})}

    def build(self, path: Path) -> np.ndarray:
        return video.decode(path, self.preprocess)

    def verify(self, echo: Callable[[str], Any], jobs: int = 1) -> str | None:
        """The protocol's videos: present and readable (decoded unless cached; nothing is written),
        missing, unreadable, and video files the protocol does not use."""
        inventory = self.inventory()
        counts = {split: sum(v.split == split for v in inventory.videos) for split in ("train", "test")}
        echo(f"{self.name} in {self.data_dir}: the protocol expects {len(inventory.videos)} videos "
             f"({counts['train']} train, {counts['test']} test)")
        present = inventory.present()
        checked = self.prepare(present, jobs=jobs, check_only=True)
        for split in ("train", "test"):
            ok = sum(v.name in checked.entries for v in present if v.split == split)
            echo(f"  {split}: {ok} present and readable of {counts[split]}")
        missing = [v.name for v in inventory.missing()]
        for title, items in (("missing", missing), ("unreadable", checked.failures),
                             ("video files the protocol does not use", [str(p) for p in inventory.extra])):
            if items:
                shown = [f"    {item}" for item in items[:SHOWN]]
                more = [f"    ... and {len(items) - SHOWN} more"] if len(items) > SHOWN else []
                echo("\n".join([f"  {title}: {len(items)}", *shown, *more]))
        if missing:
            echo(f"  {self.source}")
        if missing or checked.failures:
            return (f"dataset {self.name!r} in {self.data_dir} is incomplete: "
                    f"{len(missing)} videos missing, {len(checked.failures)} unreadable")
        return None

    def check_data(self, splits: Sequence[str] = ("train", "test")) -> None:
        """Each split needs a present video; a dataset with ``require_all`` needs them all (unless
        ``skip_bad``). Only file names are looked at."""
        videos = self.inventory().videos
        for split in splits:
            wanted = [v for v in videos if v.split == split]
            missing = [v.name for v in wanted if v.path is None]
            if len(missing) == len(wanted):
                raise self.missing_data(f"no {split} videos of dataset {self.name!r} found in {self.data_dir} "
                                        "(set --data-dir)")
            if missing and self.require_all and not self.skip_bad:
                raise self.missing_data(
                    f"{len(missing)} of the {len(wanted)} {self.name} {split} videos are missing from "
                    f"{self.data_dir}, first {missing[0]} (`bench data verify` lists them; --skip-bad uses the rest)"
                )

    def prepare(self, videos: Sequence[Video], jobs: int = 1, check_only: bool = False) -> Prepared:
        """Decode and cache ``videos`` with ``jobs`` parallel joblib threads (FFmpeg decoding and PIL
        resizing release the GIL, and threads start at once where worker processes would first import
        torch), collecting failures instead of stopping at the first, so everything that can be cached
        is. ``check_only`` decodes uncached videos without storing them (``bench data verify``)."""
        cache = self.cache
        entries, failures, todo = {}, [], []
        for item in videos:
            if item.path is None:
                failures.append(f"video file for {item.name} is missing from {self.data_dir}")
                continue
            count = cache.frames(item.path)
            if count is None:
                todo.append(item)
            else:
                entries[item.name] = (cache.path(item.path), count)
        if todo:
            results = joblib.Parallel(n_jobs=jobs, prefer="threads", return_as="generator")(
                joblib.delayed(_prepare_one)(self, item.path, check_only) for item in todo
            )
            verb = "checking" if check_only else "decoding"
            bar = tqdm(results, total=len(todo), desc=f"{verb} {self.name} videos", unit="video",
                       disable=not self.progress)
            for item, (entry, count, error) in zip(todo, bar):
                if error:
                    failures.append(error)
                else:
                    entries[item.name] = (entry, count)
        return Prepared(entries, failures)

    def _ready(self, split: str) -> tuple[list[Video], Prepared]:
        """The ``split``'s videos, cached. Bad videos raise, or warn with ``skip_bad``; missing ones
        count as bad when ``require_all``, else they are left out with a warning."""
        wanted = [v for v in self.inventory().videos if v.split == split]
        missing = sum(v.path is None for v in wanted)
        if not self.require_all:
            if missing:
                warnings.warn(f"{missing} of the {len(wanted)} {self.name} {split} videos of the protocol are "
                              f"missing from {self.data_dir}; using the rest (`bench data verify` lists them)",
                              stacklevel=3)
            wanted = [v for v in wanted if v.path is not None]
        if not any(v.path is not None for v in wanted):
            raise self.missing_data(f"no {split} videos of dataset {self.name!r} found in {self.data_dir}")
        prepared = self.prepare(wanted)
        if prepared.failures:
            more = len(prepared.failures) - 1
            if not self.skip_bad:
                tail = f" ({more} more bad videos; --skip-bad skips them)" if more else " (--skip-bad skips it)"
                raise BenchError(prepared.failures[0] + tail)
            warnings.warn(f"skipped {len(prepared.failures)} bad {self.name} {split} videos "
                          f"(first: {prepared.failures[0]})", stacklevel=3)
        used = [v for v in wanted if v.name in prepared.entries]
        bad = len(prepared.failures) - (missing if self.require_all else 0)
        self.used[split] = {"videos": len(used), "missing": missing, "bad": bad}
        return used, prepared

    def _pieces(self, split: str) -> tuple[list[Path], list[tuple[int, int, int]]]:
        """Cache entries and ``(entry index, first frame, frame count)`` pieces of ``split``."""
        videos, prepared = self._ready(split)
        entries, pieces = [], []
        for item in videos:
            path, count = prepared.entries[item.name]
            entries.append(path)
            for start, stop in item.segments or [(0, count)]:
                stop = min(stop, count)
                if stop > start:
                    pieces.append((len(entries) - 1, start, stop - start))
        return entries, pieces

    def test_clips(self, length: int, stride: int = 1) -> ClipSet:
        if length < 1 or stride < 1:
            raise BenchError(f"clip length and test stride must be positive, got {length} and {stride}")
        entries, pieces = self._pieces("test")
        return WindowClips(entries, pieces, length, stride, self.sample_every, self.test_crop, self.frame_shape[2])

    def train_clips(self, length: int, seed: int) -> Iterator[np.ndarray]:
        entries, pieces = self._pieces("train")
        clips = WindowClips(entries, pieces, length, 1, self.sample_every, 0, self.stored_width)
        if not len(clips):
            raise BenchError(f"no {self.name} training video is long enough for {length}-frame clips")
        return self._random_windows(clips, np.random.default_rng(seed))

    def _random_windows(self, clips: WindowClips, rng: np.random.Generator) -> Iterator[np.ndarray]:
        width = self.frame_shape[2]
        while True:
            clip = clips[int(rng.integers(len(clips)))]
            offset = int(rng.integers(self.stored_width - width)) if self.stored_width > width else 0
            clip = clip[..., offset:offset + width]
            if rng.random() < 0.5:
                clip = clip[..., ::-1]
            yield np.ascontiguousarray(clip)


def _prepare_one(dataset: VideoDataset, path: Path, check_only: bool) -> tuple[Path | None, int, str | None]:
    try:
        if check_only:
            return None, len(dataset.build(path)), None
        cache = dataset.cache
        return cache.path(path), len(cache.load(path, dataset.build)), None
    except BenchError as error:
        return None, 0, str(error)


class WindowClips(ClipSet):
    """Every window of ``length`` frames (one every ``every`` raw frames) starting every ``stride``
    raw frames within each piece, in order, cropped to ``width`` columns from ``crop``."""

    open_limit = 64  # memory maps kept open at once

    def __init__(self, entries: list[Path], pieces: list[tuple[int, int, int]], length: int,
                 stride: int, every: int, crop: int, width: int):
        self.entries = entries
        self.length, self.stride, self.every, self.crop, self.width = length, stride, every, crop, width
        table = np.array(pieces, dtype=np.int64).reshape(-1, 3)
        self.piece_entry, self.piece_first = table[:, 0], table[:, 1]
        span = (length - 1) * every + 1
        counts = np.maximum(0, (table[:, 2] - span) // stride + 1)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()
        self.frame_size = self._array(0).shape[1:3] if entries else (0, 0)  # (C, H)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip {index} out of range for {len(self)} clips")
        return self.batch([index % len(self)])[0]

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"clip indices must lie in [0, {len(self)}), got {indices.min()}..{indices.max()}")
        piece = np.searchsorted(self.starts, indices, side="right") - 1
        entry = self.piece_entry[piece]
        first = self.piece_first[piece] + (indices - self.starts[piece]) * self.stride
        out = np.empty((len(indices), self.length, *self.frame_size, self.width), np.uint8)
        span, columns = (self.length - 1) * self.every + 1, slice(self.crop, self.crop + self.width)
        for row, (video_index, start) in enumerate(zip(entry.tolist(), first.tolist())):
            out[row] = self._array(video_index)[start:start + span:self.every, ..., columns]
        return out

    def _array(self, entry: int) -> np.ndarray:
        if entry in self._open:
            self._open.move_to_end(entry)
        else:
            self._open[entry] = np.load(self.entries[entry], mmap_mode="r").view(np.ndarray)  # faster slicing
            if len(self._open) > self.open_limit:
                self._open.popitem(last=False)
        return self._open[entry]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": OrderedDict()}
