"""Copy-last-frame baseline: every predicted frame is the last context frame (not trainable)."""
from __future__ import annotations

import torch

from bench.method import Method
from bench.registry import register_method


@register_method("baseline")
class CopyLast(Method):
    presets = {"paper": {}, "small": {}, "tiny": {}}
    trainable = False

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        return context[:, -1:].expand(-1, horizon, -1, -1, -1).clone()
