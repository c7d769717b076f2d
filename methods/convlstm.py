"""ConvLSTM encoder-forecaster (Shi, Chen, Wang, Yeung, Wong & Woo, "Convolutional LSTM Network: A
Machine Learning Approach for Precipitation Nowcasting", NeurIPS 2015), as the paper describes it.

Every frame is cut into ``patch`` x ``patch`` patches stacked on the channel axis (space-to-depth:
a 64x64 gray frame becomes a 16x16x16 tensor). One ConvLSTM layer (the paper's eq. 3, with
peephole connections) is

    i = sigmoid(W_xi * X + W_hi * H + w_ci . C + b_i)
    f = sigmoid(W_xf * X + W_hf * H + w_cf . C + b_f)
    C' = f . C + i . tanh(W_xc * X + W_hc * H + b_c)
    o = sigmoid(W_xo * X + W_ho * H + w_co . C' + b_o),   H' = o . tanh(C')

(* a "same" convolution, . the Hadamard product). The **encoding network** is a stack of such
layers reading the 10 context tensors; the **forecasting network** has the same widths, starts
from the encoder's final states (layer l from layer l) and receives no input at all (its bottom
layer has no input-to-state kernel); at each future step the states of all its layers are
concatenated and a 1x1 convolution maps them to the patch tensor of the predicted frame, read
through a sigmoid. Training minimises the pixel-wise binary cross-entropy of the 10 predicted
frames, as the paper's Moving MNIST experiment does, with RMSProp (lr 1e-3, decay 0.9).

The peephole weights w_c. are one value per channel, shared over space: that is what the
paper's parameter counts imply. With them, the best Moving MNIST network of its Table 1,
ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64 (``paper``), has 7,585,296 parameters (the paper: 7.585M),
and its single-layer ConvLSTM(5x5)-5x5-256 13,524,496 (the paper: 13.524M); a spatial peephole
map per channel would add 393,216 to the former.

Presets: ``paper`` is that network with RMSProp (lr 1e-3, decay 0.9) at batch 16 for 100,000
steps. ``small`` (``hidden`` 64-32-32, 3x3 kernels, 704,272 parameters) keeps the paper's
optimiser at batch 8 for 4,000 steps, about 26 minutes on 2 cores. Measured on the first 200 test
sequences (10-step MSE / PSNR / DSSIM; curves in ``benchmarks/curves``), no blank step on either
dataset:

* Moving MNIST: 0.0260 / 16.03 / 0.203 (copy-last 0.0693 / 11.77 / 0.206). DSSIM beats copy-last
  only narrowly and only from about 4,000 steps (0.212 at 3,000, still falling): like SimVP's, its
  blurred digits leave a haze that SSIM counts (a blank frame scores 0.136);
* bouncing balls: 0.0151 / 20.32 / 0.086 (copy-last 0.130 / 9.60 / 0.227), 29 minutes (a busier
  machine); it beat copy-last from the first 1,000 steps.

``tiny`` is for tests.

Deviations and choices where the paper is silent:

* the paper stops training early on a validation set; the harness has none, so ``steps`` is a
  fixed budget (ours) and the batch size 16 is ours too (the paper states neither);
* RMSProp is PyTorch's (mean square starting at zero, eps 1e-8): the paper names neither;
* weights use PyTorch's default initialisation, peepholes and biases start at zero;
* one kernel size serves the input-to-state and state-to-state convolutions (the paper's
  notation allows two; its Moving MNIST networks of choice use 5x5 for both).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.method import Config, Method
from bench.protocol import CONTEXT
from bench.registry import register_method



class PeepholeConvLSTM(nn.Module):
    """One ConvLSTM layer with per-channel peepholes; ``in_channels`` 0 makes it input-less."""

    def __init__(self, in_channels: int, hidden: int, kernel: int):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv.bias)
        self.peepholes = nn.Parameter(torch.zeros(3, hidden, 1, 1))  # w_ci, w_cf, w_co

    def forward(self, x: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor]):
        """``x`` (B, in, h, w) or None, state (H, C) -> the new state (H', C')."""
        h, c = state
        gates = self.conv(h if x is None else torch.cat([x, h], dim=1))
        i, f, g, o = gates.chunk(4, dim=1)
        w_ci, w_cf, w_co = self.peepholes
        c = torch.sigmoid(f + w_cf * c) * c + torch.sigmoid(i + w_ci * c) * torch.tanh(g)
        h = torch.sigmoid(o + w_co * c) * torch.tanh(c)
        return h, c


@register_method("convlstm")
class ConvLSTM(Method):
    loss_key = "bce"
    presets = {
        "paper": {"hidden": [128, 64, 64], "kernel": 5, "patch": 4, "lr": 1e-3, "decay": 0.9,
                  "steps": 100_000, "batch_size": 16},
        "small": {"hidden": [64, 32, 32], "kernel": 3, "patch": 4, "lr": 1e-3, "decay": 0.9,
                  "steps": 4000, "batch_size": 8},
        "tiny": {"hidden": [16, 16], "kernel": 3, "patch": 4, "lr": 3e-3, "decay": 0.9,
                 "steps": 4, "batch_size": 2},
    }

    def __init__(self, frame_shape: tuple[int, int, int], config: Config):
        super().__init__(frame_shape, config)
        channels, height, width = self.frame_shape
        patch, kernel, hidden = int(config["patch"]), int(config["kernel"]), [int(h) for h in config["hidden"]]
        if patch < 1 or height % patch or width % patch:
            raise BenchError(f"convlstm: frame height and width must be divisible by the patch size {patch}, "
                             f"got {height}x{width}")
        if not hidden or min(hidden) < 1 or kernel < 1 or kernel % 2 == 0:
            raise BenchError(f"convlstm: need at least one layer of >= 1 channels and an odd kernel, "
                             f"got hidden {hidden}, kernel {kernel}")
        depth = channels * patch * patch
        self.patch = patch
        self.encoder = nn.ModuleList(
            PeepholeConvLSTM(depth if l == 0 else hidden[l - 1], width_l, kernel) for l, width_l in enumerate(hidden)
        )
        self.forecaster = nn.ModuleList(
            PeepholeConvLSTM(0 if l == 0 else hidden[l - 1], width_l, kernel) for l, width_l in enumerate(hidden)
        )
        self.output = nn.Conv2d(sum(hidden), depth, 1)
        self.optimizers = {"rmsprop": torch.optim.RMSprop(self.parameters(), lr=config["lr"], alpha=config["decay"])}

    def forecast_logits(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """``(B, K, C, H, W)`` in [0, 1] -> the logits of the next ``horizon`` frames ``(B, horizon, C, H, W)``."""
        batch, length = context.shape[:2]
        patches = F.pixel_unshuffle(context.flatten(0, 1), self.patch).unflatten(0, (batch, length))
        states = [(patches.new_zeros(batch, cell.hidden, *patches.shape[-2:]),) * 2 for cell in self.encoder]
        for t in range(length):
            x = patches[:, t]
            for l, cell in enumerate(self.encoder):
                states[l] = cell(x, states[l])
                x = states[l][0]
        logits = []
        for _ in range(horizon):
            x = None
            for l, cell in enumerate(self.forecaster):
                states[l] = cell(x, states[l])
                x = states[l][0]
            logits.append(self.output(torch.cat([h for h, _ in states], dim=1)))
        return F.pixel_shuffle(torch.stack(logits, dim=1).flatten(0, 1), self.patch).unflatten(0, (batch, horizon))

    def _check(self, frames: torch.Tensor, what: str, min_length: int) -> None:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape or frames.shape[1] < min_length:
            raise BenchError(f"convlstm: {what} must be (B, T>={min_length}, "
                             f"{', '.join(map(str, self.frame_shape))}), got {tuple(frames.shape)}")

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        self._check(context, "the context", 1)
        if horizon < 1:
            raise BenchError(f"convlstm: horizon must be at least 1, got {horizon}")
        return torch.sigmoid(self.forecast_logits(context, horizon))

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        """Encode frames 0..9, forecast the rest; binary cross-entropy (mean per pixel) on the forecasts."""
        self._check(clip, "a training clip", CONTEXT + 1)
        target = clip[:, CONTEXT:]
        logits = self.forecast_logits(clip[:, :CONTEXT], target.shape[1])
        loss = F.binary_cross_entropy_with_logits(logits, target)
        self.optimize("rmsprop", loss)
        with torch.no_grad():
            prediction = torch.sigmoid(logits)
            mse = (prediction - target).pow(2).mean().item()
        return {"bce": loss.item(), "mse": mse, "pred_mean": prediction.mean().item(),
                "target_mean": target.mean().item()}
