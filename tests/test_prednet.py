"""PredNet: units, indexing of the outputs, extrapolation feedback, two-stage training, presets."""
from __future__ import annotations

import math

import pytest
import torch

import bench
from bench.errors import BenchError
from bench.methods.prednet import PredNet, error_units, hard_sigmoid


def make(frame_shape=(1, 64, 64), preset="tiny", **overrides) -> PredNet:
    torch.manual_seed(0)
    return bench.get_method("prednet", frame_shape, preset=preset, **overrides)


def clips(batch=2, length=20, shape=(1, 64, 64), seed=1) -> torch.Tensor:
    return torch.rand((batch, length, *shape), generator=torch.Generator().manual_seed(seed))


def constant_frame_prediction(model: PredNet, value: float) -> None:
    """Make Â_0 = min(ReLU(value), 1) everywhere, whatever the state."""
    with torch.no_grad():
        model.ahat_convs[0].weight.zero_()
        model.ahat_convs[0].bias.fill_(value)


# --- units -----------------------------------------------------------------------------------------


def test_hard_sigmoid_has_keras_slope():
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 4.0])
    assert hard_sigmoid(x).tolist() == pytest.approx([0.0, 0.0, 0.5, 0.7, 1.0, 1.0])
    assert torch.nn.functional.hardsigmoid(torch.tensor(1.0)).item() == pytest.approx(2 / 3)  # not Keras'


def test_error_units_split_positive_and_negative_parts():
    target = torch.tensor([0.2, 0.8, 0.5]).view(1, 3, 1, 1)
    prediction = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    e = error_units(target, prediction)
    assert e.shape == (1, 6, 1, 1)
    assert e.flatten().tolist() == pytest.approx([0.3, 0.0, 0.0, 0.0, 0.3, 0.0])


def test_pixel_prediction_is_relu_clipped_at_one():
    model = make()
    frames = clips(length=3)
    for bias, expected in [(2.5, 1.0), (-1.0, 0.0), (0.25, 0.25)]:
        constant_frame_prediction(model, bias)
        outputs, mean_errors = model.unroll(frames, 3)
        assert torch.all(outputs == expected)
        # E_0 holds |x - Â_0| split in two halves, so its mean is mean|x - Â_0| / 2
        want = (frames - expected).abs().mean(dim=(2, 3, 4)) / 2
        assert torch.allclose(mean_errors[:, :, 0], want, atol=1e-6)


def test_paper_parameter_count_and_glorot_init():
    model = make(preset="paper")
    # R convs 1840 + 414912 + 1659264 + 3982080, Â convs 10 + 20784 + 83040 + 331968, A convs 912 + 83040 + 331968
    assert sum(p.numel() for p in model.parameters()) == 6_909_818
    assert sum(p.numel() for p in make(preset="small").parameters()) == 768_890
    conv = model.r_convs[1]  # input 48 + 96 + 96 = 240 channels, four gates of 48
    bound = math.sqrt(6 / (240 * 9 + 48 * 9))
    for gate in conv.weight.chunk(4, dim=0):
        assert gate.abs().max().item() <= bound
        assert gate.abs().max().item() > 0.99 * bound
    assert torch.all(conv.bias == 0)


# --- indexing and extrapolation ----------------------------------------------------------------------


def test_output_at_step_t_predicts_frame_t_from_earlier_frames_only():
    model = make().eval()
    frames = clips(batch=1, length=8)
    changed = frames.clone()
    changed[:, 5] = 1 - changed[:, 5]
    with torch.no_grad():
        base, _ = model.unroll(frames, 8)
        other, _ = model.unroll(changed, 8)
    assert torch.equal(base[:, :6], other[:, :6])  # outputs 0..5 never saw x_5
    assert not torch.allclose(base[:, 6], other[:, 6])  # output 6 (the prediction of x_6) did
    assert torch.all(base[:, 0] == 0)  # zero states: output 0 is ReLU(bias), blank at init


def test_predict_returns_outputs_of_steps_10_to_19():
    model = make().eval()
    context = clips(batch=2, length=10)
    with torch.no_grad():
        outputs, _ = model.unroll(context, 20, extrap_start=10)
        predicted = model.predict(context, 10)
        changed = context.clone()
        changed[:, 9] = 1 - changed[:, 9]
        after_change = model.predict(changed, 10)
    assert torch.equal(predicted, outputs[:, 10:])
    assert not torch.allclose(predicted, outputs[:, 9:19])  # not shifted by one
    assert not torch.allclose(after_change[:, 0], predicted[:, 0])  # the first prediction uses x_9


