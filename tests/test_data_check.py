"""Missing raw data are refused before any training starts or any file is written, and the error
says where the data come from (the official pages) and how the folder is laid out."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.datasets.kth import protocol_names, split_of

SOURCES = {"kth": "https://www.csc.kth.se/cvap/actions/", "ucf101": "https://www.crcv.ucf.edu/data/UCF101.php"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty working folder with its own data and cache folders; every output is to land in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_CHECKPOINT_DIR", raising=False)
    return tmp_path


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("dataset", ["kth", "ucf101"])
def test_run_without_data_fails_first_and_writes_nothing(home, dataset):
    outcome = invoke("run", "--methods", "frnn,villegas", "--dataset", dataset, "--quiet")
    assert outcome.exit_code == 1
    assert "training" not in outcome.output
    assert SOURCES[dataset] in outcome.output
    assert f"$BENCH_DATA_DIR/{dataset}" in outcome.output
    assert files_under(home) == []


def test_train_without_data_fails_first_and_writes_nothing(home):
    outcome = invoke("train", "--method", "frnn", "--dataset", "kth", "--preset", "tiny", "--quiet")
    assert outcome.exit_code == 1
    assert SOURCES["kth"] in outcome.output and "boxing.zip" in outcome.output
    assert files_under(home) == []


def kth_folder(home, split):
    """A KTH folder holding (empty) files of one split only: the check looks at names, never decodes."""
    folder = home / "data" / "kth"
    folder.mkdir(parents=True)
    for name in protocol_names():
        if split_of(name) == split:
            (folder / f"{name}_uncomp.avi").touch()
    return folder


def test_run_with_test_videos_only_refuses_to_train(home):
    kth_folder(home, "test")
    before = files_under(home)
    outcome = invoke("run", "--methods", "frnn", "--dataset", "kth", "--preset", "tiny", "--retrain", "--quiet")
    assert outcome.exit_code == 1
    assert "no train videos of dataset 'kth'" in outcome.output and SOURCES["kth"] in outcome.output
    assert "training frnn" not in outcome.output
    assert files_under(home) == before


def test_verify_names_the_source_of_missing_videos(home):
    kth_folder(home, "train")
    outcome = invoke("data", "verify", "--dataset", "kth")
    assert outcome.exit_code == 1
    assert "missing: 216" in outcome.output
    assert SOURCES["kth"] in outcome.output


def test_missing_moving_mnist_test_file_names_its_source(home):
    outcome = invoke("run", "--methods", "baseline", "--dataset", "mmnist", "-o", "test_file=nowhere.npy", "--quiet")
    assert outcome.exit_code == 1
    assert "nowhere.npy does not exist" in outcome.output
    assert "http://www.cs.toronto.edu/~nitish/unsupervised_video/" in outcome.output
    assert files_under(home) == []
