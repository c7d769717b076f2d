"""What a method costs: parameters, FLOPs, peak memory, latency and training throughput.

:func:`measure_costs` returns a flat dict of scalars (the ``costs`` of a result's metadata and the
columns of ``bench profile``):

* ``params``: trainable parameters.
* ``predict_flops`` / ``predict_macs``: one ``predict(10 -> 10)`` of **one** sequence;
  ``train_flops`` / ``train_macs``: one ``training_step`` (forward, backward; the optimizer's
  elementwise update is not counted) at ``batch_size``. Counted with the formulas of
  :mod:`torch.utils.flop_counter` (:class:`FlopCount`): matrix products and convolutions only, at
  **2 FLOPs per multiply-add** (MACs = FLOPs / 2); elementwise ops, activations and pooling count 0.
* ``predict_peak_bytes`` / ``train_peak_bytes``: the most memory held during the call: the
  method's parameters and buffers (and, for training, its optimizer state), the input, and the peak
  of the tensors allocated during the call (activations, gradients). On CUDA that peak is the
  caching allocator's (``memory_source = "cuda allocator"``) and the tracker's figures are kept as
  ``*_peak_bytes_tracked`` for a cross-check; elsewhere it comes from :class:`LiveBytes`, a
  deterministic tracker of live tensor storages.
* ``latency_ms_median`` / ``latency_ms_iqr``: warmed-up ``predict`` calls at ``batch_size``
  (CUDA synchronised); ``train_steps_per_s``: warmed-up training steps.
* ``device``, ``dtype``, ``batch_size``, ``context_frames``, ``horizon``: what they were measured with.

On the ``meta`` device nothing is computed: FLOPs, parameters and tracked memory are exact (they
depend on shapes only) and timings are ``None``, so the ``paper`` presets profile on any CPU in a
minute. Values read from meta tensors (``loss.item()``) are 1 and counted in ``meta_value_reads``:
a method that branches on them (a GAN's switching rule) is measured on whichever branch 1 picks.
A training step that needs tensor data (a copy to the CPU) is skipped there, saying so in
``meta_skipped``.

Training is measured on a deep copy, so the method's weights, optimizer state and the global RNG
are untouched.
"""
from __future__ import annotations

import copy
import gc
import statistics
import time
import weakref
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from .errors import BenchError
from .method import Method
from .protocol import CLIP_LENGTH, CONTEXT, HORIZON

TRAIN_KEYS = ["train_flops", "train_macs", "train_peak_bytes", "train_steps_per_s"]


class FlopCount(TorchDispatchMode):
    """Counts ``total`` FLOPs of the ops run while active, with :mod:`torch.utils.flop_counter`'s
    formulas (matmuls, convolutions and their backward; 2 per multiply-add; biases not counted).

    ``FlopCounterMode`` itself is not used: its module tracker hooks every module call and fails on
    no-grad views of parameters (a learnable initial state tiled in ``predict``).
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(getattr(func, "_overloadpacket", None))
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


class LiveBytes(TorchDispatchMode):
    """Tracks the bytes of tensor storages created while active: ``live`` now, ``peak`` at most.

    Every op's outputs are inspected; a storage that is none of the op's inputs' is a new
    allocation, counted until it is freed (a weak reference's callback). Views and in-place results
    share their input's storage and add nothing. Deterministic, and works on any device, ``meta``
    included. Allocations made inside a kernel that never become op outputs (workspaces) are not seen.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(s) for s in map(_storage, pytree.tree_leaves((args, kwargs))) if s is not None}
        for storage in map(_storage, pytree.tree_leaves(out)):
            if storage is not None:
                self._account(storage, inputs)
        return out

    def _account(self, storage: torch.UntypedStorage, inputs: set[int]) -> None:
        key, size = id(storage), storage.nbytes()
        if key in self._sizes:  # tracked already; an in-place resize changes its size
            self.live += size - self._sizes[key]
        elif key in inputs:  # an alias of something allocated before tracking began
            return
        else:
            self.live += size
            self._refs[key] = weakref.ref(storage, lambda _, key=key: self._free(key))
        self._sizes[key] = size
        self.peak = max(self.peak, self.live)

    def _free(self, key: int) -> None:
        self.live -= self._sizes.pop(key)
        del self._refs[key]