def test_extrapolation_feeds_back_the_previous_prediction():
    model = make().eval()
    context = clips(batch=2, length=10)
    with torch.no_grad():
        outputs, mean_errors = model.unroll(context, 15, extrap_start=10)
        # the same run in plain mode, with Â_0(t-1) given as the frame at steps 10..14
        fed = torch.cat([context, outputs[:, 9:14]], dim=1)
        replay, _ = model.unroll(fed, 15)
        # feeding the last real frame instead would be a different network
        held, _ = model.unroll(torch.cat([context, context[:, 9:].expand(-1, 5, -1, -1, -1)], dim=1), 15)
    assert torch.equal(replay, outputs)
    assert not torch.allclose(held[:, 11:], outputs[:, 11:])
    # in extrapolation E_0(t) is the change between consecutive predictions
    change = (outputs[:, 10:] - outputs[:, 9:14]).abs().mean(dim=(2, 3, 4)) / 2
    assert torch.allclose(mean_errors[:, 10:, 0], change, atol=1e-6)


# --- training ----------------------------------------------------------------------------------------


def test_stage_one_loss_is_the_l0_error_without_step_zero():
    model = make()
    clip = clips(batch=2)
    clip[:, 0] = 1.0  # step 0 has weight 0: a huge error there must not count
    constant_frame_prediction(model, 0.25)
    log = model.training_step(clip)
    want = sum((clip[:, t] - 0.25).abs().mean().item() / 2 for t in range(1, 20)) / 19
    assert log["stage"] == 1.0
    assert log["loss"] == pytest.approx(want, rel=1e-5)


def test_stage_two_loss_is_half_the_mae_of_output_t_against_frame_t():
    model = make(stage_a_steps=0)
    with torch.no_grad():
        model.ahat_convs[0].weight.mul_(10)  # a visible prediction that varies over time
        model.ahat_convs[0].bias.fill_(0.3)
    clip = clips(batch=2)
    with torch.no_grad():
        outputs, _ = model.unroll(clip, 20, extrap_start=10)
    want = 0.5 * (outputs[:, 1:] - clip[:, 1:]).abs().mean().item()
    shifted = 0.5 * (outputs[:, :-1] - clip[:, 1:]).abs().mean().item()
    log = model.training_step(clip)
    assert log["stage"] == 2.0
    assert log["loss"] == pytest.approx(want, rel=1e-5)
    assert abs(want - shifted) > 1e-3  # the pairing is testable


def test_stages_learning_rates_and_resume():
    model = make(steps=8, stage_a_steps=4)
    clip = clips(batch=1)
    logs = [model.training_step(clip) for _ in range(5)]
    assert [log["stage"] for log in logs] == [1, 1, 1, 1, 2]
    assert [log["lr"] for log in logs] == [1e-3, 1e-3, 1e-4, 1e-4, 1e-3]
    adam_state = next(iter(model.optimizers["adam"].state.values()))
    assert adam_state["step"].item() == 1  # stage 2 started a fresh Adam
    resumed = make(steps=8, stage_a_steps=4)
    resumed.load_state_dict(model.state_dict())
    resumed.load_optimizer_state_dict(model.optimizer_state_dict())
    assert int(resumed.step_count) == 5
    assert resumed.training_step(clip)["stage"] == 2.0
    assert [resumed.stage_and_lr(s)[1] for s in (5, 6, 7)] == [1e-3, 1e-4, 1e-4]


def test_training_reduces_the_loss_and_keeps_the_output_in_range():
    model = make()
    clip = clips(batch=2) * 0.5
    first = model.training_step(clip)["loss"]
    later = model.training_step(clip)["loss"]
    assert later < first
    with torch.no_grad():
        predicted = model.predict(clip[:, :10], 10)
    assert predicted.min() >= 0 and predicted.max() <= 1


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(BenchError, match="divisible by 4"):
        make((1, 64, 66))
    with pytest.raises(BenchError, match="layer_loss_weights"):
        make(layer_loss_weights=[1.0, 0.0])
    with pytest.raises(BenchError, match="stage_a_steps"):
        make(steps=2, stage_a_steps=3)
    model = make()
    with pytest.raises(BenchError, match="context"):
        model.predict(torch.rand(2, 10, 3, 64, 64), 10)
    with pytest.raises(BenchError, match="horizon"):
        model.predict(torch.rand(2, 10, 1, 64, 64), 0)
    with pytest.raises(BenchError, match="clip"):
        model.training_step(torch.rand(2, 8, 1, 64, 64))
