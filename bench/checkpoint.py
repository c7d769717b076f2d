"""Training checkpoints: ``checkpoints/<dataset>/<method>-<preset>.pt``, atomic and verifiable.

A checkpoint is a plain dict (tensors, numbers, strings, lists, dicts) so that it loads with
``torch.load(weights_only=True)``: no pickled code ever runs. It holds the method's weights and
optimizer states, the step reached, the RNG states, the config, the frame shape and provenance.

Saving writes a snapshot ``<method>-<preset>.step<N>.pt`` through a temporary file and an atomic
rename, then points ``<method>-<preset>.pt`` at it (a hard link swapped in by a second rename, or a
copy where links are unsupported), and deletes all but the newest ``keep`` snapshots. A process
killed at any moment therefore leaves the previous complete checkpoint (or the new one) under the
main name, never a half-written file; a leftover temporary file is removed by the next save.
Whoever trains holds the checkpoint's lock (:func:`lock`), so two processes never write one checkpoint.

A file that does not load is named with what is wrong with it in plain words (torch's own message
suggests ``weights_only=False``, which would run any code in the file: never repeated here).
"""
from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import locks, storage
from .errors import BenchError
from .method import Method

FORMAT = "vpbench-checkpoint/1"
REQUIRED = ("method", "preset", "dataset", "frame_shape", "config", "step", "model", "optimizers", "rng")
ADVICE = "pass another --checkpoint-dir, or delete it to train from scratch"


def default_dir() -> Path:
    """``$BENCH_CHECKPOINT_DIR``, else ``checkpoints/`` in the working directory."""
    return Path(os.environ.get("BENCH_CHECKPOINT_DIR") or "checkpoints")


def checkpoint_path(dataset: str, method: str, preset: str, directory: str | os.PathLike | None = None) -> Path:
    return Path(directory or default_dir()) / dataset / f"{method}-{preset}.pt"


def lock(path: Path):
    """The checkpoint's exclusive lock (a context manager), refused at once while another process holds it."""
    return locks.exclusive(path, f"checkpoint {path}", "wait for that run to finish, or pass another --checkpoint-dir")


def expected_bytes(method: Method, path: Path) -> int:
    """About the size of ``method``'s next checkpoint at ``path``: the present file's size, else its
    weights three times over (weights and two optimizer moments, as with Adam)."""
    if path.exists():
        return path.stat().st_size
    return 3 * sum(t.numel() * t.element_size() for t in method.state_dict().values())


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
    write(tmp, checkpoint)
    os.replace(tmp, snapshot)
    alias = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        os.link(snapshot, alias)
    except OSError:
        shutil.copyfile(snapshot, alias)
    os.replace(alias, path)
    storage.fsync_dir(path.parent)
    for old in snapshots(path)[:-keep]:
        old.unlink(missing_ok=True)


