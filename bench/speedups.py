"""Opt-in training speed-ups: mixed precision and ``torch.compile``. The defaults (fp32, eager) keep
results comparable across machines; the options chosen are recorded in checkpoints and results.

* ``precision``:

  - ``fp32`` (default): true float32. On CUDA, TF32 (which PyTorch allows for convolutions by
    default) is switched off while a step runs, so a GPU trains like a CPU up to summation order;
  - ``bf16``: ``torch.autocast`` to bfloat16 around each training step. Weights, gradients and the
    optimizers' state stay float32 (autocast casts per op; the optimizers see float32 gradients);
  - ``fp16``: autocast to float16, plus one ``GradScaler`` per optimizer, which
    :meth:`bench.method.Method.optimize` applies. Refused under ``torchrun``: the replicas would
    have to agree on skipping a step whose gradients overflowed, which the gradient averaging of
    :mod:`bench.distributed` does not do (bf16 needs no scaler and works there).

* ``compile``: the method's ``training_step`` goes through ``torch.compile`` (TorchDynamo +
  Inductor): the forward pass and its backward become fused kernels; the graph breaks at
  ``loss.backward()`` and at the ``.item()`` of the logged losses. The first steps compile (minutes
  for a deep recurrent model), later ones reuse the kernels. Where the backend cannot run (no C++
  compiler for the CPU, no Triton for the GPU), a one-line message says why and training goes on
  eagerly.

Evaluation (``predict``) always runs in float32, eagerly.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .errors import BenchError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Speedups:
    """The training options: ``precision`` (a key of :data:`PRECISIONS`) and ``compile``."""

    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r}; use {', '.join(PRECISIONS)}")

    def check(self, device: torch.device, processes: int = 1) -> None:
        """Refuse, in one sentence, a precision that ``device`` (or data-parallel training) cannot run."""
        if self.precision == "fp32":
            return
        if device.type not in ("cpu", "cuda"):
            raise BenchError(f"--precision {self.precision} needs a cpu or cuda device, not {device.type}")
        if self.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise BenchError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                             "use fp16 or fp32")
        if self.precision == "fp16" and processes > 1:
            raise BenchError("--precision fp16 is not supported with several processes (torchrun); use bf16")

    @contextlib.contextmanager
    def step_context(self, device: torch.device) -> Iterator[None]:
        """Around one training step: autocast for bf16/fp16; true fp32 (TF32 off) for fp32 on CUDA."""
        if self.precision != "fp32":
            with torch.autocast(device.type, dtype=PRECISIONS[self.precision]):
                yield
            return
        if device.type != "cuda":
            yield
            return
        backends = (torch.backends.cudnn, torch.backends.cuda.matmul)
        before = [backend.allow_tf32 for backend in backends]
        for backend in backends:
            backend.allow_tf32 = False
        try:
            yield
        finally:
            for backend, allowed in zip(backends, before):
                backend.allow_tf32 = allowed

    def metadata(self) -> dict[str, Any]:
        return {"precision": self.precision, "compile": self.compile}


def compiled(step: Callable, device: torch.device, echo: Callable[[str], Any]) -> tuple[Callable, bool]:
    """``step`` through ``torch.compile`` and ``True``, or ``step`` itself and ``False`` (saying why to
    ``echo``) where the compiler backend cannot run on ``device``. Compiled code from earlier calls
    in this process is dropped first: one compiled training step at a time."""
    reason = compile_unavailable(device.type)
    if reason:
        echo(f"--compile: torch.compile cannot run on {device.type} here ({reason}); training eagerly.")
        return step, False
    torch._dynamo.reset()
    _quiet_item_graph_breaks()
    return torch.compile(step), True


@functools.cache
def compile_unavailable(device_type: str) -> str | None:
    """Why ``torch.compile`` cannot run on ``device_type`` (a tiny function is compiled and run to
    find out; it takes seconds once the compiler's caches are warm), or ``None`` when it can."""
    if device_type not in ("cpu", "cuda"):
        return f"no compiler backend for {device_type} tensors"
    if not torch._dynamo.is_dynamo_supported():
        return "TorchDynamo does not support this Python version"
    try:
        probe = torch.compile(lambda x: torch.tanh(x) * 2 + 1)
        probe(torch.ones(8, device=device_type))
    except Exception as error:  # the backend fails in many ways: missing compiler, Triton, headers
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"
    finally:
        torch._dynamo.reset()
    return None


class _DropItemBreaks(logging.Filter):
    """Drop Dynamo's warning about the graph break at ``.item()``: every training step logs its
    losses that way, on purpose, so the warning says nothing to a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Graph break from `Tensor.item()`" not in record.getMessage()


def _quiet_item_graph_breaks() -> None:
    logger = logging.getLogger("torch._dynamo.variables.tensor")
    if not any(isinstance(f, _DropItemBreaks) for f in logger.filters):
        logger.addFilter(_DropItemBreaks())


def time_steps(step: Callable[[torch.Tensor], Any], batches: Iterator[torch.Tensor], device: torch.device,
               speedups: Speedups, count: int) -> tuple[list[float], list[float]]:
    """Seconds of ``count`` calls of ``step`` on the next batches under ``speedups``' step context
    (CUDA synchronised), and the seconds each call waited for its batch beforehand."""
    compute, waits = [], []
    for _ in range(count):
        began = time.perf_counter()
        batch = next(batches)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        fed = time.perf_counter()
        with speedups.step_context(device):
            step(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        compute.append(time.perf_counter() - fed)
        waits.append(fed - began)
    return compute, waits
