"""Evaluation: feed test clips to a method, score every predicted frame, collect metadata.

The runner never knows a method or dataset by name: it builds them from the registries, calls
``predict`` and the metrics, and hands back an :class:`EvalResult` that ``bench.results`` writes.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, metrics
from .dataset import ClipSet, Dataset
from .errors import BenchError
from .method import Method
from .profile import measure_costs
from .protocol import CONTEXT, HORIZON

N_EXAMPLES = 4
READ_AHEAD = 2  # batches read ahead of the one being scored
HEAVY_PREDICT_FLOPS = 1e9  # a batch's predict from which torch's intra-op threads pay off


@dataclass
class EvalResult:
    """Per-sequence x step metrics ``(N, horizon)``, a few example clips, and metadata."""

    per_sequence: dict[str, np.ndarray]
    examples: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)


def choose_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; other values as torch understands them."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise BenchError(f"unknown --device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {device} asked for CUDA, but no CUDA device is available")
    return chosen


def choose_preset(preset: str | None) -> tuple[str, str]:
    """The preset to use and why: ``paper`` when a GPU is present, ``small`` otherwise."""
    if preset:
        return preset, f"preset {preset!r} (as asked)"
    if torch.cuda.is_available():
        return "paper", "preset 'paper' (a CUDA GPU is available; pass --preset small for the CPU budget)"
    return "small", "preset 'small' (no CUDA GPU; pass --preset paper for the authors' settings)"


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def predict_threads(costs: dict[str, Any], batch_size: int, threads: int) -> int:
    """Torch's intra-op threads for ``predict`` on the CPU: ``threads`` for a method whose batch
    costs at least :data:`HEAVY_PREDICT_FLOPS`, else 1.

    A light prediction (copies and elementwise ops, like copy-last) gains little from threads, and
    OpenMP threads that spin against other processes make it 3-10x slower on a busy machine.
    """
    return threads if (costs.get("predict_flops") or 0) * batch_size >= HEAVY_PREDICT_FLOPS else 1


def evaluate(
    method: Method,
    dataset: Dataset,
    limit: int | None = None,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    stride: int = 1,
    progress: bool | int = True,
    metadata: dict[str, Any] | None = None,
    threads: int | None = None,
) -> EvalResult:
    """Score ``method`` on the first ``limit`` test clips of ``dataset`` (all when ``None``).

    ``progress`` is ``False`` for silence, ``True`` for a bar, or an int: the bar's line (for
    parallel cells). Raises :class:`BenchError` when the method returns the wrong shape, values
    outside [0, 1], or non-finite values, naming the method and the test sequence.

    Thread policy (``threads``, default: the cores this process may use): a background thread
    reads (renders, converts) the next batches while the current one is predicted and scored; on
    the CPU, one pass of the numba kernel computes the metrics, the checks and the intensity
    statistics over the frames in ``threads`` worker threads, and ``predict`` runs on
    :func:`predict_threads` torch threads (restored afterwards). Results never depend on it.
    ``wall_seconds`` in the metadata breaks the time down: ``data`` (reading, in the background),
    ``data_wait`` (the loop waiting for it), ``predict``, ``metrics`` (the fused pass) and
    ``checks`` (verdicts on the pass's checks, statistics and examples).
    """
    if limit is not None and limit < 1:
        raise BenchError(f"--limit must be a positive number of test sequences, got {limit}")
    if batch_size < 1:
        raise BenchError(f"--batch-size must be positive, got {batch_size}")
    if threads is not None and threads < 1:
        raise BenchError(f"--threads must be positive, got {threads}")
    threads = threads or default_threads()
    device = choose_device(device)
    clips = dataset.test_clips(CONTEXT + HORIZON, stride)
    total = len(clips) if limit is None else min(limit, len(clips))
    if total == 0:
        raise BenchError(f"dataset {dataset.name!r} has no test clips (check its data folder {dataset.data_dir})")
    method.to(device).eval()
    # cheap: predict timed twice; one training step measured (not timed) at the method's smallest batch
    costs = measure_costs(method, device=device, repeats=2, train_steps=0)
    torch_threads = predict_threads(costs, batch_size, threads) if device.type == "cpu" else torch.get_num_threads()
    example_index = np.unique(np.linspace(0, total - 1, min(N_EXAMPLES, total)).round().astype(int))
    scores: dict[str, list[np.ndarray]] = {name: [] for name in ("mse", "psnr", "dssim")}
    examples: dict[str, list[np.ndarray]] = {"examples_context": [], "examples_target": [], "examples_pred": []}
    pred_mean = np.zeros(HORIZON)
    target_mean = np.zeros(HORIZON)
    bright = np.zeros(HORIZON)
    seconds = dict.fromkeys(("data", "data_wait", "predict", "metrics", "checks"), 0.0)
    started = time.perf_counter()
    bar = tqdm(
        total=total, unit="seq", desc=f"{method.name} on {dataset.name}", disable=progress is False,
        position=progress if isinstance(progress, int) and progress is not True else None, leave=True,
    )
    batches = ReadAhead(clips, total, batch_size, on_cpu=device.type == "cpu")
    with bar, batches, _torch_threads(torch_threads), torch.no_grad():
        for start in range(0, total, batch_size):
            tic = time.perf_counter()
            clip = batches.next().to(device)
            if device.type != "cpu":
                clip = clip.float().div_(255)
            context, target = clip[:, :CONTEXT], clip[:, CONTEXT:]
            seconds["data_wait"] += (toc := time.perf_counter()) - tic
            pred = method.predict(context, HORIZON)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds["predict"] += (tic := time.perf_counter()) - toc
            _check_shape(method.name, pred, target)
            scored = metrics.score_frames(pred, target, threads)
            stats = {name: value.cpu().numpy() for name, value in vars(scored).items()}
            seconds["metrics"] += (toc := time.perf_counter()) - tic
            _check_values(method.name, stats, start)
            for name, values in scored.metrics().items():
                scores[name].append(values.cpu().numpy())
            pred_mean += stats["pred_mean"].sum(0)
            target_mean += stats["target_mean"].sum(0)
            bright += stats["pred_bright"].sum(0)
            chosen = np.isin(np.arange(start, start + len(pred)), example_index)
            if chosen.any():
                examples["examples_context"].append(_to_uint8(context[chosen]))
                examples["examples_target"].append(_to_uint8(target[chosen]))
                examples["examples_pred"].append(_to_uint8(pred[chosen]))
            bar.update(len(pred))
            seconds["checks"] += time.perf_counter() - toc
    seconds["data"] = batches.seconds
    per_sequence = {name: np.concatenate(parts) for name, parts in scores.items()}
    example_arrays = {name: np.concatenate(parts) for name, parts in examples.items()}
    example_arrays["examples_index"] = example_index
    intensity = {
        "pred_mean": (pred_mean / total).tolist(),
        "target_mean": (target_mean / total).tolist(),
        "pred_fraction_above_0.1": (bright / total).tolist(),
    }
    # A prediction whose mean intensity is under 10% of the target's is a collapsed (blank) one:
    # over all steps ("collapsed"), and per step (the first step from which every step is blank).
    intensity["collapsed"] = bool(np.mean(pred_mean) < 0.1 * np.mean(target_mean))
    lit = np.flatnonzero(pred_mean >= 0.1 * target_mean)
    last_lit = int(lit[-1]) + 1 if len(lit) else 0  # 1-based step; 0 when every step is blank
    intensity["blank_from_step"] = None if last_lit == len(pred_mean) else last_lit + 1
    meta = {
        "method": method.name,
        "config": method.config,
        "frame_shape": list(method.frame_shape),
        "dataset": dataset.params(),
        "test": {"n_sequences": total, "limit": limit, "stride": stride, "context": CONTEXT, "horizon": HORIZON},
        "conventions": metrics.CONVENTIONS,
        "intensity": intensity,
        "device": {**_describe_device(device), "threads": threads, "predict_threads": torch_threads},
        "versions": _versions(),
        "git_commit": _git_commit(),
        "wall_seconds": {"evaluate": time.perf_counter() - started, **seconds},
        "costs": costs,
        **(metadata or {}),
    }
    return EvalResult(per_sequence, example_arrays, meta)


class ReadAhead:
    """The test clips in batches of ``batch_size``, read :data:`READ_AHEAD` batches ahead in a
    background thread (Moving MNIST's compiled rendering and numpy's copies from memory-mapped
    video windows release the GIL, so this overlaps with predicting and scoring). On the CPU the uint8 clips become float32 frames in [0, 1] there
    too (``x / 255``, the same division torch does); for other devices they stay uint8 and are
    converted on the device. ``seconds`` adds up the background thread's time. A context manager:
    leaving it drops what was read ahead."""

    def __init__(self, clips: ClipSet, total: int, batch_size: int, on_cpu: bool):
        self.clips, self.total, self.batch_size, self.on_cpu = clips, total, batch_size, on_cpu
        self.starts = iter(range(0, total, batch_size))
        self.seconds = 0.0

    def __enter__(self) -> ReadAhead:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="bench-data")
        self.pending = deque(self.pool.submit(self._load, start) for start in islice(self.starts, READ_AHEAD))
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def next(self) -> torch.Tensor:
        batch = self.pending.popleft().result()
        start = next(self.starts, None)
        if start is not None:
            self.pending.append(self.pool.submit(self._load, start))
        return batch

    def _load(self, start: int) -> torch.Tensor:
        tic = time.perf_counter()
        clips = self.clips.batch(np.arange(start, min(start + self.batch_size, self.total)))
        if self.on_cpu:
            clips = np.divide(clips, np.float32(255), dtype=np.float32)
        self.seconds += time.perf_counter() - tic
        return torch.from_numpy(clips)


@contextmanager
def _torch_threads(threads: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_shape(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
    if not isinstance(pred, torch.Tensor) or pred.shape != target.shape:
        shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise BenchError(f"method {name!r} returned predictions of shape {shape}, expected {tuple(target.shape)}")


def _check_values(name: str, stats: dict[str, np.ndarray], first: int) -> None:
    """Refuse non-finite predictions (naming the first such test sequence) and values outside [0, 1]."""
    bad = ~stats["pred_finite"].all(axis=1)
    if bad.any():
        raise BenchError(
            f"method {name!r} predicted non-finite values (NaN or inf) for test sequence {first + int(np.argmax(bad))}"
        )
    low, high = float(stats["pred_min"].min()), float(stats["pred_max"].max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise BenchError(
            f"method {name!r} predicted values in [{low:.4g}, {high:.4g}], outside the frame range [0, 1]"
        )


def _describe_device(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def _versions() -> dict[str, str]:
    return {
        "vpbench": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "numpy": np.__version__, "platform": platform.platform(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
