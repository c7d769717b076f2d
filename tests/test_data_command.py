"""``bench data verify|prepare`` on generated KTH and UCF101 folders and the real MNIST files."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from video_files import kth_video, truncate, ucf_video

from bench.cli import main

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def kth_dir(tmp_path) -> Path:
    folder = tmp_path / "kth"
    kth_video(folder, "person01_boxing_d1", 21)
    kth_video(folder / "walking", "person20_walking_d3", 22)
    truncate(kth_video(folder, "person02_jogging_d2", 40))
    (folder / "clip.avi").write_bytes(b"")
    return folder


def bench(*args: str):
    return CliRunner().invoke(main, list(args))


def entries(cache: Path, dataset: str) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in (cache / "frames" / dataset).glob("*.npy")}


def test_verify_kth_reports_present_missing_unreadable(kth_dir, cache):
    result = bench("data", "verify", "--dataset", "kth", "--data-dir", str(kth_dir))
    assert result.exit_code == 1
    out = result.output
    assert "the protocol expects 599 videos (383 train, 216 test)" in out
    assert "train: 1 present and readable of 383" in out and "test: 1 present and readable of 216" in out
    assert "missing: 596" in out and "... and 586 more" in out
    assert "unreadable: 1" in out and "person02_jogging_d2_uncomp.avi is truncated" in out
    assert "video files the protocol does not use: 1" in out and "clip.avi" in out
    assert "is incomplete: 596 videos missing, 1 unreadable" in out
    assert entries(cache, "kth") == {}  # verify writes nothing


def test_prepare_caches_the_good_keeps_them_and_skips_bad(kth_dir, cache):
    result = bench("data", "prepare", "--dataset", "kth", "--data-dir", str(kth_dir), "--jobs", "2")
    assert result.exit_code == 1
    assert "person02_jogging_d2_uncomp.avi is truncated" in result.output
    assert "1 bad videos in all; the others are cached" in result.output
    first = entries(cache, "kth")
    assert sorted(name.split("-")[0] for name in first) == ["person01_boxing_d1_uncomp", "person20_walking_d3_uncomp"]

    result = bench("data", "prepare", "--dataset", "kth", "--data-dir", str(kth_dir), "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "2 kth videos are in the cache" in result.output
    assert "Warning: skipped 1 bad kth videos" in result.output
    assert entries(cache, "kth") == first  # nothing rewritten, nothing lost

    result = bench("data", "verify", "--dataset", "kth", "--data-dir", str(kth_dir))
    assert "train: 1 present and readable" in result.output  # from the cache, no decoding


def test_prepare_and_verify_ucf101(tmp_path, cache):
    folder = tmp_path / "ucf"
    lists = folder / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    ucf_video(folder, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 12)
    ucf_video(folder, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 12)
    result = bench("data", "prepare", "--dataset", "ucf101", "--data-dir", str(folder), "-o", "split=1")
    assert result.exit_code == 0, result.output
    assert len(entries(cache, "ucf101")) == 2
    result = bench("data", "verify", "--dataset", "ucf101", "--data-dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "expects 2 videos (1 train, 1 test)" in result.output
    result = bench("data", "verify", "--dataset", "ucf101", "--data-dir", str(folder), "-o", "split=4")
    assert result.exit_code == 1 and "'split' must be one of 1, 2, 3, paper" in result.output


def test_verify_mmnist_checks_the_real_files(cache):
    folder = SHARED / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{folder} not present")
    result = bench("data", "verify", "--dataset", "mmnist", "--data-dir", str(folder))
    assert result.exit_code == 0, result.output
    assert "test: t10k-images-idx3-ubyte.gz: 10000 images, MD5 of the content matches" in result.output
    assert "train: train-images-idx3-ubyte is missing" in result.output


def test_verify_mmnist_names_a_corrupt_file(tmp_path, cache):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\0" * 64)
    result = bench("data", "verify", "--dataset", "mmnist", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "t10k-images-idx3-ubyte is not an IDX image file (its magic number is 0, not 2051)" in result.output
    assert "cannot be used: t10k-images-idx3-ubyte missing or unreadable" in result.output


def test_unknown_dataset_and_missing_folder(tmp_path, cache):
    result = bench("data", "verify", "--dataset", "kthh", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "did you mean 'kth'" in result.output
    result = bench("data", "prepare", "--dataset", "kth", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and f"no kth videos found in {tmp_path}" in result.output
