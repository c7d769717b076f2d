"""Moving MNIST: two 28x28 digits bouncing in a 64x64 frame (Srivastava et al., 2015).

Generator (fRNN paper Sec. 4.1, after Srivastava et al.'s code): each digit starts at a uniform position in the
free range [0, 1)^2 (36 = 64 - 28 pixels), with a uniform direction; it moves 0.1 of the free range
per frame; a coordinate that reaches 0 or 1 is clamped there and its velocity component negated;
the position is advanced before the first frame is drawn; pixel position = int(36 * pos); digits
are combined with a pixel-wise max.

* Training: an endless stream, seeded, drawing digits sequentially from the MNIST *training* images,
  reshuffled at each wrap-around (as the authors' generator did).
* Test: a fixed set of ``test_size`` (10,000) sequences from a fixed seed, digits from the MNIST
  *test* images; or, with ``-o test_file=mnist_test_seq.npy``, the standard Srivastava file
  (stored time-major (20, N, 64, 64); transposed here).
* The test set always draws its digits from the odd-indexed MNIST test images, so it is the same
  whether or not the training images are present. Training draws from the MNIST training images;
  when only the test images are present, from the even-indexed test images (disjoint digits), with
  a warning and a note in the metadata. Interleaving matters: MNIST's first 5,000 test digits come
  from cleaner writers than the last 5,000 (mean squared intensity 0.104 against 0.124), so
  contiguous halves would bias the test set; odd and even indices both match the whole set.

Raw files (``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``, gzipped or not) are read from
the data folder and checked against the MD5 of their decompressed content. The test digits also ship
inside the package (``bench/data/mnist``, with their provenance and licence), used when the data
folder lacks them, so Moving MNIST needs no data folder and no network. Without ``--data-dir`` or
``$BENCH_DATA_DIR``, missing training digits are downloaded into the cache from public mirrors when
online.
"""
from __future__ import annotations

import gzip
import hashlib
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np

from bench.dataset import ClipSet, Dataset
from bench.errors import BenchError
from bench.paths import PACKAGE_DATA
from bench.registry import register_dataset

SIZE, DIGIT, STEP = 64, 28, 0.1
TEST_SEED = 20180908  # ECCV 2018's opening day: the fixed test set's seed
FILES = {  # name -> MD5 of the decompressed IDX content
    "train": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    "test": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
}
EMBEDDED_DIR = PACKAGE_DATA / "mnist"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def read_idx_images(path: Path, md5: str | None = None) -> np.ndarray:
    """The uint8 ``(N, 28, 28)`` images of an IDX3 file (gzipped or raw), checked against ``md5``."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise BenchError(f"cannot read MNIST file {path}: {error}") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 16 else None
    if magic != 2051:
        found = "it is shorter than the 16-byte IDX header" if magic is None else f"its magic number is {magic}, not 2051"
        raise BenchError(f"MNIST file {path} is not an IDX image file ({found}); replace it with the original download")
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * rows * cols:
        raise BenchError(f"MNIST file {path} is truncated: {len(raw) - 16} pixel bytes for {n}x{rows}x{cols}")
    if md5 and hashlib.md5(raw).hexdigest() != md5:
        raise BenchError(f"MNIST file {path} is corrupt: its content does not match the known MD5 {md5}; "
                         "replace it with the original download")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def trajectories(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Top-left pixel positions ``(n, length, 2)`` (y, x) of ``n`` bouncing digits."""
    pos = np.stack([rng.random(n), rng.random(n)], axis=1)  # y, x
    theta = rng.random(n) * 2 * np.pi
    vel = np.stack([np.sin(theta), np.cos(theta)], axis=1) * STEP
    out = np.empty((n, length, 2))
    for t in range(length):
        pos = pos + vel
        hit = (pos <= 0) | (pos >= 1)
        pos = np.clip(pos, 0, 1)
        vel = np.where(hit, -vel, vel)
        out[:, t] = pos
    return (out * (SIZE - DIGIT)).astype(np.int64)


