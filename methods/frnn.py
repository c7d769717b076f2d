"""fRNN: Folded Recurrent Neural Network (Oliu, Selva, Escalera, ECCV 2018), after the authors' TF1 code.

A stack of double-mapping GRUs (:class:`DGRU`) whose states are shared by the encoder (forward
gates) and the decoder (backward gates). Schedule (paper Sec. 3.2):

* context frames 1..K: bottom-up through convs, pools and the forward gates only; each dGRU keeps
  the input it saw last (its shared "input-side" state ``u``);
* prediction k = 1..horizon: top-down through every dGRU's backward gates (updating ``u``), the
  upsamplings and the transposed convs -> frame K+k; then the top dGRU's forward gates advance the
  top state from its freshly decoded ``u``. The first frame is decoded straight from the state after
  frame K; predictions are never re-encoded. (The advance after the last frame, whose result the
  original computes and discards, is skipped.)

Training: L1 on the predicted frames in [-1, 1], TF1 RMSProp (lr 1e-4, decay 0.9, eps 1e-10,
accumulator initialised to 1), batch 12, 500k iterations (``paper``). Weights use the authors'
scaled-orthogonal init (:func:`bench.layers.scaled_orthogonal_`, seeded from torch instead of
unseeded numpy), biases and initial states start at zero.

Presets: ``paper`` is Table 1 (105,707,617 parameters on 64x64 gray frames). ``small`` keeps the
structure (convs, 4 pools, dGRUs, tied decoder) with fewer layers and channels so that it learns on
a 2-core CPU in about half an hour: one 8-channel conv, one dGRU per level (16, 32, 32, 32 channels,
3x3 kernels; Table 1 has two per level and 5x5 in L1-L4), 299,865 parameters; 10,000 steps at batch
8 with lr 1e-3, then 1e-4 from step 8,000 (the paper uses 1e-4 throughout). Learning curves
(``benchmarks/curves/mmnist-frnn-small.csv``, first 200 test sequences): at a constant 1e-3 the
10-step MSE stalls near 0.035 with the last 2 steps blank even after 12,000 steps; the drop to 1e-4
removes the blank steps. Measured on Moving MNIST: 41 min of training on a busy 2-core machine
(0.20 s/step idle, so about 34 min), 10-step MSE 0.0305, PSNR 15.52, DSSIM 0.117, no blank step
(copy-last 0.0693 / 11.77 / 0.206; a blank frame 0.0420 / 13.91 / 0.136). On bouncing balls
(``benchmarks/curves/bouncing_balls-frnn-small.csv``): 36 min on a busy 2-core machine, 10-step MSE
0.0096, PSNR 23.45, DSSIM 0.0385, no blank step (copy-last 0.130 / 9.60 / 0.227), still improving
at 10,000 steps (0.0140 at 8,000). ``tiny`` (tests only)
has 4 dGRUs of 4-6 channels.
Layer removal (paper Fig. 7): ``predict(..., depth=k)`` keeps the first k dGRUs and the new top one
takes the top role; ``depth=0`` (convs only) reconstructs the last context frame at every step.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.layers import PAPER_TOPOLOGY, GateSet, RecurrentAutoencoder, tiled
from bench.registry import register_method


class DGRU(nn.Module):
    """Double-mapping conv GRU from ``a`` input channels to ``b`` state channels (k x k, "same").

    ``encode_step(x, h)``: forward gates over ``[x ; h]`` update the state ``h`` (b channels).
    ``decode_step(u, v)``: backward gates over ``[u ; v]`` update the input-side tensor ``u`` (a channels)
    from the representation ``v`` above. The lower-level tensor comes first in both directions, as in
    the paper's dGRU equations (Sec. 3.1) and the authors' ``bconvgru.py``.
    Weights: 3k^2(a+b)b + 3k^2(a+b)a = 3k^2(a^2 + b^2 + 2ab), plus 3b + 3a biases and the b-entry
    learnable initial state.
    """

    def __init__(self, a: int, b: int, kernel: int):
        super().__init__()
        self.fwd = GateSet(a + b, b, kernel)
        self.bwd = GateSet(a + b, a, kernel)
        self.state_init = nn.Parameter(torch.zeros(b))

    def encode_step(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = tiled(self.state_init, x)
        return self.fwd([x, h], 1)

    def decode_step(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.bwd([u, v], 0)


@register_method("frnn")
class FRNN(RecurrentAutoencoder):
    unit = DGRU
    presets = {
        "paper": {"topology": PAPER_TOPOLOGY, "lr": 1e-4, "lr_late": None, "lr_late_from": None,
                  "steps": 500_000, "batch_size": 12},
        "small": {"topology": "c8k5 p g16k3 p g32k3 p g32k3 p g32k3", "lr": 1e-3, "lr_late": 1e-4,
                  "lr_late_from": 8000, "steps": 10_000, "batch_size": 8},
        "tiny": {"topology": "c4k3 c4k3 p g4k3 g4k3 p g6k3 g6k3", "lr": 1e-4, "lr_late": None, "lr_late_from": None,
                 "steps": 4, "batch_size": 2},
    }

    def encode(self, context: torch.Tensor, cut: int) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Run the context bottom-up through ``layers[:cut]`` (forward gates only).

        Returns ``(inputs, states)`` keyed by layer index: each dGRU's last input and last state.
        """
        inputs: dict[int, torch.Tensor] = {}
        states: dict[int, torch.Tensor] = {}
        for t in range(context.shape[1]):
            x = context[:, t]
            for i, layer in enumerate(self.layers[:cut]):
                if isinstance(layer, DGRU):
                    inputs[i] = x
                    x = states[i] = layer.encode_step(x, states.get(i))
                else:
                    x = layer.encode(x)
        return inputs, states

    def decode(self, inputs: dict[int, torch.Tensor], v: torch.Tensor, cut: int) -> torch.Tensor:
        """One top-down pass from ``v`` (the top state): updates ``inputs`` in place, returns a frame."""
        for i in reversed(range(cut)):
            layer = self.layers[i]
            if isinstance(layer, DGRU):
                v = inputs[i] = layer.decode_step(inputs[i], v)
            else:
                v = layer.decode(v)
        return v

    def rollout(self, context: torch.Tensor, horizon: int, cut: int) -> torch.Tensor:
        if not any(isinstance(layer, DGRU) for layer in self.layers[:cut]):
            # depth 0: only the tied convs remain, mapping the last frame to itself at every step
            frame = self.decode({}, self.encode_convs(context[:, -1], cut), cut)
            return frame.unsqueeze(1).expand(-1, horizon, -1, -1, -1)
        inputs, states = self.encode(context, cut)
        top = max(states)
        state = states[top]
        frames = []
        for k in range(horizon):
            if k:
                state = self.layers[top].encode_step(inputs[top], state)
            frames.append(self.decode(inputs, state, cut))
        return torch.stack(frames, 1)

    def encode_convs(self, frame: torch.Tensor, cut: int) -> torch.Tensor:
        """One frame through ``layers[:cut]`` when they hold no dGRU (depth 0)."""
        for layer in self.layers[:cut]:
            frame = layer.encode(frame)
        return frame
