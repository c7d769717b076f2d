"""PredNet (Lotter, Kreiman & Cox, ICLR 2017), ported from ``coxlab/prednet`` with its extrapolation mode.

After the paper (arXiv:1605.08104) and the authors' Keras code. Each layer l holds a target A_l, a prediction Â_l, an error
E_l and a representation R_l (a ConvLSTM with cell C_l). One time step runs

1. top-down, l = L-1 .. 0: R_l, C_l = ConvLSTM([R_l(t-1), E_l(t-1), Up(R_{l+1}(t))]), gates
   i, f, o = hard_sigmoid (Keras' slope 0.2) and candidate tanh, no peepholes, no forget bias;
2. bottom-up, from A_0(t) = the input frame: Â_l = ReLU(conv(R_l)) (clipped at 1 for l = 0, the
   frame prediction); E_l = [ReLU(Â_l - A_l), ReLU(A_l - Â_l)] (the original's channel order);
   A_{l+1} = MaxPool2x2(ReLU(conv(E_l))).

All states start at zero, so the output at step t is the prediction of frame x_t made from
x_0..x_{t-1} (step 0's output is a blank guess). Multi-step prediction is the authors'
``extrap_start_time`` mode: from step T0 on, the input A_0(t) is the previous step's prediction
Â_0(t-1), so E_0 becomes the change between consecutive predictions (``coxlab/prednet#30``). For
10 -> 10 the context feeds steps 0..9 and the outputs of steps 10..19 are the predictions of
frames 10..19.

Training is the authors' two stages in one run, switched by a step counter kept in the state
(``step_count``, a buffer, so it survives checkpoints):

* stage A, logged as ``stage`` 1 (``step_count < stage_a_steps``): t+1 training in error mode
  on the first ``stage_a_nt`` frames, loss sum_t w_t sum_l lambda_l mean(E_l(t)) with w_0 = 0,
  w_t = 1/(nt-1) and lambda = ``layer_loss_weights`` (L_0: only the pixel layer);
* stage B, logged as ``stage`` 2: extrapolation fine-tuning on the whole clip with
  T0 = ``extrap_start``, loss 0.5 * mean|Â_0(t) - x_t| over all t >= 1. It starts from a fresh
  Adam, as the authors' re-compiled fine-tuning model did.

Each stage uses Adam (Keras' epsilon 1e-7) at ``lr`` for its first half and ``lr_late`` for its
second half. The returned dict holds ``stage``, ``loss``, ``lr`` and the mean intensities of the
predicted and target frames (t >= 1), so the stage and any black-frame collapse land in the log.

Presets: ``paper`` is the KITTI topology (A/R widths (C, 48, 96, 192), 6.9 M parameters for C = 1)
and schedule (batch 4, stage A with nt = 10 for 18,750 updates, stage B for as many with nt = 20,
T0 = 10, where KITTI used nt = 15).
``small`` shrinks the widths to (C, 16, 32, 64) (0.77 M parameters) and the schedule to what 2
idle cores train in about 40 minutes: 3,000 stage-A + 2,000 stage-B updates of batch 4 (0.46 and
0.90 s each on one thread).
Measured on bouncing balls (first 200 test sequences): 27 min of training on a busy 2-core
machine, 10-step MSE 0.0087, PSNR 24.65, DSSIM 0.036, no blank step (copy-last 0.130 / 9.60 / 0.227).
On Moving MNIST (``benchmarks/curves/mmnist-prednet-small.csv``): 25 min on a busy 2-core machine,
10-step MSE 0.0273, PSNR 16.17, DSSIM 0.108, no blank step at any checkpoint (copy-last 0.0693 /
11.77 / 0.206, a blank frame 0.0420): the collapse the paper reports does not occur in this budget.
``tiny`` (3 layers, widths (C, 4, 8)) is for tests.

Deviations: the four gate convolutions of a ConvLSTM are one convolution with 4x outputs,
initialised gate by gate with Glorot-uniform and zero biases, which is what four Keras ``Conv2D``
layers get (numerically equivalent); the best-validation-loss checkpoint selection of the authors'
scripts is not done (the harness keeps the last weights). No anti-collapse measure is applied
(none is in the paper): a black-frame collapse on Moving MNIST is reproduced, not hidden.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.method import Config, Method
from bench.registry import register_method

PIXEL_MAX = 1.0  # the clip of the frame prediction Â_0 (``pixel_max``)
ADAM_EPS = 1e-7  # Keras' default epsilon


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2's hard sigmoid, clip(0.2 x + 0.5, 0, 1); PyTorch's ``hardsigmoid`` has slope 1/6."""
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


