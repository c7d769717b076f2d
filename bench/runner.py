"""Evaluation: feed test clips to a method, score every predicted frame, collect metadata.

The runner never knows a method or dataset by name: it builds them from the registries, calls
``predict`` and the metrics, and hands back an :class:`EvalResult` that ``bench.results`` writes.
"""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, metrics
from .dataset import Dataset
from .errors import BenchError
from .method import Method
from .profile import measure_costs

CONTEXT, HORIZON = 10, 10
N_EXAMPLES = 4


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


def evaluate(
    method: Method,
    dataset: Dataset,
    limit: int | None = None,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    stride: int = 1,
    progress: bool | int = True,
    metadata: dict[str, Any] | None = None,
) -> EvalResult:
    """Score ``method`` on the first ``limit`` test clips of ``dataset`` (all when ``None``).

    ``progress`` is ``False`` for silence, ``True`` for a bar, or an int: the bar's line (for
    parallel cells). Raises :class:`BenchError` when the method returns the wrong shape, values
    outside [0, 1], or non-finite values, naming the method and the test sequence.
    """
    if limit is not None and limit < 1:
        raise BenchError(f"--limit must be a positive number of test sequences, got {limit}")
    if batch_size < 1:
        raise BenchError(f"--batch-size must be positive, got {batch_size}")
    device = choose_device(device)
    clips = dataset.test_clips(CONTEXT + HORIZON, stride)
    total = len(clips) if limit is None else min(limit, len(clips))
    if total == 0:
        raise BenchError(f"dataset {dataset.name!r} has no test clips (check its data folder {dataset.data_dir})")
    method.to(device).eval()
    # cheap: predict timed twice; one training step measured (not timed) at the method's smallest batch
    costs = measure_costs(method, device=device, repeats=2, train_steps=0)
    example_index = np.unique(np.linspace(0, total - 1, min(N_EXAMPLES, total)).round().astype(int))
    scores: dict[str, list[np.ndarray]] = {name: [] for name in ("mse", "psnr", "dssim")}
    examples: dict[str, list[np.ndarray]] = {"examples_context": [], "examples_target": [], "examples_pred": []}
    pred_mean = np.zeros(HORIZON)
    target_mean = np.zeros(HORIZON)
    bright = np.zeros(HORIZON)
    started = time.perf_counter()
    predict_seconds = 0.0
    bar = tqdm(
        total=total, unit="seq", desc=f"{method.name} on {dataset.name}", disable=progress is False,
        position=progress if isinstance(progress, int) and progress is not True else None, leave=True,
    )
    with bar, torch.no_grad():
        for start in range(0, total, batch_size):
            index = np.arange(start, min(start + batch_size, total))
            clip = torch.from_numpy(clips.batch(index)).to(device).float().div_(255)
            context, target = clip[:, :CONTEXT], clip[:, CONTEXT:]
            tic = time.perf_counter()
            pred = method.predict(context, HORIZON)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            predict_seconds += time.perf_counter() - tic
            _check_prediction(method.name, pred, target, start)
            for name, values in metrics.frame_metrics(pred, target).items():
                scores[name].append(values.cpu().numpy())
            pred_mean += pred.double().mean(dim=(2, 3, 4)).sum(0).cpu().numpy()
            target_mean += target.double().mean(dim=(2, 3, 4)).sum(0).cpu().numpy()
            bright += (pred > 0.1).double().mean(dim=(2, 3, 4)).sum(0).cpu().numpy()
            chosen = np.isin(index, example_index)
            if chosen.any():
                examples["examples_context"].append(_to_uint8(context[chosen]))
                examples["examples_target"].append(_to_uint8(target[chosen]))
                examples["examples_pred"].append(_to_uint8(pred[chosen]))
            bar.update(len(index))
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
        "device": _describe_device(device),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "wall_seconds": {"evaluate": time.perf_counter() - started, "predict": predict_seconds},
        "costs": costs,
        **(metadata or {}),
    }
    return EvalResult(per_sequence, example_arrays, meta)


def _check_prediction(name: str, pred: torch.Tensor, target: torch.Tensor, first: int) -> None:
    if not isinstance(pred, torch.Tensor) or pred.shape != target.shape:
        shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise BenchError(f"method {name!r} returned predictions of shape {shape}, expected {tuple(target.shape)}")
    bad = ~torch.isfinite(pred)
    if bad.any():
        seq = first + int(bad.flatten(1).any(1).nonzero()[0])
        raise BenchError(f"method {name!r} predicted non-finite values (NaN or inf) for test sequence {seq}")
    low, high = float(pred.min()), float(pred.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise BenchError(
            f"method {name!r} predicted values in [{low:.4g}, {high:.4g}], outside the frame range [0, 1]"
        )


def _describe_device(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "threads": torch.get_num_threads()}
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
