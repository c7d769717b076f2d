"""Grids of (method, dataset) cells: serial, in parallel processes (joblib), or on a Dask cluster.

Each cell is an :class:`EvalRequest`: plain data, so it travels to worker processes and cluster nodes; the worker
builds the dataset and method from the registries, evaluates, and returns the result; the caller
alone writes results, so a grid's files are the same however it ran. A cell whose results exist
with the same request (method, preset, settings, dataset options, limit, stride, seed) is skipped
unless forced, so an interrupted grid re-run finishes only what is missing; a damaged cell is redone.

Faults: before any work, every cell's raw data are checked (:func:`check_data`), every output folder
is checked (:func:`bench.storage.ensure_writable`) and the lock of every cell to compute is taken,
so a second ``bench run`` on the same cells is refused at once, naming the first. A cell that cannot
be written at the end is kept in a recovery folder and the grid goes on; the run then fails naming
the first such cell. ``summary.csv`` is rebuilt after each cell and at the end. ``--jobs`` workers
(joblib's loky processes) watch their parent and stop when it dies (:func:`_die_with_parent`),
instead of training on with nobody to take their results.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checkpoint, registry, results, storage, weights
from .errors import BenchError
from .longform import ten_step_summary
from .runner import EvalResult, evaluate
from .train import trained_method


@dataclass(frozen=True)
class EvalRequest:
    """A request to evaluate one method on one dataset: what to load or train, and how to score it."""

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
    threads: int | None = None  # CPU threads (None: the cores, or cores / jobs in a grid); results do not depend on it
    # Training options (bench.speedups); not part of the request: the weights' metadata records them.
    precision: str | None = None
    compile: bool = False
    retrain: bool = False  # never the shipped weights: the user's own checkpoint, trained if missing

    def key(self) -> dict[str, Any]:
        """What determines this request's numbers (stored as ``request`` in the results' metadata;
        equal keys are skipped)."""
        keys = ("method", "dataset", "preset", "dataset_options", "method_options", "limit", "stride", "seed")
        request = {key: getattr(self, key) for key in keys}
        if self.retrain:  # other weights than a default run's
            request["retrain"] = True
        return json.loads(json.dumps(request, default=str))

    def label(self) -> str:
        return f"{self.method}/{self.preset} on {self.dataset}"


def check_data(cell: EvalRequest) -> None:
    """Refuse the cell at once, before anything is trained or written, when its dataset's raw data are
    missing: the test split always, the training split too when a checkpoint would be trained (there is
    none, and no shipped weights apply). Bad names or options raise BenchError too."""
    dataset = registry.datasets.get(cell.dataset)(data_dir=cell.data_dir, skip_bad=cell.skip_bad,
                                                  **cell.dataset_options)
    cls = registry.methods.get(cell.method)
    path = checkpoint.checkpoint_path(cell.dataset, cell.method, cell.preset, cell.checkpoint_dir)
    trains = (cell.train and cls.trainable and not path.exists()
              and (cell.retrain or weights.find(cell.method, cell.preset, cell.dataset, dataset.frame_shape) is None))
    dataset.check_data(("train", "test") if trains else ("test",))


def load_request(cell: EvalRequest, progress: bool | int = True):
    """The cell's dataset, its method ready to evaluate (a trainable one loaded from its checkpoint,
    trained first when missing), and metadata about the weights. Bad names or options raise BenchError."""
    dataset = registry.datasets.get(cell.dataset)(
        data_dir=cell.data_dir, skip_bad=cell.skip_bad, **cell.dataset_options
    )
    dataset.progress = progress is not False
    trained = trained_method(
        cell.method, dataset, cell.preset, overrides=cell.method_options, device=cell.device,
        checkpoint_dir=cell.checkpoint_dir, train_missing=cell.train, seed=cell.seed, progress=progress is not False,
        precision=cell.precision, compile=cell.compile, retrain=cell.retrain,
    )
    return dataset, trained.method, trained.metadata()


def run_request(cell: EvalRequest, progress: bool | int = True, threads: int | None = None) -> EvalResult:
    import torch

    threads = cell.threads or threads
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(cell.seed)
    dataset, method, weights = load_request(cell, progress)
    return evaluate(
        method, dataset, limit=cell.limit, batch_size=cell.batch_size, device=cell.device,
        stride=cell.stride, progress=progress, threads=threads,
        metadata={"preset": cell.preset, "request": cell.key(), **weights},
    )


def is_done(cell: EvalRequest, results_dir: Path) -> bool:
    return _previous(cell, results_dir) == "done"


def _previous(cell: EvalRequest, results_dir: Path) -> str | None:
    """"done" when the cell's results exist with the same request, ``None`` when there are none, else
    why they are redone."""
    folder = results.cell_folder(results_dir, cell.dataset, cell.method)
    if not os.path.lexists(folder):
        return None
    try:
        stored = results.read_cell(folder)
    except results.DamagedCell as error:
        return error.reason
    return "done" if stored.meta.get("request") == cell.key() else "they were computed with other settings"


def run_grid(
    cells: Iterable[EvalRequest],
    results_dir: Path,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[EvalRequest]:
    """Run the cells not done yet, writing each cell's results as soon as it finishes."""
    cells = list(cells)
    todo = []
    for cell in cells:
        previous = _previous(cell, results_dir)
        if previous == "done" and not force:
            echo(f"skipping {cell.label()}: results with the same settings exist (use --force to redo)")
            continue
        if previous not in (None, "done"):
            echo(f"redoing {cell.label()}: {previous}")
        todo.append(cell)
    for cell in todo if scheduler is None else ():  # on a cluster, the data are the workers'
        check_data(cell)
    if todo:  # a re-run with nothing to do needs no writable folder (the summary is still refreshed)
        _check_outputs(todo, results_dir, local_checkpoints=scheduler is None)
    failed: list[BenchError] = []
    with contextlib.ExitStack() as held:
        for cell in todo:
            held.enter_context(results.cell_lock(results.cell_folder(results_dir, cell.dataset, cell.method)))
        if jobs == 1 and scheduler is None:
            for cell in todo:
                _write(cell, run_request(cell, progress=progress), results_dir, echo, failed)
        elif todo:
            _run_parallel(todo, results_dir, jobs, scheduler, progress, echo, failed)
    _refresh_summary(results_dir, echo)
    if failed:
        more = f" (and {len(failed) - 1} more cells, named above)" if len(failed) > 1 else ""
        raise BenchError(f"{failed[0]}{more}")
    return todo


