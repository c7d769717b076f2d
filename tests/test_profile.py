"""Cost measurement (bench/profile.py, `bench profile`): FLOPs, memory and timings against hand counts."""
from __future__ import annotations

import csv

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import bench
from bench.cli import main
from bench.method import Method
from bench.profile import FlopCount, LiveBytes, measure_costs

SHAPE = (2, 12, 16)  # (C, H, W) of the toy methods' frames
FRAME = 2 * 12 * 16 * 4  # bytes of one float32 frame of one sequence


class OneConv(Method):
    """Predicts by applying one 3x3 conv (C -> C, sigmoid) to the last frame, again and again."""

    presets = {"tiny": {}}

    def __init__(self, frame_shape, config):
        super().__init__(frame_shape, config)
        self.conv = nn.Conv2d(frame_shape[0], frame_shape[0], 3, padding=1)
        self.optimizers = {"sgd": torch.optim.SGD(self.parameters(), lr=0.1)}

    def predict(self, context, horizon):
        frames, last = [], context[:, -1]
        for _ in range(horizon):
            last = torch.sigmoid(self.conv(last))
            frames.append(last)
        return torch.stack(frames, 1)

    def training_step(self, clip):
        (optimizer,) = self.optimizers.values()
        optimizer.zero_grad()
        loss = (self.predict(clip[:, :10], 10) - clip[:, 10:]).abs().mean()
        loss.backward()
        optimizer.step()
        return {"l1": loss.item()}


def conv_flops(c_in, c_out, k, h, w, batch=1):
    """Hand count: one multiply-add per kernel tap, input channel, output channel and output pixel."""
    return 2 * k * k * c_in * c_out * h * w * batch


def toy(device="cpu"):
    torch.manual_seed(0)
    with torch.device(device):
        return OneConv(SHAPE, {})


def test_single_conv_layer_flops_equal_the_hand_count():
    conv = nn.Conv2d(3, 16, 5, padding=2)
    with FlopCount() as counter:
        conv(torch.zeros(2, 3, 32, 40))
    assert counter.total == conv_flops(3, 16, 5, 32, 40, batch=2) == 6_144_000


def test_one_dgru_step_flops_equal_the_hand_count():
    frnn = pytest.importorskip("bench.methods.frnn")
    a, b, k, h, w, batch = 4, 6, 3, 8, 10, 2
    unit = frnn.DGRU(a, b, k)
    x, state, u = torch.zeros(batch, a, h, w), torch.zeros(batch, b, h, w), torch.zeros(batch, a, h, w)
    with torch.no_grad(), FlopCount() as forward:
        unit.encode_step(x, state)
    with torch.no_grad(), FlopCount() as backward:
        unit.decode_step(u, state)
    # three gates over [input ; state]: b output channels forward, a backward
    assert forward.total == 3 * conv_flops(a + b, b, k, h, w, batch) == 518_400
    assert backward.total == 3 * conv_flops(a + b, a, k, h, w, batch) == 345_600


def test_toy_costs_equal_hand_counts():
    batch = 3
    costs = measure_costs(toy(), batch_size=batch, repeats=2, train_steps=1)
    per_frame = conv_flops(2, 2, 3, 12, 16)
    assert costs["params"] == 2 * 2 * 9 + 2
    assert costs["predict_flops"] == 10 * per_frame  # per sequence, whatever the batch
    assert costs["predict_macs"] == 5 * per_frame
    # forward 10 convs; backward: weight gradient of all 10, input gradient of the 9 fed by a prediction
    assert costs["train_flops"] == batch * per_frame * (10 + 10 + 9)
    # weights + context, then at most 20 frames alive: 10 predictions and their stacked copy
    assert costs["predict_peak_bytes"] == 38 * 4 + batch * FRAME * (10 + 20)
    assert costs["train_peak_bytes"] > costs["predict_peak_bytes"]
    assert costs["latency_ms_median"] > 0 and costs["latency_ms_iqr"] >= 0 and costs["train_steps_per_s"] > 0
    assert (costs["device"], costs["dtype"], costs["batch_size"]) == ("cpu", "float32", batch)
    assert costs["memory_source"] == "live tensor tracker"


def test_copy_last_baseline_has_zero_flops():
    costs = measure_costs(bench.get_method("baseline", (1, 64, 64), "tiny"), repeats=1)
    assert costs["params"] == costs["predict_flops"] == costs["predict_macs"] == 0
    assert costs["predict_peak_bytes"] == 2 * 10 * 64 * 64 * 4  # the context and its copied last frame
    assert costs["train_flops"] is None and costs["train_steps_per_s"] is None


