"""The method plugin contract.

A method is a ``torch.nn.Module`` that sees float frames in [0, 1], batch-first
``(B, T, C, H, W)``, and converts to its own internal range itself. Subclasses:

* set ``presets`` with at least ``paper`` (the authors' topology and training settings),
  ``small`` (trains on a 2-core CPU in minutes) and ``tiny`` (seconds, for tests). Every preset of
  a trainable method holds ``steps`` (the training budget) and ``batch_size``;
* build their modules and their optimizer(s) in ``__init__(frame_shape, config)``, storing the
  optimizers in ``self.optimizers`` (a name -> optimizer dict; GANs have two), and update them with
  :meth:`Method.optimize` (zero the gradients, backward, step), which applies the loss scaling of
  ``--precision fp16`` (:mod:`bench.speedups`); the training loop runs ``training_step`` under
  autocast for bf16/fp16, so a method's maths need not know the precision;
* implement ``predict(context, horizon)`` (deterministic in eval mode; the runner calls it under
  ``torch.no_grad()``) and, when trainable, ``training_step(clip)``, whose returned dict holds
  ``loss_key``: the term that measures how well the model fits (for a GAN, its reconstruction term);
* pass the learnability check (:mod:`bench.learnability`): the ``tiny`` preset, trained for a few
  hundred steps on a handful of sequences, fits them better than copy-last and a blank frame.

Checkpoints hold ``state_dict()`` plus ``optimizer_state_dict()``.

**Training-only state.** A method names in ``training_only`` the ``state_dict`` key prefixes (whole
dotted components: ``"discriminator"`` covers ``discriminator.net.0.weight``) that only training reads
and ``predict`` never does: a GAN's discriminator, a decoder used only by an auxiliary loss, switching
flags. Its ``progress_buffers`` (training-progress counters) are training-only too. Shipped weights
(:mod:`bench.weights`) leave these keys out, and loading shipped weights leaves them at their fresh
initialisation: they are inference state only. A test proves for every method that predictions do
not change when the training-only tensors hold garbage, so declare a part only when that is true.
"""
from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import BenchError

Config = dict[str, Any]


class Method(nn.Module):
    name: ClassVar[str] = ""
    presets: ClassVar[dict[str, Config]] = {}
    trainable: ClassVar[bool] = True
    min_batch_size: ClassVar[int] = 1  # the smallest training batch (a GAN splitting it for D and G needs 2)
    loss_key: ClassVar[str] = "loss"  # the entry of training_step's dict that measures the fit
    progress_buffers: ClassVar[tuple[str, ...]] = ()  # buffers counting training progress (reset by --init-from)
    training_only: ClassVar[tuple[str, ...]] = ()  # state_dict key prefixes that predict() never reads (not shipped)

    def __init__(self, frame_shape: tuple[int, int, int], config: Config):
        super().__init__()
        if len(frame_shape) != 3 or min(frame_shape) < 1:
            raise BenchError(f"{self.name}: frame_shape must be (C, H, W), got {tuple(frame_shape)}")
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.config = dict(config)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.grad_scalers: dict[str, torch.amp.GradScaler] = {}  # fp16 only: one per optimizer
        self.loss_scaling_used = False  # set by optimize() when a GradScaler scaled an update

    @classmethod
    def resolve_config(cls, preset: str, overrides: Config | None = None) -> Config:
        """The preset's config with ``overrides`` applied; unknown presets or keys are errors."""
        if preset not in cls.presets:
            raise BenchError(
                f"method {cls.name!r} has no preset {preset!r}; its presets are: {', '.join(cls.presets)}"
            )
        config = copy.deepcopy(cls.presets[preset])
        for key, value in (overrides or {}).items():
            if key not in config:
                raise BenchError(f"method {cls.name!r} has no setting {key!r}; its settings are: {', '.join(config)}")
            config[key] = _like(value, config[key], f"method {cls.name!r}: setting {key!r}")
        return config

    @classmethod
    def is_training_only(cls, key: str) -> bool:
        """Whether the ``state_dict`` entry ``key`` is training-only state (see the module's docstring)."""
        return key in cls.progress_buffers or any(key == prefix or key.startswith(prefix + ".")
                                                  for prefix in cls.training_only)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """``(B, K, C, H, W)`` in [0, 1] -> the next ``horizon`` frames, ``(B, horizon, C, H, W)`` in [0, 1]."""
        raise NotImplementedError

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        """One optimisation step on a ``(B, 20, C, H, W)`` clip in [0, 1]; returns the losses to log."""
        raise BenchError(f"method {self.name!r} is not trainable")

    def use_precision(self, precision: str) -> None:
        """Prepare :meth:`optimize` for ``precision``: ``fp16`` gets a GradScaler per optimizer on the
        method's device (call it after moving the method); ``fp32`` and ``bf16`` need none."""
        kind = self.device.type
        self.grad_scalers = {name: torch.amp.GradScaler(kind) for name in self.optimizers} if precision == "fp16" else {}

    def scaled(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` times the current loss scale of optimizer ``name`` (fp16); unchanged otherwise."""
        scaler = self.grad_scalers.get(name)
        return loss if scaler is None else scaler.scale(loss)

    def optimize(self, name: str, loss, grads=None) -> None:
        """One update of optimizer ``name``: zero its gradients, backpropagate, step.

        ``loss`` is a scalar to minimise, or, with ``grads``, tensors that ``torch.autograd.backward``
        takes with those gradients: compute them from losses passed through :meth:`scaled`, so that
        they carry the loss scale. Under fp16 the step is the GradScaler's: gradients are unscaled
        first, and a step whose gradients overflowed is skipped while the scale backs off."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        if grads is None:
            self.scaled(name, loss).backward()
        else:
            torch.autograd.backward(loss, grads)
        scaler = self.grad_scalers.get(name)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
            self.loss_scaling_used = True

    def optimizer_state_dict(self) -> dict[str, Any]:
        return {key: opt.state_dict() for key, opt in self.optimizers.items()}

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self.optimizers):
            raise BenchError(
                f"{self.name}: checkpoint has optimizers {sorted(state)}, the method has {sorted(self.optimizers)}"
            )
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state[key])


def _like(value: Any, default: Any, what: str) -> Any:
    """``value`` converted to the type of the preset's ``default`` (an int where a float is expected is
    fine); a value of another kind is refused with a sentence naming the setting."""
    if default is None or isinstance(value, type(default)) or value is None:
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise BenchError(f"{what} must be {type(default).__name__} like its preset value {default!r}, got {value!r}")


def to_signed(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the internal range of fRNN, RLadder, Mathieu and MCnet."""
    return frames * 2 - 1


def to_unit(frames: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped so that scoring never sees values outside the frame range."""
    return ((frames + 1) / 2).clamp(0, 1)
