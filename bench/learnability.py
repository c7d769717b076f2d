"""Learnability: can a method fit a handful of sequences? The check that tells a porting bug from
under-training.

:func:`probe` trains a method's ``tiny`` preset for ``steps`` steps on a fixed handful of
bouncing-balls sequences (4 clips of 20 frames, 2 balls, 32x32, the same at every call) and then
asks it to predict the last 10 frames of those same clips from their first 10. A method that works
must (a) bring its training loss (``Method.loss_key``) well below where it started and (b) predict
these sequences better, in MSE, than both copy-last and an all-black frame. A cut gradient, a
broken prediction schedule or a loss on the wrong frames fails one of the two; under-training
cannot be the excuse, because the set is tiny and seen at every step.

Every trainable method's ``tiny`` preset is expected to pass (``tests/test_learnability.py`` runs
it for every registered method, plugins included), which takes seconds on a CPU.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .protocol import CONTEXT
from .registry import datasets, methods

FRAME_SHAPE = (1, 32, 32)
STEPS = 200
LOSS_DROP = 0.5  # the last steps' mean loss must be under this fraction of the first steps'


def handful() -> torch.Tensor:
    """The fixed learnability set: 4 bouncing-balls clips ``(4, 20, 1, 32, 32)`` in [0, 1]."""
    data = datasets.get("bouncing_balls")(balls=2, size=FRAME_SHAPE[-1], test_size=4)
    return torch.from_numpy(data.test_clips(20).batch(range(4))).float().div_(255)


@dataclass
class Probe:
    """What :func:`probe` measured; ``failures`` lists the unmet conditions (empty: it learns)."""

    method: str
    first_loss: float
    last_loss: float
    mse: float
    copy_last_mse: float
    blank_mse: float

    @property
    def failures(self) -> list[str]:
        out = []
        if not self.last_loss < LOSS_DROP * self.first_loss:
            out.append(f"training loss went from {self.first_loss:.4g} to {self.last_loss:.4g}, "
                       f"not below {LOSS_DROP:g}x its start")
        if not self.mse < self.copy_last_mse:
            out.append(f"prediction MSE {self.mse:.4g} is not below copy-last's {self.copy_last_mse:.4g}")
        if not self.mse < self.blank_mse:
            out.append(f"prediction MSE {self.mse:.4g} is not below a blank frame's {self.blank_mse:.4g}")
        return out


def probe(name: str, steps: int = STEPS, seed: int = 0, **overrides) -> Probe:
    """Train method ``name`` (``tiny`` preset with ``overrides``) on :func:`handful` and measure it."""
    cls = methods.get(name)
    clips = handful()
    torch.manual_seed(seed)
    np.random.seed(seed)
    method = cls(FRAME_SHAPE, cls.resolve_config("tiny", {"steps": steps, **overrides}))
    method.train()
    losses = [float(method.training_step(clips)[cls.loss_key]) for _ in range(steps)]
    method.eval()
    context, target = clips[:, :CONTEXT], clips[:, CONTEXT:]
    with torch.no_grad():
        pred = method.predict(context, target.shape[1])
    window = max(1, steps // 10)
    return Probe(
        method=name,
        first_loss=float(np.mean(losses[:window])),
        last_loss=float(np.mean(losses[-window:])),
        mse=float((pred - target).pow(2).mean()),
        copy_last_mse=float((context[:, -1:] - target).pow(2).mean()),
        blank_mse=float(target.pow(2).mean()),
    )
