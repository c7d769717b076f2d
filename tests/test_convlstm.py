"""ConvLSTM (Shi et al., NeurIPS 2015): parameter counts against the paper's Table 1, one peephole cell
step by hand, the encoder-forecaster schedule, the cross-entropy loss and bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import bench
from method_helpers import count, frames, seeded
from bench.errors import BenchError
from bench.methods.convlstm import PeepholeConvLSTM
from bench.profile import FlopCount


def convlstm_params(hidden, kernel=5, depth=16):
    """By hand: encoder layers (input + state kernels, 4 gates, biases, 3 peepholes per channel), the
    forecaster's (no input kernel in its bottom layer) and the 1x1 output over all its states."""
    inputs = [depth] + hidden[:-1]
    encoder = sum(kernel**2 * (a + h) * 4 * h + 4 * h + 3 * h for a, h in zip(inputs, hidden))
    forecaster = sum(kernel**2 * (a + h) * 4 * h + 4 * h + 3 * h for a, h in zip([0] + hidden[:-1], hidden))
    return encoder + forecaster + sum(hidden) * depth + depth


def test_parameter_counts_match_the_papers_table_1():
    with torch.device("meta"):
        paper = bench.get_method("convlstm", (1, 64, 64), preset="paper")
        single = bench.get_method("convlstm", (1, 64, 64), preset="paper", hidden=[256])
    # ConvLSTM(5x5)-5x5-128-5x5-64-5x5-64: 7.585M; ConvLSTM(5x5)-5x5-256: 13.524M (4x4 patches: 16 channels)
    assert count(paper) == convlstm_params([128, 64, 64]) == 7_585_296
    assert count(single) == convlstm_params([256]) == 13_524_496
    assert count(bench.get_method("convlstm", (1, 64, 64), preset="small")) == convlstm_params([64, 32, 32], 3)
    assert paper.encoder[0].conv.in_channels == 16 + 128  # 4x4 patches of one gray frame
    assert paper.forecaster[0].conv.in_channels == 128  # the forecaster's bottom layer has no input


def test_paper_preset_predict_macs_by_hand():
    with torch.device("meta"):
        method = bench.get_method("convlstm", (1, 64, 64), preset="paper")
        with FlopCount() as flops:
            method.predict(torch.empty(1, 10, 1, 64, 64), 10)
    cells = 16 * 16  # the patch grid
    gates = lambda inputs: sum(25 * (a + h) * 4 * h * cells for a, h in zip(inputs, [128, 64, 64]))  # noqa: E731
    encoder, forecaster = gates([16, 128, 64]), gates([0, 128, 64])
    assert flops.total == 2 * (10 * encoder + 10 * (forecaster + 256 * 16 * cells))  # 2 FLOPs per MAC


def test_one_peephole_cell_step_by_hand():
    cell = PeepholeConvLSTM(1, 1, 1)
    with torch.no_grad():
        # gates i, f, g (the candidate), o; weights on [x ; h]
        cell.conv.weight.copy_(torch.tensor([[0.5, -1.0], [1.0, 0.5], [2.0, -0.5], [-1.0, 1.5]]).view(4, 2, 1, 1))
        cell.conv.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.0]))
        cell.peepholes.copy_(torch.tensor([0.3, -0.4, 0.6]).view(3, 1, 1, 1))
    x, h, c = 0.8, -0.2, 0.5
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    i = s(0.5 * x - 1.0 * h + 0.1 + 0.3 * c)
    f = s(1.0 * x + 0.5 * h + 0.2 - 0.4 * c)
    c_new = f * c + i * math.tanh(2.0 * x - 0.5 * h - 0.3)
    h_new = s(-1.0 * x + 1.5 * h + 0.6 * c_new) * math.tanh(c_new)  # o peeks at the new cell
    full = lambda v: torch.full((2, 1, 3, 3), v)  # noqa: E731
    got_h, got_c = cell(full(x), (full(h), full(c)))
    assert torch.allclose(got_c, full(c_new), atol=1e-6) and torch.allclose(got_h, full(h_new), atol=1e-6)


def test_an_input_less_cell_reads_only_its_state():
    cell = PeepholeConvLSTM(0, 2, 3)
    state = (torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4))
    assert cell.conv.in_channels == 2
    h, c = cell(None, state)
    assert h.shape == c.shape == (1, 2, 4, 4)


def test_the_forecaster_starts_from_the_encoders_last_states_layer_by_layer():
    model = seeded("convlstm", (1, 32, 32)).eval()
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen.setdefault(name, []).append((args, output))
        return hook

    for l in range(len(model.encoder)):
        model.encoder[l].register_forward_hook(record(("enc", l)))
        model.forecaster[l].register_forward_hook(record(("fc", l)))
    with torch.no_grad():
        model.predict(frames(shape=(1, 32, 32)), 3)
    for l in range(len(model.encoder)):
        assert len(seen["enc", l]) == 10 and len(seen["fc", l]) == 3
        (x, state), _ = seen["fc", l][0]
        assert state is seen["enc", l][-1][1]  # the very (H, C) the encoder ended with
        assert x is None if l == 0 else x is seen["fc", l - 1][0][1][0]  # no input at the bottom; H below above


def test_predictions_are_causal_and_do_not_depend_on_the_horizon():
    model = seeded("convlstm").eval()
    context = frames()
    changed = context.clone()
    changed[:, 9] = 1 - changed[:, 9]
    with torch.no_grad():
        ten, three, other = model.predict(context, 10), model.predict(context, 3), model.predict(changed, 1)
    assert torch.allclose(ten[:, :3], three, atol=1e-6)
    assert not torch.allclose(other[:, 0], ten[:, 0])


def test_the_loss_is_the_cross_entropy_of_the_ten_forecasts():
    model = seeded("convlstm")
    clip = frames(length=20)
    with torch.no_grad():
        predicted = model.predict(clip[:, :10], 10)
    want = F.binary_cross_entropy(predicted, clip[:, 10:]).item()
    log = model.training_step(clip)
    assert log["bce"] == pytest.approx(want, rel=1e-5)
    assert log["mse"] == pytest.approx((predicted - clip[:, 10:]).pow(2).mean().item(), rel=1e-5)
    with torch.no_grad():
        assert not torch.equal(model.predict(clip[:, :10], 10), predicted)  # RMSProp stepped


def test_bad_settings_raise_clear_errors():
    with pytest.raises(BenchError, match="divisible by the patch size 4, got 64x66"):
        seeded("convlstm", (1, 64, 66))
    with pytest.raises(BenchError, match="odd kernel"):
        seeded("convlstm", kernel=4)
