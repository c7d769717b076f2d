"""MCnet (methods/villegas.py): structure, prediction scheme, losses and the D/G switching rule."""
from __future__ import annotations

import math

import pytest
import torch

from method_helpers import SHAPES, count, frames, seeded
from bench.errors import BenchError
from bench.methods.villegas import CONTEXT, adversarial_weight, gray, next_flags, unpool

def make(shape=(1, 64, 64), preset="tiny", seed=0, **overrides):
    return seeded("villegas", shape, preset, seed, **overrides)


def clips(shape=(1, 64, 64), batch=2, length=2 * CONTEXT, seed=1):
    return frames(batch, length, shape, seed)


def test_unpool_is_zero_filled_top_left():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = torch.tensor([[[
        [1.0, 0, 2.0, 0], [0, 0, 0, 0], [3.0, 0, 4.0, 0], [0, 0, 0, 0],
    ]]])
    assert torch.equal(unpool(x), expected)


@pytest.mark.parametrize("shape, g, d", [
    # Hand-computed from the layer table of specs/baselines.md §4.2 (gf = df = 64).
    ((1, 64, 64), 14_093_953, 4_343_745),
    ((1, 64, 80), 14_093_953, 4_345_793),  # D's linear layer sees 4x5x512 instead of 4x4x512
    ((3, 64, 80), 14_096_259, 4_409_793),  # RGB content input/output; D reads 60 channels
])
def test_paper_parameter_counts(shape, g, d):
    method = make(shape, preset="paper")
    assert (count(method.generator), count(method.discriminator)) == (g, d)


def test_small_preset_widths():
    method = make(preset="small")
    assert (count(method.generator), count(method.discriminator)) == (882_337, 279_537)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_step_logs_every_term(shape):
    method = make(shape)
    losses = method.training_step(clips(shape))
    assert set(losses) == {
        "reconstruction", "gradient", "adversarial", "discriminator", "d_real", "d_fake",
        "update_d", "update_g", "pred_mean", "target_mean",
    }
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert losses["discriminator"] == pytest.approx(losses["d_real"] + losses["d_fake"])
    assert losses["update_d"] == losses["update_g"] == 1.0  # both nets update on the first step


def test_training_is_repeatable():
    assert make().training_step(clips()) == make().training_step(clips())


def test_discriminator_sees_inputs_and_future():
    method = make()
    assert method.discriminator.features[0].in_channels == 2 * CONTEXT  # C * (K + T)
    frames = clips(batch=4)
    future = frames[:, CONTEXT:]
    other_context = clips(batch=4, seed=7)[:, :CONTEXT]
    with torch.no_grad():
        logits = method.discriminator(torch.cat([frames[:, :CONTEXT], future], dim=1))
        conditioned = method.discriminator(torch.cat([other_context, future], dim=1))
    assert logits.shape == (4,)
    assert not torch.allclose(logits, conditioned)


def test_discriminator_batchnorm_uses_batch_statistics_in_eval_mode():
    method = make().eval()
    frames = clips(batch=4)
    with torch.no_grad():
        alone = method.discriminator(frames[:1])
        in_batch = method.discriminator(frames)[:1]
    assert not torch.allclose(alone, in_batch)  # running statistics would make these equal


def test_generator_receives_adversarial_gradient():
    method = make(alpha=0.0, beta=1.0)  # the adversarial term is the generator's only loss
    before = [p.detach().clone() for p in method.generator.parameters()]
    losses = method.training_step(clips())
    assert losses["update_g"] == 1.0
    changed = [not torch.equal(b, p) for b, p in zip(before, method.generator.parameters())]
    assert all(changed)  # every generator tensor, the first motion conv included, got a gradient


def test_generator_step_leaves_discriminator_alone():
    method = make()
    method.update_flags.copy_(torch.tensor([False, True]))
    before = [p.detach().clone() for p in method.discriminator.parameters()]
    losses = method.training_step(clips())
    assert (losses["update_d"], losses["update_g"]) == (0.0, 1.0)
    assert all(torch.equal(b, p) for b, p in zip(before, method.discriminator.parameters()))


def test_switching_rule_is_sticky():
    margin = 0.3
    assert next_flags(True, True, 0.5, 0.5, margin) == (True, True)
    assert next_flags(True, True, 0.2, 0.5, margin) == (False, True)  # D wins: pause D
    assert next_flags(True, True, 0.5, 0.8, margin) == (True, False)  # D loses: pause G
    assert next_flags(False, True, 0.5, 0.5, margin) == (False, True)  # stays paused
    assert next_flags(False, True, 0.2, 0.8, margin) == (True, True)  # both off -> both on


def test_switching_flags_are_saved():
    method = make()
    method.update_flags.copy_(torch.tensor([False, True]))
    restored = make(seed=3)
    restored.load_state_dict(method.state_dict())
    assert restored.update_flags.tolist() == [False, True]


def _record_calls(module, store):
    return module.register_forward_hook(lambda mod, args, out: store.append((args, out)))


