"""The training loop: ``dataset.train_clips`` -> ``method.training_step``, checkpointed and resumable.

* Batches are ``batch_size`` clips of 20 frames, converted to float [0, 1] on the device. They are
  drawn in a background worker (:mod:`bench.batches`; ``data_workers``), the same clips as drawing
  in-process; the time a step waits for its batch is reported (``Summary.data_seconds``).
* ``precision`` (fp32, bf16, fp16) and ``compile`` are the speed-ups of :mod:`bench.speedups`; both
  default to plain fp32 eager and are recorded in the checkpoint. A resumed run keeps the
  checkpoint's precision unless told otherwise, and refuses another one (like a setting).
* Every ``every`` steps and at the end, the checkpoint is saved (:mod:`bench.checkpoint`), keeping the
  newest ``keep`` snapshots (the authors: every 100 iterations, last 5 kept). Ctrl-C saves first.
* Every ``log_every`` steps a row goes to the CSV beside the checkpoint: the step, the mean of each
  loss over the interval, the interval's wall time, steps/s and sequences/s. The log's columns are
  those of the first row. A progress bar shows loss, steps/s, sequences/s and the ETA.
* A run resumes from its checkpoint: weights, optimizer and RNG states, step. Settings not given
  again are taken from the checkpoint; settings that contradict it (other than ``steps``) are refused.
* Seeding: the weights are initialised after seeding torch, numpy and Python with ``seed``; the
  data stream is ``train_clips(20, seed)``. A resumed run draws from a stream seeded by
  ``(seed, step)`` instead of replaying the clips it already used, so a CPU run is repeatable run
  for run, and resumption is repeatable too, but an interrupted run is not bit-identical to an
  uninterrupted one.
* Under ``torchrun`` (see :mod:`bench.distributed`), ``batch_size`` is the global batch: every
  process draws the same clips and trains on its share, gradients are averaged, and only rank 0
  writes. Results match a one-process run up to floating-point summation order.
* Faults: before the first step, the checkpoint folder must be writable with room for a checkpoint,
  and the checkpoint's lock is taken for the whole run (a second trainer of the same checkpoint is
  refused at once, naming the first). A checkpoint that cannot be saved later (a disk filled up) is
  written to a recovery folder instead, and the error says where.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from . import distributed, storage, weights
from .batches import training_batches
from .dataset import Dataset
from .errors import BenchError
from .method import Method
from .protocol import CLIP_LENGTH
from .registry import methods as method_registry
from .runner import choose_device
from .speedups import Speedups, compiled

def say(line: str) -> None:
    """The default ``echo`` of training messages: a line on standard error (commands pass their own)."""
    print(line, file=sys.stderr, flush=True)


def device_for(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """:func:`bench.runner.choose_device`, with a bare ``cuda`` meaning this process's GPU under torchrun."""
    device = choose_device(name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device


@dataclass
class Summary:
    """What one call of :func:`train` did."""

    checkpoint: Path
    start_step: int
    step: int
    seconds: float
    batch_size: int
    last_losses: dict[str, float]
    data_seconds: float = 0.0  # time the steps waited for their batches

    @property
    def steps_per_s(self) -> float:
        return (self.step - self.start_step) / self.seconds if self.seconds > 0 else 0.0

    @property
    def sequences_per_s(self) -> float:
        return self.steps_per_s * self.batch_size

    def describe(self) -> str:
        if self.step == self.start_step:
            return f"Already trained to step {self.step}: {self.checkpoint}"
        losses = ", ".join(f"{key} {value:.4g}" for key, value in self.last_losses.items())
        waited = 100 * self.data_seconds / self.seconds if self.seconds > 0 else 0.0
        return (
            f"Trained steps {self.start_step}->{self.step} in {self.seconds:.1f} s: "
            f"{self.steps_per_s:.3g} steps/s, {self.sequences_per_s:.3g} sequences/s ({losses}), "
            f"{waited:.1f}% of the time waiting for data. "
            f"Checkpoint: {self.checkpoint}; log: {ckpt.log_path(self.checkpoint)}"
        )


def train(
    method_name: str,
    dataset: Dataset,
    *,
    preset: str,
    overrides: dict[str, Any] | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    every: int = 100,
    keep: int = 5,
    log_every: int = 10,
    progress: bool = True,
    echo: Callable[[str], Any] = say,
    on_save: Callable[[Path, int], Any] | None = None,
    precision: str | None = None,
    compile: bool = False,
    data_workers: int = 1,
) -> Summary:
    """Train ``method_name`` (``preset`` with ``overrides``) on ``dataset`` up to ``steps`` (default:
    the preset's budget), resuming from its checkpoint under ``checkpoint_dir`` when there is one.
    ``precision`` (default fp32, or the checkpoint's) and ``compile``: see :mod:`bench.speedups`;
    ``data_workers``: background processes drawing the clips (0: in this process).

    ``on_save(checkpoint, step)`` runs after every periodic save (e.g. to evaluate the snapshot for a
    learning curve); its time is not counted as training time and the RNG states are restored after
    it, so the run trains exactly as it would without it."""
    if every < 1 or log_every < 1:
        raise BenchError("--checkpoint-every and --log-every must be at least 1")
    world = distributed.world_from_env()
    dev = device_for(device, world.local_rank)
    distributed.init(world, dev)
    held = contextlib.ExitStack()  # the checkpoint's lock
    try:
        echo = echo if world.is_main else _silent
        cls = method_registry.get(method_name)
        if not cls.trainable:
            raise BenchError(f"method {method_name!r} is not trainable; it needs no checkpoint")
        dataset.check_data(("train",))  # before the checkpoint's folder, lock or log is touched
        path = ckpt.checkpoint_path(dataset.name, method_name, preset, checkpoint_dir)
        if world.is_main:  # the only writer: checks its folder and holds the checkpoint's lock
            storage.ensure_writable(path.parent, "checkpoint folder", "--checkpoint-dir")
            held.enter_context(ckpt.lock(path))
        frame_shape = tuple(dataset.frame_shape)
        explicit = dict(overrides or {})
        explicit.update({k: v for k, v in (("steps", steps), ("batch_size", batch_size)) if v is not None})
        previous = ckpt.load(path, method=method_name, preset=preset, frame_shape=frame_shape) if path.exists() else None
        config = _config(cls, preset, explicit, previous, path)
        if config["batch_size"] % world.size:
            raise BenchError(f"--batch-size {config['batch_size']} is not divisible by the {world.size} processes")
        speed = Speedups(_precision(precision, previous, path), compile)
        speed.check(dev, world.size)

        _seed_everything(seed)
        method = cls(frame_shape, config)
        _to_device(method, dev)
        if world.is_main:
            need = ckpt.expected_bytes(method, path)
            storage.ensure_space(path.parent, need, "checkpoint folder", "--checkpoint-dir")
        start = 0
        if previous is not None:
            ckpt.restore(method, previous, path)  # load_state_dict copies onto the method's device
            start = previous["step"]
            note = f" (--init-from {init_from} applies only to a new run)" if init_from else ""
            if start < config["steps"]:
                echo(f"Resuming {method_name} ({preset}) from {path} at step {start}: training "
                     f"{config['steps'] - start} more steps to {config['steps']}{note}.")
        elif init_from:
            ckpt.load_weights(method, init_from)
            echo(f"Initialised {method_name} from the weights in {init_from}.")
        method.use_precision(speed.precision)
        for name, state in ((previous or {}).get("grad_scalers") or {}).items():
            if name in method.grad_scalers and state:
                method.grad_scalers[name].load_state_dict(state)
        if world.size > 1:
            distributed.replicate(method)
        run = _Run(method, dataset, path, preset, seed, world, dev, start, previous, init_from, speed, data_workers)
        return run.loop(config["steps"], config["batch_size"], every, keep, log_every, progress, echo, on_save)
    finally:
        held.close()
        distributed.shutdown()


@dataclass
class Trained:
    """A method ready to evaluate, and the weights it came from (none for an untrainable method)."""

    method: Method
    checkpoint: Path | None = None
    sha256: str | None = None
    step: int | None = None
    history: dict[str, Any] | None = None  # training seconds, sequences/s, seed, init_from (shipped: its manifest entry)
    source: str | None = None  # "checkpoint" (the user's own) or "shipped"

    def metadata(self) -> dict[str, Any]:
        """What a result's metadata records about these weights."""
        return {"weights": self.source, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
                "checkpoint_sha256": self.sha256, "trained_steps": self.step, "training": self.history}


def trained_method(
    method_name: str,
    dataset: Dataset,
    preset: str,
    *,
    overrides: dict[str, Any] | None = None,
    device: str | torch.device = "auto",
    checkpoint_dir: str | os.PathLike | None = None,
    train_missing: bool = True,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], Any] = say,
    precision: str | None = None,
    compile: bool = False,
    retrain: bool = False,
) -> Trained:
    """``method_name`` with trained weights for ``dataset``, from the first of: the user's checkpoint
    under ``checkpoint_dir`` (an unfinished one is trained on), the weights shipped in the package for
    the same preset and settings (saying so; skipped with ``retrain``), or a new training run with the
    budget of ``preset`` and ``overrides`` (saying so), with ``precision`` and ``compile``; training is
    refused when ``train_missing`` is off."""
    cls = method_registry.get(method_name)
    dev = device_for(device)
    frame_shape = tuple(dataset.frame_shape)
    if not cls.trainable:
        return Trained(cls(frame_shape, cls.resolve_config(preset, overrides)).to(dev))
    path = ckpt.checkpoint_path(dataset.name, method_name, preset, checkpoint_dir)
    found = ckpt.load(path, method=method_name, preset=preset, frame_shape=frame_shape) if path.exists() else None
    if found is None and not retrain:
        shipped = _shipped(cls, dataset, preset, overrides, echo)
        if shipped is not None:
            shipped.method.to(dev)
            return shipped
    config = _config(cls, preset, dict(overrides or {}), found, path)
    if found is None or found["step"] < config["steps"]:
        state = "is missing" if found is None else f"is at step {found['step']} of {config['steps']}"
        if not train_missing:
            raise BenchError(
                f"checkpoint {path} {state} and --no-train is set; train it with "
                f"`bench train --method {method_name} --dataset {dataset.name} --preset {preset}`"
            )
        dataset.check_data(("train",))
        if found is None:  # a resumed run says how many steps remain itself
            echo(f"Checkpoint {path} is missing: training {method_name} ({preset}) on {dataset.name} "
                 f"for {config['steps']} steps of batch {config['batch_size']} first.")
        train(method_name, dataset, preset=preset, overrides=overrides, seed=seed, checkpoint_dir=checkpoint_dir,
              device=dev, progress=progress, echo=echo, precision=precision, compile=compile)
        found = ckpt.load(path, method=method_name, preset=preset, frame_shape=frame_shape)
    method = cls(frame_shape, found["config"])
    ckpt.restore(method, found, path, rng=False)
    history = {key: found.get(key) for key in ("train_seconds", "sequences_per_s", "seed", "init_from", "compile")}
    history["precision"] = found.get("precision", "fp32")
    return Trained(method.to(dev), path, ckpt.sha256(path), found["step"], history, "checkpoint")


