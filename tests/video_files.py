"""Small real AVI files (MPEG-4 Part 2, like the originals) with a bright square moving right, for the
KTH, UCF101, cache and ``bench data`` tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import video

BACKGROUND, SQUARE = 40, 16


def square_frames(frames: int, height: int, width: int, top: int, left: int, speed: int,
                  color=(220, 220, 220)) -> np.ndarray:
    """uint8 RGB ``(T, H, W, 3)``: a ``SQUARE``-px square at ``(top, left + speed * t)`` on gray 40."""
    out = np.full((frames, height, width, 3), BACKGROUND, np.uint8)
    for t in range(frames):
        x = left + speed * t
        out[t, top:top + SQUARE, x:x + SQUARE] = color
    return out


def kth_video(folder: Path, name: str, frames: int, left: int = 20, speed: int = 3, color=(220, 220, 220)) -> Path:
    """``<folder>/<name>_uncomp.avi``: 160x120 gray-looking, 25 fps; the square's top edge is at row 40."""
    path = folder / f"{name}_uncomp.avi"
    path.parent.mkdir(parents=True, exist_ok=True)
    video.write(path, square_frames(frames, 120, 160, 40, left, speed, color))
    return path


def ucf_video(root: Path, entry: str, frames: int, left: int = 10, speed: int = 4) -> Path:
    """``<root>/<entry>``: 320x240 colour, 25 fps, a red square whose top edge is at row 100."""
    path = root / entry
    path.parent.mkdir(parents=True, exist_ok=True)
    video.write(path, square_frames(frames, 240, 320, 100, left, speed, color=(230, 30, 30)))
    return path


def truncate(path: Path, fraction: float = 0.7) -> Path:
    """Cut ``path`` to ``fraction`` of its bytes (a download that stopped early)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def centroid(frame: np.ndarray, threshold: int = 130) -> tuple[float, float]:
    """(row, column) centre of the pixels of a 2-D uint8 frame above ``threshold``."""
    rows, cols = np.nonzero(frame > threshold)
    return float(rows.mean()), float(cols.mean())


def resized_centre(start: float, size: int, scale: float) -> float:
    """Where the centre of ``size`` input pixels from ``start`` lands after a resize by 1/``scale``
    (PIL maps output pixel j's centre to input ``(j + 0.5) * scale - 0.5``)."""
    return (start + (size - 1) / 2 + 0.5) / scale - 0.5
