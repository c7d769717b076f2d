"""PredRNN (Wang et al., NeurIPS 2017): parameter counts by hand, one ST-LSTM step by hand, the zigzag
memory flow, scheduled sampling, the loss and bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import bench
from method_helpers import count, frames, seeded
from bench.errors import BenchError
from bench.methods.predrnn import STLSTM
from bench.profile import FlopCount

SMALL = (1, 32, 32)  # where the frame size does not matter: faster


def stlstm_params(a, h, k):
    """One cell: conv_x (7 gates, biased), conv_h (4), conv_m (3), conv_o over [C ; M], 1x1 fuse."""
    return k * k * a * 7 * h + 7 * h + k * k * h * 4 * h + k * k * h * 3 * h + k * k * 2 * h * h + 2 * h * h


def test_parameter_counts_by_hand():
    with torch.device("meta"):
        paper = bench.get_method("predrnn", (1, 64, 64), preset="paper")
    cells = stlstm_params(16, 64, 5) + 3 * stlstm_params(64, 64, 5)  # 4x4 patches: 16 input channels
    assert count(paper) == cells + 64 * 16 == 6_051_584
    with torch.device("meta"):
        wide = bench.get_method("predrnn", (1, 64, 64), preset="paper", hidden=128)  # OpenSTL's: 23.8M
    assert count(wide) == stlstm_params(16, 128, 5) + 3 * stlstm_params(128, 128, 5) + 128 * 16 == 23_842_304
    small = bench.get_method("predrnn", (1, 64, 64), preset="small")
    assert count(small) == stlstm_params(16, 32, 3) + 3 * stlstm_params(32, 32, 3) + 32 * 16
    with torch.device("meta"):
        colour = bench.get_method("predrnn", (3, 64, 80), preset="paper")
    assert colour.cells[0].conv_x.in_channels == 48 and colour.head.out_channels == 48


def test_paper_preset_predict_macs_by_hand():
    with torch.device("meta"):
        method = bench.get_method("predrnn", (1, 64, 64), preset="paper")
        with FlopCount() as flops:
            method.predict(torch.empty(1, 10, 1, 64, 64), 10)
    grid = 16 * 16
    cell = lambda a, h=64: (25 * (a * 7 * h + h * 4 * h + h * 3 * h + 2 * h * h) + 2 * h * h) * grid  # noqa: E731
    step = cell(16) + 3 * cell(64) + 64 * 16 * grid
    assert flops.total == 2 * 19 * step  # 2 FLOPs per MAC; 10 context steps, 9 fed back (the 10th prediction is the last output)


def _set(conv, values, bias=None):
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(values, dtype=torch.float32).view(conv.weight.shape))
        if bias is not None:
            conv.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_one_st_lstm_step_by_hand():
    cell = STLSTM(1, 1, 1)
    _set(cell.conv_x, [0.5, -0.3, 0.8, 0.2, 0.4, -0.6, 1.0], [0.1, -0.1, 0.0, 0.2, 0.0, 0.1, -0.2])
    _set(cell.conv_h, [0.7, 0.2, -0.5, 0.3])  # i, f, g, o
    _set(cell.conv_m, [-0.4, 0.6, 0.9])  # i', f', g'
    _set(cell.conv_o, [0.25, -0.75])  # over [C' ; M']
    _set(cell.fuse, [1.2, 0.4])
    x, h, c, m = 0.6, -0.3, 0.4, 0.7
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    c_new = s(-0.3 * x - 0.1 + 0.2 * h + 1.0) * c + s(0.5 * x + 0.1 + 0.7 * h) * math.tanh(0.8 * x - 0.5 * h)
    m_new = s(0.4 * x + 0.6 * m + 1.0) * m + s(0.2 * x + 0.2 - 0.4 * m) * math.tanh(-0.6 * x + 0.1 + 0.9 * m)
    o = s(1.0 * x - 0.2 + 0.3 * h + 0.25 * c_new - 0.75 * m_new)
    h_new = o * math.tanh(1.2 * c_new + 0.4 * m_new)
    full = lambda v: torch.full((2, 1, 3, 3), v)  # noqa: E731
    got = cell(full(x), full(h), full(c), full(m))
    for tensor, want in zip(got, (h_new, c_new, m_new)):
        assert torch.allclose(tensor, full(want), atol=1e-6)


def test_the_memory_zigzags_up_the_stack_and_from_the_top_to_the_bottom():
    model = seeded("predrnn", SMALL, layers=3).eval()
    calls = []
    for l, cell in enumerate(model.cells):
        cell.register_forward_hook(lambda module, args, output, l=l: calls.append((l, args, output)))
    with torch.no_grad():
        model.predict(frames(length=4, shape=SMALL), 2)
    assert [l for l, *_ in calls] == [0, 1, 2] * 5  # 4 context steps + 1 fed-back step
    for (_, _, before), (_, args, _) in zip(calls, calls[1:]):
        assert args[3] is before[2]  # M from the previous cell call: up the stack, then top -> bottom
    for index, (l, args, _) in enumerate(calls):
        if index >= 3:  # H and C stay in their layer
            assert args[1] is calls[index - 3][2][0] and args[2] is calls[index - 3][2][1]
        if l:  # the input of an upper cell is the H of the cell below
            assert args[0] is calls[index - 1][2][0]


def test_sampling_eta_falls_linearly_to_zero():
    model = seeded("predrnn", sampling_steps=50_000)
    assert model.sampling_eta(0) == pytest.approx(1 - 2e-5)  # the authors' 1 - 0.00002 per iteration
    assert model.sampling_eta(24_999) == pytest.approx(0.5)
    assert model.sampling_eta(49_999) == model.sampling_eta(80_000) == 0.0
    assert seeded("predrnn", sampling_steps=0).sampling_eta(0) == 0.0


def test_scheduled_sampling_chooses_true_frames_or_predictions_per_sequence():
    model = seeded("predrnn", SMALL).eval()
    clip = frames(length=20, shape=SMALL)
    with torch.no_grad():
        fed_back = model.rollout(clip, 19, 10)
        teacher = model.rollout(clip, 19, 19)  # every step reads the true frame
        mixed = model.rollout(clip, 19, 10, torch.tensor([[1.0] * 9, [0.0] * 9]))
    assert torch.allclose(model.rollout(clip, 19, 10, torch.zeros(2, 9)), fed_back)
    assert torch.allclose(model.rollout(clip, 19, 10, torch.ones(2, 9)), teacher)
    assert torch.allclose(mixed[0], teacher[0]) and torch.allclose(mixed[1], fed_back[1])
    assert not torch.allclose(teacher[:, 10:], fed_back[:, 10:])


def test_predict_is_the_fed_back_rollout_from_the_last_context_step():
    model = seeded("predrnn", SMALL).eval()
    context = frames(shape=SMALL)
    changed = context.clone()
    changed[:, 9] = 1 - changed[:, 9]
    with torch.no_grad():
        rollout = model.rollout(context, 19, 10)
        predicted = model.predict(context, 10)
        other = model.predict(changed, 1)
    assert torch.equal(predicted, rollout[:, 9:].clamp(0, 1))  # output of step 9 predicts frame 10
    assert not torch.allclose(other[:, 0], predicted[:, 0])


def test_the_loss_is_the_mse_of_all_19_next_frame_predictions_and_eta_resumes():
    model = seeded("predrnn", SMALL, sampling_steps=1)  # eta 0 from the first step: predictions fed back
    clip = frames(length=20, shape=SMALL)
    with torch.no_grad():
        prediction = model.rollout(clip, 19, 10)
    log = model.training_step(clip)
    assert log["eta"] == 0.0
    assert log["mse"] == pytest.approx(F.mse_loss(prediction, clip[:, 1:]).item(), rel=1e-5)
    assert log["mse_future"] == pytest.approx(F.mse_loss(prediction[:, 9:], clip[:, 10:]).item(), rel=1e-5)
    long_schedule = seeded("predrnn", SMALL, sampling_steps=10)
    logs = [long_schedule.training_step(clip)["eta"] for _ in range(3)]
    assert logs == pytest.approx([0.9, 0.8, 0.7])
    resumed = seeded("predrnn", SMALL, sampling_steps=10)
    resumed.load_state_dict(long_schedule.state_dict())
    resumed.load_optimizer_state_dict(long_schedule.optimizer_state_dict())
    assert resumed.training_step(clip)["eta"] == pytest.approx(0.6)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(BenchError, match="divisible by the patch size 4, got 64x66"):
        seeded("predrnn", (1, 64, 66))
    with pytest.raises(BenchError, match="odd kernel"):
        seeded("predrnn", kernel=2)
