"""Grids of (method, dataset) cells: serial, in parallel processes (joblib), or on a Dask cluster.

A :class:`Cell` is plain data, so it travels to worker processes and cluster nodes; the worker
builds the dataset and method from the registries, evaluates, and returns the result; the caller
alone writes results, so a grid's files are the same however it ran. A cell whose results exist
with the same request (method, preset, settings, dataset options, limit, stride, seed) is skipped
unless forced, so an interrupted grid re-run finishes only what is missing.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry, results
from .errors import BenchError
from .runner import EvalResult, evaluate
from .train import trained_method


@dataclass(frozen=True)
class Cell:
    method: str
    dataset: str
    preset: str
    data_dir: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    stride: int = 1
    seed: int = 0
    batch_size: int = 32
    device: str = "auto"
    skip_bad: bool = False
    checkpoint_dir: str | None = None
    train: bool = True
    # Training options (bench.speedups); not part of the request: the weights' metadata records them.
    precision: str | None = None
    compile: bool = False

    def request(self) -> dict[str, Any]:
        """What determines this cell's numbers (stored in its metadata; equal requests are skipped)."""
        keys = ("method", "dataset", "preset", "dataset_options", "method_options", "limit", "stride", "seed")
        return json.loads(json.dumps({key: getattr(self, key) for key in keys}, default=str))

    def label(self) -> str:
        return f"{self.method}/{self.preset} on {self.dataset}"


def load_cell(cell: Cell, progress: bool | int = True):
    """The cell's dataset, its method ready to evaluate (a trainable one loaded from its checkpoint,
    trained first when missing), and metadata about the weights. Bad names or options raise BenchError."""
    dataset = registry.datasets.get(cell.dataset)(
        data_dir=cell.data_dir, skip_bad=cell.skip_bad, **cell.dataset_options
    )
    dataset.progress = progress is not False
    trained = trained_method(
        cell.method, dataset, cell.preset, overrides=cell.method_options, device=cell.device,
        checkpoint_dir=cell.checkpoint_dir, train_missing=cell.train, seed=cell.seed, progress=progress is not False,
        precision=cell.precision, compile=cell.compile,
    )
    return dataset, trained.method, trained.metadata()


def run_cell(cell: Cell, progress: bool | int = True, threads: int | None = None) -> EvalResult:
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cell.seed)
    dataset, method, weights = load_cell(cell, progress)
    return evaluate(
        method, dataset, limit=cell.limit, batch_size=cell.batch_size, device=cell.device,
        stride=cell.stride, progress=progress,
        metadata={"preset": cell.preset, "request": cell.request(), **weights},
    )


def is_done(cell: Cell, results_dir: Path) -> bool:
    meta_path = results.cell_paths(results_dir, cell.dataset, cell.method)["json"]
    if not meta_path.is_file() or not meta_path.with_suffix(".npz").is_file():
        return False
    try:
        return json.loads(meta_path.read_text()).get("request") == cell.request()
    except ValueError:
        return False


def run_grid(
    cells: Iterable[Cell],
    results_dir: Path,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[Cell]:
    """Run the cells not done yet, writing each cell's results as soon as it finishes."""
    cells = list(cells)
    todo = [cell for cell in cells if force or not is_done(cell, results_dir)]
    for cell in cells:
        if cell not in todo:
            echo(f"skipping {cell.label()}: results with the same settings exist (use --force to redo)")
    if not todo:
        return []
    if jobs == 1 and scheduler is None:
        for cell in todo:
            _write(cell, run_cell(cell, progress=progress), results_dir, echo)
        return todo
    from joblib import Parallel, delayed, parallel_config

    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1)) if scheduler is None else None
    tasks = (
        delayed(_run_remote)(cell, index if progress else False, threads) for index, cell in enumerate(todo)
    )
    backend = "loky" if scheduler is None else "dask"
    with _dask_client(scheduler), parallel_config(backend=backend, n_jobs=jobs if scheduler is None else -1):
        for cell, outcome in Parallel(return_as="generator_unordered")(tasks):
            if isinstance(outcome, BenchError):
                raise outcome
            _write(cell, outcome, results_dir, echo)
    return todo


def _run_remote(cell: Cell, progress: bool | int, threads: int | None):
    """Worker side: return user errors as values so they keep their one-sentence message."""
    try:
        return cell, run_cell(cell, progress=progress, threads=threads)
    except BenchError as error:
        return cell, BenchError(f"{cell.label()}: {error}")


def _write(cell: Cell, result: EvalResult, results_dir: Path, echo: Callable[[str], None]) -> None:
    paths = results.write_cell(
        results_dir, cell.dataset, cell.method, result.per_sequence, result.examples, result.metadata
    )
    summary = results.ten_step_summary(result.per_sequence)
    echo(
        f"{cell.label()}: MSE {summary['mse']:.5f}  PSNR {summary['psnr']:.3f}  DSSIM {summary['dssim']:.5f}"
        f"  ({result.metadata['test']['n_sequences']} sequences) -> {paths['csv']}"
    )


class _dask_client:
    """Connect to a Dask scheduler for the duration of a grid (no-op without one)."""

    def __init__(self, address: str | None):
        self.address, self.client = address, None

    def __enter__(self):
        if self.address:
            try:
                from dask.distributed import Client
            except ImportError:
                raise BenchError("--scheduler needs dask.distributed: pip install 'vpbench[cluster]'") from None
            try:
                self.client = Client(self.address, timeout="20s")
            except (OSError, TimeoutError) as error:
                raise BenchError(f"cannot reach the Dask scheduler at {self.address}: {error}") from None
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