def write(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` to the new file ``path``, flushed to disk and checked to load weights-only;
    on any failure no file is left."""
    try:
        with open(path, "xb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        torch.load(path, map_location="cpu", weights_only=True)  # what is renamed into place must load
    except BaseException:
        path.unlink(missing_ok=True)
        raise


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
    advice: str = ADVICE,
    shipped: bool = False,
) -> dict[str, Any]:
    """Read and check a checkpoint (``weights_only=True``); refuse one of another method, preset or
    frame shape than given, and name the file when it is missing, damaged or not a checkpoint, ending
    with ``advice`` (what the user can do about the file). ``shipped``: a shipped weights file
    (``bench.weights``, inference state only) is accepted too and returned as it is."""
    from .weights import FORMAT as SHIPPED_FORMAT  # weights builds on this module

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        raise BenchError(f"checkpoint {path} is damaged or not a vpbench checkpoint: {_reason(error, path)}; "
                         f"{advice}") from None
    if shipped and isinstance(checkpoint, dict) and checkpoint.get("format") == SHIPPED_FORMAT:
        if checkpoint.get("method") != method or "model" not in checkpoint:
            raise BenchError(f"weights {path} hold method {checkpoint.get('method')!r}, not {method!r}; {advice}")
        return checkpoint
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise BenchError(f"checkpoint {path} is not a vpbench checkpoint (format {FORMAT!r} expected); {advice}")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise BenchError(f"checkpoint {path} is incomplete: it lacks {', '.join(missing)}; {advice}")
    expected = {"method": method, "preset": preset, "frame_shape": list(frame_shape) if frame_shape else None}
    for key, want in expected.items():
        if want is not None and checkpoint[key] != want:
            raise BenchError(
                f"checkpoint {path} holds {key.replace('_', ' ')} {checkpoint[key]!r}, not {want!r}; {advice}"
            )
    return checkpoint


def restore(method: Method, checkpoint: dict[str, Any], path: Path, *, rng: bool = True) -> None:
    """Load weights, optimizer states and (``rng``) the RNG states of ``checkpoint`` into ``method``."""
    try:
        method.load_state_dict(checkpoint["model"])
        method.load_optimizer_state_dict(checkpoint["optimizers"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise BenchError(f"checkpoint {path} does not fit method {method.name!r} as configured: {misfit(error)}; "
                         f"{ADVICE}") from None
    if rng:
        restore_rng(checkpoint["rng"])


def load_weights(method: Method, path: str | os.PathLike) -> dict[str, Any]:
    """Initialise ``method`` from another run's weights only (``--init-from``): a training checkpoint or
    a shipped weights file (``bench/weights``) of the same method, any preset, dataset or frame shape
    whose tensors fit. Training-progress counters (``method.progress_buffers``) keep their fresh values,
    so learning-rate schedules start over; so do the training-only parts a shipped file leaves out
    (``method.training_only``, e.g. a discriminator), which start from their fresh initialisation."""
    advice = "pass another --init-from file"
    checkpoint = load(path, method=method.name, advice=advice, shipped=True)
    state = dict(checkpoint["model"])
    own = method.state_dict()
    for name in method.progress_buffers:  # a new run starts its schedules from the beginning
        state[name] = own[name]
    for name in own:
        if name not in state and method.is_training_only(name):
            state[name] = own[name]
    try:
        method.load_state_dict(state)
    except RuntimeError as error:
        raise BenchError(f"weights in {path} do not fit method {method.name!r} as configured: {misfit(error)}; "
                         f"{advice}") from None
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


def _reason(error: Exception, path: Path) -> str:
    """What is wrong with a file ``torch.load`` refused, in plain words."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    if path.stat().st_size == 0:
        return "the file is empty"
    if "WeightsUnpickler error:" in text:  # the only useful part of torch's essay
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0].split(" Please use")[0]
        return f"it holds something other than tensors and plain data ({detail.strip().rstrip('.')})"
    with open(path, "rb") as handle:
        zipped = handle.read(4) == b"PK\x03\x04"  # torch.save's format is a zip archive
    if zipped or "zip archive" in text:
        return "it is not a complete PyTorch archive (truncated, or overwritten by other data)"
    if isinstance(error, (KeyError, EOFError, pickle.UnpicklingError)):
        return "it is not a PyTorch file"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def misfit(error: Exception) -> str:
    """The first problem of a ``load_state_dict`` error, in short, and how many more there are."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    details = [line for line in lines if not line.startswith("Error(s) in loading state_dict")] or lines[:1]
    first = re.sub(
        r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[.*?\])\) from checkpoint, "
        r"the shape in current model is torch\.Size\((\[.*?\])\)\.?",
        r"\1 has shape \2 in the checkpoint but \3 in the method", details[0] if details else type(error).__name__,
    ).rstrip(". ")
    if len(first) > 300:
        first = first[:297] + "..."
    return first + (f" (and {len(details) - 1} more differences)" if len(details) > 1 else "")


def _snapshot_name(path: Path, step: int) -> Path:
    return path.parent / f"{path.stem}.step{int(step):09d}.pt"
