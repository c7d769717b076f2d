"""RLadder: the fRNN topology with bridge connections instead of shared states (the paper's baseline).

The one idea changed from :mod:`bench.methods.frnn`: each recurrent layer (:class:`LadderGRU`) keeps
two states of its own -- an encoder state ``s`` (b channels) and a decoder state ``d`` (a channels,
the size of the layer's input) -- and each side reads the other as a lateral (bridge) input. Nothing
is shared, so encoder and decoder must both run at every step and predictions are fed back in
(paper Sec. 4.2, after the authors' ``lconvgru`` and ``network/rladder.py``):

* context frames 1..K-1: a full bottom-up pass, then a full top-down pass; the reconstruction is
  discarded (no loss);
* prediction 1: input frame K, up then down -> frame K+1; predictions 2..horizon: the input is the
  model's own previous prediction (re-encoding). The top layer's decoder reads its own new ``s``.

Training is fRNN's (L1 on the predictions in [-1, 1], TF1 RMSProp lr 1e-4, 500k iterations) with
**batch 6**. Init: the same scaled-orthogonal kernels, zero biases, both initial states learnable
and zero. ``paper`` has 155,992,225 parameters on 64x64 gray frames (fRNN: 105,707,617).
``small`` and ``tiny`` use fRNN's narrowed topologies and settings (``small``: batch 4 against
fRNN's 8, keeping the paper's 6:12 ratio; same 10,000 steps and learning-rate drop; 445,105
parameters). Measured on bouncing balls (first 200 test sequences): 65 min of training on a busy
2-core machine (0.26 s/step idle, so about 44 min), 10-step MSE 0.0166, PSNR 19.83, DSSIM 0.061, no
blank step (copy-last 0.130 / 9.60 / 0.227). Fine-tuned on Moving MNIST from those weights
(``--init-from bench/weights/bouncing_balls/rladder-small.pt``) for 10,000 steps (44 min), it still
fades to blank frames from step 6 (MSE 0.0377, PSNR 14.47, DSSIM 0.129; copy-last 0.0693, a blank
frame 0.0420; ``benchmarks/curves/mmnist-rladder-small.csv``, reproduced by a second run at 5,000
steps): the bouncing-balls pre-training is not the identity mapping KTH gives.
``predict(..., depth=k)`` drops layers as for fRNN.

Pre-training (paper Sec. 4.3): trained from scratch on Moving MNIST, RLadder collapses to a blank
frame (its curve is flat at MSE 0.0425). The paper's fix is to pre-train on KTH, where it first
learns an identity mapping, then fine-tune on Moving MNIST::

    bench train --method rladder --dataset kth --preset paper
    bench train --method rladder --dataset mmnist --preset paper \\
        --init-from checkpoints/kth/rladder-paper.pt

Both datasets are one-channel, so the KTH (64x80) weights load into the 64x64 model unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.layers import PAPER_TOPOLOGY, GateSet, RecurrentAutoencoder, tiled
from bench.methods.frnn import FRNN
from bench.registry import register_method


class LadderGRU(nn.Module):
    """A conv GRU layer with a separate decoder state and bridges (``a`` input, ``b`` state channels).

    ``encode_step(x, d, s)``: gates over ``[x ; d ; s]`` update ``s`` (kernels (b, 2a+b, k, k)).
    ``decode_step(v, s, d)``: gates over ``[v ; s ; d]`` update ``d`` (kernels (a, a+2b, k, k)).
    Weights: 3k^2[(2a+b)b + (a+2b)a] = 3k^2(a^2 + b^2 + 4ab), plus 3b + 3a biases and the two
    learnable initial states (b and a entries).
    """

    def __init__(self, a: int, b: int, kernel: int):
        super().__init__()
        self.fwd = GateSet(2 * a + b, b, kernel)
        self.bwd = GateSet(a + 2 * b, a, kernel)
        self.state_init = nn.Parameter(torch.zeros(b))
        self.back_state_init = nn.Parameter(torch.zeros(a))

    def encode_step(self, x: torch.Tensor, d: torch.Tensor | None, s: torch.Tensor | None):
        """New ``(d, s)``: ``d`` only gets its initial value here; ``s`` is updated."""
        if s is None:
            d, s = tiled(self.back_state_init, x), tiled(self.state_init, x)
        return d, self.fwd([x, d, s], 2)

    def decode_step(self, v: torch.Tensor, s: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return self.bwd([v, s, d], 2)


@register_method("rladder")
class RLadder(RecurrentAutoencoder):
    unit = LadderGRU
    presets = {
        "paper": {"topology": PAPER_TOPOLOGY, "lr": 1e-4, "lr_late": None, "lr_late_from": None,
                  "steps": 500_000, "batch_size": 6},
        "small": {**FRNN.presets["small"], "batch_size": FRNN.presets["small"]["batch_size"] // 2},
        "tiny": {**FRNN.presets["tiny"]},
    }

    def step(self, frame: torch.Tensor, enc: dict, dec: dict, cut: int) -> torch.Tensor:
        """One full pass of ``frame`` up and down ``layers[:cut]``; updates the states ``enc``/``dec`` in place."""
        x = frame
        for i, layer in enumerate(self.layers[:cut]):
            if isinstance(layer, LadderGRU):
                dec[i], enc[i] = layer.encode_step(x, dec.get(i), enc.get(i))
                x = enc[i]
            else:
                x = layer.encode(x)
        for i in reversed(range(cut)):
            layer = self.layers[i]
            if isinstance(layer, LadderGRU):
                x = dec[i] = layer.decode_step(x, enc[i], dec[i])
            else:
                x = layer.decode(x)
        return x

    def rollout(self, context: torch.Tensor, horizon: int, cut: int) -> torch.Tensor:
        enc: dict[int, torch.Tensor] = {}
        dec: dict[int, torch.Tensor] = {}
        for t in range(context.shape[1] - 1):
            self.step(context[:, t], enc, dec, cut)
        frames = [self.step(context[:, -1], enc, dec, cut)]
        for _ in range(horizon - 1):
            frames.append(self.step(frames[-1], enc, dec, cut))
        return torch.stack(frames, 1)
