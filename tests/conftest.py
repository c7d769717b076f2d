"""Shared fixtures: the real test data in ../shared/data (skipped, with the reason, where absent)."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Tests skipped for want of a GPU (a skipif whose reason names CUDA) get the ``cuda`` marker, so
    ``pytest -m cuda`` selects exactly them."""
    for item in items:
        if any("CUDA" in str(mark.kwargs.get("reason", "")) for mark in item.iter_markers("skipif")):
            item.add_marker("cuda")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    folder = SHARED_DATA / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST test digits not found in {folder} (only the project's own checkout has them)")
    return folder


@pytest.fixture(scope="session")
def mmnist(mnist_dir):
    import bench

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing-training-images warning, tested on its own
        data = bench.get_dataset("mmnist", data_dir=mnist_dir)
        data.test_clips(20)
    return data
