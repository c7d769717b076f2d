"""Training checkpoints: ``checkpoints/<dataset>/<method>-<preset>.pt``, atomic and verifiable.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts) so that it loads with
``torch.load(weights_only=True)``: no pickled code ever runs. It holds the method's weights and
optimizer states, the step reached, the RNG states, the config, the frame shape and provenance.

Saving writes a snapshot ``<method>-<preset>.step<N>.pt`` through a temporary file and an atomic
rename, then points ``<method>-<preset>.pt`` at it (a hard link swapped in by a second rename, or a
copy where links are unsupported), and deletes all but the newest ``keep`` snapshots. A process
killed at any moment therefore leaves the previous complete checkpoint (or the new one) under the
main name, never a half-written file; a leftover temporary file is removed by the next save.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import BenchError
from .method import Method

FORMAT = "vpbench-checkpoint/1"
REQUIRED = ("method", "preset", "dataset", "frame_shape", "config", "step", "model", "optimizers", "rng")


def default_dir() -> Path:
    """``$BENCH_CHECKPOINT_DIR``, else ``checkpoints/`` in the working directory."""
    return Path(os.environ.get("BENCH_CHECKPOINT_DIR") or "checkpoints")


def checkpoint_path(dataset: str, method: str, preset: str, directory: str | os.PathLike | None = None) -> Path:
    return Path(directory or default_dir()) / dataset / f"{method}-{preset}.pt"


def log_path(checkpoint: Path) -> Path:
    """The training log (CSV) beside ``checkpoint``."""
    return checkpoint.with_suffix(".csv")


def pack(method: Method, *, preset: str, dataset: str, step: int, **extra: Any) -> dict[str, Any]:
    """Everything needed to resume ``method`` at ``step``; ``extra`` adds provenance (seed, ...)."""
    return {
        "format": FORMAT,
        "method": method.name,
        "preset": preset,
        "dataset": dataset,
        "frame_shape": list(method.frame_shape),
        "config": dict(method.config),
        "step": int(step),
        "model": method.state_dict(),
        "optimizers": method.optimizer_state_dict(),
        "rng": capture_rng(),
        "torch_version": str(torch.__version__),
        **extra,
    }


def save(path: Path, checkpoint: dict[str, Any], keep: int = 5) -> None:
    """Write ``checkpoint`` atomically as ``path`` and keep its newest ``keep`` step snapshots."""
    if keep < 1:
        raise BenchError(f"checkpoints to keep must be at least 1, got {keep}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.stem}.*.tmp"):
        stale.unlink(missing_ok=True)
    snapshot = _snapshot_name(path, checkpoint["step"])
    tmp = path.parent / f".{snapshot.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        torch.load(tmp, map_location="cpu", weights_only=True)  # what is renamed into place must load
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, snapshot)
    alias = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        os.link(snapshot, alias)
    except OSError:
        shutil.copyfile(snapshot, alias)
    os.replace(alias, path)
    _fsync_dir(path.parent)
    for old in snapshots(path)[:-keep]:
        old.unlink(missing_ok=True)


def snapshots(path: Path) -> list[Path]:
    """The step snapshots of ``path``, oldest first."""
    pattern = re.compile(re.escape(path.stem) + r"\.step(\d+)\.pt")
    found = [(int(m.group(1)), p) for p in path.parent.glob(f"{path.stem}.step*.pt") if (m := pattern.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def load(
    path: str | os.PathLike,
    *,
    method: str | None = None,
    preset: str | None = None,
    frame_shape: tuple[int, ...] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read and check a checkpoint (``weights_only=True``); refuse one of another method, preset or
    frame shape than given, and name the file when it is missing, corrupt or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        reason = _reason(error)
        raise BenchError(f"checkpoint {path} is corrupt or not a vpbench checkpoint ({reason}); delete it or pass another file") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise BenchError(f"checkpoint {path} is not a vpbench checkpoint (format {FORMAT!r} expected)")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise BenchError(f"checkpoint {path} is incomplete: it lacks {', '.join(missing)}")
    expected = {"method": method, "preset": preset, "frame_shape": list(frame_shape) if frame_shape else None}
    for key, want in expected.items():
        if want is not None and checkpoint[key] != want:
            raise BenchError(
                f"checkpoint {path} holds {key.replace('_', ' ')} {checkpoint[key]!r}, not {want!r}; "
                "pass another --checkpoint-dir or delete the file"
            )
    return checkpoint


def restore(method: Method, checkpoint: dict[str, Any], path: Path, *, rng: bool = True) -> None:
    """Load weights, optimizer states and (``rng``) the RNG states of ``checkpoint`` into ``method``."""
    try:
        method.load_state_dict(checkpoint["model"])
        method.load_optimizer_state_dict(checkpoint["optimizers"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise BenchError(f"checkpoint {path} does not fit method {method.name!r}: {str(error).splitlines()[0]}") from None
    if rng:
        restore_rng(checkpoint["rng"])


def load_weights(method: Method, path: str | os.PathLike) -> dict[str, Any]:
    """Initialise ``method`` from another run's weights only (``--init-from``): same method, any
    preset, dataset or frame shape whose tensors fit. Training-progress counters
    (``method.progress_buffers``) keep their fresh values, so learning-rate schedules start over."""
    checkpoint = load(path, method=method.name)
    state = dict(checkpoint["model"])
    own = method.state_dict()
    for name in method.progress_buffers:  # a new run starts its schedules from the beginning
        state[name] = own[name]
    try:
        method.load_state_dict(state)
    except RuntimeError as error:
        raise BenchError(f"weights in {path} do not fit method {method.name!r} as configured: {str(error).splitlines()[0]}") from None
    return checkpoint


def capture_rng() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states, in weights-only-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]][: torch.cuda.device_count()])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(error: Exception) -> str:
    """The informative line of a ``torch.load`` error (its weights-only message is a long essay)."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.split(" Please use")[0]
    return lines[0] if lines else type(error).__name__


def _snapshot_name(path: Path, step: int) -> Path:
    return path.parent / f"{path.stem}.step{int(step):09d}.pt"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
