"""Trained weights shipped inside the package, so that a first run scores methods without training.

``bench/weights/manifest.json`` lists one entry per file ``bench/weights/<dataset>/<method>-<preset>.pt``:
method, preset, dataset, frame shape, training steps, seed, training minutes, the git commit of the code
that trained it, the exact ``bench train`` command that reproduces it, the storage dtype and the
file's SHA-256. A file holds inference state only: the model's ``state_dict`` without the keys the
method declares training-only (:meth:`bench.method.Method.is_training_only`: a GAN's discriminator,
Srivastava's reconstruction decoder, training-progress counters), no optimizer or RNG state, with
floating tensors stored in half precision where the entry says ``float16`` (chosen per file: only
where the drift check shows the results unchanged within tolerance); loading casts them back to the
model's dtype and leaves the training-only parts at their fresh initialisation (exactly those keys
may be absent; any other missing or unexpected key is refused by name).

``bench run`` resolves weights in this order (:func:`bench.train.trained_method`): the user's own
checkpoint, then a shipped file for the same method, preset, dataset and frame shape (used only with
the preset's own settings, no ``--set``), then training; ``--retrain`` skips the first two. A shipped
file whose SHA-256 differs from the manifest's is refused.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .checkpoint import misfit, sha256
from .errors import BenchError
from .method import Method
from .registry import methods

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


def config_differences(shipped: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The settings in which a shipped file's config (its ``steps`` being the steps it trained) differs
    from the one asked for, as ``key: shipped vs wanted``; the weights serve only when there are none."""
    def plain(config: dict[str, Any]) -> dict[str, Any]:  # tuples and lists alike, as JSON stores them
        return json.loads(json.dumps(config, default=str))

    shipped, wanted = plain(shipped), plain(wanted)
    return [f"{key}: {shipped.get(key)!r} vs {wanted.get(key)!r}"
            for key in sorted(set(shipped) | set(wanted)) if shipped.get(key) != wanted.get(key)]


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


def restore(method: Method, entry: Entry, root: Path = SHIPPED_DIR) -> None:
    """Load the verified weights of ``entry`` into ``method`` (cast to its dtype)."""
    fit(method, load(entry, root), entry, root)


def fit(method: Method, payload: dict[str, Any], entry: Entry, root: Path = SHIPPED_DIR) -> None:
    """Load a shipped file's ``payload`` (from :func:`load`) into ``method``, or say why it does not fit:
    only the method's training-only keys may be absent, and no key may be foreign to it."""
    state, own = payload["model"], method.state_dict()
    missing = [key for key in own if key not in state and not method.is_training_only(key)]
    unexpected = [key for key in state if key not in own]
    problems = [f"{what} {', '.join(keys[:3])}{f' (and {len(keys) - 3} more)' if len(keys) > 3 else ''}"
                for what, keys in (("it lacks", missing), ("the method has no", unexpected)) if keys]
    culprit = f"shipped weights {entry.path(root)} do not fit method {entry.method!r}"
    if problems:
        raise BenchError(f"{culprit}: {'; '.join(problems)}")
    try:
        method.load_state_dict(state, strict=False)  # the keys are checked; this still checks the shapes
    except RuntimeError as error:
        raise BenchError(f"{culprit}: {misfit(error)}") from None


def inference_state(method: str, model: dict[str, Any]) -> dict[str, Any]:
    """The entries of a ``state_dict`` of ``method`` (a name) that ``predict`` reads: all but its
    training-only ones."""
    cls = methods.get(method)
    return {key: value for key, value in model.items() if not cls.is_training_only(key)}


def export(checkpoint: dict[str, Any], *, dtype: torch.dtype, command: str, commit: str,
           root: Path = SHIPPED_DIR) -> Entry:
    """Write the inference state of a training ``checkpoint`` into ``root`` and add it to the manifest
    (replacing an entry for the same method, preset, dataset and frame shape)."""
    model = {key: value.to(dtype) if value.is_floating_point() else value
             for key, value in inference_state(checkpoint["method"], checkpoint["model"]).items()}
    payload = {"format": FORMAT, **{key: checkpoint[key] for key in ("method", "preset", "dataset", "frame_shape", "step")},
               "config": {**checkpoint["config"], "steps": int(checkpoint["step"])}, "model": model}
    entry = Entry(
        method=checkpoint["method"], preset=checkpoint["preset"], dataset=checkpoint["dataset"],
        frame_shape=list(checkpoint["frame_shape"]), steps=int(checkpoint["step"]), seed=int(checkpoint["seed"]),
        train_minutes=round(float(checkpoint.get("train_seconds", 0.0)) / 60, 1), commit=commit, command=command,
        dtype=str(dtype).removeprefix("torch."), sha256="",
        file=f"{checkpoint['dataset']}/{checkpoint['method']}-{checkpoint['preset']}.pt",
    )
    return _write(entry, payload, root)


def strip(entry: Entry, root: Path = SHIPPED_DIR) -> Entry:
    """Rewrite the verified shipped file of ``entry`` without its method's training-only tensors (for
    files shipped before they were left out); every manifest field but the SHA-256 stays. A file
    without such tensors is left as it is."""
    payload = load(entry, root)
    model = inference_state(entry.method, payload["model"])
    if len(model) == len(payload["model"]):
        return entry
    return _write(entry, {**payload, "model": model}, root)


def _write(entry: Entry, payload: dict[str, Any], root: Path) -> Entry:
    """Save ``payload`` atomically as ``entry``'s file and list it in the manifest with its SHA-256
    (replacing an entry for the same file)."""
    path = entry.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    entry = replace(entry, sha256=sha256(path))
    entries = [e for e in manifest(root) if e.file != entry.file] + [entry]
    entries.sort(key=lambda e: e.file)
    (root / "manifest.json").write_text(json.dumps({"format": FORMAT, "weights": [asdict(e) for e in entries]},
                                                   indent=1) + "\n")
    return entry
