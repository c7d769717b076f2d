"""Optimizers with semantics that PyTorch's built-ins do not reproduce."""
from __future__ import annotations

import torch


class _PerParameter(torch.optim.Optimizer):
    """The step loop both optimizers share: every parameter with a gradient gets ``_update``."""

    def _update(self, param: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, self.state[param], group)
        return loss


class TFRMSprop(_PerParameter):
    """RMSProp exactly as TensorFlow 1 defines it (``tf.train.RMSPropOptimizer``, momentum 0, not centered).

    Per parameter: ``ms <- decay*ms + (1-decay)*g^2`` and ``theta <- theta - lr*g/sqrt(ms + eps)``,
    with the mean-square accumulator ``ms`` **initialised to ones** (PyTorch's ``RMSprop`` starts it at
    zero, which makes the first updates about ``1/sqrt(1-decay)`` ~ 3x larger) and ``eps`` inside the
    square root. TF1 defaults: decay 0.9, eps 1e-10.
    """

    def __init__(self, params, lr: float = 1e-4, decay: float = 0.9, eps: float = 1e-10):
        if lr <= 0 or not 0 <= decay < 1 or eps < 0:
            raise ValueError(f"TFRMSprop: need lr > 0, 0 <= decay < 1, eps >= 0; got {lr}, {decay}, {eps}")
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps})

    def _update(self, param: torch.Tensor, state: dict, group: dict) -> None:
        grad = param.grad
        if not state:
            state["ms"] = torch.ones_like(param, memory_format=torch.preserve_format)
        ms = state["ms"]
        ms.mul_(group["decay"]).addcmul_(grad, grad, value=1 - group["decay"])
        param.addcdiv_(grad, ms.add(group["eps"]).sqrt_(), value=-group["lr"])


class ClippedMomentumSGD(_PerParameter):
    """Srivastava et al.'s ``Param.Update``: momentum SGD whose per-step update is clipped element-wise.

    Per parameter: ``v <- clamp(momentum*v - lr*(grad + weight_decay*w), -clip, clip)``, ``w <- w + v``.
    """

    def __init__(self, params, lr: float, momentum: float, weight_decay: float, clip: float):
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0 or clip <= 0:
            raise ValueError(
                f"ClippedMomentumSGD: need lr > 0, 0 <= momentum < 1, weight_decay >= 0, clip > 0; "
                f"got {lr}, {momentum}, {weight_decay}, {clip}"
            )
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "clip": clip})

    def _update(self, param: torch.Tensor, state: dict, group: dict) -> None:
        if not state:
            state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        velocity = state["velocity"]
        velocity.mul_(group["momentum"]).add_(param.grad, alpha=-group["lr"])
        velocity.add_(param, alpha=-group["lr"] * group["weight_decay"])
        velocity.clamp_(-group["clip"], group["clip"])
        param.add_(velocity)
