"""Mathieu, Couprie & LeCun (ICLR 2016): multi-scale generator with ℓ1, GDL and adversarial losses.

After the paper (arXiv:1511.05440) and the authors' Lua-Torch code. Frames are mapped to [-1, 1];
outputs are tanh.

* **Generator**: four scale networks, coarse to fine, at 1/8, 1/4, 1/2 and 1/1 of the frame.
  Scale 1 predicts ``Ŷ_1 = tanh(G'_1(X_1))``; scale k > 1 refines the upsampled coarser prediction,
  ``Ŷ_k = tanh(u(Ŷ_{k-1}) + G'_k([X_k ; u(Ŷ_{k-1})]))`` (u: nearest 2x; tanh after the sum as in the
  official code). ``X_k`` is the K = 10 input frames average-pooled to scale k and stacked on
  channels. "Same" convolutions with ReLU between layers, no normalisation.
* **Discriminator**: four scale networks, each **conditioned** on the input frames: ``D_k`` sees
  ``[X_k ; Y_k]`` ((K+1)·C channels), "valid" convolutions with ReLU, a 2x2 max-pool, then fully
  connected layers with ReLU and one logit (the sigmoid lives in the BCE-with-logits loss).
  With the paper's widths, these valid convs and a pool at every scale, D has 17.0 M parameters at 32x32.
* **Losses** at every scale against the average-pooled target, all as means (our choice of
  reduction): ``Σ_k λ_lp·mean|Y_k - Ŷ_k|^p + λ_gdl·GDL_α(Ŷ_k, Y_k) + λ_adv·BCE(D_k(X_k, Ŷ_k), 1)``
  with p = 1, α = 1, λ = (1, 1, 0.05); D minimises ``Σ_k BCE(D_k(X_k, Y_k), 1) + BCE(D_k(X_k, Ŷ_k), 0)``.
* **Training step**: the clip batch is split in two halves: D is updated on the first half, then G
  on the second (alternating updates on different minibatches; the official code draws a fresh
  batch for each). Each sample is a random window of K + 1 consecutive frames of its 20-frame clip,
  cropped to ``crop`` x ``crop`` (32, as the paper) at the most moving of ``crop_tries`` random
  positions (a motion filter in the spirit of dyelax's, which rejects static clips; ours keeps
  the best candidate instead of thresholding).
* **Logged** by ``training_step``: the unweighted G terms summed over scales (``reconstruction``
  = ℓp, ``gradient`` = GDL, ``adversarial``), ``generator`` (G's weighted total), ``discriminator``
  and D's mean real/fake probabilities, ``adv_rec_grad_ratio`` = ‖∂(λ_adv·L_adv)/∂Ŷ‖ /
  ‖∂(λ_lp·L_lp + λ_gdl·L_gdl)/∂Ŷ‖ over the four outputs Ŷ_k, and the mean predicted and target
  intensity in [0, 1] (a check for collapse to blank frames).
* **Prediction**: one frame at a time from the last K frames, fed back and slid 10 times,
  fully convolutional on the whole frame. It runs the generator alone: the discriminator is
  training-only state (``training_only``), left out of shipped weights.
* **Initialisation**: PyTorch's default conv/linear init, U(±1/√fan_in) for weights and biases,
  equals Lua-Torch's ``SpatialConvolution`` default, so nothing is overridden.

Presets:

* ``paper``: the paper's widths and kernels (its tables), SGD with ρ_G decaying linearly from
  0.04 to 0.005 over the run (the schedule shape is unspecified) and ρ_D = 0.02, two minibatches
  of 8 per step. 100k steps is our choice.
* ``small``: every width ÷ 4 (G ≈ 0.8 M, D ≈ 1.1 M), the paper's SGD with lr 0.004 for G (constant:
  its end value) and 0.002 for D, batch 8, 10,000 steps. Adam 1e-4, tried first,
  collapsed to blank frames (tanh saturated at -1 within 20 steps: the
  black-background saturation explained in ``villegas``; SGD's steps shrink with the gradient, Adam's do not).
  Measured on bouncing balls (first 200 test sequences): 24 min of training on 2 busy cores,
  10-step MSE 0.0757, PSNR 13.47, DSSIM 0.142, no blank step (copy-last 0.130 / 9.60 / 0.227); the
  discriminator sits at chance (D(real) = D(fake) = 0.50), so the ℓ1 and gradient-difference losses
  do the learning. On Moving MNIST the same preset collapses (``benchmarks/curves/mmnist-mathieu-small.csv``):
  23 min, every predicted step blank from the first 1,000 steps to 10,000 (MSE 0.0420, the blank
  frame's), with D winning (D(real) 0.87, D(fake) 0.13); the paper's Moving MNIST result is not
  reproduced in this budget. With ℓ2 (``--set p=2``, the authors' other released configuration) the
  collapse is not permanent but the run oscillates (``benchmarks/curves/mmnist-mathieu-small-p2.csv``,
  every 1,000 steps to 5,000, 22 min): MSE 0.109 (over-bright), 0.038, 0.039 (blank from step 4),
  0.053 (over-bright), 0.037 (blank from step 7). Neither loss meets the bar reliably in
  this budget, so the preset keeps the paper's best model's ℓ1.
* ``tiny``: widths ÷ 16 and a few steps, for tests.

Deviations: D outputs logits and the loss applies the sigmoid (numerically safer, same maths);
no training through the recursion (G learns one-frame predictions); dyelax's D-output clipping and
the official ``advExt='full'`` mismatched pairs are not used (not in the paper).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.losses import gradient_difference_loss
from bench.method import Method, to_signed, to_unit
from bench.registry import register_method

SCALES = 4
# Per scale, coarse to fine: (kernel, out channels); the generator's last layer outputs C channels.
G_LAYERS = (
    ((3, 128), (3, 256), (3, 128), (3, None)),
    ((5, 128), (3, 256), (3, 128), (5, None)),
    ((5, 128), (3, 256), (3, 512), (3, 256), (3, 128), (5, None)),
    ((7, 128), (5, 256), (5, 512), (5, 256), (5, 128), (7, None)),
)
D_CONVS = (
    ((3, 64),),
    ((3, 64), (3, 128), (3, 128)),
    ((5, 128), (5, 256), (5, 256)),
    ((7, 128), (7, 256), (5, 512), (5, 128)),
)
D_FCS = ((512, 256), (1024, 512), (1024, 512), (1024, 512))

_COMMON = {"history": 10, "crop": 32, "crop_tries": 8, "p": 1.0, "alpha": 1.0,
           "lambda_lp": 1.0, "lambda_gdl": 1.0, "lambda_adv": 0.05}


def _width(channels: int, factor: float) -> int:
    return max(1, round(channels * factor))


class ScaleGenerator(nn.Module):
    """G'_k: "same" convolutions with ReLU between them (none after the last)."""

    def __init__(self, in_channels: int, out_channels: int, layers, width: float):
        super().__init__()
        modules: list[nn.Module] = []
        for i, (kernel, out) in enumerate(layers):
            out = out_channels if out is None else _width(out, width)
            if i:
                modules.append(nn.ReLU())
            modules.append(nn.Conv2d(in_channels, out, kernel, padding=kernel // 2))
            in_channels = out
        self.net = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ScaleDiscriminator(nn.Module):
    """D_k: valid convolutions + ReLU, 2x2 max-pool, fully connected + ReLU, one logit per sample."""

    def __init__(self, in_channels: int, size: tuple[int, int], convs, fcs, width: float):
        super().__init__()
        height, width_px = size
        modules: list[nn.Module] = []
        for kernel, out in convs:
            out = _width(out, width)
            modules += [nn.Conv2d(in_channels, out, kernel), nn.ReLU()]
            in_channels, height, width_px = out, height - kernel + 1, width_px - kernel + 1
        height, width_px = height // 2, width_px // 2
        if height < 1 or width_px < 1:
            raise BenchError(
                f"mathieu: a {size[0]}x{size[1]} discriminator scale is too small for its valid "
                "convolutions; use a larger 'crop' (at least 32)"
            )
        modules += [nn.MaxPool2d(2), nn.Flatten()]
        features = in_channels * height * width_px
        for out in fcs:
            out = _width(out, width)
            modules += [nn.Linear(features, out), nn.ReLU()]
            features = out
        modules.append(nn.Linear(features, 1))
        self.net = nn.Sequential(*modules)

    def forward(self, inputs: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """Logit that ``frame`` is the real continuation of ``inputs`` (both at this scale)."""
        return self.net(torch.cat([inputs, frame], dim=1)).squeeze(1)


def pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    """``(B, ch, H, W)`` average-pooled to 1/8, 1/4, 1/2 and 1/1, coarse to fine."""
    return [F.avg_pool2d(x, 2 ** s) if s else x for s in reversed(range(SCALES))]


class MultiScaleGenerator(nn.Module):
    def __init__(self, channels: int, history: int, width: float):
        super().__init__()
        inputs = history * channels
        self.scales = nn.ModuleList(
            ScaleGenerator(inputs + (channels if k else 0), channels, layers, width)
            for k, layers in enumerate(G_LAYERS)
        )

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Input pyramid ``X_k`` -> predictions ``Ŷ_k`` (coarse to fine), each in [-1, 1]."""
        outputs: list[torch.Tensor] = []
        for net, x in zip(self.scales, inputs):
            if outputs:
                up = F.interpolate(outputs[-1], scale_factor=2, mode="nearest")
                outputs.append(torch.tanh(up + net(torch.cat([x, up], dim=1))))
            else:
                outputs.append(torch.tanh(net(x)))
        return outputs


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, channels: int, history: int, size: tuple[int, int], width: float):
        super().__init__()
        self.scales = nn.ModuleList(
            ScaleDiscriminator((history + 1) * channels, (size[0] >> s, size[1] >> s), convs, fcs, width)
            for s, convs, fcs in zip(reversed(range(SCALES)), D_CONVS, D_FCS)
        )

    def forward(self, inputs: list[torch.Tensor], frames: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per scale, the ``(B,)`` logits of D_k([X_k ; frame_k])."""
        return [net(x, y) for net, x, y in zip(self.scales, inputs, frames)]


@register_method("mathieu")
class Mathieu(Method):
    min_batch_size = 2  # one half of the batch trains D, the other G
    loss_key = "reconstruction"
    progress_buffers = ("updates",)
    training_only = ("discriminator",)  # predict() runs the generator alone
    presets = {
        "paper": {"steps": 100_000, "batch_size": 16, "width": 1.0, "optimizer": "sgd",
                  "lr_g": 0.04, "lr_g_end": 0.005, "lr_d": 0.02, **_COMMON},
        "small": {"steps": 10_000, "batch_size": 8, "width": 0.25, "optimizer": "sgd",
                  "lr_g": 0.004, "lr_g_end": 0.004, "lr_d": 0.002, **_COMMON},
        "tiny": {"steps": 4, "batch_size": 4, "width": 1 / 16, "optimizer": "sgd",
                 "lr_g": 0.004, "lr_g_end": 0.004, "lr_d": 0.002, **_COMMON},
    }

    def __init__(self, frame_shape, config):
        super().__init__(frame_shape, config)
        channels, height, width = self.frame_shape
        if height % 8 or width % 8:
            raise BenchError(
                f"mathieu: frame height and width must be divisible by 8 for its 4 scales, got {height}x{width}"
            )
        crop = config["crop"]
        self.train_size = (height, width) if crop is None else (int(crop), int(crop))
        if crop is not None and (crop % 8 or crop > min(height, width)):
            raise BenchError(
                f"mathieu: 'crop' must be a multiple of 8 no larger than the {height}x{width} frame, got {crop}"
            )
        if config["optimizer"] not in ("sgd", "adam"):
            raise BenchError(f"mathieu: 'optimizer' must be 'sgd' or 'adam', got {config['optimizer']!r}")
        self.history = int(config["history"])
        self.generator = MultiScaleGenerator(channels, self.history, config["width"])
        self.discriminator = MultiScaleDiscriminator(channels, self.history, self.train_size, config["width"])
        optimizer = torch.optim.SGD if config["optimizer"] == "sgd" else torch.optim.Adam
        self.optimizers = {
            "generator": optimizer(self.generator.parameters(), lr=config["lr_g"]),
            "discriminator": optimizer(self.discriminator.parameters(), lr=config["lr_d"]),
        }
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    # -- prediction -------------------------------------------------------------------------------

    def _stack(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, K, C, H, W)`` -> ``(B, K·C, H, W)``."""
        return frames.flatten(1, 2)

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        if context.ndim != 5 or context.shape[1] < self.history or tuple(context.shape[2:]) != self.frame_shape:
            raise BenchError(
                f"mathieu: context must be (B, >={self.history}, {', '.join(map(str, self.frame_shape))}), "
                f"got {tuple(context.shape)}"
            )
        window = to_signed(context[:, -self.history:].to(self.device, torch.float32))
        predictions = []
        for _ in range(horizon):
            frame = self.generator(pyramid(self._stack(window)))[-1]
            predictions.append(frame)
            window = torch.cat([window[:, 1:], frame.unsqueeze(1)], dim=1)
        return to_unit(torch.stack(predictions, dim=1))

    # -- training ---------------------------------------------------------------------------------

    def _training_pairs(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Random (K-frame input, next frame) pairs from a [-1, 1] clip, motion-filtered crops.

        Returns stacked inputs ``(B, K·C, s, s)`` and targets ``(B, C, s, s)``.
        """
        batch, length = clip.shape[:2]
        span = self.history + 1
        if length < span:
            raise BenchError(f"mathieu: training clips need at least {span} frames, got {length}")
        start = torch.randint(0, length - span + 1, (batch,))
        steps = start[:, None] + torch.arange(span)
        windows = clip[torch.arange(batch, device=clip.device)[:, None], steps.to(clip.device)]  # (B, K+1, C, H, W)
        size_h, size_w = self.train_size
        height, width = windows.shape[-2:]
        if (size_h, size_w) != (height, width):
            motion = windows.diff(dim=1).abs().sum(dim=(1, 2)).unsqueeze(1)  # (B, 1, H, W)
            score = F.avg_pool2d(motion, (size_h, size_w), stride=1).squeeze(1)  # (B, H-s+1, W-s+1)
            tries = self.config["crop_tries"]
            ys = torch.randint(0, height - size_h + 1, (batch, tries))
            xs = torch.randint(0, width - size_w + 1, (batch, tries))
            rows = torch.arange(batch)[:, None]
            best = score.cpu()[rows, ys, xs].argmax(dim=1)
            y0, x0 = ys[torch.arange(batch), best].tolist(), xs[torch.arange(batch), best].tolist()
            windows = torch.stack([w[..., y:y + size_h, x:x + size_w] for w, y, x in zip(windows, y0, x0)])
        return self._stack(windows[:, :-1]), windows[:, -1]

    def generator_losses(self, inputs: torch.Tensor, target: torch.Tensor):
        """G's loss terms (tensors, summed over scales, unweighted) and its per-scale outputs."""
        x, y = pyramid(inputs), pyramid(target)
        outputs = self.generator(x)
        p, alpha = self.config["p"], self.config["alpha"]
        lp = sum((out - tgt).abs().pow(p).mean() for out, tgt in zip(outputs, y))
        gdl = sum(gradient_difference_loss(out, tgt, alpha) for out, tgt in zip(outputs, y))
        adv = sum(F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
                  for logit in self.discriminator(x, outputs))
        return {"reconstruction": lp, "gradient": gdl, "adversarial": adv}, outputs

    def _discriminator_step(self, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        x = pyramid(inputs)
        with torch.no_grad():
            fake = self.generator(x)
        real_logits = self.discriminator(x, pyramid(target))
        fake_logits = self.discriminator(x, fake)
        loss = sum(F.binary_cross_entropy_with_logits(r, torch.ones_like(r))
                   + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
                   for r, f in zip(real_logits, fake_logits))
        self.optimize("discriminator", loss)
        return {
            "discriminator": loss.item(),
            "d_real": torch.sigmoid(torch.stack(real_logits)).mean().item(),
            "d_fake": torch.sigmoid(torch.stack(fake_logits)).mean().item(),
        }

    def _generator_step(self, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        losses, outputs = self.generator_losses(inputs, target)
        image = cfg["lambda_lp"] * losses["reconstruction"] + cfg["lambda_gdl"] * losses["gradient"]
        adversarial = cfg["lambda_adv"] * losses["adversarial"]
        # Gradients of each part at the outputs Ŷ_k give the logged ratio; backpropagating their sum
        # from the outputs equals total.backward() for G and leaves D's gradients untouched. Both
        # carry the fp16 loss scale (1 otherwise), which the ratio of their norms does not see.
        grad_image = torch.autograd.grad(self.scaled("generator", image), outputs, retain_graph=True)
        grad_adv = torch.autograd.grad(self.scaled("generator", adversarial), outputs, retain_graph=True)
        self.optimize("generator", outputs, [a + b for a, b in zip(grad_image, grad_adv)])
        norm_image = torch.sqrt(sum(g.pow(2).sum() for g in grad_image))
        norm_adv = torch.sqrt(sum(g.pow(2).sum() for g in grad_adv))
        return {
            **{key: value.item() for key, value in losses.items()},
            "generator": (image + adversarial).item(),
            "adv_rec_grad_ratio": (norm_adv / norm_image.clamp_min(1e-12)).item(),
            "pred_mean": to_unit(outputs[-1]).mean().item(),
            "target_mean": to_unit(target).mean().item(),
        }

    def _set_learning_rate(self) -> None:
        """ρ_G decays linearly from ``lr_g`` to ``lr_g_end`` over ``steps``; ρ_D is constant."""
        cfg = self.config
        progress = min(self.updates.item() / max(cfg["steps"], 1), 1.0)
        for group in self.optimizers["generator"].param_groups:
            group["lr"] = cfg["lr_g"] + (cfg["lr_g_end"] - cfg["lr_g"]) * progress

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        if clip.ndim != 5 or tuple(clip.shape[2:]) != self.frame_shape or clip.shape[0] < 2:
            raise BenchError(
                f"mathieu: training clips must be (B >= 2, T, {', '.join(map(str, self.frame_shape))}) "
                f"(one half of the batch for D, one for G), got {tuple(clip.shape)}"
            )
        inputs, target = self._training_pairs(to_signed(clip.to(self.device, torch.float32)))
        half = inputs.shape[0] // 2
        self._set_learning_rate()
        stats = self._discriminator_step(inputs[:half], target[:half])
        stats.update(self._generator_step(inputs[half:], target[half:]))
        self.updates += 1
        return stats