def error_units(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """E = [ReLU(Â - A), ReLU(A - Â)] stacked on the channel axis (dim 1), as the original orders them."""
    return torch.cat([torch.relu(prediction - target), torch.relu(target - prediction)], dim=1)


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)


def _glorot(conv: nn.Conv2d, chunks: int = 1) -> None:
    """Keras' default init: Glorot-uniform weights, zero bias; ``chunks`` merged convs are initialised apart."""
    with torch.no_grad():
        for weight in conv.weight.chunk(chunks, dim=0):
            nn.init.xavier_uniform_(weight)
        conv.bias.zero_()


@register_method("prednet")
class PredNet(Method):
    progress_buffers = ("step_count",)
    presets = {
        "paper": {
            "widths": [48, 96, 192], "filter_size": 3, "layer_loss_weights": [1.0, 0.0, 0.0, 0.0],
            "stage_a_nt": 10, "extrap_start": 10, "steps": 37500, "stage_a_steps": 18750,
            "batch_size": 4, "lr": 1e-3, "lr_late": 1e-4,
        },
        "small": {
            "widths": [16, 32, 64], "filter_size": 3, "layer_loss_weights": [1.0, 0.0, 0.0, 0.0],
            "stage_a_nt": 10, "extrap_start": 10, "steps": 5000, "stage_a_steps": 3000,
            "batch_size": 4, "lr": 1e-3, "lr_late": 1e-4,
        },
        "tiny": {
            "widths": [4, 8], "filter_size": 3, "layer_loss_weights": [1.0, 0.0, 0.0],
            "stage_a_nt": 20, "extrap_start": 10, "steps": 4, "stage_a_steps": 2,
            "batch_size": 2, "lr": 1e-3, "lr_late": 1e-4,
        },
    }

    def __init__(self, frame_shape: tuple[int, int, int], config: Config):
        super().__init__(frame_shape, config)
        channels, height, width = self.frame_shape
        self.a_sizes = (channels, *(int(w) for w in config["widths"]))  # R widths equal A widths
        layers = len(self.a_sizes)
        scale = 2 ** (layers - 1)
        if height % scale or width % scale:
            raise BenchError(
                f"prednet: a {layers}-layer stack needs frame height and width divisible by {scale}, "
                f"got {height}x{width}"
            )
        if len(config["layer_loss_weights"]) != layers:
            raise BenchError(f"prednet: layer_loss_weights needs {layers} values (one per layer), "
                             f"got {len(config['layer_loss_weights'])}")
        if not 0 <= config["stage_a_steps"] <= config["steps"]:
            raise BenchError(f"prednet: stage_a_steps ({config['stage_a_steps']}) must lie between 0 and steps "
                             f"({config['steps']}); set both (e.g. --set stage_a_steps=N)")
        if not 2 <= config["stage_a_nt"] <= 20 or not 1 <= config["extrap_start"] < 20:
            raise BenchError("prednet: stage_a_nt must lie in 2..20 and extrap_start in 1..19 (clips have 20 frames)")
        kernel = int(config["filter_size"])
        sizes = self.a_sizes
        self.r_convs = nn.ModuleList(
            _conv(sizes[l] + 2 * sizes[l] + (sizes[l + 1] if l + 1 < layers else 0), 4 * sizes[l], kernel)
            for l in range(layers)
        )
        self.ahat_convs = nn.ModuleList(_conv(sizes[l], sizes[l], kernel) for l in range(layers))
        self.a_convs = nn.ModuleList(_conv(2 * sizes[l], sizes[l + 1], kernel) for l in range(layers - 1))
        for conv in self.r_convs:
            _glorot(conv, chunks=4)
        for conv in [*self.ahat_convs, *self.a_convs]:
            _glorot(conv)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
        self.optimizers = {"adam": torch.optim.Adam(self.parameters(), lr=config["lr"], eps=ADAM_EPS)}

    # --- the network -----------------------------------------------------------------------------

    def _zero_state(self, batch: int, like: torch.Tensor) -> tuple[list, list, list]:
        _, height, width = self.frame_shape
        shapes = [(batch, size, height >> l, width >> l) for l, size in enumerate(self.a_sizes)]
        r = [like.new_zeros(shape) for shape in shapes]
        c = [like.new_zeros(shape) for shape in shapes]
        e = [like.new_zeros((b, 2 * s, h, w)) for b, s, h, w in shapes]
        return r, c, e

    def _step(self, frame: torch.Tensor, state: tuple[list, list, list]):
        """One time step with input A_0 = ``frame``; returns (Â_0, errors E_l, new state)."""
        r_prev, c_prev, e_prev = state
        layers = len(self.a_sizes)
        r: list = [None] * layers
        c: list = [None] * layers
        for l in reversed(range(layers)):
            inputs = [r_prev[l], e_prev[l]]
            if l + 1 < layers:
                inputs.append(F.interpolate(r[l + 1], scale_factor=2, mode="nearest"))
            i, f, o, g = self.r_convs[l](torch.cat(inputs, dim=1)).chunk(4, dim=1)
            c[l] = hard_sigmoid(f) * c_prev[l] + hard_sigmoid(i) * torch.tanh(g)
            r[l] = hard_sigmoid(o) * torch.tanh(c[l])
        errors = []
        target = frame
        for l in range(layers):
            prediction = torch.relu(self.ahat_convs[l](r[l]))
            if l == 0:
                prediction = prediction.clamp(max=PIXEL_MAX)
                frame_prediction = prediction
            errors.append(error_units(target, prediction))
            if l + 1 < layers:
                target = F.max_pool2d(torch.relu(self.a_convs[l](errors[l])), 2)
        return frame_prediction, errors, (r, c, errors)

    def unroll(self, frames: torch.Tensor, steps: int, extrap_start: int | None = None):
        """Run ``steps`` time steps from zero states on ``frames`` (B, T, C, H, W) in [0, 1].

        From step ``extrap_start`` on (when given) the input is the previous step's output, so
        only ``frames[:, :extrap_start]`` is read. Returns the outputs Â_0 (B, steps, C, H, W),
        where output t predicts frame t, and the layer-mean errors (B, steps, L).
        """
        state = self._zero_state(frames.shape[0], frames)
        outputs, mean_errors = [], []
        for t in range(steps):
            frame = outputs[-1] if extrap_start is not None and t >= extrap_start else frames[:, t]
            prediction, errors, state = self._step(frame, state)
            outputs.append(prediction)
            mean_errors.append(torch.stack([e.mean(dim=(1, 2, 3)) for e in errors], dim=1))
        return torch.stack(outputs, dim=1), torch.stack(mean_errors, dim=1)

    # --- the Method contract ---------------------------------------------------------------------

    def _check(self, frames: torch.Tensor, what: str, min_length: int) -> None:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape or frames.shape[1] < min_length:
            raise BenchError(
                f"prednet: {what} must be (B, T>={min_length}, {', '.join(map(str, self.frame_shape))}), "
                f"got {tuple(frames.shape)}"
            )

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        self._check(context, "context", 1)
        if horizon < 1:
            raise BenchError(f"prednet: horizon must be at least 1, got {horizon}")
        length = context.shape[1]
        outputs, _ = self.unroll(context, length + horizon, extrap_start=length)
        return outputs[:, length:]

    def stage_and_lr(self, step: int) -> tuple[int, float]:
        """The stage (1 or 2) of training step ``step`` and its learning rate (high in each stage's first half)."""
        a_steps, steps = self.config["stage_a_steps"], self.config["steps"]
        stage, first, length = (1, 0, a_steps) if step < a_steps else (2, a_steps, steps - a_steps)
        lr = self.config["lr"] if 2 * (step - first) < length else self.config["lr_late"]
        return stage, lr

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        config = self.config
        self._check(clip, "clip", max(config["stage_a_nt"], config["extrap_start"] + 1))
        step = int(self.step_count)
        stage, lr = self.stage_and_lr(step)
        optimizer = self.optimizers["adam"]
        if step == config["stage_a_steps"]:
            optimizer.state.clear()  # stage 2 starts from a fresh Adam
        for group in optimizer.param_groups:
            group["lr"] = lr
        if stage == 1:
            frames = clip[:, : config["stage_a_nt"]]
            outputs, mean_errors = self.unroll(frames, frames.shape[1])
            time_weights = torch.full((frames.shape[1],), 1.0 / (frames.shape[1] - 1), device=clip.device)
            time_weights[0] = 0.0
            layer_weights = torch.tensor(config["layer_loss_weights"], dtype=clip.dtype, device=clip.device)
            loss = ((mean_errors @ layer_weights) @ time_weights).mean()
        else:
            frames = clip
            outputs, _ = self.unroll(frames, frames.shape[1], extrap_start=config["extrap_start"])
            loss = 0.5 * (outputs[:, 1:] - frames[:, 1:]).abs().mean()
        self.optimize("adam", loss)
        self.step_count += 1
        return {
            "stage": float(stage), "loss": loss.item(), "lr": lr,
            "pred_mean": outputs[:, 1:].mean().item(), "target_mean": frames[:, 1:].mean().item(),
        }