def _shipped(cls: type[Method], dataset: Dataset, preset: str, overrides: dict[str, Any] | None,
             echo: Callable[[str], Any]) -> Trained | None:
    """The method with the package's shipped weights for this dataset, preset and settings, if any."""
    entry = weights.find(cls.name, preset, dataset.name, dataset.frame_shape)
    if entry is None:
        return None
    payload = weights.load(entry)  # refuses a file whose SHA-256 differs from the manifest's
    config = cls.resolve_config(preset, overrides)
    if weights.config_differences(payload["config"], config):
        return None  # other settings (--set): these weights do not apply
    method = cls(tuple(dataset.frame_shape), payload["config"])
    weights.fit(method, payload, entry)
    echo(f"Using the {entry.describe()}; pass --retrain to train your own.")
    history = {key: getattr(entry, key) for key in ("train_minutes", "seed", "commit", "command", "dtype")}
    return Trained(method, entry.path(), entry.sha256, entry.steps, history, "shipped")


class _Run:
    """One training session's state: the method, where it writes, and the loop."""

    def __init__(self, method, dataset, path, preset, seed, world, device, start, previous, init_from, speed, workers):
        self.method, self.dataset, self.path, self.preset = method, dataset, path, preset
        self.seed, self.world, self.device, self.start = seed, world, device, start
        self.speed, self.workers, self.compiled = speed, workers, False
        self.seconds_before = float(previous.get("train_seconds", 0.0)) if previous else 0.0
        self.init_from = str(init_from) if init_from and previous is None else (previous or {}).get("init_from")
        self.step = start
        self.saved = start

    def loop(self, steps, batch_size, every, keep, log_every, progress, echo, on_save=None) -> Summary:
        if self.start >= steps:
            return Summary(self.path, self.start, self.start, 0.0, batch_size, {})
        log = _Log(ckpt.log_path(self.path), self.start) if self.world.is_main else None
        batches = training_batches(
            self.dataset, seed=_data_seed(self.seed, self.start), batch_size=batch_size, device=self.device,
            frame_shape=self.method.frame_shape, length=CLIP_LENGTH, workers=self.workers,
            rank=self.world.rank, processes=self.world.size,
        )
        training_step = self.method.training_step
        if self.speed.compile:
            training_step, self.compiled = compiled(training_step, self.device, echo)
        bar = tqdm(total=steps, initial=self.start, unit="step", dynamic_ncols=True,
                   disable=not (progress and self.world.is_main), desc=f"train {self.method.name}")
        self.method.train()
        began = interval_began = time.perf_counter()
        sums: dict[str, float] = {}
        count = 0
        waited = 0.0
        with _terminate_as_interrupt():
            try:
                for step in range(self.start + 1, steps + 1):
                    tic = time.perf_counter()
                    batch = next(batches)
                    waited += time.perf_counter() - tic
                    with self.speed.step_context(self.device):
                        losses = training_step(batch)
                    self._check_loss_scaling()
                    if self.world.size > 1:
                        losses = distributed.average(losses, self.device)
                    _check_finite(losses, self.method.name, step, self.path)
                    self.step = step
                    for key, value in losses.items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                    count += 1
                    bar.update(1)
                    if step % log_every == 0 or step == steps:
                        now = time.perf_counter()
                        means = {key: value / count for key, value in sums.items()}
                        rate = count / (now - interval_began)
                        bar.set_postfix({**{k: f"{v:.4g}" for k, v in means.items()}, "seq/s": f"{rate * batch_size:.3g}"})
                        if log:
                            log.write(step, means, now - interval_began, rate, rate * batch_size)
                        sums, count, interval_began = {}, 0, now
                    if step % every == 0 or step == steps:
                        self._save(log, keep, time.perf_counter() - began, batch_size)
                        if on_save is not None and self.world.is_main:
                            paused = time.perf_counter()
                            rng = ckpt.capture_rng()  # the callback must not change the training's random stream
                            on_save(self.path, step)
                            ckpt.restore_rng(rng)
                            paused = time.perf_counter() - paused
                            began, interval_began = began + paused, interval_began + paused
            except KeyboardInterrupt:
                if self.step > self.saved:
                    self._save(log, keep, time.perf_counter() - began, batch_size)
                    echo(f"Interrupted: saved step {self.step} to {self.path}.")
                raise
            finally:
                batches.close()  # stops the data workers
                bar.close()
                if log:
                    log.close()
        return Summary(self.path, self.start, self.step, time.perf_counter() - began, batch_size, means, waited)

    def _check_loss_scaling(self) -> None:
        if self.method.grad_scalers and not self.method.loss_scaling_used:
            raise BenchError(
                f"method {self.method.name!r} does not update its optimizers through Method.optimize, so "
                "--precision fp16 cannot scale its losses; use --precision bf16 or fp32"
            )

    def _save(self, log, keep: int, session_seconds: float, batch_size: int) -> None:
        """Save the checkpoint; when its folder fails (full, read-only), keep it in a recovery folder."""
        if not self.world.is_main:
            return
        checkpoint = ckpt.pack(
            self.method, preset=self.preset, dataset=self.dataset.name, step=self.step, seed=self.seed,
            init_from=self.init_from, world_size=self.world.size, device=str(self.device),
            precision=self.speed.precision, compile=self.compiled,
            grad_scalers={name: scaler.state_dict() for name, scaler in self.method.grad_scalers.items()},
            train_seconds=self.seconds_before + session_seconds,
            sequences_per_s=(self.step - self.start) * batch_size / session_seconds if session_seconds > 0 else 0.0,
        )
        try:
            log.flush()
            ckpt.save(self.path, checkpoint, keep=keep)
        except OSError as error:
            kept = storage.recover(self.path.name, lambda target: ckpt.write(target, checkpoint))
            where = (
                f"the training state at step {self.step} is kept in {kept}: move it to {self.path} to resume" if kept
                else f"no recovery copy could be written either; {self.path} still holds step {self.saved}"
            )
            raise BenchError(f"cannot save checkpoint {self.path} ({storage.describe(error)}); {where}") from None
        self.saved = self.step


