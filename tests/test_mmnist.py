"""Moving MNIST: the IDX reader, the Srivastava generator, the fixed test set and the file test set."""
from __future__ import annotations

import gzip
import pickle
import warnings

import numpy as np
import pytest

import bench
from bench.datasets import mmnist as mm
from bench.errors import BenchError


def write_idx(path, images: np.ndarray, compress: bool) -> None:
    header = b"".join(int(v).to_bytes(4, "big") for v in (2051, *images.shape))
    raw = header + images.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_reads_the_real_test_digits(mnist_dir):
    images = mm.read_idx_images(mnist_dir / "t10k-images-idx3-ubyte.gz", mm.FILES["test"][1])
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert images.mean() == pytest.approx(33.79, abs=0.01)  # PROVENANCE.md


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_gzipped_or_raw(tmp_path, compress):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_idx(tmp_path / "x", images, compress)
    np.testing.assert_array_equal(mm.read_idx_images(tmp_path / "x"), images)


def test_idx_reader_names_the_bad_file(tmp_path):
    images = np.zeros((2, 28, 28))
    write_idx(tmp_path / "bad.gz", images, True)
    with pytest.raises(BenchError, match=r"bad\.gz is corrupt"):
        mm.read_idx_images(tmp_path / "bad.gz", mm.FILES["test"][1])
    (tmp_path / "short").write_bytes((tmp_path / "bad.gz").read_bytes()[:40])
    with pytest.raises(BenchError, match="short"):
        mm.read_idx_images(tmp_path / "short")
    raw = gzip.decompress((tmp_path / "bad.gz").read_bytes())
    (tmp_path / "trunc").write_bytes(raw[:-10])
    with pytest.raises(BenchError, match="trunc is truncated"):
        mm.read_idx_images(tmp_path / "trunc")


def test_trajectory_bounces_and_moves_before_the_first_frame():
    rng = np.random.default_rng(0)
    pos = mm.trajectories(np.random.default_rng(0), 500, 40)
    start = np.stack([rng.random(500), rng.random(500)], axis=1)
    theta = rng.random(500) * 2 * np.pi
    step = np.stack([np.sin(theta), np.cos(theta)], axis=1) * mm.STEP
    first = np.clip(start + step, 0, 1)
    np.testing.assert_array_equal(pos[:, 0], (first * 36).astype(int))  # advanced, then drawn
    assert pos.min() == 0 and pos.max() == 36  # clamped to the free range, which is reached
    moves = np.abs(np.diff(pos, axis=1))
    assert moves.max() <= 4  # 0.1 of 36 px per frame
    # Reflection: somewhere a coordinate reaches the wall and comes back.
    y = pos[:, :, 0]
    assert ((y[:, 1:-1] == 0) & (y[:, 2:] > 0)).any()


def test_render_takes_the_pixelwise_max():
    digits = np.zeros((1, 2, 28, 28), dtype=np.uint8)
    digits[0, 0] = 100
    digits[0, 1] = 200
    positions = np.zeros((1, 2, 1, 2), dtype=np.int64)
    positions[0, 1, 0] = (10, 10)
    frame = mm.render(digits, positions)[0, 0, 0]
    assert frame[0, 0] == 100 and frame[20, 20] == 200 and frame[37, 37] == 200 and frame[40, 40] == 0
    assert frame.shape == (64, 64)



def test_render_equals_a_plain_loop_over_digits():
    rng = np.random.default_rng(5)
    digits = rng.integers(0, 256, (6, 3, 28, 28), dtype=np.uint8)
    positions = rng.integers(0, 37, (6, 3, 5, 2))
    positions[0, :, 0] = 0
    positions[1, :, 0] = 36  # both edges of the free range
    expected = np.zeros((6, 5, 1, 64, 64), dtype=np.uint8)
    for i, k, t in np.ndindex(6, 3, 5):
        (y, x) = positions[i, k, t]
        patch = expected[i, t, 0, y : y + 28, x : x + 28]
        np.maximum(patch, digits[i, k], out=patch)
    np.testing.assert_array_equal(mm.render(digits, positions), expected)


def test_render_refuses_positions_outside_the_frame():
    with pytest.raises(ValueError, match=r"\[0, 36\], got 0..37"):
        mm.render(np.zeros((1, 1, 28, 28), np.uint8), np.array([[[[0, 37]]]]))

