"""SimVP (Gao, Tan, Wu & Li, "SimVP: Simpler yet Better Video Prediction", CVPR 2022), after the
paper and the authors' released code (``A4Bio/SimVP``).

A purely convolutional model that maps the 10 context frames to the 10 future frames in one pass:

* **spatial encoder**: ``n_s`` blocks of 3x3 conv + GroupNorm(2 groups) + LeakyReLU(0.2), strides
  1, 2, 1, 2, ... (``n_s`` = 4: 64x64 -> 16x16), applied to every frame on its own (``hid_s``
  channels); the first block's output is kept as a skip to the decoder;
* **translator**: the 10 frames' codes stacked on the channel axis (10 x ``hid_s`` channels) go
  through a U-Net of ``n_t`` Inception modules down and ``n_t`` up (the up modules after the
  first read [input ; mirrored down output]). An Inception module is a 1x1 conv to half its
  width, then four grouped convs (kernels 3, 5, 7, 11; ``groups`` groups, each with GroupNorm of
  as many groups and LeakyReLU(0.2)) whose outputs are summed; the last one returns to
  10 x ``hid_s`` channels;
* **spatial decoder**: the mirror of the encoder (3x3 transposed convs with stride 2 where the
  encoder strided), its last block reading [features ; encoder skip], then a 1x1 conv to the frame
  channels, no output activation (``predict`` clamps to [0, 1]).

Training: MSE of the 10 predicted frames in [0, 1], Adam whose learning rate follows a one-cycle
schedule over ``steps`` (PyTorch's ``OneCycleLR`` defaults, as the authors use it: 30% cosine
warm-up from lr/25 to ``lr``, cosine decay to lr/25e4, beta1 cycling 0.95 -> 0.85 -> 0.95),
computed from the step count (the buffer ``step_count``), so it survives checkpoints (and starts
over in a run initialised from other weights with ``--init-from``).

Presets: ``paper`` is the released code's Moving MNIST configuration (``hid_s`` 64, ``hid_t`` 256,
``n_s`` 4, ``n_t`` 8, 8 groups; the code's ``--groups 4`` option never reaches the model), lr 0.01,
batch 16, 2,000 epochs of its 10,000 generated sequences (1,250,000 steps): 15,778,433 parameters
(OpenSTL's re-implementation uses ``hid_t`` 512: 57,761,409 here, its 58.0M with pixel-shuffle
upsamplers). ``small`` (``hid_s`` 16, ``hid_t`` 64, ``n_t`` 4, 548,257 parameters) trains 3,000
steps of batch 8 (a batch of 16 costs three times as much on a CPU) with the same one-cycle peak
lr, about 19 minutes on 2 cores. Measured on the first 200 test sequences (10-step MSE / PSNR /
DSSIM; curves in ``benchmarks/curves``), no blank step on either dataset:

* Moving MNIST: 0.0249 / 16.31 / 0.200 (copy-last 0.0693 / 11.77 / 0.206): a lower MSE than any
  ``small`` run of the paper's seven methods here (PredNet's 0.0273), but a DSSIM that only just
  beats copy-last and is worse than a blank frame's (0.136): blurred digits leave a faint haze on
  the black background (mean 0.028, 13% of its pixels above 0.05, on 32 test sequences) that
  costs little MSE and much SSIM; DSSIM fell from 0.38 at 1,000 steps as the lr annealed;
* bouncing balls: 0.0118 / 22.11 / 0.077 (copy-last 0.130 / 9.60 / 0.227).

``tiny`` is for tests.

``predict`` takes the last 10 context frames (fewer are refused) and returns the first ``horizon``
of the 10 predictions; a longer horizon is reached by feeding the newest 10 frames back in
(the paper's way to predict further ahead).

Deviations: none in the network; the released code's validation-based checkpoint choice is not
done (the harness keeps the last weights).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.method import Config, Method
from bench.registry import register_method

FRAMES = 10  # frames in and frames out of one pass (the protocol's 10 -> 10)
KERNELS = (3, 5, 7, 11)  # the Inception branches
SLOPE = 0.2  # LeakyReLU


def one_cycle(step: int, total: int, peak: float) -> tuple[float, float]:
    """``(lr, beta1)`` at 0-based ``step`` of PyTorch's ``OneCycleLR`` with its defaults over ``total``
    steps (and the final values after them)."""
    warmup_end = 0.3 * total - 1
    if step <= warmup_end:
        pct, lr_span, beta_span = step / warmup_end, (peak / 25, peak), (0.95, 0.85)
    else:
        pct, lr_span, beta_span = (step - warmup_end) / (total - 1 - warmup_end), (peak, peak / 25e4), (0.85, 0.95)
    weight = (1 + math.cos(math.pi * min(pct, 1.0))) / 2  # 1 at the phase start, 0 at its end
    return (lr_span[1] + (lr_span[0] - lr_span[1]) * weight, beta_span[1] + (beta_span[0] - beta_span[1]) * weight)


def conv_block(c_in: int, c_out: int, stride: int, transpose: bool = False) -> nn.Sequential:
    """3x3 conv (transposed for a 2x upsampling) + GroupNorm(2) + LeakyReLU."""
    if transpose and stride == 2:
        conv = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
    else:
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
    return nn.Sequential(conv, nn.GroupNorm(2, c_out), nn.LeakyReLU(SLOPE))


class Inception(nn.Module):
    """1x1 conv to ``c_hid``, then the sum of grouped KxK conv + GroupNorm + LeakyReLU branches."""

    def __init__(self, c_in: int, c_hid: int, c_out: int, groups: int):
        super().__init__()
        groups = groups if c_hid % groups == 0 else 1  # as the released code falls back
        self.reduce = nn.Conv2d(c_in, c_hid, 1)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_hid, c_out, k, padding=k // 2, groups=groups), nn.GroupNorm(groups, c_out),
                          nn.LeakyReLU(SLOPE))
            for k in KERNELS
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        return sum(branch(x) for branch in self.branches)


class Translator(nn.Module):
    """The U-Net of Inception modules over the stacked frame codes (``channels`` = 10 x hid_s)."""

    def __init__(self, channels: int, hid: int, layers: int, groups: int):
        super().__init__()
        self.down = nn.ModuleList(Inception(channels if i == 0 else hid, hid // 2, hid, groups) for i in range(layers))
        self.up = nn.ModuleList(
            Inception(hid if i == 0 else 2 * hid, hid // 2, channels if i == layers - 1 else hid, groups)
            for i in range(layers)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips = []
        for module in self.down:
            z = module(z)
            skips.append(z)
        z = self.up[0](z)
        for module, skip in zip(self.up[1:], reversed(skips[:-1])):
            z = module(torch.cat([z, skip], dim=1))
        return z


@register_method("simvp")
class SimVP(Method):
    loss_key = "mse"
    progress_buffers = ("step_count",)  # --init-from starts the one-cycle schedule anew
    presets = {
        "paper": {"hid_s": 64, "hid_t": 256, "n_s": 4, "n_t": 8, "groups": 8, "lr": 0.01,
                  "steps": 1_250_000, "batch_size": 16},
        "small": {"hid_s": 16, "hid_t": 64, "n_s": 4, "n_t": 4, "groups": 8, "lr": 0.01,
                  "steps": 3000, "batch_size": 8},
        "tiny": {"hid_s": 8, "hid_t": 32, "n_s": 2, "n_t": 2, "groups": 4, "lr": 0.01,
                 "steps": 4, "batch_size": 2},
    }

    def __init__(self, frame_shape: tuple[int, int, int], config: Config):
        super().__init__(frame_shape, config)
        channels, height, width = self.frame_shape
        hid_s, hid_t, n_s, n_t = (int(config[key]) for key in ("hid_s", "hid_t", "n_s", "n_t"))
        scale = 2 ** (n_s // 2)
        if n_s < 1 or n_t < 2 or hid_s < 2 or hid_s % 2 or hid_t < 2 or hid_t % 2:
            raise BenchError(f"simvp: need n_s >= 1, n_t >= 2 and even hid_s, hid_t; got n_s {n_s}, n_t {n_t}, "
                             f"hid_s {hid_s}, hid_t {hid_t}")
        if height % scale or width % scale:
            raise BenchError(f"simvp: n_s = {n_s} needs frame height and width divisible by {scale}, "
                             f"got {height}x{width}")
        strides = [1 + i % 2 for i in range(n_s)]
        self.encoder = nn.ModuleList(conv_block(channels if i == 0 else hid_s, hid_s, s) for i, s in enumerate(strides))
        self.translator = Translator(FRAMES * hid_s, hid_t, n_t, int(config["groups"]))
        self.decoder = nn.ModuleList(
            conv_block(2 * hid_s if i == n_s - 1 else hid_s, hid_s, s, transpose=True)
            for i, s in enumerate(reversed(strides))
        )
        self.readout = nn.Conv2d(hid_s, channels, 1)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        self.optimizers = {"adam": torch.optim.Adam(self.parameters(), lr=config["lr"])}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """10 frames ``(B, 10, C, H, W)`` in [0, 1] -> the next 10, unclamped."""
        batch = frames.shape[0]
        x = skip = self.encoder[0](frames.flatten(0, 1))
        for block in self.encoder[1:]:
            x = block(x)
        z = self.translator(x.unflatten(0, (batch, FRAMES)).flatten(1, 2))
        x = z.unflatten(1, (FRAMES, -1)).flatten(0, 1)
        for block in self.decoder[:-1]:
            x = block(x)
        x = self.readout(self.decoder[-1](torch.cat([x, skip], dim=1)))
        return x.unflatten(0, (batch, FRAMES))

    def _check(self, frames: torch.Tensor, what: str, min_length: int) -> None:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape or frames.shape[1] < min_length:
            raise BenchError(f"simvp: {what} must be (B, T>={min_length}, "
                             f"{', '.join(map(str, self.frame_shape))}), got {tuple(frames.shape)}")

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        self._check(context, "the context", FRAMES)
        if horizon < 1:
            raise BenchError(f"simvp: horizon must be at least 1, got {horizon}")
        frames = context[:, -FRAMES:]
        predictions = []
        for _ in range(math.ceil(horizon / FRAMES)):
            frames = self(frames)
            predictions.append(frames)
        return torch.cat(predictions, dim=1)[:, :horizon].clamp(0, 1)

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        """Frames 0..9 -> frames 10..19 in one pass; MSE; Adam at the one-cycle lr of this step."""
        self._check(clip, "a training clip", 2 * FRAMES)
        lr, beta1 = one_cycle(int(self.step_count), self.config["steps"], self.config["lr"])
        optimizer = self.optimizers["adam"]
        for group in optimizer.param_groups:
            group["lr"], group["betas"] = lr, (beta1, group["betas"][1])
        target = clip[:, FRAMES:2 * FRAMES]
        prediction = self(clip[:, :FRAMES])
        loss = F.mse_loss(prediction, target)
        self.optimize("adam", loss)
        self.step_count += 1
        return {"mse": loss.item(), "lr": lr, "pred_mean": prediction.detach().mean().item(),
                "target_mean": target.mean().item()}