class _Log:
    """The CSV training log; on resume it keeps only the rows up to the checkpoint's step."""

    def __init__(self, path: Path, start: int):
        self.path = path
        self.fields: list[str] | None = None
        kept: list[dict[str, str]] = []
        if start > 0 and path.exists():
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.fields = reader.fieldnames
                kept = [row for row in reader if _row_step(row) is not None and _row_step(row) <= start]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="") as handle:
            if self.fields:
                writer = csv.DictWriter(handle, self.fields)
                writer.writeheader()
                writer.writerows(kept)
        os.replace(tmp, path)
        self.handle = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.handle, self.fields, extrasaction="ignore") if self.fields else None

    def write(self, step: int, losses: dict[str, float], seconds: float, steps_per_s: float, seqs_per_s: float):
        if self.writer is None:
            self.fields = ["step", *losses, "seconds", "steps_per_s", "sequences_per_s"]
            self.writer = csv.DictWriter(self.handle, self.fields, extrasaction="ignore")
            self.writer.writeheader()
        self.writer.writerow({"step": step, **losses, "seconds": f"{seconds:.4f}",
                              "steps_per_s": f"{steps_per_s:.4f}", "sequences_per_s": f"{seqs_per_s:.4f}"})

    def flush(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def _config(cls: type[Method], preset: str, explicit: dict[str, Any], previous: dict | None, path: Path) -> dict:
    """The preset's config, then the checkpoint's (on resume), then the explicit settings."""
    base = cls.resolve_config(preset, explicit)
    for key in ("steps", "batch_size"):
        if key not in base:
            raise BenchError(f"method {cls.name!r} preset {preset!r} has no {key!r}, so it cannot be trained")
    if previous is None:
        return base
    for key, value in explicit.items():
        if key != "steps" and previous["config"].get(key, value) != value:
            raise BenchError(
                f"checkpoint {path} was trained with {key}={previous['config'][key]!r}, not {value!r}; "
                "drop that setting to resume, or pass another --checkpoint-dir to start a new run"
            )
    return {**base, **previous["config"], **explicit}


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Treat SIGTERM (``kill``, a cluster scheduler's stop) like Ctrl-C while training, so the steps
    done since the last checkpoint are saved before the process ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _precision(asked: str | None, previous: dict | None, path: Path) -> str:
    """The run's precision: as asked, else the checkpoint's, else fp32; one contradicting the checkpoint is refused."""
    trained = (previous or {}).get("precision", "fp32")
    if previous is not None and asked is not None and asked != trained:
        raise BenchError(
            f"checkpoint {path} was trained with --precision {trained}, not {asked}; drop --precision to "
            "resume, or pass another --checkpoint-dir to start a new run"
        )
    return asked or trained


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _data_seed(seed: int, start: int) -> int:
    return seed if start == 0 else int(np.random.SeedSequence([seed, start]).generate_state(1)[0])


def _to_device(method: Method, device: torch.device) -> None:
    """Move the weights, then the optimizer states (``load_state_dict`` casts them to the params' device)."""
    method.to(device)
    for optimizer in method.optimizers.values():
        optimizer.load_state_dict(optimizer.state_dict())


def _check_finite(losses: dict[str, float], name: str, step: int, path: Path) -> None:
    for key, value in losses.items():
        if not math.isfinite(float(value)):
            raise BenchError(f"training {name} diverged at step {step} ({key} = {value}); the last good checkpoint is {path}")


def _row_step(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


def _silent(_: str) -> None:
    pass
