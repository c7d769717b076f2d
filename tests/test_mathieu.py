"""Mathieu et al.'s multi-scale adversarial predictor, and the shared gradient difference loss."""
from __future__ import annotations

import pytest
import torch

import bench
from bench.errors import BenchError
from bench.losses import gradient_difference_loss
from bench.methods.mathieu import pyramid

SHAPES = [(1, 64, 64), (1, 64, 80), (3, 64, 80)]
LOG_KEYS = {"reconstruction", "gradient", "adversarial", "discriminator", "adv_rec_grad_ratio"}


def tiny(frame_shape=(1, 64, 64), seed=0, **overrides):
    torch.manual_seed(seed)
    return bench.get_method("mathieu", frame_shape, preset="tiny", **overrides)


def clips(batch, frame_shape=(1, 64, 64), length=20, seed=1):
    return torch.rand((batch, length, *frame_shape), generator=torch.Generator().manual_seed(seed))


def count(module):
    return sum(p.numel() for p in module.parameters())


# -- gradient difference loss (bench/losses.py) ----------------------------------------------------

TARGET = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]).view(1, 1, 2, 3)


def test_gdl_hand_computed_against_flat_prediction():
    # |d_i Y| = [2, 1, 1] (mean 4/3); |d_j Y| = [1, 2, 0, 0] (mean 3/4); a flat prediction has no gradient.
    loss = gradient_difference_loss(torch.zeros_like(TARGET), TARGET)
    assert loss.item() == pytest.approx(4 / 3 + 3 / 4)


def test_gdl_hand_computed_alpha_1_and_2():
    pred = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 4.0]]).view(1, 1, 2, 3)
    # |d_i P| = [1, 0, 4] vs [2, 1, 1] -> [1, 1, 3]; |d_j P| = [1, 0, 0, 4] vs [1, 2, 0, 0] -> [0, 2, 0, 4].
    assert gradient_difference_loss(pred, TARGET).item() == pytest.approx(5 / 3 + 6 / 4)
    assert gradient_difference_loss(pred, TARGET, alpha=2).item() == pytest.approx(11 / 3 + 20 / 4)


def test_gdl_ignores_offsets_and_sign_but_not_blur():
    target = clips(2)[:, 0]
    assert gradient_difference_loss(target + 0.3, target).item() == pytest.approx(0, abs=1e-7)
    assert gradient_difference_loss(-target, target).item() == pytest.approx(0, abs=1e-7)
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1)
    assert gradient_difference_loss(blurred, target).item() > 0.1


# -- architecture ---------------------------------------------------------------------------------


def test_paper_parameter_counts():
    # Hand counts from the spec's tables (K = 10): G per scale 603,009 + 628,737 + 2,988,801 +
    # 8,268,545; D on 32x32 crops 171,265 + 885,249 + 4,068,353 + 11,835,777.
    with torch.device("meta"):  # shapes only: skips the 30 M random initialisations
        method = bench.get_method("mathieu", (1, 64, 64), preset="paper")
        rgb = bench.get_method("mathieu", (3, 64, 80), preset="paper")
    assert [count(s) for s in method.generator.scales] == [603_009, 628_737, 2_988_801, 8_268_545]
    assert [count(s) for s in method.discriminator.scales] == [171_265, 885_249, 4_068_353, 11_835_777]
    assert (count(rgb.generator), count(rgb.discriminator)) == (12_818_572, 17_194_372)


def test_small_preset_is_quarter_width():
    method = bench.get_method("mathieu", (1, 64, 64), preset="small")
    assert (count(method.generator), count(method.discriminator)) == (812_132, 1_083_684)


@pytest.mark.parametrize("frame_shape", SHAPES)
def test_the_generator_predicts_at_four_scales_and_training_logs_every_term(frame_shape):
    method = tiny(frame_shape).eval()
    channels, height, width = frame_shape
    context = clips(2, frame_shape, length=10)
    with torch.no_grad():
        outputs = method.generator(pyramid(context.flatten(1, 2) * 2 - 1))
        assert method.predict(context, 3).shape == (2, 3, channels, height, width)  # any horizon
    assert [tuple(o.shape) for o in outputs] == [(2, channels, height >> s, width >> s) for s in (3, 2, 1, 0)]
    assert LOG_KEYS <= set(method.train().training_step(clips(4, frame_shape)))


def test_generator_refines_the_upsampled_coarser_prediction():
    method = tiny()
    for net in method.generator.scales[1:]:  # silence the corrections G'_k, k > 1
        torch.nn.init.zeros_(net.net[-1].weight)
        torch.nn.init.zeros_(net.net[-1].bias)
    with torch.no_grad():
        outputs = method.generator(pyramid(clips(2, length=10).flatten(1, 2)))
    expected = outputs[0]
    for _ in range(3):
        expected = torch.tanh(torch.nn.functional.interpolate(expected, scale_factor=2, mode="nearest"))
    assert outputs[0].abs().max() > 0.01
    assert torch.allclose(outputs[-1], expected, atol=1e-6)


