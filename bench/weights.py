"""Trained weights shipped inside the package, so that a first run scores methods without training.

``bench/weights/manifest.json`` lists one entry per file ``bench/weights/<dataset>/<method>-<preset>.pt``:
method, preset, dataset, frame shape, training steps, seed, training minutes, the git commit of the code
that trained it, the exact ``bench train`` command that reproduces it, the storage dtype and the
file's SHA-256. A file holds inference state only (the model's ``state_dict``, no optimizer or RNG
state), with floating tensors stored in half precision where the entry says ``float16`` (chosen per
file: only where the drift check shows the results unchanged within tolerance); loading casts them
back to the model's dtype.

``bench run`` resolves weights in this order (:func:`bench.train.trained_method`): the user's own
checkpoint, then a shipped file for the same method, preset, dataset and frame shape (used only with
the preset's own settings, no ``--set``), then training; ``--retrain`` skips the first two. A shipped
file whose SHA-256 differs from the manifest's is refused.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import misfit, sha256
from .errors import BenchError

FORMAT = "vpbench-weights/1"
SHIPPED_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Entry:
    """One shipped weights file, as the manifest describes it."""

    method: str
    preset: str
    dataset: str
    frame_shape: list[int]
    steps: int
    seed: int
    train_minutes: float
    commit: str
    command: str
    dtype: str
    sha256: str
    file: str  # relative to the weights folder

    def path(self, root: Path = SHIPPED_DIR) -> Path:
        return root / self.file

    def describe(self) -> str:
        return (f"shipped weights {self.file} ({self.steps} steps, seed {self.seed}, "
                f"{self.train_minutes:.0f} min of training; reproduce with `{self.command}`)")


def manifest(root: Path = SHIPPED_DIR) -> list[Entry]:
    """The manifest's entries (none when the package ships no weights)."""
    path = root / "manifest.json"
    if not path.is_file():
        return []
    try:
        return [Entry(**item) for item in json.loads(path.read_text())["weights"]]
    except (ValueError, KeyError, TypeError) as error:
        raise BenchError(f"the shipped-weights manifest {path} is damaged ({error}); reinstall vpbench") from None


def find(method: str, preset: str, dataset: str, frame_shape, root: Path = SHIPPED_DIR) -> Entry | None:
    for entry in manifest(root):
        key = (entry.method, entry.preset, entry.dataset, list(entry.frame_shape))
        if key == (method, preset, dataset, list(frame_shape)):
            return entry
    return None


def load(entry: Entry, root: Path = SHIPPED_DIR) -> dict[str, Any]:
    """The file of ``entry``, after checking that its SHA-256 matches the manifest's."""
    path = entry.path(root)
    if not path.is_file():
        raise BenchError(f"shipped weights {path} listed in the manifest are missing; reinstall vpbench or pass --retrain")
    digest = sha256(path)
    if digest != entry.sha256:
        raise BenchError(
            f"shipped weights {path} do not match their SHA-256 in the manifest (expected {entry.sha256[:16]}..., "
            f"got {digest[:16]}...): the file was modified or damaged; reinstall vpbench, or pass --retrain to "
            "train your own"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def restore(method: torch.nn.Module, entry: Entry, root: Path = SHIPPED_DIR) -> None:
    """Load the verified weights of ``entry`` into ``method`` (cast to its dtype)."""
    fit(method, load(entry, root), entry, root)


def fit(method: torch.nn.Module, payload: dict[str, Any], entry: Entry, root: Path = SHIPPED_DIR) -> None:
    """Load a shipped file's ``payload`` (from :func:`load`) into ``method``, or say why it does not fit."""
    try:
        method.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise BenchError(f"shipped weights {entry.path(root)} do not fit method {entry.method!r}: "
                         f"{misfit(error)}") from None


def export(checkpoint: dict[str, Any], *, dtype: torch.dtype, command: str, commit: str,
           root: Path = SHIPPED_DIR) -> Entry:
    """Write the inference state of a training ``checkpoint`` into ``root`` and add it to the manifest
    (replacing an entry for the same method, preset, dataset and frame shape)."""
    model = {key: value.to(dtype) if value.is_floating_point() else value
             for key, value in checkpoint["model"].items()}
    relative = f"{checkpoint['dataset']}/{checkpoint['method']}-{checkpoint['preset']}.pt"
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, **{key: checkpoint[key] for key in ("method", "preset", "dataset", "frame_shape", "step")},
               "config": {**checkpoint["config"], "steps": int(checkpoint["step"])}, "model": model}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    entry = Entry(
        method=checkpoint["method"], preset=checkpoint["preset"], dataset=checkpoint["dataset"],
        frame_shape=list(checkpoint["frame_shape"]), steps=int(checkpoint["step"]), seed=int(checkpoint["seed"]),
        train_minutes=round(float(checkpoint.get("train_seconds", 0.0)) / 60, 1), commit=commit, command=command,
        dtype=str(dtype).removeprefix("torch."), sha256=sha256(path), file=relative,
    )
    entries = [e for e in manifest(root) if e.file != relative] + [entry]
    entries.sort(key=lambda e: e.file)
    (root / "manifest.json").write_text(json.dumps({"format": FORMAT, "weights": [asdict(e) for e in entries]},
                                                   indent=1) + "\n")
    return entry
