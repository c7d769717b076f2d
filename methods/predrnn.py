"""PredRNN (Wang, Long, Wang, Gao & Yu, "PredRNN: Recurrent Neural Networks for Predictive Learning
using Spatiotemporal LSTMs", NeurIPS 2017), after the paper and the authors' released code.

Frames are cut into ``patch`` x ``patch`` patches stacked on the channel axis (space-to-depth: a
64x64 gray frame becomes a 16x16x16 tensor). A stack of ``layers`` spatiotemporal LSTM (ST-LSTM)
cells of ``hidden`` channels reads one such tensor per time step; cell l at time t (input X, its
own H and C from t-1, the spatiotemporal memory M handed to it) computes, with "same" convolutions
``*`` of ``kernel`` x ``kernel`` and Hadamard products ``.``:

    i, f, g = sigmoid(W_xi*X + W_hi*H + b_i), sigmoid(W_xf*X + W_hf*H + b_f + 1), tanh(W_xg*X + W_hg*H + b_g)
    C' = f . C + i . g
    i', f', g' = the same three gates from X and M (own weights W'_x., W_m.; biases b'_.; + 1 on f')
    M' = f' . M + i' . g'
    o = sigmoid(W_xo*X + W_ho*H + W_co*C' + W_mo*M' + b_o)   (W_co, W_mo: one conv over [C' ; M'])
    H' = o . tanh(W_11 * [C' ; M'])                           (W_11: 1x1, no bias)

**Zigzag memory flow**: M goes up the stack within a time step (cell l hands M' to cell l+1) and the
top cell's M' goes to the bottom cell at the next time step; H and C stay in their layer. A 1x1
convolution (no bias) of the top H is the next frame's patch tensor; the network runs 19 steps on a
20-frame clip, step t predicting frame t+1. The loss is the MSE of all 19 predictions, as in the
authors' released code; Adam, lr 1e-3, batch 8, 80,000 iterations (the paper's Moving MNIST
settings and the code's defaults; its Moving MNIST scripts pass lr 3e-4).

**Scheduled sampling** (as the authors train): at the 9 steps that read a future frame (t = 10..18)
each sequence gets the true frame with probability eta and its own previous prediction otherwise;
eta falls linearly from 1 to 0 over ``sampling_steps`` training steps (50,000 in the authors' code:
1 - 2e-5 per iteration) and stays 0, so late training matches test time, where predictions are
always fed back. The step count is a buffer (``step_count``), so eta survives checkpoints (and
restarts from 1 in a run initialised from other weights with ``--init-from``).

Presets: ``paper`` is 4 layers x 64 channels, 5x5 kernels, 4x4 patches, as the authors' release
for Moving MNIST: 6,051,584 parameters on 64x64 gray frames (with ``hidden`` 128, the authors'
later script and OpenSTL's setting: 23,842,304 parameters and 116.0 G multiply-adds per 10 -> 10
prediction, the 23.8M and 116.0G that OpenSTL reports). ``small`` (4 layers x 32, 3x3
kernels, 567,168 parameters) trains 1,600 steps of batch 8 at the paper's lr, sampling down to 0
over the first 1,000 (5/8 of the budget, as the authors' 50,000 of 80,000), about 17 minutes on
2 cores (about 0.65 s a step, twice ConvLSTM's and SimVP's, hence the shorter budget).
Measured on the first 200 test sequences (10-step MSE / PSNR / DSSIM; curves in
``benchmarks/curves``), no blank step on either dataset:

* Moving MNIST: 0.0231 / 16.74 / 0.192 (copy-last 0.0693 / 11.77 / 0.206), the lowest MSE of
  every ``small`` run here; DSSIM was 0.176 at 1,200 steps and rose as the last true frames left
  the inputs (predictions grow brighter than the targets, up to 1.18x their mean intensity);
* bouncing balls: 0.0114 / 21.42 / 0.073 (copy-last 0.130 / 9.60 / 0.227), still improving at
  1,600 steps (DSSIM 0.101 at 1,200).

``tiny`` is for tests.

Deviations from the authors' code: no layer normalisation (the paper's equations have none; the
code makes it optional); biases only where the paper's equations have them (the code's
convolutions all carry one, a redundant extra); the + 1 forget-gate bias is the code's; the
code's second update per iteration on the time-reversed clip (``reverse_input``) is not done;
weights use PyTorch's default initialisation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.method import Config, Method
from bench.protocol import CONTEXT
from bench.registry import register_method

FORGET_BIAS = 1.0  # added inside both forget gates, as the authors' code does


def _conv(in_channels: int, out_channels: int, kernel: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=bias)


class STLSTM(nn.Module):
    """One spatiotemporal LSTM cell: ``(X, H, C, M) -> (H', C', M')``."""

    def __init__(self, in_channels: int, hidden: int, kernel: int):
        super().__init__()
        self.hidden = hidden
        self.conv_x = _conv(in_channels, 7 * hidden, kernel, bias=True)  # i, f, g, i', f', g', o
        self.conv_h = _conv(hidden, 4 * hidden, kernel)  # i, f, g, o
        self.conv_m = _conv(hidden, 3 * hidden, kernel)  # i', f', g'
        self.conv_o = _conv(2 * hidden, hidden, kernel)  # W_co, W_mo over [C' ; M']
        self.fuse = _conv(2 * hidden, hidden, 1)  # W_11 over [C' ; M']

    def forward(self, x, h, c, m):
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = self.conv_x(x).chunk(7, dim=1)
        i_h, f_h, g_h, o_h = self.conv_h(h).chunk(4, dim=1)
        i_m, f_m, g_m = self.conv_m(m).chunk(3, dim=1)
        c = torch.sigmoid(f_x + f_h + FORGET_BIAS) * c + torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
        m = torch.sigmoid(f_xm + f_m + FORGET_BIAS) * m + torch.sigmoid(i_xm + i_m) * torch.tanh(g_xm + g_m)
        memories = torch.cat([c, m], dim=1)
        h = torch.sigmoid(o_x + o_h + self.conv_o(memories)) * torch.tanh(self.fuse(memories))
        return h, c, m


@register_method("predrnn")
class PredRNN(Method):
    loss_key = "mse"
    progress_buffers = ("step_count",)  # --init-from starts the sampling schedule anew
    presets = {
        "paper": {"layers": 4, "hidden": 64, "kernel": 5, "patch": 4, "lr": 1e-3,
                  "sampling_steps": 50_000, "steps": 80_000, "batch_size": 8},
        "small": {"layers": 4, "hidden": 32, "kernel": 3, "patch": 4, "lr": 1e-3,
                  "sampling_steps": 1000, "steps": 1600, "batch_size": 8},
        "tiny": {"layers": 2, "hidden": 16, "kernel": 3, "patch": 4, "lr": 3e-3,
                 "sampling_steps": 100, "steps": 4, "batch_size": 2},
    }

    def __init__(self, frame_shape: tuple[int, int, int], config: Config):
        super().__init__(frame_shape, config)
        channels, height, width = self.frame_shape
        patch, kernel = int(config["patch"]), int(config["kernel"])
        layers, hidden = int(config["layers"]), int(config["hidden"])
        if patch < 1 or height % patch or width % patch:
            raise BenchError(f"predrnn: frame height and width must be divisible by the patch size {patch}, "
                             f"got {height}x{width}")
        if layers < 1 or hidden < 1 or kernel < 1 or kernel % 2 == 0 or config["sampling_steps"] < 0:
            raise BenchError(f"predrnn: need layers >= 1, hidden >= 1, an odd kernel and sampling_steps >= 0, "
                             f"got {layers}, {hidden}, {kernel}, {config['sampling_steps']}")
        depth = channels * patch * patch
        self.patch = patch
        self.cells = nn.ModuleList(STLSTM(depth if l == 0 else hidden, hidden, kernel) for l in range(layers))
        self.head = _conv(hidden, depth, 1)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        self.optimizers = {"adam": torch.optim.Adam(self.parameters(), lr=config["lr"])}

    def rollout(self, frames: torch.Tensor, steps: int, context: int, true_input: torch.Tensor | None = None):
        """Run ``steps`` time steps; returns the predictions of frames 1..steps ``(B, steps, C, H, W)``.

        Step t reads ``frames[:, t]`` (in [0, 1]) while t < ``context``; later steps read the previous
        prediction, or, where ``true_input[:, t - context]`` is 1 (one 0/1 value per sequence and
        step), ``frames[:, t]`` again (scheduled sampling).
        """
        batch = frames.shape[0]
        patches = F.pixel_unshuffle(frames.flatten(0, 1), self.patch).unflatten(0, frames.shape[:2])
        zeros = patches.new_zeros(batch, self.cells[0].hidden, *patches.shape[-2:])
        h, c, m = [zeros] * len(self.cells), [zeros] * len(self.cells), zeros
        outputs = []
        for t in range(steps):
            if t < context:
                x = patches[:, t]
            elif true_input is None:
                x = outputs[-1]
            else:
                use_true = true_input[:, t - context].view(batch, 1, 1, 1)
                x = use_true * patches[:, t] + (1 - use_true) * outputs[-1]
            for l, cell in enumerate(self.cells):
                h[l], c[l], m = cell(x, h[l], c[l], m)
                x = h[l]
            outputs.append(self.head(x))
        return F.pixel_shuffle(torch.stack(outputs, dim=1).flatten(0, 1), self.patch).unflatten(0, (batch, steps))

    def sampling_eta(self, step: int) -> float:
        """The probability of feeding the true frame at training step ``step`` (0-based)."""
        span = self.config["sampling_steps"]
        return max(0.0, 1.0 - (step + 1) / span) if span else 0.0

    def _check(self, frames: torch.Tensor, what: str, min_length: int) -> None:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape or frames.shape[1] < min_length:
            raise BenchError(f"predrnn: {what} must be (B, T>={min_length}, "
                             f"{', '.join(map(str, self.frame_shape))}), got {tuple(frames.shape)}")

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        self._check(context, "the context", 1)
        if horizon < 1:
            raise BenchError(f"predrnn: horizon must be at least 1, got {horizon}")
        length = context.shape[1]
        return self.rollout(context, length + horizon - 1, length)[:, length - 1:].clamp(0, 1)

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        """19 steps over the clip with scheduled sampling on the future inputs; MSE of all 19 predictions."""
        self._check(clip, "a training clip", CONTEXT + 1)
        eta = self.sampling_eta(int(self.step_count))
        steps = clip.shape[1] - 1
        true_input = (torch.rand(clip.shape[0], steps - CONTEXT, device=clip.device) < eta).to(clip.dtype)
        prediction = self.rollout(clip, steps, CONTEXT, true_input)
        loss = F.mse_loss(prediction, clip[:, 1:])
        self.optimize("adam", loss)
        self.step_count += 1
        future = prediction.detach()[:, CONTEXT - 1:]
        return {"mse": loss.item(), "mse_future": F.mse_loss(future, clip[:, CONTEXT:]).item(), "eta": eta,
                "pred_mean": future.mean().item(), "target_mean": clip[:, CONTEXT:].mean().item()}