def test_tracker_reports_a_known_allocation_pattern_exactly():
    kept = torch.ones(1000)  # allocated before tracking: never counted, even when written in place
    with LiveBytes() as tracker:
        kept.add_(1)
        a = torch.empty(1000)  # 4000 B
        b = torch.zeros(250, dtype=torch.float64)  # 2000 B -> 6000
        view = a[:10].view(2, 5)  # shares a's storage: nothing new
        b.mul_(2)  # in place: nothing new
        del a  # the view keeps the storage alive
        c = torch.ones(100, dtype=torch.int8)  # 100 B -> 6100
        assert tracker.live == 6100
        del view  # frees a's 4000 B -> 2100
        d = torch.empty(3000)  # 12000 B -> 14100, the peak
        del d, c  # -> 2000
        assert tracker.live == 2000
    assert tracker.peak == 14100
    del b
    assert tracker.live == 0


def test_meta_device_gives_the_same_counts_without_computing():
    cpu = measure_costs(toy(), batch_size=2, repeats=1, train_steps=1)
    meta = measure_costs(toy("meta"), batch_size=2, repeats=1, train_steps=1)
    for key in ("params", "predict_flops", "train_flops", "predict_peak_bytes", "train_peak_bytes"):
        assert meta[key] == cpu[key], key
    assert meta["device"] == "meta" and meta["latency_ms_median"] is None and meta["train_steps_per_s"] is None
    assert meta["meta_value_reads"] == 2  # loss.item() of the first and the measured step
    assert "meta_value_reads" not in cpu


def test_training_peak_holds_the_optimizer_state_of_the_steady_state():
    sgd = measure_costs(toy(), batch_size=2, repeats=1, train_steps=0)
    method = toy()
    method.optimizers = {"adam": torch.optim.Adam(method.parameters())}
    adam = measure_costs(method, batch_size=2, repeats=1, train_steps=0)
    # Adam keeps two moments per parameter (2 x 38 floats) and a float32 step counter per tensor (2)
    assert adam["train_peak_bytes"] - sgd["train_peak_bytes"] == (2 * 38 + 2) * 4


class NeedsData(OneConv):
    """Its training step copies a tensor to the CPU, which meta tensors cannot do."""

    def training_step(self, clip):
        clip.cpu()
        return super().training_step(clip)


def test_meta_skips_a_training_step_that_needs_data_and_says_so():
    with torch.device("meta"):
        method = NeedsData(SHAPE, {})
    costs = measure_costs(method)
    assert costs["predict_flops"] == 10 * conv_flops(2, 2, 3, 12, 16)
    assert costs["train_flops"] is None and "tensor data" in costs["meta_skipped"]
    method.predict = lambda context, horizon: context.cpu()
    with pytest.raises(bench.BenchError, match="cannot be profiled on meta"):
        measure_costs(method)


def test_profiling_leaves_weights_optimizer_and_rng_untouched():
    method = toy()
    before = {key: value.clone() for key, value in method.state_dict().items()}
    torch.manual_seed(5)
    measure_costs(method, repeats=1, train_steps=2)
    after_profiling = torch.rand(4)
    torch.manual_seed(5)
    assert torch.equal(after_profiling, torch.rand(4))
    assert all(torch.equal(before[key], value) for key, value in method.state_dict().items())
    assert not method.optimizers["sgd"].state and method.conv.weight.grad is None
    assert method.training  # the mode it had


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_optimizer_state_left_on_the_cpu_follows_the_parameters():
    method = toy()
    method.optimizers = {"adam": torch.optim.Adam(method.parameters())}
    method.training_step(torch.rand(2, 20, *SHAPE))
    method.to("cuda")  # Module.to leaves the optimizer state on the CPU
    costs = measure_costs(method, repeats=1, train_steps=1)
    assert costs["train_flops"] == conv_flops(2, 2, 3, 12, 16) * 29
    assert method.optimizers["adam"].state[method.conv.weight]["exp_avg"].device.type == "cpu"  # untouched


def test_training_takes_its_own_batch_and_may_go_untimed():
    costs = measure_costs(toy(), batch_size=1, train_batch_size=2, repeats=1, train_steps=0)
    assert (costs["batch_size"], costs["train_batch_size"]) == (1, 2)
    assert costs["train_flops"] == 2 * conv_flops(2, 2, 3, 12, 16) * 29
    assert costs["train_steps_per_s"] is None and costs["latency_ms_median"] > 0


def test_bad_settings_are_clear_errors():
    with pytest.raises(bench.BenchError, match="batch sizes"):
        measure_costs(toy(), batch_size=0)
    with torch.device("meta"):
        mathieu = bench.get_method("mathieu", (1, 64, 64), "tiny")
    # a method's smallest training batch (Mathieu splits it between D and G) is honoured, not an error
    assert measure_costs(mathieu, device="meta")["train_batch_size"] == 2


