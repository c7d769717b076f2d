"""Optimizers with semantics that PyTorch's built-ins do not reproduce."""
from __future__ import annotations

import torch


class TFRMSprop(torch.optim.Optimizer):
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

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, decay, eps = group["lr"], group["decay"], group["eps"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["ms"] = torch.ones_like(param, memory_format=torch.preserve_format)
                ms = state["ms"]
                ms.mul_(decay).addcmul_(grad, grad, value=1 - decay)
                param.addcdiv_(grad, ms.add(eps).sqrt_(), value=-lr)
        return loss