def _run_parallel(todo, results_dir, jobs, scheduler, progress, echo, failed) -> None:
    from joblib import Parallel, delayed, parallel_config

    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1)) if scheduler is None else None
    parent = os.getpid() if scheduler is None else None
    tasks = (
        delayed(_run_remote)(cell, index if progress else False, threads, parent) for index, cell in enumerate(todo)
    )
    backend = "loky" if scheduler is None else "dask"
    with _dask_client(scheduler), parallel_config(backend=backend, n_jobs=jobs if scheduler is None else -1):
        for cell, outcome in Parallel(return_as="generator_unordered")(tasks):
            if isinstance(outcome, BenchError):
                raise outcome
            _write(cell, outcome, results_dir, echo, failed)


def _check_outputs(todo: list[EvalRequest], results_dir: Path, local_checkpoints: bool) -> None:
    """Fail before any work when an output folder cannot be written: the results folder (with room for
    the cells) and each dataset's folder in it, and the folder of each checkpoint that is to be trained
    (where it is local: on a cluster, the workers' training checks it)."""
    to_train = []
    for cell in todo if local_checkpoints else ():  # unknown names fail here, before a folder is made for them
        registry.datasets.get(cell.dataset)
        path = checkpoint.checkpoint_path(cell.dataset, cell.method, cell.preset, cell.checkpoint_dir)
        if cell.train and registry.methods.get(cell.method).trainable and not path.exists():
            to_train.append(path.parent)
    storage.ensure_writable(results_dir, "results folder", "--results-dir", need=results.CELL_BYTES * len(todo))
    for dataset in dict.fromkeys(cell.dataset for cell in todo):
        storage.ensure_writable(Path(results_dir) / dataset, "results folder", "--results-dir")
    for folder in dict.fromkeys(to_train):
        storage.ensure_writable(folder, "checkpoint folder", "--checkpoint-dir")


def _run_remote(cell: EvalRequest, progress: bool | int, threads: int | None, parent: int | None = None):
    """Worker side: return user errors as values so they keep their one-sentence message."""
    if parent is not None:
        _die_with_parent(parent)
    try:
        return cell, run_request(cell, progress=progress, threads=threads)
    except BenchError as error:
        return cell, BenchError(f"{cell.label()}: {error}")


_watching: set[int] = set()


def _die_with_parent(parent: int, grace: float = 30.0) -> None:
    """In a worker process of ``parent``: once ``parent`` is gone (the worker is re-parented), send this
    process SIGTERM, which a training run answers by saving its checkpoint and stopping, and exit for
    good ``grace`` seconds later. Nothing is watched where the worker is not ``parent``'s child."""
    if os.getppid() != parent or parent in _watching:
        return
    _watching.add(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="vpbench-parent-watch", daemon=True).start()


def _write(cell: EvalRequest, result: EvalResult, results_dir: Path, echo: Callable[[str], None],
           failed: list[BenchError]) -> None:
    """Commit the cell and rebuild the summary; a cell that cannot be written is kept elsewhere (the error
    says where) and recorded in ``failed`` so that the other cells still run."""
    try:
        folder = results.write_cell(
            results_dir, cell.dataset, cell.method, result.per_sequence, result.examples, result.metadata
        )
    except BenchError as error:
        if failed:
            echo(f"Error: {error}")
        failed.append(error)
        return
    summary = ten_step_summary(result.per_sequence)
    echo(
        f"{cell.label()}: MSE {summary['mse']:.5f}  PSNR {summary['psnr']:.3f}  DSSIM {summary['dssim']:.5f}"
        f"  ({result.metadata['test']['n_sequences']} sequences) -> {folder}"
    )
    _refresh_summary(results_dir, echo)


def _refresh_summary(results_dir: Path, echo: Callable[[str], None]) -> None:
    """Rebuild ``summary.csv``; a failure is a warning (every cell is safe in its folder, and the next
    run rebuilds it)."""
    try:
        results.write_summary(results_dir)
    except BenchError as error:
        echo(f"Warning: {error}; the next `bench run` rebuilds summary.csv")


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