class Elementwise(Method):
    """Predicts sigmoid(scale * last frame), again and again: only elementwise kernels, which allocate
    nothing but their outputs (a conv's cuDNN workspace would be invisible to the tracker)."""

    presets = {"tiny": {}}
    training_step = OneConv.training_step

    def __init__(self, frame_shape, config):
        super().__init__(frame_shape, config)
        self.scale = nn.Parameter(torch.ones(()))
        self.optimizers = {"sgd": torch.optim.SGD(self.parameters(), lr=0.1)}

    def predict(self, context, horizon):
        frames, last = [], context[:, -1]
        for _ in range(horizon):
            last = torch.sigmoid(last * self.scale)
            frames.append(last)
        return torch.stack(frames, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tracker_agrees_with_the_cuda_allocator():
    method = Elementwise((3, 64, 80), {}).cuda()
    costs = measure_costs(method, batch_size=4, repeats=2, train_steps=1)
    assert costs["memory_source"] == "cuda allocator"
    for key in ("predict_peak_bytes", "train_peak_bytes"):  # the allocator rounds blocks up to 512 B
        assert costs[key + "_tracked"] == pytest.approx(costs[key], rel=0.02), key


def test_cli_prints_a_table_and_writes_csv(tmp_path):
    out = tmp_path / "costs.csv"
    result = CliRunner().invoke(main, [
        "profile", "--methods", "baseline,frnn", "--dataset", "mmnist", "--preset", "tiny", "--device", "cpu",
        "--repeats", "1", "--train-steps", "1", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "predict GFLOPs" in result.output and "frnn" in result.output
    rows = list(csv.DictReader(out.open()))
    assert [row["method"] for row in rows] == ["baseline", "frnn"]
    assert rows[0]["predict_flops"] == "0" and int(rows[1]["predict_flops"]) > 0
    assert {row["frame_shape"] for row in rows} == {"1x64x64"} and rows[1]["batch_size"] == "1"


@pytest.mark.parametrize("args, message", [
    (["--methods", "nosuch", "--dataset", "mmnist"], "unknown method 'nosuch'"),
    (["--methods", "baseline", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
])
def test_cli_errors_name_the_culprit(args, message, tmp_path):
    result = CliRunner().invoke(main, ["profile", *args, "--preset", "tiny", "--device", "cpu",
                                       "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 1 and message in result.output


def analytic_macs(method_name):
    """MACs of predict(10 -> 10), from the layer shapes of spec sections 2.1, 2.5 and 4.3 (64x64 gray)."""
    from bench.layers import PAPER_TOPOLOGY, parse_topology

    entries = parse_topology(PAPER_TOPOLOGY, (1, 64, 64))
    units = [(e.kernel**2 * e.size[0] * e.size[1], e.in_channels, e.out_channels) for e in entries if e.kind == "rnn"]
    convs = sum(e.kernel**2 * e.in_channels * e.out_channels * e.size[0] * e.size[1]
                for e in entries if e.kind == "conv")
    if method_name == "frnn":  # 10 encoder passes, 10 decoder passes, 9 top-layer advances between decodes
        encoder = convs + sum(3 * k * (a + b) * b for k, a, b in units)
        decoder = convs + sum(3 * k * (a + b) * a for k, a, b in units)
        k, a, b = units[-1]
        return 10 * encoder + 10 * decoder + 9 * 3 * k * (a + b) * b
    # RLadder: 19 full up-and-down passes (frames 1..9 reconstructed, then 10 predictions)
    up = convs + sum(3 * k * (2 * a + b) * b for k, a, b in units)
    down = convs + sum(3 * k * (a + 2 * b) * a for k, a, b in units)
    return 19 * (up + down)


@pytest.mark.slow
def test_paper_presets_cost_ratios_match_the_paper():
    """RLadder / fRNN on 64x64 gray frames, batch 1, shape-only (meta): the paper says 1.44-1.5x the
    parameters, 2.88-3x the compute and about 2x the memory (Sec. 3.2)."""
    costs = {}
    for name in ("frnn", "rladder"):
        torch.manual_seed(0)
        with torch.device("meta"):
            method = bench.get_method(name, (1, 64, 64), "paper")
        costs[name] = measure_costs(method, device="meta")
        assert costs[name]["predict_macs"] == analytic_macs(name)
    frnn, rladder = costs["frnn"], costs["rladder"]
    assert (frnn["params"], rladder["params"]) == (105_707_617, 155_992_225)
    assert rladder["params"] / frnn["params"] == pytest.approx(1.476, abs=0.001)
    assert 2.7 <= rladder["predict_flops"] / frnn["predict_flops"] <= 3.05
    assert rladder["train_peak_bytes"] / frnn["train_peak_bytes"] >= 1.7
