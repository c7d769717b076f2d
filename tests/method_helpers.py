"""Helpers the method tests share: the three datasets' frame shapes, seeded methods and inputs."""
from __future__ import annotations

import torch

import bench

SHAPES = [(1, 64, 64), (1, 64, 80), (3, 64, 80)]  # Moving MNIST, KTH, UCF101


def seeded(name: str, shape=(1, 64, 64), preset="tiny", seed=0, **overrides):
    """Method ``name`` built after ``torch.manual_seed(seed)``, so its initial weights repeat."""
    torch.manual_seed(seed)
    return bench.get_method(name, shape, preset=preset, **overrides)


def frames(batch=2, length=10, shape=(1, 64, 64), seed=1) -> torch.Tensor:
    """Uniform random frames ``(batch, length, *shape)`` in [0, 1] from their own generator."""
    return torch.rand(batch, length, *shape, generator=torch.Generator().manual_seed(seed))


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())
