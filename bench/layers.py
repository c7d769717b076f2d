"""Building blocks shared by fRNN and RLadder (Oliu et al., ECCV 2018), after the authors' TF1 code.

* :func:`scaled_orthogonal_`: the authors' initialisation of every conv kernel.
* :class:`GateSet`: one set of three convolutional GRU gates that updates one tensor.
* :class:`TiedConv`: an encoder conv + tanh whose decoder is the transposed conv with the same
  kernel, its own bias and tanh. :class:`Pool2x`: 2x2 max-pool, decoded by nearest-neighbour x2.
* :func:`parse_topology`: the stack description ("c32k5 c64k5 p g128k5 ..."; Table 1 is
  :data:`PAPER_TOPOLOGY`), and :func:`depth_cut` for the layer-removal experiment.
* :class:`RecurrentAutoencoder`: what both methods share -- the stack, the [-1, 1] range, the L1
  loss on the predicted frames, TF1 RMSProp, ``predict(..., depth=k)``. A subclass supplies the
  recurrent unit (``unit``) and the schedule (``rollout``): that is where fRNN and RLadder differ.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BenchError
from .method import Config, Method, to_signed, to_unit
from .optim import TFRMSprop
from .protocol import CONTEXT

#: Table 1 of the paper: conv 32, conv 64, pool, dGRU 128, 128, pool, 256, 256, pool, 512, 512, pool, 256, 256.
PAPER_TOPOLOGY = "c32k5 c64k5 p g128k5 g128k5 p g256k5 g256k5 p g512k3 g512k3 p g256k3 g256k3"
#: Frames encoded before predicting; the training clip's remaining frames are the targets.


@torch.no_grad()
def scaled_orthogonal_(weight: torch.Tensor) -> torch.Tensor:
    """Fill a conv kernel ``(C_out, C_in, k, k)`` in place with the authors' "scaled orthogonal" init.

    The kernel is a matrix of R = C_in*k*k rows and C = C_out columns: draw it Gaussian, keep the
    (R, C) orthonormal factor of its thin SVD (U when R > C, else V^T), then scale every column to
    a population standard deviation of exactly ``2 / sqrt(R + C)``. The SVD factor comes from the
    eigendecomposition of the smaller Gram matrix (G^T G = V S^2 V^T, U = G V S^-1): the same
    factor up to column order and signs, several times faster on a CPU (float32 unless the matrix
    is near square, where the Gram matrix is ill-conditioned). Uses torch's global RNG (the
    original used unseeded numpy), so ``torch.manual_seed`` makes it repeatable.
    """
    cols, rows = weight.shape[0], weight[0].numel()
    if rows < 2:
        raise ValueError(f"scaled_orthogonal_: a kernel with {rows} input element(s) per output has no column spread")
    dtype = torch.float64 if max(rows, cols) < 4 * min(rows, cols) else torch.float32
    gauss = torch.randn(rows, cols, dtype=dtype)
    if rows > cols:
        eigenvalues, v = torch.linalg.eigh((gauss.T @ gauss).double())
        matrix = gauss @ (v / eigenvalues.sqrt()).to(dtype)
    else:
        eigenvalues, u = torch.linalg.eigh((gauss @ gauss.T).double())
        matrix = (u / eigenvalues.sqrt()).T.to(dtype) @ gauss
    matrix = matrix * (2 / ((rows + cols) ** 0.5 * matrix.std(dim=0, correction=0, keepdim=True)))
    return weight.copy_(matrix.T.reshape(weight.shape))


class GateSet(nn.Module):
    """Reset, update and candidate gates (one "same"-padded conv each, zero biases) that update one tensor.

    ``forward(parts, index)`` updates ``state = parts[index]`` given the other ``parts``, all
    concatenated along channels in the order given::

        r, z = sigmoid(W_r * cat(parts) + b_r), sigmoid(W_z * cat(parts) + b_z)
        c = tanh(W_c * cat(parts with state replaced by r * state) + b_c)
        new state = z * c + (1 - z) * state

    ``in_channels`` is the channel total of ``parts``; ``out_channels`` that of the state.
    W_r and W_z live in one conv of 2*out_channels outputs (r first), each initialised on its own.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int):
        super().__init__()
        self.padding = kernel // 2
        self.weight_rz = nn.Parameter(torch.empty(2 * out_channels, in_channels, kernel, kernel))
        self.weight_c = nn.Parameter(scaled_orthogonal_(torch.empty(out_channels, in_channels, kernel, kernel)))
        scaled_orthogonal_(self.weight_rz.data[:out_channels])
        scaled_orthogonal_(self.weight_rz.data[out_channels:])
        self.bias_rz = nn.Parameter(torch.zeros(2 * out_channels))
        self.bias_c = nn.Parameter(torch.zeros(out_channels))

    def forward(self, parts: list[torch.Tensor], index: int) -> torch.Tensor:
        state = parts[index]
        gates = F.conv2d(torch.cat(parts, 1), self.weight_rz, self.bias_rz, padding=self.padding)
        reset, update = torch.sigmoid(gates).chunk(2, 1)
        gated = list(parts)
        gated[index] = reset * state
        candidate = torch.tanh(F.conv2d(torch.cat(gated, 1), self.weight_c, self.bias_c, padding=self.padding))
        # = update * candidate + (1 - update) * state; lerp wants one dtype, which autocast does not
        # give it (the casts are no-ops in fp32)
        return torch.lerp(state, candidate.to(state.dtype), update.to(state.dtype))