def render(digits: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Clips ``(n, T, 1, 64, 64)`` uint8 from digits ``(n, k, 28, 28)`` at positions ``(n, k, T, 2)``."""
    n, k, length = positions.shape[:3]
    if positions.size and (positions.min() < 0 or positions.max() > SIZE - DIGIT):
        raise ValueError(f"digit positions must lie in [0, {SIZE - DIGIT}], got {positions.min()}..{positions.max()}")
    frames = np.zeros((n, length, 1, SIZE, SIZE), dtype=np.uint8)
    _draw(np.ascontiguousarray(digits, dtype=np.uint8), np.ascontiguousarray(positions, dtype=np.int64), frames)
    return frames


@numba.njit(cache=True, nogil=True)
def _draw(digits, positions, frames):
    """Combine each digit into its frames with a pixel-wise max (compiled: the test set renders at
    memory speed, without holding the GIL, so it overlaps with scoring)."""
    n, k, length = positions.shape[:3]
    for i in range(n):
        for t in range(length):
            frame = frames[i, t, 0]
            for d in range(k):
                top, left = positions[i, d, t, 0], positions[i, d, t, 1]
                for r in range(DIGIT):
                    row, digit_row = frame[top + r, left : left + DIGIT], digits[i, d, r]
                    for c in range(DIGIT):
                        row[c] = max(row[c], digit_row[c])


class GeneratedTestSet(ClipSet):
    """The fixed test set: digit choices and trajectories drawn once from ``TEST_SEED``."""

    def __init__(self, images: np.ndarray, size: int, length: int):
        rng = np.random.default_rng(TEST_SEED)
        self.images = images
        self.choice = rng.integers(0, len(images), size=(size, 2))
        self.positions = trajectories(rng, size * 2, length).reshape(size, 2, length, 2)

    def __len__(self) -> int:
        return len(self.choice)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.batch([index])[0]

    def batch(self, indices) -> np.ndarray:
        indices = np.asarray(indices)
        return render(self.images[self.choice[indices]], self.positions[indices])


class FileTestSet(ClipSet):
    """Srivastava's ``mnist_test_seq.npy``: uint8 (20, N, 64, 64), time-major."""

    def __init__(self, path: Path, length: int):
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise BenchError(f"cannot read the Moving MNIST test file {path}: {error}") from None
        if array.ndim != 4 or array.shape[2:] != (SIZE, SIZE) or array.dtype != np.uint8 or array.shape[0] < length:
            raise BenchError(
                f"Moving MNIST test file {path} must hold uint8 (T>={length}, N, 64, 64) sequences, "
                f"got {array.dtype} {array.shape}"
            )
        self.array, self.length = array, length

    def __len__(self) -> int:
        return self.array.shape[1]

    def __getitem__(self, index: int) -> np.ndarray:
        return self.batch([index])[0]

    def batch(self, indices) -> np.ndarray:
        clips = self.array[: self.length, np.asarray(indices)]
        return np.ascontiguousarray(clips.transpose(1, 0, 2, 3))[:, :, None]


@register_dataset("mmnist")
class MovingMNIST(Dataset):
    label = "Moving MNIST"
    frame_shape = (1, SIZE, SIZE)
    data_folder = "mnist"
    options = {
        "test_file": (Path, None, "Srivastava's mnist_test_seq.npy to use as the test set"),
        "test_size": (int, 10_000, "number of generated test sequences"),
    }
    source = ("the MNIST digits are on http://yann.lecun.com/exdb/mnist/ (train-images-idx3-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz, in --data-dir or $BENCH_DATA_DIR/mnist) and Srivastava's fixed test set "
              "mnist_test_seq.npy on http://www.cs.toronto.edu/~nitish/unsupervised_video/")

    no_train_file = False  # set once the training images were found missing (and that was said)

    def check_data(self, splits=("train", "test")) -> None:
        """Only a ``test_file`` can be missing: digits fall back to the package's copy or a download.
        For training, finds (or downloads) the training images now, so a warning comes before training."""
        test_file = self.settings["test_file"]
        if "test" in splits and test_file and not Path(test_file).is_file():
            raise self.missing_data(f"Moving MNIST test file {test_file} does not exist")
        if "train" in splits:
            self._train_file()

    def _path(self, kind: str) -> Path | None:
        stem = FILES[kind][0]
        for candidate in (self.data_dir / f"{stem}.gz", self.data_dir / stem):
            if candidate.is_file():
                return candidate
        return None

    def _download(self, kind: str) -> Path | None:
        """Fetch a missing file into the default data folder; ``None`` when offline."""
        target = self.data_dir / f"{FILES[kind][0]}.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + target.name, timeout=30) as response:
                    payload = response.read()
            except OSError:
                continue
            temp = target.with_suffix(".part")
            temp.write_bytes(payload)
            temp.replace(target)
            return target
        return None

    def _test_images(self) -> np.ndarray:
        """The MNIST test images of the data folder, else the copy inside the package."""
        path = self._path("test") or EMBEDDED_DIR / f"{FILES['test'][0]}.gz"
        return read_idx_images(path, FILES["test"][1])

    def _test_pool(self) -> np.ndarray:
        """The odd-indexed MNIST test digits, the test set's pool whether or not training digits exist."""
        if not hasattr(self, "_test_digits"):
            self._test_digits = self._test_images()[1::2]
        return self._test_digits

    def _train_file(self) -> Path | None:
        """The MNIST training-images file, downloaded into the default folder when missing and online;
        ``None`` when it cannot be had, with a warning the first time only (a data worker gets a copy
        of this dataset after :meth:`check_data`, so it does not warn again inside the progress bar)."""
        if self.no_train_file:
            return None
        path = self._path("train")
        if path is None and self.data_dir == self.download_dir:
            path = self._download("train")
        if path is None:
            self.no_train_file = True
            warnings.warn(
                f"MNIST training images not found in {self.data_dir}: training uses the even-indexed test "
                "images (the test set always uses the odd-indexed ones, so the digits are disjoint)",
                stacklevel=3,
            )
        return path

    def _train_pool(self) -> np.ndarray:
        """The MNIST training digits, else the even-indexed test digits. Loaded only when training, so
        evaluation never downloads or warns."""
        path = self._train_file()
        return self._test_images()[0::2] if path is None else read_idx_images(path, FILES["train"][1])

    def train_clips(self, length: int, seed: int) -> Iterator[np.ndarray]:
        pool = self._train_pool()
        rng = np.random.default_rng(seed)
        order, cursor, chunk = rng.permutation(len(pool)), 0, 64
        while True:
            picks = np.empty(chunk * 2, dtype=np.int64)
            for i in range(len(picks)):  # sequential digits, reshuffled at each wrap-around
                if cursor == len(order):
                    order, cursor = rng.permutation(len(pool)), 0
                picks[i], cursor = order[cursor], cursor + 1
            positions = trajectories(rng, chunk * 2, length).reshape(chunk, 2, length, 2)
            yield from render(pool[picks].reshape(chunk, 2, DIGIT, DIGIT), positions)

    def test_clips(self, length: int, stride: int = 1) -> ClipSet:
        if stride != 1:
            raise BenchError("mmnist test sequences are independent clips: --test-stride does not apply")
        if self.settings["test_file"]:
            return FileTestSet(Path(self.settings["test_file"]), length)
        if self.settings["test_size"] < 1:
            raise BenchError(f"mmnist: test_size must be positive, got {self.settings['test_size']}")
        return GeneratedTestSet(self._test_pool(), self.settings["test_size"], length)

    def verify(self, echo, jobs: int = 1) -> str | None:
        """The MNIST image files the generator draws digits from, checked against their MD5s."""
        echo(f"mmnist in {self.data_dir}: the generator expects {FILES['test'][0]} (test digits) and "
             f"{FILES['train'][0]} (training digits), gzipped or not")
        problems = []
        for kind, (stem, md5) in FILES.items():
            path = self._path(kind)
            if path is None and kind == "test":
                path = EMBEDDED_DIR / f"{stem}.gz"
                echo(f"  {kind}: {stem} is missing here; the copy shipped in the package ({path}) is used")
            elif path is None:
                echo(f"  {kind}: {stem} is missing; training then uses the even-indexed test digits ({self.source})")
                continue
            try:
                images = read_idx_images(path, md5)
            except BenchError as error:
                echo(f"  {kind}: unreadable: {error}")
                problems.append(stem)
            else:
                echo(f"  {kind}: {path.name}: {len(images)} images, MD5 of the content matches")
        if problems:
            return f"dataset 'mmnist' in {self.data_dir} cannot be used: {', '.join(problems)} missing or unreadable"
        return None

    def params(self) -> dict:
        params = super().params()
        if params["test_file"] is None:
            params.pop("test_file")
            params.update(test_seed=TEST_SEED, test_digits="mnist-test[1::2]")
        else:
            params.pop("test_size")
        params["generator"] = "Srivastava: 2 digits, step 0.1 of 36 px, clamp-and-reflect, max-combined"
        return params
