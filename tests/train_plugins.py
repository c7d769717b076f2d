"""Test-only plugins for the training tests: a tiny trainable method and a synthetic dataset.

Importing this module registers ``train-test-net`` and ``train-test-squares``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.dataset import ClipSet, Dataset
from bench.method import Method
from bench.registry import register_dataset, register_method

SIZE = 16


@register_dataset("train-test-squares")
class Squares(Dataset):
    """A 4x4 bright square moving one pixel per frame in a random direction on a dark 16x16 frame."""

    frame_shape = (1, SIZE, SIZE)

    def train_clips(self, length, seed):
        rng = np.random.default_rng(seed)
        while True:
            yield _square_clip(rng, length)

    def test_clips(self, length, stride=1):
        rng = np.random.default_rng(1234)
        return _Clips([_square_clip(rng, length) for _ in range(8)])


class _Clips(ClipSet):
    def __init__(self, clips):
        self.clips = clips

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        return self.clips[index]


def _square_clip(rng: np.random.Generator, length: int) -> np.ndarray:
    clip = np.zeros((length, 1, SIZE, SIZE), np.uint8)
    y, x = rng.integers(0, SIZE - 4, size=2)
    dy, dx = rng.choice([-1, 1], size=2)
    for t in range(length):
        clip[t, 0, y : y + 4, x : x + 4] = 255
        if not 0 <= y + dy <= SIZE - 4:
            dy = -dy
        if not 0 <= x + dx <= SIZE - 4:
            dx = -dx
        y, x = y + dy, x + dx
    return clip


@register_method("train-test-net")
class NextFrameNet(Method):
    """Predicts each frame from the previous two with two 3x3 convolutions; Adam on the L1 loss of
    the 10 predicted frames (recursive, as at test time). ``delay`` sleeps per step and a ``touch`` file
    appears at the first step (for kill tests)."""

    presets = {
        name: {"steps": 12, "batch_size": 4, "width": 4, "lr": 0.01, "delay": 0.0, "touch": ""}
        for name in ("paper", "small", "tiny")
    }

    def __init__(self, frame_shape, config):
        super().__init__(frame_shape, config)
        channels = frame_shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels, config["width"], 3, padding=1), nn.Tanh(),
            nn.Conv2d(config["width"], channels, 3, padding=1),
        )
        self.optimizers = {"adam": torch.optim.Adam(self.net.parameters(), lr=config["lr"])}

    def predict(self, context, horizon):
        frames = [context[:, -2], context[:, -1]]
        for _ in range(horizon):
            frames.append(torch.sigmoid(self.net(torch.cat(frames[-2:], dim=1))))
        return torch.stack(frames[2:], dim=1)

    def training_step(self, clip):
        if self.config["delay"]:
            time.sleep(self.config["delay"])
        if self.config["touch"]:
            Path(self.config["touch"]).touch()
        loss = (self.predict(clip[:, :10], 10) - clip[:, 10:]).abs().mean()
        self.optimize("adam", loss)
        return {"l1": loss.item()}

