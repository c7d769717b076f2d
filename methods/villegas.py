"""MCnet with motion-content residuals (Villegas et al., ICLR 2017), as in the authors' released code.

A motion encoder reads grayscale difference images (always one channel, on [0,1]-scaled frames, so
in [-1, 1]) and feeds a ConvLSTM at 1/8 resolution; a VGG-like content encoder reads the last frame;
combination layers merge both; the decoder unpools (zero-filled 2x) and adds, at every scale, a
residual computed from both encoders. Frames live in [-1, 1] with a tanh output. The first
prediction reuses the ConvLSTM state and motion residuals of the last *observed* difference; every
later step encodes the difference between the newest prediction and the frame before it, and the
prediction itself becomes the content input (full backpropagation through time, no stop-gradient).

Training (``training_step``): G loss = alpha * (L_p + L_gdl) + beta * L_GAN, where L_p is the MSE on
[-1, 1], L_gdl the gradient difference loss (alpha 1) on [0, 1] and L_GAN the non-saturating BCE of
the conditional discriminator, which sees the C*(K+T) channels of [observed ; future] frames and
keeps batch-norm on batch statistics. Adam(lr 1e-4, beta1 0.5) for both nets; the authors' sticky
margin-0.3 switching decides which of D and G update. ``predict`` runs the generator alone: the
discriminator and the switching flags are training-only state (``training_only``), left out of
shipped weights.

``beta`` is a config entry; ``None`` (the presets' value) applies the rule of
:func:`adversarial_weight`: RGB frames get 0.001 (the authors' Sports1M/UCF101 value); grayscale
frames get 0.02, the KTH value, also for Moving MNIST, which the authors never trained on: their
KTH script is their only 10 -> 10 grayscale setup (our choice).

Presets: ``paper`` is the released topology (gf = df = 64) and KTH budget (100k iterations of
batch 8); ``small`` shrinks the widths to gf = df = 16 and the budget to 300 iterations of batch 8
(far short of the authors' 100k); ``tiny`` (gf = df = 4, 5 iterations) is for tests.

Finding (``small`` on bouncing balls, 2-core CPU): it does not learn, and the cause is the data's
black background, not a budget. Bouncing-balls (and Moving MNIST) frames are black almost
everywhere, -1 on MCnet's scale: the asymptote of its tanh. For those pixels every finite
pre-activation has a gradient pushing it lower, and Adam steps by about the learning rate however
small that gradient is; through some twenty un-normalised ReLU layers the steps compound. The
pre-tanh minimum passes -60 within 45 iterations at Adam 1e-4 (150 at 3e-5; 10 at the paper's
gf = 64), the output is black everywhere, the saturated tanh passes no gradient and it never
recovers: at 500 (1e-3) and 920 (1e-4) iterations every predicted step is blank (predicted mean
intensity 1e-8 against the target's 0.136; ``benchmarks/curves/bouncing_balls-villegas-small-trainlog-lr*.csv``).
The control, ``benchmarks/mcnet_saturation.py``: the same clips, seed and preset mapped to a gray
background ([0.25, 0.75]) do not saturate: over 150 iterations the pre-tanh map stays within
[-1.3, 0.4] and the predicted mean intensity tracks the target's (0.30-0.36 against 0.32) (``benchmarks/curves/bouncing_balls-villegas-small-saturation.csv``).
The fRNN paper's own MCnet on Moving MNIST shows the same failure in the authors' TensorFlow code:
its curve sits at the blank frame's MSE (0.0425 at every step). The authors trained only on KTH,
Weizmann and Sports1M/UCF101, whose backgrounds are not black. No budget is claimed: making it learn here
would take a change of output layer or data range, and it would no longer be MCnet.

Deviations from the released code:

* the GDL is ``bench.losses.gradient_difference_loss`` (valid one-pixel differences); the original
  pads with zeros ("SAME"), which adds the right/bottom border pixels as extra differences. Its
  tiling of gray frames to 3 channels does not change a mean and is skipped;
* TF's transposed stride-1 convolutions are plain 3x3 "same" convolutions (equivalent when trained
  from scratch); D's stride-2 convolutions reproduce TF "SAME" padding exactly (asymmetric pad);
* the last difference is only encoded when a further step needs it (the original computes one
  unused difference after the final step).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.losses import gradient_difference_loss
from bench.method import Method, to_signed, to_unit
from bench.protocol import CONTEXT
from bench.registry import register_method

LUMA = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale weights for R, G, B


def unpool(x: torch.Tensor) -> torch.Tensor:
    """Zero-filled 2x unpooling: each value goes to the top-left of its 2x2 block, the rest is zero."""
    b, c, h, w = x.shape
    out = x.new_zeros(b, c, h, 2, w, 2)
    out[:, :, :, 0, :, 0] = x
    return out.view(b, c, 2 * h, 2 * w)


def gray(frames: torch.Tensor) -> torch.Tensor:
    """``(..., C, H, W)`` frames -> ``(..., 1, H, W)`` luminance (identity for one channel)."""
    if frames.shape[-3] == 1:
        return frames
    weights = frames.new_tensor(LUMA).view(3, 1, 1)
    return (frames * weights).sum(dim=-3, keepdim=True)


def adversarial_weight(frame_shape: tuple[int, int, int], beta) -> float:
    """``beta`` as given, or for ``None``: 0.001 for RGB frames, 0.02 for grayscale ones."""
    if beta is None:
        return 0.001 if frame_shape[0] == 3 else 0.02
    try:
        return float(beta)
    except (TypeError, ValueError):
        raise BenchError(f"villegas: setting 'beta' must be a number (or null for the rule), got {beta!r}") from None


def next_flags(update_d: bool, update_g: bool, err_real: float, err_fake: float, margin: float):
    """The authors' sticky D/G switching: stop D when it wins by ``margin``, stop G when D loses by
    it, and re-enable both only when both are off."""
    if err_fake < margin or err_real < margin:
        update_d = False
    if err_fake > 1 - margin or err_real > 1 - margin:
        update_g = False
    if not update_d and not update_g:
        update_d = update_g = True
    return update_d, update_g


def conv_relu(c_in: int, c_out: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU()]


class Encoder(nn.Module):
    """Three stages of (convs + ReLU) then 2x2 max-pool; returns the pooled code and the pre-pool maps."""

    def __init__(self, stages: list[list[nn.Module]]):
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(*stage) for stage in stages)

    def forward(self, x: torch.Tensor):
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        return x, skips


class ConvLSTM(nn.Module):
    """TF ``BasicConvLSTMCell``: one conv over [x ; h] split into i, j, f, o; forget bias +1 inside
    the sigmoid; no peepholes; zero initial state."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, 4 * channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        c, h = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        i, j, f, o = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, (c, h)


