"""Losses shared by several methods."""
from __future__ import annotations

import torch


def gradient_difference_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Mathieu et al.'s gradient difference loss (GDL), as a mean.

    With one-pixel "valid" finite differences along rows (i) and columns (j) of the last two
    dimensions: ``mean(| |d_i Y| - |d_i P| |^alpha) + mean(| |d_j Y| - |d_j P| |^alpha)``.
    The official Torch criterion (alpha = 1) and MCnet both take means over all elements.
    """
    loss = pred.new_zeros(())
    for dim in (-2, -1):
        grad_target = target.diff(dim=dim).abs()
        grad_pred = pred.diff(dim=dim).abs()
        loss = loss + (grad_target - grad_pred).abs().pow(alpha).mean()
    return loss
