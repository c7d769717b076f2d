"""Training batches from a dataset's clip stream, made in background workers so a step never waits.

:func:`training_batches` wraps ``dataset.train_clips(length, seed)`` in a ``torch.utils.data``
``DataLoader``: worker processes draw, decode and stack the clips of the coming batches (up to
``PREFETCH`` per worker ahead) while the model trains; on CUDA the uint8 batches arrive in pinned
memory and are copied to the GPU without blocking, then converted to float [0, 1] there.

* **Same clips as drawing directly.** With 0 workers (in-process) or 1 worker (the default), the
  batches are the successive ``batch_size`` clips of the one stream seeded by ``seed``, exactly as
  ``next(train_clips(...))`` repeated would give them. With ``N > 1`` workers, worker ``w`` draws
  from its own stream, seeded by ``(seed, w)``, and the batches alternate between workers: a
  repeatable stream for a given ``N``, but not the same clips as with one worker.
* **Data-parallel training**: every process draws the same clips and keeps its share (rank ``r`` of
  ``P`` takes clips ``r*B/P .. (r+1)*B/P`` of each batch of ``B``).
* The global RNGs are untouched (the loader's own seed comes from a private generator), so a
  method that draws random numbers while training sees the same ones as without the loader.
* Workers start with the platform's standard method (fork on Linux), named explicitly: inside a
  joblib/loky worker (``bench run --jobs``) the inherited default would be loky's, which the
  ``DataLoader`` cannot start.
* A dataset's :class:`BenchError` raised in a worker reaches the caller as the same one-sentence
  error, not as a worker traceback.
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .dataset import Dataset
from .errors import BenchError

PREFETCH = 4  # batches each worker prepares ahead


class ClipBatches(IterableDataset):
    """This process's share of successive batches of ``batch_size`` clips, as uint8 tensors ``(b, T, C, H, W)``."""

    def __init__(self, dataset: Dataset, length: int, seed: int, batch_size: int, rank: int = 0, processes: int = 1):
        super().__init__()
        self.dataset, self.length, self.seed, self.batch_size = dataset, length, seed, batch_size
        self.share = slice(rank * batch_size // processes, (rank + 1) * batch_size // processes)

    def __iter__(self) -> Iterator[torch.Tensor | BenchError]:
        worker = get_worker_info()
        seed = self.seed
        if worker is not None and worker.num_workers > 1:
            seed = int(np.random.SeedSequence([self.seed, worker.id]).generate_state(1)[0])
        try:
            clips = self.dataset.train_clips(self.length, seed)
            while True:
                drawn = [next(clips) for _ in range(self.batch_size)]
                yield torch.from_numpy(np.stack(drawn[self.share]))
        except BenchError as error:
            if worker is None:
                raise
            yield error  # a value crosses the process boundary with its message intact


def training_batches(
    dataset: Dataset,
    *,
    seed: int,
    batch_size: int,
    device: torch.device,
    frame_shape: tuple[int, int, int],
    length: int = 20,
    workers: int = 1,
    rank: int = 0,
    processes: int = 1,
) -> Iterator[torch.Tensor]:
    """Endless float [0, 1] batches ``(batch_size / processes, length, *frame_shape)`` on ``device``; see the module.

    Close the generator (or let it go) to stop the workers."""
    if workers < 0:
        raise BenchError(f"--data-workers must be 0 or more, got {workers}")
    loader = DataLoader(
        ClipBatches(dataset, length, seed, batch_size, rank, processes), batch_size=None, num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=PREFETCH if workers else None,
        generator=torch.Generator().manual_seed(seed),
        multiprocessing_context=multiprocessing.get_context(multiprocessing.get_all_start_methods()[0]) if workers else None,
    )
    expected = (batch_size // processes, length, *frame_shape)
    for item in loader:
        if isinstance(item, BenchError):
            raise item
        if tuple(item.shape) != expected or item.dtype != torch.uint8:
            raise BenchError(
                f"dataset {dataset.name!r} gave training clips {str(item.dtype).removeprefix('torch.')} "
                f"{tuple(item.shape[1:])}, expected uint8 {expected[1:]}"
            )
        yield item.to(device, non_blocking=True).float().div_(255)
