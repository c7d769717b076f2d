"""UCF101 (Soomro et al., 2012) with the fRNN preprocessing (paper Sec. 4.1).

``data_dir`` holds the class folders as the official archive unpacks them
(``<Class>/v_<Class>_gNN_cNN.avi``, optionally under ``UCF-101/``) and the official split lists in
``ucfTrainTestlist/``. Per frame: RGB, PIL bilinear resize to 64x85 (H x W); a clip keeps every second
frame (half the frame rate: 20 frames span 39 raw ones) and is cropped to 80 px wide.

Splits (``-o split=``): the official ``1`` (default), ``2`` or ``3``, or ``paper``: every video of the
official lists, shuffled per class with ``split_seed`` and cut 75% train / 25% test (floor), like the
authors' code. Deviation: their shuffle was unseeded (their counts were 9950 / 3361; ours, from the
13,320 listed videos, are 9957 / 3363). Test clips start at every raw frame (``stride`` in raw
frames) and are cropped at the centre (offset 2); deviation: the authors cropped at a random offset
0..4 even at test time, which made their scores non-deterministic. Training clips: random windows,
random crop offset 0..4 and random left-right flips, as theirs.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import video
from bench.errors import BenchError
from bench.registry import register_dataset
from bench.videoset import Inventory, Video, VideoDataset

SPLITS = ("1", "2", "3", "paper")
LISTS = "ucfTrainTestlist"


def read_list(path: Path) -> list[str]:
    """The video entries (``Class/v_Class_gNN_cNN.avi``) of a split list; labels are dropped."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        raise BenchError(f"UCF101 split list {path} is missing or unreadable") from None
    return [line.split()[0].replace("\\", "/") for line in lines if line.strip()]


def read_classes(list_dir: Path) -> list[str]:
    """Class folder names in ``classInd.txt`` order (``1 ApplyEyeMakeup`` per line)."""
    path = list_dir / "classInd.txt"
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        raise BenchError(f"UCF101 class list {path} is missing or unreadable") from None
    if any(len(row) != 2 for row in rows):
        raise BenchError(f"UCF101 class list {path} must hold 'index ClassName' lines")
    return [name for _, name in sorted(rows, key=lambda row: int(row[0]))]


def split_entries(list_dir: Path, split: str, seed: int = 0) -> dict[str, str]:
    """Entry -> "train" or "test" for ``split`` (official "1"-"3", or the seeded 75/25 "paper" split).

    Classes are taken from the entry's folder, which matches ``classInd.txt``; the file names of one
    class spell it differently (``HandstandPushups/v_HandStandPushups_...``)."""
    if split not in SPLITS:
        raise BenchError(f"dataset 'ucf101': option 'split' must be one of {', '.join(SPLITS)}, got {split!r}")
    classes = read_classes(list_dir)
    number = "1" if split == "paper" else split
    train, test = read_list(list_dir / f"trainlist0{number}.txt"), read_list(list_dir / f"testlist0{number}.txt")
    unknown = sorted({entry.split("/")[0] for entry in train + test} - set(classes))
    if unknown:
        raise BenchError(f"UCF101 split lists in {list_dir} name class {unknown[0]!r}, which classInd.txt lacks")
    if split != "paper":
        return {**{entry: "train" for entry in train}, **{entry: "test" for entry in test}}
    by_class = defaultdict(list)
    for entry in sorted(set(train + test)):
        by_class[entry.split("/")[0]].append(entry)
    rng = np.random.default_rng(seed)
    membership = {}
    for name in classes:
        entries = [by_class[name][i] for i in rng.permutation(len(by_class[name]))]
        cut = int(len(entries) * 0.75)
        membership.update({entry: "train" if i < cut else "test" for i, entry in enumerate(entries)})
    return membership


@register_dataset("ucf101")
class UCF101(VideoDataset):
    label = "UCF101"
    frame_shape = (3, 64, 80)
    data_folder = "ucf101"
    sample_every = 2
    stored_width = 85
    test_crop = 2
    source = ("UCF101 is on its official page, https://www.crcv.ucf.edu/data/UCF101.php (Soomro et al., "
              "arXiv:1212.0402): unpack UCF101.rar (class folders <Class>/v_<Class>_gNN_cNN.avi, optionally "
              "under UCF-101/) and the 'Train/Test Splits for Action Recognition' archive (ucfTrainTestlist/) "
              "into one folder, and pass it as --data-dir or make it $BENCH_DATA_DIR/ucf101")
    options = {
        "split": (str, "1", "official split 1, 2 or 3, or 'paper' (seeded 75/25 per class)"),
        "split_seed": (int, 0, "seed of the 'paper' split's per-class shuffle"),
    }

    def preprocessing(self) -> dict[str, Any]:
        return {"color": "rgb", "resize": "PIL bilinear", "size": [64, 85]}

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        return video.resize(rgb, 64, 85).transpose(0, 3, 1, 2)

    def params(self) -> dict[str, Any]:
        params = super().params()
        if str(params["split"]) != "paper":
            params.pop("split_seed")
        params["test_crop"] = "centre, offset 2 (the authors' was random in 0..4 even at test time)"
        return params

    def video_root(self) -> Path:
        nested = self.data_dir / "UCF-101"
        return nested if nested.is_dir() else self.data_dir

    def list_dir(self) -> Path:
        for folder in (self.data_dir / LISTS, self.video_root() / LISTS):
            if folder.is_dir():
                return folder
        raise self.missing_data(f"UCF101 split lists ({LISTS}/) not found in {self.data_dir} (set --data-dir)")

    def inventory(self) -> Inventory:
        if not self.data_dir.is_dir():
            raise self.missing_data(f"UCF101 data directory {self.data_dir} does not exist (set --data-dir)")
        membership = split_entries(self.list_dir(), str(self.settings["split"]), self.settings["split_seed"])
        root = self.video_root()
        videos = []
        for entry, split in sorted(membership.items()):
            path = root / entry
            videos.append(Video(Path(entry).stem, split, path if path.is_file() else None))
        listed = {root / entry for entry in membership}
        extra = [path for path in sorted(root.glob("*/*.avi")) if path not in listed]
        return Inventory(videos, extra)
