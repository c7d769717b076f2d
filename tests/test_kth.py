"""KTH: naming, split, preprocessing (channel, crop, resize), windows, segments, bad files."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from video_files import BACKGROUND, SQUARE, centroid, kth_video, resized_centre, square_frames, truncate

import bench
from bench import video
from bench.cli import main
from bench.datasets.kth import KTH, parse_sequences, protocol_names, split_of
from bench.errors import BenchError

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
SCALE_X, SCALE_Y = 150 / 80, 120 / 64


def kth(folder: Path, tmp_path: Path, **options) -> KTH:
    return bench.get_dataset("kth", data_dir=folder, cache_dir=tmp_path / "cache", **options)


def quiet(call, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n of the 383 train videos are missing": a partial folder
        return call(*args)


@pytest.fixture(scope="module")
def kth_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kth")
    kth_video(folder / "boxing", "person16_boxing_d1", 24)  # per-action folder, as the zips unpack
    kth_video(folder, "person17_walking_d2", 23)
    kth_video(folder, "person25_running_d4", 21, left=40)
    (folder / "notes.avi").write_bytes(b"not a KTH name")
    return folder


def test_protocol_has_599_videos_split_by_person():
    names = protocol_names()
    assert len(names) == 599 and "person13_handclapping_d3" not in names
    splits = [split_of(name) for name in names]
    assert splits.count("train") == 383 and splits.count("test") == 216
    assert split_of("person16_boxing_d1") == "train" and split_of("person17_boxing_d1") == "test"


def test_inventory_finds_flat_and_per_action_files(kth_dir, tmp_path):
    inventory = kth(kth_dir, tmp_path).inventory()
    present = {v.name: v.split for v in inventory.present()}
    assert present == {"person16_boxing_d1": "train", "person17_walking_d2": "test", "person25_running_d4": "test"}
    assert len(inventory.missing()) == 596
    assert [p.name for p in inventory.extra] == ["notes.avi"]


def test_test_windows_every_frame_and_strided(kth_dir, tmp_path):
    data = kth(kth_dir, tmp_path)
    with pytest.warns(UserWarning, match="214 of the 216 kth test videos"):
        clips = data.test_clips(20)
    assert len(clips) == (23 - 19) + (21 - 19)  # 4 + 2 windows at stride 1
    assert clips[0].shape == (20, 1, 64, 80) and clips[0].dtype == np.uint8
    assert quiet(data.test_clips, 20, 2).__len__() == 2 + 1  # starts 0, 2 | 0
    assert quiet(data.test_clips, 20, 4).__len__() == 1 + 1  # starts 0 | 0
    assert np.array_equal(clips.batch([1, 4]), np.stack([clips[1], clips[4]]))
    with pytest.raises(IndexError):
        clips[len(clips)]


def test_preprocessing_puts_the_square_where_it_belongs(kth_dir, tmp_path):
    clips = quiet(kth(kth_dir, tmp_path).test_clips, 20)
    first = clips[0]  # person17_walking_d2, window start 0: square at x = 20 + 3 t, y = 40
    assert abs(int(first[..., 2, 2].mean()) - BACKGROUND) <= 3  # background stays 40
    assert first.max() >= 210
    for t in (0, 9, 19):
        row, col = centroid(first[t, 0])
        assert row == pytest.approx(resized_centre(40, SQUARE, SCALE_Y), abs=0.5)
        assert col == pytest.approx(resized_centre(20 + 3 * t - 5, SQUARE, SCALE_X), abs=0.5)
    second_window = clips[1]  # start 1: one frame later
    assert np.array_equal(second_window[:19], first[1:])


def test_preprocess_takes_the_blue_channel_and_crops_five_pixels(tmp_path):
    frames = square_frames(1, 120, 160, 40, 60, 0, color=(0, 0, 255))
    frames[0, 40:56, 100:116] = (255, 0, 0)  # a red square: dark in the blue channel
    frames[0, :, :5] = 255  # a white border that the 5-px crop removes
    out = kth(tmp_path, tmp_path).preprocess(frames)
    assert out.shape == (1, 1, 64, 80)
    assert out[0, 0, 25, resized_centre(55, SQUARE, SCALE_X).__round__()] > 240  # blue square, bright
    assert out[0, 0, 25, resized_centre(95, SQUARE, SCALE_X).__round__()] < 10  # red square, dark
    assert out[0, 0, :, 0].max() == BACKGROUND  # no trace of the border


def test_decoded_frames_match_preprocessing_of_the_source(tmp_path):
    source = square_frames(8, 120, 160, 40, 20, 3)
    video.write(tmp_path / "a.avi", source)
    data = kth(tmp_path, tmp_path)
    decoded = data.preprocess(video.decode(tmp_path / "a.avi"))
    assert np.abs(decoded.astype(int) - data.preprocess(source)).mean() < 1.0  # 4 Mbit/s: near lossless
    assert np.array_equal(video.decode(tmp_path / "a.avi", data.preprocess, chunk=3), decoded)  # 3+3+2


def test_train_clips_are_seeded_windows_with_flips(kth_dir, tmp_path):
    data = kth(kth_dir, tmp_path)
    draws = [next(it) for it in [quiet(data.train_clips, 20, 7)] for _ in range(12)]
    again = quiet(data.train_clips, 20, 7)
    assert all(np.array_equal(a, next(again)) for a in draws)
    video_frames = np.load(next((tmp_path / "cache" / "frames" / "kth").glob("person16*.npy")))
    windows = [video_frames[s:s + 20] for s in range(24 - 19)]  # the only training video
    flipped = 0
    for clip in draws:
        assert clip.shape == (20, 1, 64, 80)
        if any(np.array_equal(clip, w) for w in windows):
            continue
        assert any(np.array_equal(clip, w[..., ::-1]) for w in windows)
        flipped += 1
    assert 0 < flipped < 12


def test_segments_file_parsed_tolerantly():
    path = SHARED / "kth" / "00sequences.txt"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    segments = parse_sequences(path)
    assert len(segments) == 599 and "person13_handclapping_d3" not in segments
    assert sum(len(s) == 3 for s in segments.values()) == 5
    assert segments["person11_boxing_d4"] and len(segments["person11_boxing_d4"]) == 3
    assert segments["person01_boxing_d1"] == ((0, 95), (95, 185), (185, 245), (245, 360))
    assert "person07_handclapping_d2" in segments  # spaces and a tab before "frames"
    assert set(segments) == set(protocol_names())


def test_segments_option_restricts_windows(kth_dir, tmp_path):
    sequences = tmp_path / "seq.txt"
    sequences.write_text("person17_walking_d2 \t frames\t1-20, 3-22,  30-40\r\n"
                         "person25_running_d4\t\tframes 2-21\r\n"
                         "person16_boxing_d1 frames 1-24\r\n")
    clips = quiet(kth(kth_dir, tmp_path, segments=str(sequences)).test_clips, 20)
    assert len(clips) == 1 + 1 + 0 + 1  # 1-20 | 3-22 | 30-40 is past the end | 2-21
    whole = quiet(kth(kth_dir, tmp_path).test_clips, 20)
    assert np.array_equal(clips[1], whole[2]) and np.array_equal(clips[2], whole[5])
    sequences.write_text("person17_walking_d2 frames 1-20\nperson16_boxing_d1 frames 1-24\n")
    with pytest.raises(BenchError, match="no segments for person25_running_d4"):
        quiet(kth(kth_dir, tmp_path, segments=str(sequences)).test_clips, 20)


def test_bad_videos_name_the_file_or_are_skipped(tmp_path):
    folder = tmp_path / "kth"
    kth_video(folder, "person18_boxing_d1", 22)
    bad = truncate(kth_video(folder, "person19_boxing_d1", 40))
    (folder / "person20_boxing_d1_uncomp.avi").write_bytes(b"\0" * 3000)
    with pytest.raises(BenchError, match=r"person19_boxing_d1_uncomp\.avi is truncated: it holds 10 of the 40 .*more"):
        quiet(kth(folder, tmp_path).test_clips, 20)
    data = kth(folder, tmp_path, skip_bad=True)
    with pytest.warns(UserWarning, match="skipped 2 bad kth test videos"):
        clips = data.test_clips(20)
    assert len(clips) == 3  # the good video is evaluated
    assert data.params()["videos"] == {"test": {"videos": 1, "missing": 213, "bad": 2}}
    assert bad.is_file()


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(BenchError, match="KTH data directory .*nowhere does not exist"):
        kth(tmp_path / "nowhere", tmp_path).test_clips(20)
    with pytest.raises(BenchError, match="no option 'split'"):
        kth(tmp_path, tmp_path, split="1")


def test_bench_run_baseline_end_to_end(tmp_path, monkeypatch):
    folder = tmp_path / "kth"
    kth_video(folder / "boxing", "person02_boxing_d1", 21)
    kth_video(folder / "walking", "person18_walking_d1", 24)
    kth_video(folder / "running", "person21_running_d3", 22, left=50)
    truncate(kth_video(folder, "person23_jogging_d2", 40))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    args = ["run", "--methods", "baseline", "--dataset", "kth", "--data-dir", str(folder),
            "--results-dir", str(tmp_path / "results"), "--quiet"]
    failed = CliRunner().invoke(main, args)
    assert failed.exit_code == 1 and "person23_jogging_d2_uncomp.avi is truncated" in failed.output
    result = CliRunner().invoke(main, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "results" / "kth" / "baseline" / "steps.csv").read_text().splitlines()
    assert len(rows) == 11 and rows[1].split(",")[7] == str((24 - 19) + (22 - 19))  # n: test windows
