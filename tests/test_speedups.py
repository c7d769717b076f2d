"""Mixed precision and torch.compile through the shared training loop (bench.speedups), on the CPU."""
from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

import train_plugins
from bench import checkpoint as ckpt
from bench import get_dataset, list_methods, speedups
from bench.cli import main
from bench.errors import BenchError
from bench.learnability import handful
from bench.registry import methods
from bench.speedups import Speedups
from bench.train import train
from method_helpers import seeded
from test_train import DATASET, METHOD, log_rows, run_train

CPU = torch.device("cpu")
TRAINABLE = [name for name in list_methods() if methods.get(name).trainable]


def steps(method, precision, clips, count):
    """``count`` training steps under ``precision``'s autocast, as the loop runs them; the logged losses."""
    method.use_precision(precision)
    speed = Speedups(precision)
    out = []
    for _ in range(count):
        with speed.step_context(CPU):
            out.append(method.training_step(clips))
    return out


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", TRAINABLE)
def test_every_method_trains_under_autocast_keeping_fp32_weights_and_optimizer_state(name, precision):
    method = seeded(name, (1, 32, 32))
    for losses in steps(method, precision, handful(), 2):
        assert all(math.isfinite(float(value)) for value in losses.values()), losses
    assert {p.dtype for p in method.parameters()} == {torch.float32}
    states = [value for opt in method.optimizers.values() for state in opt.state.values() for value in state.values()]
    floats = {value.dtype for value in states if torch.is_tensor(value) and value.is_floating_point()}
    assert floats <= {torch.float32}  # plain SGD (Mathieu tiny) keeps none
    if precision == "fp16":
        assert method.loss_scaling_used and set(method.grad_scalers) == set(method.optimizers)


def test_bf16_frnn_tiny_stays_within_a_tolerance_of_fp32():
    clips = handful()
    runs = {}
    for precision in ("fp32", "bf16"):
        method = seeded("frnn", (1, 32, 32))
        losses = [step["l1"] for step in steps(method, precision, clips, 3)]
        with torch.no_grad():
            runs[precision] = losses, method.eval().predict(clips[:, :10], 10)
    (fp32_losses, fp32_pred), (bf16_losses, bf16_pred) = runs["fp32"], runs["bf16"]
    assert bf16_losses != fp32_losses  # autocast did run in bfloat16
    assert bf16_losses == pytest.approx(fp32_losses, rel=2e-2)
    assert bf16_pred.dtype == torch.float32 and (bf16_pred - fp32_pred).abs().max() < 2e-2


def test_fp16_through_the_loop_saves_its_loss_scale_and_resumes_only_in_fp16(tmp_path):
    run_train(tmp_path, steps=3, precision="fp16", data_workers=0)
    path = ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path)
    saved = ckpt.load(path)
    assert (saved["precision"], saved["compile"]) == ("fp16", False)
    assert set(saved["grad_scalers"]) == {"adam"} and saved["grad_scalers"]["adam"]["scale"] > 0
    with pytest.raises(BenchError, match=rf"checkpoint {path} was trained with --precision fp16, not bf16; "
                                         r"drop --precision to resume"):
        run_train(tmp_path, steps=5, precision="bf16")
    assert run_train(tmp_path, steps=5).step == 5  # not given: the checkpoint's fp16
    assert ckpt.load(path)["precision"] == "fp16"
    assert all(math.isfinite(float(row["l1"])) for row in log_rows(tmp_path))


def test_fp16_refuses_a_method_that_bypasses_optimize(tmp_path, monkeypatch):
    def own_backward(self, clip):
        loss = (self.predict(clip[:, :10], 10) - clip[:, 10:]).abs().mean()
        self.optimizers["adam"].zero_grad()
        loss.backward()
        self.optimizers["adam"].step()
        return {"l1": loss.item()}

    monkeypatch.setattr(train_plugins.NextFrameNet, "training_step", own_backward)
    with pytest.raises(BenchError, match=r"method 'train-test-net' does not update its optimizers through "
                                         r"Method.optimize, so --precision fp16 cannot scale its losses"):
        run_train(tmp_path, precision="fp16")
    assert run_train(tmp_path / "bf16", steps=2, precision="bf16").step == 2  # bf16 needs no scaling