def test_discriminator_is_conditioned_on_the_input_frames():
    method = tiny()
    clip = clips(2, length=11)[..., :32, :32] * 2 - 1  # D is built for the 32x32 training crops
    target = pyramid(clip[:, -1])
    logits = method.discriminator(pyramid(clip[:, :10].flatten(1, 2)), target)
    other = method.discriminator(pyramid(clip[:, :10].flip(0).flatten(1, 2)), target)
    assert [net.net[0].in_channels for net in method.discriminator.scales] == [11] * 4
    for a, b in zip(logits, other):
        assert a.shape == (2,)
        assert (a - b).abs().min() > 1e-6


def test_generator_receives_adversarial_gradient():
    method = tiny()
    clip = clips(2, length=11)[..., :32, :32] * 2 - 1
    losses, _ = method.generator_losses(clip[:, :10].flatten(1, 2), clip[:, 10])
    losses["adversarial"].backward()
    for net in method.generator.scales:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_adversarial_weight_changes_the_generator_update():
    def step(weight):
        method = tiny(lambda_adv=weight)
        torch.manual_seed(5)
        stats = method.training_step(clips(4))
        return stats, torch.cat([p.detach().flatten() for p in method.generator.parameters()])

    (with_adv, g_adv), (without, g_plain) = step(0.05), step(0.0)
    assert with_adv["adv_rec_grad_ratio"] > 0 and without["adv_rec_grad_ratio"] == 0
    assert with_adv["reconstruction"] == pytest.approx(without["reconstruction"])
    assert not torch.allclose(g_adv, g_plain)


# -- training and prediction schemes ---------------------------------------------------------------


def test_training_step_alternates_d_then_g_on_different_halves(monkeypatch):
    method = tiny()
    calls = []
    for name in ("_discriminator_step", "_generator_step"):
        original = getattr(method, name)
        monkeypatch.setattr(method, name, lambda x, y, f=original, n=name: calls.append((n, x.clone())) or f(x, y))
    g_before = [p.detach().clone() for p in method.generator.parameters()]
    d_before = [p.detach().clone() for p in method.discriminator.parameters()]
    method.training_step(clips(4))
    assert [name for name, _ in calls] == ["_discriminator_step", "_generator_step"]
    (_, d_inputs), (_, g_inputs) = calls
    assert d_inputs.shape == g_inputs.shape == (2, 10, 32, 32)  # two minibatches of 32x32 crops
    assert not torch.equal(d_inputs, g_inputs)
    assert all(not torch.equal(a, b) for a, b in zip(g_before, method.generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(d_before, method.discriminator.parameters()))
    assert method.updates.item() == 1


def test_training_is_repeatable():
    first = tiny(seed=3)
    second = tiny(seed=3)
    torch.manual_seed(9)
    a = first.training_step(clips(4))
    torch.manual_seed(9)
    b = second.training_step(clips(4))
    assert a == b


def test_crops_follow_the_motion():
    method = tiny(crop_tries=64)
    clip = torch.full((2, 20, 1, 64, 64), -1.0)
    for t in range(20):  # a blob moving inside the bottom-right 16x16 corner only
        clip[:, t, :, 48 + t % 8 : 56 + t % 8, 48:56] = 1.0
    torch.manual_seed(0)
    inputs, target = method._training_pairs(clip)
    assert inputs.shape == (2, 10, 32, 32) and target.shape == (2, 1, 32, 32)
    assert (target > 0).any(dim=(1, 2, 3)).all()


def test_predictions_are_fed_back_one_frame_at_a_time():
    method = tiny().eval()
    context = clips(2, length=12)
    with torch.no_grad():
        two = method.predict(context, 2)
        assert torch.allclose(method.predict(context[:, 2:], 2), two)  # only the last K = 10 frames count
        first = method.predict(context, 1)
        second = method.predict(torch.cat([context[:, 3:], first], dim=1), 1)
    assert torch.allclose(two[:, :1], first)
    assert torch.allclose(two[:, 1:], second, atol=1e-6)


def test_generator_learning_rate_decays_linearly():
    method = tiny(optimizer="sgd", lr_g=0.04, lr_g_end=0.005, lr_d=0.02, steps=100)
    method.updates.fill_(50)
    method._set_learning_rate()
    assert method.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(0.0225)
    assert method.optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(0.02)
    method.updates.fill_(500)
    method._set_learning_rate()
    assert method.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("frame_shape", "overrides", "message"),
    [
        ((1, 60, 64), {}, "divisible by 8"),
        ((1, 64, 64), {"crop": 36}, "'crop'"),
        ((1, 64, 64), {"crop": 24}, "too small"),
        ((1, 64, 64), {"optimizer": "rmsprop"}, "'optimizer'"),
    ],
)
def test_bad_configuration_is_a_clear_error(frame_shape, overrides, message):
    with pytest.raises(BenchError, match=message):
        tiny(frame_shape, **overrides)


def test_bad_inputs_are_clear_errors():
    method = tiny()
    with pytest.raises(BenchError, match="context"):
        method.predict(clips(1, length=5), 10)
    with pytest.raises(BenchError, match="B >= 2"):
        method.training_step(clips(1))
    with pytest.raises(BenchError, match="at least 11 frames"):
        method.training_step(clips(2, length=8))
