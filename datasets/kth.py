"""KTH human actions (Schuldt et al., ICPR 2004) with the fRNN preprocessing (paper Sec. 4.1).

``data_dir`` holds the original ``personNN_<action>_dK_uncomp.avi`` files, flat or in per-action
folders. Per frame: channel 0 of the BGR decode (the blue channel; the videos are gray), 5 px cropped
from the left and the right (160x120 -> 150x120), PIL bilinear resize to 64x80 (H x W), native 25 fps.
Persons 1-16 train, 17-25 test (383 / 216 videos; ``person13_handclapping_d3`` does not exist).
Whole videos by default, as the authors did; ``-o segments=on`` (``00sequences.txt`` in ``data_dir``)
or ``-o segments=PATH`` restricts windows to the annotated action segments instead.
Test clips: every window at ``stride``; training: random windows, flipped left-right at random.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from bench import video
from bench.errors import BenchError
from bench.registry import register_dataset
from bench.videoset import Inventory, Video, VideoDataset

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
ABSENT = {"person13_handclapping_d3"}  # never recorded; the official archive lacks it too
TEST_PERSONS = range(17, 26)
FILE_NAME = re.compile(r"^(person(\d\d)_(" + "|".join(ACTIONS) + r")_d([1-4]))_uncomp\.avi$")
SEQUENCE_LINE = re.compile(r"^\s*(person\d\d_\w+?_d[1-4])\s+frames\s+(.*?)\s*$")
SEGMENT = re.compile(r"(\d+)\s*-\s*(\d+)")
OFF, ON = ("", "0", "off", "false", "no"), ("1", "on", "true", "yes")


def protocol_names() -> list[str]:
    """The 599 videos of KTH in order: person, action, scenario."""
    return [f"person{p:02d}_{a}_d{d}" for p in range(1, 26) for a in ACTIONS for d in range(1, 5)
            if f"person{p:02d}_{a}_d{d}" not in ABSENT]


def split_of(name: str) -> str:
    return "test" if int(name[6:8]) in TEST_PERSONS else "train"


def parse_sequences(path: Path) -> dict[str, tuple[tuple[int, int], ...]]:
    """``00sequences.txt``: video name -> 0-based ``[start, stop)`` segments (the file's ranges are
    1-based and inclusive). Tolerates CRLF, tabs and spaces, 3 or 4 segments, and ``*missing*``."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        raise BenchError(f"KTH segments file {path} cannot be read") from None
    segments = {}
    for line in text.splitlines():
        match = SEQUENCE_LINE.match(line)
        if match:
            ranges = tuple((int(a) - 1, int(b)) for a, b in SEGMENT.findall(match.group(2)))
            if ranges:
                segments[match.group(1)] = ranges
    if not segments:
        raise BenchError(f"KTH segments file {path} holds no 'personNN_action_dK frames a-b, ...' lines")
    return segments


@register_dataset("kth")
class KTH(VideoDataset):
    label = "KTH"
    frame_shape = (1, 64, 80)
    data_folder = "kth"
    require_all = False  # the authors used every .avi present; a partial folder is used, with a warning
    source = ("KTH is on its official page, https://www.csc.kth.se/cvap/actions/ (Schuldt et al., ICPR 2004): "
              "unzip its six action archives (boxing.zip ... walking.zip) into one folder, flat or one subfolder "
              "per action, holding personNN_<action>_dK_uncomp.avi, and pass it as --data-dir or make it "
              "$BENCH_DATA_DIR/kth")
    options = {
        "segments": (str, "off", "off: whole videos (the paper); on: the segments of 00sequences.txt "
                                 "in the data dir; or the path of such a file"),
    }

    def preprocessing(self) -> dict[str, Any]:
        return {"channel": "bgr0", "crop_left_right": 5, "resize": "PIL bilinear", "size": [64, 80]}

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape[2] <= 10:
            raise BenchError(f"KTH frames must be wider than 10 px, got {rgb.shape[2]}")
        blue = rgb[:, :, 5:-5, 2:3]  # channel 0 of OpenCV's BGR
        return video.resize(blue, 64, 80).transpose(0, 3, 1, 2)

    def segments_file(self) -> Path | None:
        value = str(self.settings["segments"]).strip()
        if value.lower() in OFF:
            return None
        return self.data_dir / "00sequences.txt" if value.lower() in ON else Path(value)

    def inventory(self) -> Inventory:
        if not self.data_dir.is_dir():
            raise self.missing_data(f"KTH data directory {self.data_dir} does not exist (set --data-dir)")
        found: dict[str, Path] = {}
        extra = []
        for path in sorted([*self.data_dir.glob("*.avi"), *self.data_dir.glob("*/*.avi")]):
            match = FILE_NAME.match(path.name)
            if not match or match.group(1) in ABSENT:
                extra.append(path)
            elif match.group(1) in found:
                raise BenchError(f"KTH video {path.name} is in {self.data_dir} twice: "
                                 f"{found[match.group(1)]} and {path}")
            else:
                found[match.group(1)] = path
        sequences_file = self.segments_file()
        sequences = parse_sequences(sequences_file) if sequences_file else None
        videos = []
        for name in protocol_names():
            if sequences is not None and name in found and name not in sequences:
                raise BenchError(f"KTH segments file {sequences_file} has no segments for {name}")
            videos.append(Video(name, split_of(name), found.get(name), sequences.get(name) if sequences else None))
        return Inventory(videos, extra)