def test_precision_refusals():
    with pytest.raises(BenchError, match="unknown precision 'fp8'; use fp32, bf16, fp16"):
        Speedups("fp8")
    with pytest.raises(BenchError, match="--precision bf16 needs a cpu or cuda device, not meta"):
        Speedups("bf16").check(torch.device("meta"))
    with pytest.raises(BenchError, match=r"--precision fp16 is not supported with several processes \(torchrun\)"):
        Speedups("fp16").check(CPU, processes=2)
    Speedups("fp32").check(torch.device("meta"))


def test_compile_falls_back_to_eager_with_one_line_where_the_backend_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(speedups, "compile_unavailable", lambda device: "CppCompileError: no working C++ compiler")
    messages = []
    run_train(tmp_path / "fallback", steps=3, log_every=1, compile=True, echo=messages.append)
    assert messages == ["--compile: torch.compile cannot run on cpu here (CppCompileError: no working C++ "
                        "compiler); training eagerly."]
    assert ckpt.load(ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path / "fallback"))["compile"] is False
    run_train(tmp_path / "eager", steps=3, log_every=1)
    fallback, eager = ([row["l1"] for row in log_rows(tmp_path / run)] for run in ("fallback", "eager"))
    assert fallback == eager


@pytest.mark.slow
def test_compiled_training_gives_the_eager_losses(tmp_path):
    """Slow: Inductor compiles C++ kernels for the step (about a minute on 2 idle cores, more when busy)."""
    reason = speedups.compile_unavailable("cpu")
    if reason:
        pytest.skip(f"torch.compile cannot run on this CPU: {reason}")
    messages = []
    run_train(tmp_path / "compiled", steps=4, log_every=1, compile=True, echo=messages.append)
    run_train(tmp_path / "eager", steps=4, log_every=1)
    assert messages == []
    compiled, eager = ([float(row["l1"]) for row in log_rows(tmp_path / run)] for run in ("compiled", "eager"))
    assert compiled == pytest.approx(eager, rel=1e-4)
    assert ckpt.load(ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path / "compiled"))["compile"] is True


def test_commands_take_the_options_into_checkpoint_and_result_metadata(tmp_path):
    common = ["--dataset", DATASET, "--preset", "tiny", "--checkpoint-dir", str(tmp_path / "ck"), "--quiet"]
    trained = CliRunner().invoke(main, ["train", "--method", METHOD, *common, "--steps", "3", "--precision", "bf16",
                                        "--data-workers", "0"])
    assert trained.exit_code == 0, trained.output
    assert "% of the time waiting for data." in trained.output
    assert ckpt.load(ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path / "ck"))["precision"] == "bf16"
    bad = CliRunner().invoke(main, ["train", "--method", METHOD, *common, "--precision", "fp64"])
    assert bad.exit_code == 2 and "'fp64' is not one of 'fp32', 'bf16', 'fp16'" in bad.output
    ran = CliRunner().invoke(main, ["run", "--methods", METHOD, *common, "--set", "steps=3",
                                    "--results-dir", str(tmp_path / "results")])
    assert ran.exit_code == 0, ran.output
    meta = json.loads((tmp_path / "results" / DATASET / METHOD / "meta.json").read_text())
    assert (meta["training"]["precision"], meta["training"]["compile"]) == ("bf16", False)


def test_train_from_python_takes_the_options(tmp_path):
    summary = train(METHOD, get_dataset(DATASET), preset="tiny", steps=2, checkpoint_dir=tmp_path, progress=False,
                    echo=lambda _: None, precision="bf16", data_workers=2)
    assert summary.step == 2 and 0 <= summary.data_seconds < summary.seconds


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_frnn_tiny_trains_in_each_precision_close_to_the_cpu(precision):
    clips = handful()
    cpu = [step["l1"] for step in steps(seeded("frnn", (1, 32, 32)), "fp32", clips, 3)]
    method = seeded("frnn", (1, 32, 32)).cuda()
    method.use_precision(precision)
    speed, gpu = Speedups(precision), []
    for _ in range(3):
        with speed.step_context(torch.device("cuda")):
            gpu.append(method.training_step(clips.cuda())["l1"])
    assert gpu == pytest.approx(cpu, rel=1e-4 if precision == "fp32" else 3e-2)
    assert torch.backends.cudnn.allow_tf32  # PyTorch's default is back after the fp32 steps


@needs_cuda
def test_cuda_training_loop_in_bf16_records_the_device_and_precision(tmp_path):
    summary = run_train(tmp_path, steps=3, device="cuda", precision="bf16")
    saved = ckpt.load(ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path))
    assert summary.step == 3 and saved["device"].startswith("cuda") and saved["precision"] == "bf16"