class Residual(nn.Module):
    """[motion ; content] maps of one scale -> conv + ReLU -> conv (no activation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(*conv_relu(2 * channels, channels), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, motion: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([motion, content], dim=1))


class Generator(nn.Module):
    def __init__(self, channels: int, gf: int):
        super().__init__()
        self.motion = Encoder([conv_relu(1, gf, 5), conv_relu(gf, 2 * gf, 5), conv_relu(2 * gf, 4 * gf, 7)])
        self.lstm = ConvLSTM(4 * gf)
        self.content = Encoder([
            conv_relu(channels, gf) + conv_relu(gf, gf),
            conv_relu(gf, 2 * gf) + conv_relu(2 * gf, 2 * gf),
            conv_relu(2 * gf, 4 * gf) + conv_relu(4 * gf, 4 * gf) + conv_relu(4 * gf, 4 * gf),
        ])
        self.combine = nn.Sequential(*conv_relu(8 * gf, 4 * gf), *conv_relu(4 * gf, 2 * gf), *conv_relu(2 * gf, 4 * gf))
        self.residuals = nn.ModuleList(Residual(width) for width in (gf, 2 * gf, 4 * gf))
        # Decoder stages, coarse to fine; each starts with unpool, + residual, ReLU.
        self.decoder = nn.ModuleList([
            nn.Sequential(*conv_relu(4 * gf, 4 * gf), *conv_relu(4 * gf, 4 * gf), *conv_relu(4 * gf, 2 * gf)),
            nn.Sequential(*conv_relu(2 * gf, 2 * gf), *conv_relu(2 * gf, gf)),
            nn.Sequential(*conv_relu(gf, gf), nn.Conv2d(gf, channels, 3, padding=1), nn.Tanh()),
        ])

    def decode(self, h_dyn, h_cont, motion_skips, content_skips) -> torch.Tensor:
        x = self.combine(torch.cat([h_dyn, h_cont], dim=1))
        for stage, scale in zip(self.decoder, (2, 1, 0)):
            residual = self.residuals[scale](motion_skips[scale], content_skips[scale])
            x = stage(F.relu(unpool(x) + residual))
        return x

    def forward(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """``(B, K, C, H, W)`` in [-1, 1] -> ``(B, horizon, C, H, W)`` in [-1, 1]."""
        frames_gray = gray((context + 1) / 2)
        differences = frames_gray[:, 1:] - frames_gray[:, :-1]
        state = None
        for t in range(differences.shape[1]):
            code, motion_skips = self.motion(differences[:, t])
            h_dyn, state = self.lstm(code, state)
        frame, frame_gray = context[:, -1], frames_gray[:, -1]
        predictions = []
        for step in range(horizon):
            h_cont, content_skips = self.content(frame)
            prediction = self.decode(h_dyn, h_cont, motion_skips, content_skips)
            predictions.append(prediction)
            if step + 1 < horizon:
                prediction_gray = gray((prediction + 1) / 2)
                code, motion_skips = self.motion(prediction_gray - frame_gray)
                h_dyn, state = self.lstm(code, state)
                frame, frame_gray = prediction, prediction_gray
        return torch.stack(predictions, dim=1)


class SamePadConv(nn.Conv2d):
    """A strided convolution with TensorFlow's "SAME" padding (the extra row/column at bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class Discriminator(nn.Module):
    """Four 5x5 stride-2 convs (BN on all but the first, leaky ReLU 0.2), then one linear logit.
    Batch-norm always normalises with batch statistics, as the original's ``is_train=True``."""

    def __init__(self, in_channels: int, height: int, width: int, df: int):
        super().__init__()
        layers, c_in = [], in_channels
        for index, c_out in enumerate((df, 2 * df, 4 * df, 8 * df)):
            layers.append(SamePadConv(c_in, c_out, 5, stride=2))
            if index > 0:
                layers.append(nn.BatchNorm2d(c_out, eps=1e-3, track_running_stats=False))
            layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        for _ in range(4):
            height, width = math.ceil(height / 2), math.ceil(width / 2)
        self.logit = nn.Linear(8 * df * height * width, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` in [-1, 1], observed then future frames -> ``(B,)`` logits."""
        return self.logit(self.features(frames.flatten(1, 2)).flatten(1)).squeeze(1)


@register_method("villegas")
class MCnet(Method):
    loss_key = "reconstruction"
    training_only = ("discriminator", "update_flags")  # predict() runs the generator alone
    presets = {
        "paper": {"steps": 100_000, "batch_size": 8, "gf": 64, "df": 64, "lr": 1e-4, "beta1": 0.5,
                  "alpha": 1.0, "beta": None, "margin": 0.3},
        "small": {"steps": 300, "batch_size": 8, "gf": 16, "df": 16, "lr": 1e-4, "beta1": 0.5,
                  "alpha": 1.0, "beta": None, "margin": 0.3},
        "tiny": {"steps": 5, "batch_size": 2, "gf": 4, "df": 4, "lr": 1e-3, "beta1": 0.5,
                 "alpha": 1.0, "beta": None, "margin": 0.3},
    }

    def __init__(self, frame_shape, config):
        super().__init__(frame_shape, config)
        channels, height, width = self.frame_shape
        if channels not in (1, 3):
            raise BenchError(f"villegas: frames must have 1 or 3 channels, got frame shape {self.frame_shape}")
        if height % 8 or width % 8:
            raise BenchError(f"villegas: frame height and width must be divisible by 8, got {self.frame_shape}")
        self.beta = adversarial_weight(self.frame_shape, config["beta"])
        self.generator = Generator(channels, int(config["gf"]))
        self.discriminator = Discriminator(2 * CONTEXT * channels, height, width, int(config["df"]))
        self.apply(_init_weights)
        # [update D, update G]: the sticky switching flags, kept in checkpoints.
        self.register_buffer("update_flags", torch.ones(2, dtype=torch.bool))
        betas = (float(config["beta1"]), 0.999)
        self.optimizers = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=float(config["lr"]), betas=betas),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=float(config["lr"]), betas=betas),
        }

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        if context.dim() != 5 or context.shape[1] < 2 or tuple(context.shape[2:]) != self.frame_shape:
            raise BenchError(
                f"villegas: context must be (B, K >= 2, {', '.join(map(str, self.frame_shape))}), "
                f"got {tuple(context.shape)}"
            )
        if horizon < 1:
            raise BenchError(f"villegas: horizon must be at least 1, got {horizon}")
        return to_unit(self.generator(to_signed(context), horizon))

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        if clip.dim() != 5 or clip.shape[1] != 2 * CONTEXT or tuple(clip.shape[2:]) != self.frame_shape:
            raise BenchError(
                f"villegas: training clips must be (B, {2 * CONTEXT}, {', '.join(map(str, self.frame_shape))}), "
                f"got {tuple(clip.shape)}"
            )
        frames = to_signed(clip)
        context, future = frames[:, :CONTEXT], frames[:, CONTEXT:]
        update_d, update_g = (bool(flag) for flag in self.update_flags)
        # G's parameters are the same for the D step and the G step, so one forward pass serves both.
        with torch.set_grad_enabled(update_g):
            prediction = self.generator(context, CONTEXT)
        if update_d:
            real, fake = self._discriminator_losses(context, future, prediction.detach())
            self.optimize("discriminator", real + fake)
        with torch.set_grad_enabled(update_g):  # the terms are logged even when G pauses
            reconstruction = F.mse_loss(prediction, future)
            gradient = gradient_difference_loss((prediction + 1) / 2, (future + 1) / 2)
            adversarial = self._bce(self.discriminator(torch.cat([context, prediction], dim=1)), 1.0)
        if update_g:
            alpha = float(self.config["alpha"])
            self.optimize("generator", alpha * (reconstruction + gradient) + self.beta * adversarial)
        with torch.no_grad():  # re-evaluate D on the updated nets, as the original does, to switch
            real, fake = self._discriminator_losses(context, future, self.generator(context, CONTEXT))
        flags = next_flags(update_d, update_g, real.item(), fake.item(), float(self.config["margin"]))
        self.update_flags.copy_(torch.tensor(flags))
        return {
            "reconstruction": reconstruction.item(), "gradient": gradient.item(),
            "adversarial": adversarial.item(), "discriminator": (real + fake).item(),
            "d_real": real.item(), "d_fake": fake.item(),
            "update_d": float(update_d), "update_g": float(update_g),
            "pred_mean": to_unit(prediction).mean().item(), "target_mean": clip[:, CONTEXT:].mean().item(),
        }

    def _discriminator_losses(self, context, future, prediction):
        real = self._bce(self.discriminator(torch.cat([context, future], dim=1)), 1.0)
        fake = self._bce(self.discriminator(torch.cat([context, prediction], dim=1)), 0.0)
        return real, fake

    @staticmethod
    def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def _init_weights(module: nn.Module) -> None:
    """Glorot-uniform convs with zero bias (TF xavier_initializer); D's linear layer ~ N(0, 0.02)."""
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