def test_fixed_test_set_is_reproducible_and_random_access(mmnist):
    clips = mmnist.test_clips(20)
    assert len(clips) == 10_000
    batch = clips.batch([5, 6, 7])
    assert batch.shape == (3, 20, 1, 64, 64) and batch.dtype == np.uint8
    np.testing.assert_array_equal(clips[6], batch[1])
    again = bench.get_dataset("mmnist", data_dir=mmnist.data_dir).test_clips(20)
    np.testing.assert_array_equal(again.batch([5, 6, 7]), batch)
    # Squared intensity of the standard test file: the blank-frame MSE of 0.0425 (fRNN spec 0.3).
    frames = clips.batch(range(500)).astype(np.float64) / 255
    assert (frames**2).mean() == pytest.approx(0.0425, rel=0.05)


def test_training_stream_is_seeded_and_uses_other_digits(mmnist):
    first = [next(iter_) for iter_ in [mmnist.train_clips(20, seed=3)] for _ in range(3)]
    second = [next(iter_) for iter_ in [mmnist.train_clips(20, seed=3)] for _ in range(3)]
    other = next(mmnist.train_clips(20, seed=4))
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    assert not np.array_equal(first[0], other) and first[0].shape == (20, 1, 64, 64)
    train_pool = mmnist._train_pool()  # without the training images: the even-indexed test digits
    test_pool = mmnist._test_pool()
    assert len(train_pool) == len(test_pool) == 5000
    assert not np.shares_memory(train_pool, test_pool)
    assert mmnist.params()["test_digits"] == "mnist-test[1::2]"


def test_missing_training_images_warn_when_training_only(mnist_dir):
    data = bench.get_dataset("mmnist", data_dir=mnist_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.test_clips(20)  # evaluation needs no training digits: no warning
    with pytest.warns(UserWarning, match="even-indexed test images"):
        next(data.train_clips(20, seed=0))


def test_missing_training_images_warn_once_in_the_data_check(mnist_dir):
    """`bench train` checks the data before its progress bar starts: the warning comes there, and the
    training stream (or a data worker's copy of the dataset) does not repeat it inside the bar."""
    data = bench.get_dataset("mmnist", data_dir=mnist_dir)
    with pytest.warns(UserWarning, match="even-indexed test images"):
        data.check_data(("train",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        next(data.train_clips(20, seed=0))
        next(pickle.loads(pickle.dumps(data)).train_clips(20, seed=0))


def test_test_file_is_transposed_from_time_major(tmp_path):
    seq = np.random.default_rng(0).integers(0, 256, size=(20, 3, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", seq)
    data = bench.get_dataset("mmnist", data_dir=tmp_path, test_file=tmp_path / "mnist_test_seq.npy")
    clips = data.test_clips(20)
    assert len(clips) == 3
    np.testing.assert_array_equal(clips[1][:, 0], seq[:, 1])
    np.save(tmp_path / "wrong.npy", seq[:, :, :32])
    with pytest.raises(BenchError, match="wrong.npy"):
        bench.get_dataset("mmnist", data_dir=tmp_path, test_file=tmp_path / "wrong.npy").test_clips(20)


def test_shipped_test_digits_need_no_data_folder(tmp_path, monkeypatch):
    """An empty data folder and no cache: the test set comes from the digits inside the package."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(mm.urllib.request, "urlopen", _forbidden)
    shipped = bench.get_dataset("mmnist", data_dir=tmp_path).test_clips(20).batch([0, 1])
    default = bench.get_dataset("mmnist").test_clips(20).batch([0, 1])
    np.testing.assert_array_equal(shipped, default)
    assert shipped.shape == (2, 20, 1, 64, 64) and shipped.max() == 255


def test_stride_does_not_apply(mmnist):
    with pytest.raises(BenchError, match="--test-stride"):
        mmnist.test_clips(20, stride=2)


def test_unknown_option_is_named(mnist_dir):
    with pytest.raises(BenchError, match="no option 'splitt'"):
        bench.get_dataset("mmnist", data_dir=mnist_dir, splitt=1)


def _forbidden(*args, **kwargs):
    raise AssertionError("tried to download")


def test_no_download_into_a_given_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(mm.urllib.request, "urlopen", _forbidden)
    with pytest.warns(UserWarning, match="even-indexed"):
        next(bench.get_dataset("mmnist", data_dir=tmp_path).train_clips(20, seed=0))
