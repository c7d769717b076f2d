"""UCF101: official and paper splits, layout, RGB preprocessing, halved frame rate, centre crop."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_files import SQUARE, centroid, resized_centre, ucf_video

import bench
from bench.datasets.ucf101 import split_entries
from bench.errors import BenchError

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data" / "ucf101" / "ucfTrainTestlist"
SCALE_X, SCALE_Y = 320 / 85, 240 / 64
CLASSES = ["ApplyEyeMakeup", "HandstandPushups"]


def shared_lists() -> Path:
    if not (SHARED / "classInd.txt").is_file():
        pytest.skip(f"{SHARED} not present")
    return SHARED


def write_lists(folder: Path, train: list[str], test: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(CLASSES, 1)))
    for n in "123":
        labelled = [f"{e} {CLASSES.index(e.split('/')[0]) + 1}\r\n" for e in train]
        (folder / f"trainlist0{n}.txt").write_text("".join(labelled))
        (folder / f"testlist0{n}.txt").write_text("".join(f"{e}\r\n" for e in test))


@pytest.fixture(scope="module")
def ucf_dir(tmp_path_factory) -> Path:
    """The official layout, nested in UCF-101/, with the HandstandPushups file-name quirk."""
    folder = tmp_path_factory.mktemp("ucf")
    train = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"]
    test = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c01.avi"]
    write_lists(folder / "ucfTrainTestlist", train, test)
    ucf_video(folder / "UCF-101", train[0], 40)
    ucf_video(folder / "UCF-101", test[0], 45)
    ucf_video(folder / "UCF-101", test[1], 39)
    return folder


def ucf(folder: Path, tmp_path: Path, **options):
    return bench.get_dataset("ucf101", data_dir=folder, cache_dir=tmp_path / "cache", **options)


def test_official_split_counts():
    lists = shared_lists()
    counts = {s: [list(split_entries(lists, s).values()).count(k) for k in ("train", "test")] for s in "123"}
    assert counts == {"1": [9537, 3783], "2": [9586, 3734], "3": [9624, 3696]}
    assert split_entries(lists, "1")["HandstandPushups/v_HandStandPushups_g01_c01.avi"] == "test"


def test_paper_split_is_seeded_75_25_per_class():
    lists = shared_lists()
    paper = split_entries(lists, "paper", seed=0)
    assert list(paper.values()).count("train") == 9957 and list(paper.values()).count("test") == 3363
    assert paper == split_entries(lists, "paper", seed=0)
    assert paper != split_entries(lists, "paper", seed=1)
    handstand = [v for e, v in paper.items() if e.startswith("HandstandPushups/")]
    assert len(handstand) == 128 and handstand.count("train") == 96  # 0.75 * 128
    knitting = [v for e, v in paper.items() if e.startswith("Knitting/")]
    assert len(knitting) == 123 and knitting.count("train") == 92  # floor(0.75 * 123)


def test_bad_split_option():
    with pytest.raises(BenchError, match="'split' must be one of 1, 2, 3, paper"):
        split_entries(shared_lists(), "4")


def test_layout_and_membership(ucf_dir, tmp_path):
    inventory = ucf(ucf_dir, tmp_path).inventory()
    assert {v.name: v.split for v in inventory.present()} == {
        "v_ApplyEyeMakeup_g08_c01": "train", "v_ApplyEyeMakeup_g01_c01": "test",
        "v_HandStandPushups_g01_c01": "test"}
    assert inventory.missing() == [] and inventory.extra == []


def test_test_windows_span_39_raw_frames(ucf_dir, tmp_path):
    data = ucf(ucf_dir, tmp_path)
    clips = data.test_clips(20)
    assert len(clips) == (45 - 38) + (39 - 38)  # every raw start frame
    assert len(data.test_clips(20, 3)) == 3 + 1  # starts 0, 3, 6 | 0
    clip = clips[0]
    assert clip.shape == (20, 3, 64, 80) and clip.dtype == np.uint8
    params = data.params()
    assert params["test_crop_offset"] == 2 and params["sample_every"] == 2 and "random" in params["test_crop"]
    assert "split_seed" not in params and ucf(ucf_dir, tmp_path, split="paper").params()["split_seed"] == 0


def test_every_second_frame_and_centre_crop_place_the_square(ucf_dir, tmp_path):
    clips = ucf(ucf_dir, tmp_path).test_clips(20)
    start = 3  # clip 3 of v_ApplyEyeMakeup_g01_c01 starts at raw frame 3; the square: x = 10 + 4 t
    clip = clips[start]
    for k in (0, 5, 19):
        raw = start + 2 * k
        row, col = centroid(clip[k, 0])
        assert row == pytest.approx(resized_centre(100, SQUARE, SCALE_Y), abs=0.5)
        assert col == pytest.approx(resized_centre(10 + 4 * raw, SQUARE, SCALE_X) - 2, abs=0.5)
    red = clip[0, :, 28, round(centroid(clip[0, 0])[1])]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # RGB order, not BGR


def test_train_clips_crop_and_flip(ucf_dir, tmp_path):
    data = ucf(ucf_dir, tmp_path)
    draws = data.train_clips(20, 3)
    stored = np.load(next((tmp_path / "cache" / "frames" / "ucf101").glob("v_ApplyEyeMakeup_g08*.npy")))
    assert stored.shape == (40, 3, 64, 85)
    candidates = [stored[s:s + 39:2, ..., o:o + 80] for s in range(2) for o in range(5)]
    offsets_seen, flips = set(), 0
    for _ in range(30):
        clip = next(draws)
        assert clip.shape == (20, 3, 64, 80)
        match = [i for i, c in enumerate(candidates) if np.array_equal(clip, c)]
        if not match:
            match = [i for i, c in enumerate(candidates) if np.array_equal(clip, c[..., ::-1])]
            flips += 1
        assert match, "a training clip is a 39-frame window, every 2nd frame, cropped at 0..4, maybe flipped"
        offsets_seen.add(match[0] % 5)
    assert 0 < flips < 30 and len(offsets_seen) >= 3


def test_missing_listed_video_and_missing_lists(ucf_dir, tmp_path):
    folder = tmp_path / "partial"
    write_lists(folder / "ucfTrainTestlist", ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"],
                ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi"])
    ucf_video(folder, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 40)  # flat layout: no UCF-101/
    with pytest.raises(BenchError, match="v_ApplyEyeMakeup_g01_c02 is missing from"):
        ucf(folder, tmp_path).test_clips(20)
    data = ucf(folder, tmp_path, skip_bad=True)
    with pytest.warns(UserWarning, match="skipped 1 bad ucf101 test videos"):
        assert len(data.test_clips(20)) == 2
    assert data.params()["videos"] == {"test": {"videos": 1, "missing": 1, "bad": 0}}
    with pytest.raises(BenchError, match=r"split lists \(ucfTrainTestlist/\) not found"):
        ucf(tmp_path, tmp_path).test_clips(20)
    (folder / "ucfTrainTestlist" / "testlist02.txt").unlink()
    with pytest.raises(BenchError, match="testlist02.txt is missing"):
        ucf(folder, tmp_path, split="2").test_clips(20)
