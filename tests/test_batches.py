"""The training batch source: DataLoader workers give the clips of the direct stream, errors stay one sentence."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import train_plugins  # noqa: F401  (registers the test plugins)
from bench import get_dataset
from bench.batches import training_batches
from bench.dataset import Dataset
from bench.errors import BenchError

CPU = torch.device("cpu")


def direct(dataset, seed, batch_size, count):
    """What the loop drew before the loader: successive clips of one stream, stacked, as float [0, 1]."""
    clips = dataset.train_clips(20, seed)
    return [torch.from_numpy(np.stack([next(clips) for _ in range(batch_size)])).float() / 255 for _ in range(count)]


def loaded(dataset, seed, batch_size, count, **kwargs):
    batches = training_batches(dataset, seed=seed, batch_size=batch_size, device=CPU,
                               frame_shape=dataset.frame_shape, **kwargs)
    try:
        return list(itertools.islice(batches, count))
    finally:
        batches.close()


@pytest.mark.parametrize("name", ["train-test-squares", "bouncing_balls"])
@pytest.mark.parametrize("workers", [0, 1])
def test_loader_gives_the_clips_of_the_direct_stream(name, workers):
    dataset = get_dataset(name)
    expected = direct(dataset, 7, 4, 3)
    rng = torch.get_rng_state()
    got = loaded(dataset, 7, 4, 3, workers=workers)
    assert torch.equal(torch.get_rng_state(), rng)  # the loader leaves the training's random stream alone
    assert len(got) == 3 and all(torch.equal(a, b) for a, b in zip(got, expected))
    assert got[0].dtype == torch.float32 and got[0].shape == (4, 20, *dataset.frame_shape)


def test_each_process_keeps_its_share_of_the_same_clips():
    dataset = get_dataset("train-test-squares")
    whole = direct(dataset, 3, 4, 2)
    for rank in (0, 1):
        share = loaded(dataset, 3, 4, 2, workers=1, rank=rank, processes=2)
        assert all(torch.equal(mine, all_[2 * rank : 2 * rank + 2]) for mine, all_ in zip(share, whole))


def test_several_workers_draw_other_but_repeatable_streams():
    dataset = get_dataset("train-test-squares")
    first, again = (loaded(dataset, 3, 4, 4, workers=2) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    one_worker = direct(dataset, 3, 4, 4)
    assert not all(torch.equal(a, b) for a, b in zip(first, one_worker))


class _Broken(Dataset):
    name = "broken-clips"
    frame_shape = (1, 16, 16)

    def __init__(self, fault):
        super().__init__()
        self.fault = fault

    def train_clips(self, length, seed):
        if self.fault == "error":
            raise BenchError("no broken-clips training video is long enough for 20-frame clips")
        while True:
            yield np.zeros((length, *self.frame_shape), np.float32)


@pytest.mark.parametrize("workers", [0, 1])
def test_dataset_errors_reach_the_caller_as_one_sentence(workers):
    with pytest.raises(BenchError, match=r"^no broken-clips training video is long enough for 20-frame clips$"):
        loaded(_Broken("error"), 0, 2, 1, workers=workers)
    with pytest.raises(BenchError, match=r"dataset 'broken-clips' gave training clips float32 \(20, 1, 16, 16\), "
                                         r"expected uint8 \(20, 1, 16, 16\)"):
        loaded(_Broken("float"), 0, 2, 1, workers=workers)
    with pytest.raises(BenchError, match="--data-workers must be 0 or more, got -1"):
        loaded(_Broken("float"), 0, 2, 1, workers=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_arrive_on_the_gpu_with_the_cpu_values():
    dataset = get_dataset("train-test-squares")
    batches = training_batches(dataset, seed=2, batch_size=4, device=torch.device("cuda"),
                               frame_shape=dataset.frame_shape)
    try:
        got = [next(batches) for _ in range(2)]
    finally:
        batches.close()
    assert all(batch.is_cuda for batch in got)
    assert all(torch.equal(a.cpu(), b) for a, b in zip(got, direct(dataset, 2, 4, 2)))