def _storage(value: Any) -> torch.UntypedStorage | None:
    if not isinstance(value, torch.Tensor):
        return None
    try:
        return value.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
        return None


class _MetaScalars(TorchDispatchMode):
    """On ``meta`` tensors, ``.item()`` returns 1 (meta has no data), so training steps that log
    ``loss.item()`` and optimizers that read step counters run shape-only. ``reads`` counts them:
    a method that *branches* on such a value (a GAN's switching rule) is measured on a guessed branch."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta":
            self.reads += 1
            dtype = args[0].dtype
            return True if dtype == torch.bool else 1.0 if dtype.is_floating_point else 1
        return func(*args, **(kwargs or {}))


def count_params(module: torch.nn.Module) -> int:
    """Trainable parameters (shared tensors counted once)."""
    unique = {id(p): p for p in module.parameters() if p.requires_grad}
    return sum(p.numel() for p in unique.values())


def held_bytes(*tensors: torch.Tensor) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    storages = {id(s): s for s in map(_storage, tensors) if s is not None}
    return sum(s.nbytes() for s in storages.values())


def _state_tensors(method: Method) -> list[torch.Tensor]:
    held = [*method.parameters(), *method.buffers()]
    for optimizer in method.optimizers.values():
        held += [v for v in pytree.tree_leaves(dict(optimizer.state)) if isinstance(v, torch.Tensor)]
    return held


class _Measured:
    """FLOPs and peak bytes of one call: ``flops``, ``peak`` (dynamic part), ``tracked`` (tracker's)."""

    flops = peak = tracked = 0


@contextmanager
def _measure(device: torch.device):
    """Counts FLOPs and the peak of bytes allocated inside the block (CUDA allocator on CUDA)."""
    result = _Measured()
    gc.collect()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
    with FlopCount() as flops, LiveBytes() as tracker:
        yield result
    if cuda:
        torch.cuda.synchronize(device)
        result.peak = torch.cuda.max_memory_allocated(device) - start
    else:
        result.peak = tracker.peak
    result.flops, result.tracked = flops.total, tracker.peak


def _timed(fn, device: torch.device, repeats: int) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` calls, CUDA synchronised."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def measure_costs(
    method: Method,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    repeats: int = 5,
    train_steps: int = 2,
    train_batch_size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The costs of ``method`` (on ``device``, default the method's own) as a flat dict; see the module.

    ``predict`` runs on ``batch_size`` sequences once under the FLOP counter and memory tracker,
    then ``repeats`` timed times (on CUDA after a warm-up call). ``training_step`` runs on
    ``train_batch_size`` (default ``batch_size``) clips once to reach the steady state (optimizer
    state allocated), once measured, then ``train_steps`` timed times (0: not timed). On ``meta``
    nothing is timed.
    """
    train_batch_size = max(train_batch_size or batch_size, getattr(method, "min_batch_size", 1))
    if min(batch_size, train_batch_size, repeats) < 1 or train_steps < 0:
        raise BenchError(
            f"profiling needs batch sizes and repeats >= 1 and train steps >= 0, got batch {batch_size}, "
            f"train batch {train_batch_size}, repeats {repeats}, train steps {train_steps}"
        )
    device = torch.device(device) if device is not None else method.device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    floats = [p.dtype for p in method.parameters() if p.is_floating_point()]
    dtype = floats[0] if floats else torch.float32
    generator = torch.Generator().manual_seed(seed)
    context, clip = (
        torch.rand(batch, length, *method.frame_shape, generator=generator).to(device, dtype)
        for batch, length in ((batch_size, CONTEXT), (train_batch_size, CLIP_LENGTH))
    )
    costs: dict[str, Any] = {
        "params": count_params(method),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "batch_size": batch_size,
        "train_batch_size": train_batch_size,
        "context_frames": CONTEXT,
        "horizon": HORIZON,
        "memory_source": "cuda allocator" if device.type == "cuda" else "live tensor tracker",
    }
    if device.type == "meta":
        repeats = train_steps = 0
    with ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[device.index] if device.type == "cuda" else []))
        scalars = stack.enter_context(_MetaScalars()) if device.type == "meta" else None
        try:
            costs.update(_predict_costs(method, context, device, repeats))
        except (NotImplementedError, RuntimeError) as error:
            if scalars is None:
                raise
            raise BenchError(f"{method.name!r} cannot be profiled on meta, its predict needs tensor data "
                             f"({_first_line(error)}); profile it on cpu or cuda") from None
        try:
            costs.update(_train_costs(method, clip, device, train_steps))
        except (NotImplementedError, RuntimeError) as error:
            if scalars is None:
                raise
            costs.update(dict.fromkeys(TRAIN_KEYS))
            costs["meta_skipped"] = f"training step needs tensor data ({_first_line(error)})"
    if scalars is not None:
        costs["meta_value_reads"] = scalars.reads
    return costs


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _predict_costs(method: Method, context: torch.Tensor, device: torch.device, repeats: int) -> dict[str, Any]:
    was_training = method.training
    method.eval()
    try:
        with torch.no_grad():
            def call():
                method.predict(context, HORIZON)

            if device.type == "cuda":
                call()
            static = held_bytes(*method.parameters(), *method.buffers(), context)
            with _measure(device) as measured:
                call()
            times = _timed(call, device, repeats)
    finally:
        method.train(was_training)
    flops = measured.flops // len(context)
    costs = {
        "predict_flops": flops,
        "predict_macs": flops // 2,
        "predict_peak_bytes": static + measured.peak,
        "latency_ms_median": statistics.median(times) * 1e3 if times else None,
        "latency_ms_iqr": _iqr(times) * 1e3 if times else None,
    }
    if device.type == "cuda":
        costs["predict_peak_bytes_tracked"] = static + measured.tracked
    return costs


def _train_costs(method: Method, clip: torch.Tensor, device: torch.device, steps: int) -> dict[str, Any]:
    if not method.trainable:
        return dict.fromkeys(TRAIN_KEYS + (["train_peak_bytes_tracked"] if device.type == "cuda" else []))
    trainee = copy.deepcopy(method).train()
    _state_to_params(trainee)

    def step():
        try:
            trainee.training_step(clip)
        except BenchError as error:
            raise BenchError(f"cannot profile a training step of {method.name!r} on {len(clip)} clip(s) "
                             f"(a larger train batch size may help): {error}") from None

    step()  # steady state: optimizer state exists (it is live at the next step's peak), CUDA set up
    for param in trainee.parameters():
        param.grad = None
    static = held_bytes(*_state_tensors(trainee), clip)
    with _measure(device) as measured:
        step()
    times = _timed(step, device, steps)
    costs = {
        "train_flops": measured.flops,
        "train_macs": measured.flops // 2,
        "train_peak_bytes": static + measured.peak,
        "train_steps_per_s": len(times) / sum(times) if times else None,
    }
    if device.type == "cuda":
        costs["train_peak_bytes_tracked"] = static + measured.tracked
    return costs


def _state_to_params(method: Method) -> None:
    """Put optimizer state next to its parameter (``Module.to`` leaves it behind); scalar step
    counters stay where they are, as ``torch.optim`` expects."""
    for optimizer in method.optimizers.values():
        for param, state in optimizer.state.items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0:
                    state[key] = value.to(param.device)


def _iqr(values: list[float]) -> float:
    """Interquartile range (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return quartiles[2] - quartiles[0]