def test_first_step_reuses_last_observed_difference():
    generator = make().generator
    lstm_calls, motion_calls, content_calls = [], [], []
    _record_calls(generator.lstm, lstm_calls)
    _record_calls(generator.motion, motion_calls)
    _record_calls(generator.content, content_calls)
    context = torch.rand(2, CONTEXT, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        generator(context, 1)
    assert len(lstm_calls) == len(motion_calls) == CONTEXT - 1  # no extra LSTM step before x̂_10
    assert len(content_calls) == 1
    unit = (context + 1) / 2
    assert torch.allclose(motion_calls[-1][0][0], unit[:, -1] - unit[:, -2])  # the last observed difference
    assert torch.equal(content_calls[0][0][0], context[:, -1])
    with torch.no_grad():
        generator(context, 3)
    assert len(lstm_calls) == (CONTEXT - 1) + (CONTEXT - 1) + 2  # then one LSTM step per further prediction


def test_convlstm_forget_bias_and_gate_order():
    cell = make().generator.lstm
    torch.nn.init.zeros_(cell.conv.weight)
    torch.nn.init.zeros_(cell.conv.bias)
    x = torch.zeros(1, 16, 8, 8)
    c = torch.ones_like(x)
    with torch.no_grad():
        h, (c_new, _) = cell(x, (c, torch.zeros_like(x)))
        # all pre-activations 0: c' = c * sigmoid(0 + 1) + sigmoid(0) * tanh(0), h' = tanh(c') * sigmoid(0)
        assert torch.allclose(c_new, torch.full_like(x, 1 / (1 + math.exp(-1))))
        assert torch.allclose(h, 0.5 * torch.tanh(c_new))
        cell.conv.bias[32:48] = -1.0  # the third quarter is the forget gate: sigmoid(-1 + 1) = 0.5
        _, (c_new, _) = cell(x, (c, torch.zeros_like(x)))
    assert torch.allclose(c_new, torch.full_like(x, 0.5))


def test_rgb_differences_are_luminance():
    assert make((3, 64, 80)).generator.motion.stages[0][0].in_channels == 1  # motion sees one gray channel
    frames = torch.rand(2, 3, 3, 8, 8)
    expected = 0.2989 * frames[:, :, 0] + 0.5870 * frames[:, :, 1] + 0.1140 * frames[:, :, 2]
    assert torch.allclose(gray(frames)[:, :, 0], expected)
    assert torch.equal(gray(frames[:, :, :1]), frames[:, :, :1])


def test_predictions_are_fed_back():
    generator = make().generator
    motion_calls, content_calls = [], []
    _record_calls(generator.motion, motion_calls)
    _record_calls(generator.content, content_calls)
    context = torch.rand(2, CONTEXT, 1, 64, 64) * 2 - 1
    prediction = generator(context, 3)
    unit = (prediction + 1) / 2
    # Step 1 encodes gray(x̂_10) - gray(x_9) and the content of x̂_10; step 2 uses x̂_11 - x̂_10.
    assert torch.allclose(motion_calls[CONTEXT - 1][0][0], unit[:, 0] - (context[:, -1] + 1) / 2)
    assert torch.allclose(motion_calls[CONTEXT][0][0], unit[:, 1] - unit[:, 0])
    assert torch.allclose(content_calls[1][0][0], prediction[:, 0])
    # Full BPTT: prediction 2 has a gradient path back to prediction 1.
    first = content_calls[1][0][0]
    (grad,) = torch.autograd.grad(prediction[:, 1].sum(), first)
    assert grad.abs().sum() > 0


def test_prediction_two_depends_on_prediction_one():
    method = make().eval()
    context = clips()[:, :CONTEXT]
    calls = []

    def halve_first_output(module, args, output):
        calls.append(None)
        return output * 0.5 if len(calls) == 1 else output

    with torch.no_grad():
        plain = method.predict(context, 2)
        method.generator.decoder[-1].register_forward_hook(halve_first_output)
        perturbed = method.predict(context, 2)
    assert torch.allclose(perturbed[:, 0], ((plain[:, 0] * 2 - 1) * 0.5 + 1) / 2, atol=1e-6)  # x̂_10 halved
    assert not torch.allclose(plain[:, 1], perturbed[:, 1], atol=1e-4)  # prediction 2 followed prediction 1


def test_adversarial_weight_rule():
    assert adversarial_weight((1, 64, 80), None) == 0.02  # KTH
    assert adversarial_weight((1, 64, 64), None) == 0.02  # Moving MNIST: the KTH value (our choice)
    assert adversarial_weight((3, 64, 80), None) == 0.001  # UCF101
    assert adversarial_weight((1, 64, 64), 0.5) == 0.5
    assert make(beta=0.001).beta == 0.001  # a number overrides the rule
    with pytest.raises(BenchError, match="beta"):
        adversarial_weight((1, 64, 64), "strong")


def test_bad_inputs_are_clear_errors():
    with pytest.raises(BenchError, match="divisible by 8"):
        make((1, 64, 85))
    with pytest.raises(BenchError, match="1 or 3 channels"):
        make((2, 64, 64))
    method = make()
    with pytest.raises(BenchError, match="context"):
        method.predict(torch.rand(1, 1, 1, 64, 64), 10)
    with pytest.raises(BenchError, match="horizon"):
        method.predict(torch.rand(1, CONTEXT, 1, 64, 64), 0)
    with pytest.raises(BenchError, match="training clips"):
        method.training_step(torch.rand(1, 12, 1, 64, 64))
