"""Reading (and, for tests and benchmarks, writing) video files with PyAV, and the PIL bilinear
resize of the fRNN preprocessing.

Every failure to read a video (missing, not a video, corrupt, truncated) is a
:class:`~bench.errors.BenchError` whose message names the file.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from .errors import BenchError


def decode(path: str | os.PathLike, transform: Callable[[np.ndarray], np.ndarray] | None = None,
           chunk: int = 64) -> np.ndarray:
    """All frames of the video at ``path``: uint8 ``(T, H, W, 3)`` RGB, or ``transform`` applied to
    successive chunks of ``chunk`` such frames and concatenated (so a long video never sits in
    memory at full size).

    A file that holds fewer frame packets than its container header declares is reported as
    truncated (a cut AVI often still opens and yields its first frames without an error). Packets,
    not decoded frames, are counted, so the empty packets of dropped frames do not count as damage.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"video file {path} is missing")
    transform = transform or (lambda frames: frames)
    done, pending, count, packets, declared = [], [], 0, 0, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BenchError(f"video file {path} has no video stream")
            stream = container.streams.video[0]
            declared = stream.frames
            for packet in container.demux(stream):
                packets += packet.dts is not None or packet.size > 0  # the last, empty one only flushes
                for frame in packet.decode():
                    pending.append(frame.to_ndarray(format="rgb24"))
                    count += 1
                    if len(pending) == chunk:
                        done.append(transform(np.stack(pending)))
                        pending = []
    except (av.error.FFmpegError, OSError) as error:
        if not count:
            raise BenchError(f"video file {path} is unreadable or corrupt ({error.__class__.__name__})") from None
        raise BenchError(f"video file {path} is truncated or corrupt: decoding failed after {count} of "
                         f"the {declared or '?'} frames its header declares") from None
    if not count:
        raise BenchError(f"video file {path} contains no decodable frames")
    if declared and packets < declared:
        raise BenchError(f"video file {path} is truncated: it holds {packets} of the {declared} frames "
                         "its header declares")
    if pending:
        done.append(transform(np.stack(pending)))
    return np.concatenate(done)


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 ``(T, H, W, C)`` frames with PIL's bilinear filter (what ``scipy.misc.imresize``
    did for the authors), channel by channel."""
    out = np.empty((len(frames), height, width, frames.shape[3]), np.uint8)
    for t, frame in enumerate(frames):
        for c in range(frames.shape[3]):
            image = Image.fromarray(np.ascontiguousarray(frame[:, :, c]))
            out[t, :, :, c] = np.asarray(image.resize((width, height), Image.BILINEAR))
    return out


def write(path: str | os.PathLike, frames: np.ndarray, rate: int = 25, bit_rate: int = 4_000_000) -> None:
    """Encode uint8 RGB ``(T, H, W, 3)`` frames as an MPEG-4 Part 2 AVI (the codec of KTH and UCF101)."""
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.bit_rate = bit_rate
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