def tiled(init: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A learnable per-channel initial state ``(C,)`` tiled over the batch and space of ``like`` (B, *, H, W)."""
    batch, _, height, width = like.shape
    return init.view(1, -1, 1, 1).expand(batch, -1, height, width)


class TiedConv(nn.Module):
    """``encode``: tanh(W * x + b); ``decode``: tanh(W^T * y + b_dec), the same kernel transposed ("same" padding)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int):
        super().__init__()
        self.padding = kernel // 2
        self.weight = nn.Parameter(scaled_orthogonal_(torch.empty(out_channels, in_channels, kernel, kernel)))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.bias_dec = nn.Parameter(torch.zeros(in_channels))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.conv2d(x, self.weight, self.bias, padding=self.padding))

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.conv_transpose2d(y, self.weight, self.bias_dec, padding=self.padding))


class Pool2x(nn.Module):
    """``encode``: 2x2 max-pool, stride 2 (TF "SAME": odd sizes round up); ``decode``: nearest x2 back to ``size``."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = size

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 2, ceil_mode=True)

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        return F.interpolate(v, scale_factor=2, mode="nearest")[..., : self.size[0], : self.size[1]]


@dataclass(frozen=True)
class Entry:
    """One entry of a stack: ``kind`` is "conv", "pool" or "rnn"; ``size`` is its input's (H, W)."""

    kind: str
    in_channels: int
    out_channels: int
    kernel: int
    size: tuple[int, int]


_TOKEN = re.compile(r"([cg])(\d+)k(\d+)|p")


def parse_topology(text: str, frame_shape: tuple[int, int, int]) -> list[Entry]:
    """Entries of a stack written as tokens ``cNkK`` (conv, N channels, KxK), ``p`` (pool), ``gNkK``
    (recurrent layer), bottom-up; the last token must be a recurrent layer (the top)."""
    channels, height, width = frame_shape
    entries = []
    for token in text.split():
        match = _TOKEN.fullmatch(token)
        if match is None or (match[3] and int(match[3]) % 2 == 0) or (match[2] and int(match[2]) < 1):
            raise BenchError(f"topology {text!r}: token {token!r} is not cNkK, gNkK (N >= 1, odd K) or p")
        if token == "p":
            entries.append(Entry("pool", channels, channels, 0, (height, width)))
            height, width = -(-height // 2), -(-width // 2)
        else:
            kind = "conv" if match[1] == "c" else "rnn"
            entries.append(Entry(kind, channels, int(match[2]), int(match[3]), (height, width)))
            channels = int(match[2])
    if not entries or entries[-1].kind != "rnn":
        raise BenchError(f"topology {text!r} must end with a recurrent layer (gNkK)")
    return entries


def depth_cut(entries: list[Entry], depth: int) -> int:
    """How many leading entries remain when only the first ``depth`` recurrent layers are kept.

    The cut falls right after the ``depth``-th recurrent layer (pools above it go too): on Table 1
    depths 8..1 give the paper's n = 14, 13, 11, 10, 8, 7, 5, 4. Depth 0 keeps only the convs
    below the first pool (the paper's Fig. 7 last row: "an identity mapping").
    """
    positions = [i for i, entry in enumerate(entries) if entry.kind == "rnn"]
    if not 0 <= depth <= len(positions):
        raise BenchError(f"depth must be between 0 and {len(positions)} (the recurrent layers), got {depth}")
    cut = positions[depth - 1] + 1 if depth else positions[0]
    while cut and entries[cut - 1].kind == "pool":
        cut -= 1
    return cut


class RecurrentAutoencoder(Method):
    """A tied conv/pool stack with recurrent layers, trained with L1 on the predicted frames in [-1, 1].

    Config: ``topology`` (see :func:`parse_topology`), ``lr``, ``steps``, ``batch_size``, and an optional
    step schedule: from update ``lr_late_from`` on, the learning rate is ``lr_late`` (both ``None``: a
    constant rate, as the paper). The update count is a buffer, so the schedule survives checkpoints.
    Subclasses set ``unit`` (built as ``unit(a, b, k)`` for each recurrent entry) and implement
    ``rollout(context, horizon, cut)`` on [-1, 1] tensors using the first ``cut`` entries.
    """

    unit: ClassVar[type[nn.Module]]
    loss_key = "l1"
    progress_buffers = ("updates",)

    def __init__(self, frame_shape: tuple[int, int, int], config: Config):
        super().__init__(frame_shape, config)
        self.entries = parse_topology(self.config["topology"], self.frame_shape)
        self.layers = nn.ModuleList(self._build(entry) for entry in self.entries)
        self.optimizers = {"model": TFRMSprop(self.parameters(), lr=self.config["lr"])}
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def _build(self, entry: Entry) -> nn.Module:
        if entry.kind == "conv":
            return TiedConv(entry.in_channels, entry.out_channels, entry.kernel)
        if entry.kind == "pool":
            return Pool2x(entry.size)
        return self.unit(entry.in_channels, entry.out_channels, entry.kernel)

    @property
    def depths(self) -> list[int]:
        """Depths ``predict`` accepts, deepest first: the full model, then each layer removed in turn, down to 0."""
        return list(range(sum(entry.kind == "rnn" for entry in self.entries), -1, -1))

    def _check(self, frames: torch.Tensor, what: str, min_length: int) -> None:
        if frames.dim() != 5 or tuple(frames.shape[2:]) != self.frame_shape or frames.shape[1] < min_length:
            raise BenchError(
                f"{self.name}: {what} must be (B, T>={min_length}, {', '.join(map(str, self.frame_shape))}), "
                f"got {tuple(frames.shape)}"
            )

    def predict(self, context: torch.Tensor, horizon: int, depth: int | None = None) -> torch.Tensor:
        """``(B, K, C, H, W)`` in [0, 1] -> ``(B, horizon, C, H, W)`` in [0, 1]; ``depth`` keeps only the
        first ``depth`` recurrent layers (the new top takes the top role), ``None`` keeps all."""
        self._check(context, "the context", 1)
        if horizon < 1:
            raise BenchError(f"{self.name}: horizon must be at least 1, got {horizon}")
        cut = len(self.entries) if depth is None else depth_cut(self.entries, depth)
        return to_unit(self.rollout(to_signed(context), horizon, cut))

    def training_step(self, clip: torch.Tensor) -> dict[str, float]:
        """Encode the first 10 frames, predict the rest with full BPTT, L1 in [-1, 1] on the predictions only."""
        self._check(clip, "a training clip", CONTEXT + 1)
        self.train()
        frames = to_signed(clip)
        target = frames[:, CONTEXT:]
        pred = self.rollout(frames[:, :CONTEXT], target.shape[1], len(self.entries))
        loss = (pred - target).abs().mean()
        lr = self.learning_rate()
        for group in self.optimizers["model"].param_groups:
            group["lr"] = lr
        self.optimize("model", loss)
        self.updates += 1
        return {"l1": loss.item(), "mse_signed": (pred.detach() - target).pow(2).mean().item(), "lr": lr}

    def learning_rate(self) -> float:
        """The rate of the next update: ``lr``, or ``lr_late`` from update ``lr_late_from`` on."""
        late_from = self.config.get("lr_late_from")
        if late_from is not None and self.updates.item() >= late_from:
            return float(self.config["lr_late"])
        return float(self.config["lr"])

    def rollout(self, context: torch.Tensor, horizon: int, cut: int) -> torch.Tensor:
        """[-1, 1] context ``(B, K, C, H, W)`` -> ``horizon`` predicted frames in [-1, 1], using ``layers[:cut]``."""
        raise NotImplementedError
