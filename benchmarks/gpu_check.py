"""One prepared GPU check: CUDA tests, costs of every method, training-step speed-ups, CPU agreement.

    python benchmarks/gpu_check.py [--device cuda|cpu] [--out gpu_check] [--budget SECONDS]

On a GPU (the default where CUDA is available) it measures the ``paper`` presets and keeps within
``--budget`` (default 450 s, so one call of at most 8 minutes holds it with start-up to spare); with
``--device cpu`` it runs the same steps on the ``small`` presets (default budget 170 s), which is
how its code is tested without a GPU. It writes ``<out>/gpu_check.md`` (the tables), ``gpu_check.csv``
(one row per measured item), ``pytest.log`` and ``steps.log``, rewritten after every part, so a run
cut short keeps what it measured. The parts, cheapest and most certain first:

1. **tests**: ``pytest -m cuda``, the tests that need a GPU (on a CPU they all skip).
2. **agreement**: MSE, PSNR and DSSIM of copy-last predictions of 256 Moving MNIST test sequences
   computed on the device and on the CPU (pass: every value within 1e-6); fRNN ``tiny`` trained 20
   steps (seed 0, fp32) on the device and on the CPU (pass: loss curves within 1e-3 relative).
3. **profile**: every method's preset on 1x64x64 frames (Moving MNIST's; the paper also uses KTH's
   64x80 and UCF101's 3-channel frames): parameters, FLOPs, peak memory of ``predict`` (one
   sequence) and of a training step at the preset's batch, predict latency, fp32 steps/s, and the
   estimated time of the preset's whole training (its steps at that rate).
4. **steps**: fRNN and RLadder training steps at their preset batch in fp32, bf16 and compiled
   bf16, fed by the background loader (:mod:`bench.batches`), each in a child process with a
   deadline: median seconds per step, data wait per step, peak memory, compilation time, estimated
   whole training. The compiled runs come last and get whatever budget is left.

Moving MNIST clips come from the digits shipped with the package, so nothing is downloaded.
"""
from __future__ import annotations

import time

STARTED = time.monotonic()  # the budget counts the imports too

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import bench  # noqa: E402
from bench import checkpoint as ckpt  # noqa: E402
from bench.batches import training_batches  # noqa: E402
from bench.metrics import frame_metrics  # noqa: E402
from bench.profile import measure_costs  # noqa: E402
from bench.registry import methods as method_registry  # noqa: E402
from bench.speedups import Speedups, compiled, time_steps  # noqa: E402
from bench.train import train  # noqa: E402
from bench_train_step import digits  # noqa: E402  (the sibling benchmark: this folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (1, 64, 64)
STEP_METHODS = ("frnn", "rladder")
MODES = {"fp32": Speedups("fp32"), "bf16": Speedups("bf16"), "bf16+compile": Speedups("bf16", compile=True)}
FIELDS = ["part", "item", "method", "preset", "mode", "params", "predict_gflops", "train_gflops", "predict_peak_mib",
          "train_peak_mib", "latency_ms", "batch", "s_per_step", "data_wait_ms", "compile_s", "steps",
          "est_hours", "value", "passed", "note"]


def mib(value):
    return None if value is None else value / 2**20


def hours(steps, seconds_per_step):
    return None if seconds_per_step is None else steps * seconds_per_step / 3600


class Report:
    """The rows measured so far, written as CSV and Markdown after every part."""

    def __init__(self, out: Path, device: torch.device, preset: str, budget: float):
        self.out, self.device, self.preset, self.budget = out, device, preset, budget
        self.began = STARTED
        self.rows: list[dict] = []
        self.notes: list[str] = []

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.began)

    def add(self, **row) -> None:
        self.rows.append(row)
        print(" ".join(f"{key}={_fmt(value)}" for key, value in row.items() if value is not None), flush=True)

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "gpu_check.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)
        (self.out / "gpu_check.md").write_text(self.markdown())

    def markdown(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor() or "cpu"
        lines = [
            f"# GPU check: {name} ({self.device.type}), `{self.preset}` presets",
            "",
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
            f"{time.monotonic() - self.began:.0f} s of a {self.budget:.0f} s budget. Costs are fp32 on 1x64x64 "
            "frames; estimated hours are the preset's steps at the measured rate (one run, one dataset).",
            "",
        ]
        for part, columns in PARTS.items():
            rows = [row for row in self.rows if row["part"] == part]
            if rows:
                lines += [f"## {part}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
                lines += ["| " + " | ".join(_fmt(row.get(col)) for col in columns) + " |" for row in rows]
                lines.append("")
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


PARTS = {
    "tests": ["item", "value", "passed", "note"],
    "agreement": ["item", "value", "passed", "note"],
    "profile": ["method", "preset", "params", "predict_gflops", "train_gflops", "predict_peak_mib", "train_peak_mib",
                "latency_ms", "batch", "s_per_step", "steps", "est_hours", "note"],
    "steps": ["method", "preset", "mode", "batch", "s_per_step", "data_wait_ms", "train_peak_mib", "compile_s", "steps",
              "est_hours", "note"],
}


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_tests(report: Report) -> None:
    """``pytest -m cuda`` in a child process (the log goes to pytest.log)."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", "tests"]
    try:
        limit = max(10.0, min(0.3 * report.budget, report.left() - 60))
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as stopped:
        output, code = f"{stopped.stdout or ''}\ntimed out after {stopped.timeout:.0f} s", None
    (report.out / "pytest.log").write_text(output)
    lines = [line for line in output.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else "no output"
    report.add(part="tests", item="pytest -m cuda", value=summary, passed=code == 0, note="see pytest.log")


def check_agreement(report: Report, data) -> None:
    """Metrics and a short fRNN training on the device against the CPU."""
    clips = torch.from_numpy(data.test_clips(20).batch(range(256))).float().div_(255)
    context, target = clips[:, :10], clips[:, 10:]
    pred = context[:, -1:].expand_as(target).contiguous()
    cpu = frame_metrics(pred, target)
    dev = frame_metrics(pred.to(report.device), target.to(report.device))
    for name, values in cpu.items():
        other = dev[name].cpu().to(values.dtype)
        finite = torch.isfinite(values)
        same_inf = torch.equal(finite, torch.isfinite(other))
        worst = float((other[finite] - values[finite]).abs().max())
        report.add(part="agreement", item=f"{name}: max abs(device - cpu)", value=worst,
                   passed=same_inf and worst <= 1e-6, note="256 sequences x 10 steps, copy-last predictions")
    curves = {}
    with tempfile.TemporaryDirectory() as folder:
        for where in dict.fromkeys([report.device.type, "cpu"]):
            train("frnn", data, preset="tiny", steps=20, seed=0, device=where, checkpoint_dir=Path(folder) / where,
                  log_every=1, progress=False, echo=lambda _: None)
            log = ckpt.log_path(ckpt.checkpoint_path("mmnist", "frnn", "tiny", Path(folder) / where))
            with open(log, newline="") as handle:
                curves[where] = [float(row["l1"]) for row in csv.DictReader(handle)]
    first, second = curves[report.device.type], curves["cpu"]
    worst = max(abs(a - b) / abs(b) for a, b in zip(first, second))
    note = "fRNN tiny, 20 steps, seed 0, fp32" + ("" if report.device.type != "cpu" else " (cpu against itself)")
    report.add(part="agreement", item="training loss: max relative difference", value=worst, passed=worst <= 1e-3,
               note=note)


def profile_methods(report: Report) -> None:
    for name in bench.list_methods():
        if report.left() < 0.4 * report.budget:  # the rest is the training steps'
            report.notes.append(f"profile of {name} and later methods skipped: budget")
            return
        cls = method_registry.get(name)
        config = cls.resolve_config(report.preset)
        batch = config.get("batch_size", 1)
        try:
            torch.manual_seed(0)
            with torch.device(report.device):
                method = cls(SHAPE, config)
            with MODES["fp32"].step_context(report.device):  # true fp32, as training runs it
                costs = measure_costs(method, batch_size=1, device=report.device, repeats=3, train_steps=3,
                                      train_batch_size=batch)
        except Exception as error:  # one method's failure (e.g. out of memory) must not stop the check
            report.add(part="profile", method=name, preset=report.preset, note=f"failed: {_first_line(error)}")
            continue
        finally:
            method = None
            if report.device.type == "cuda":
                torch.cuda.empty_cache()
        rate = costs["train_steps_per_s"]
        per_step = 1 / rate if rate else None
        steps = config.get("steps") if cls.trainable else None
        report.add(part="profile", method=name, preset=report.preset, params=costs["params"],
                   predict_gflops=costs["predict_flops"] / 1e9,
                   train_gflops=costs["train_flops"] / 1e9 if costs["train_flops"] is not None else None,
                   predict_peak_mib=mib(costs["predict_peak_bytes"]), train_peak_mib=mib(costs["train_peak_bytes"]),
                   latency_ms=costs["latency_ms_median"], batch=costs["train_batch_size"] if cls.trainable else None,
                   s_per_step=per_step, steps=steps, est_hours=hours(steps, per_step) if steps else None)
        report.write()


def time_modes(report: Report, args) -> None:
    """Each (method, mode) in a child process (``--child``) with the budget left as its deadline."""
    order = [(m, mode) for mode in ("fp32", "bf16") for m in STEP_METHODS] + [(m, "bf16+compile") for m in STEP_METHODS]
    log = open(report.out / "steps.log", "w")
    with log:
        for name, mode in order:
            deadline = report.left() - 15
            if deadline < 20:
                report.add(part="steps", method=name, preset=report.preset, mode=mode, note="skipped: budget used up")
                continue
            command = [sys.executable, __file__, "--child", name, mode, "--device", str(report.device),
                       "--preset", report.preset, "--steps", str(args.steps)]
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=deadline)
                log.write(done.stdout + done.stderr)
                result = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {
                    "note": f"failed: {(done.stderr.strip().splitlines() or ['exit ' + str(done.returncode)])[-1]}"}
            except subprocess.TimeoutExpired:
                result = {"note": f"stopped after {deadline:.0f} s (budget); compilation alone may take longer"}
            report.add(part="steps", method=name, preset=report.preset, mode=mode, **result)
            report.write()


def child(name: str, mode: str, device: torch.device, preset: str, count: int) -> dict:
    """One method's training steps in one mode; returns the measurements as a dict (printed as JSON)."""
    speed = MODES[mode]
    cls = method_registry.get(name)
    config = cls.resolve_config(preset)
    torch.manual_seed(0)
    with torch.device(device):
        method = cls(SHAPE, config)
    method.use_precision(speed.precision)
    method.train()
    step, compile_s, note = method.training_step, None, None
    if speed.compile:
        step, ok = compiled(step, device, lambda line: print(line, file=sys.stderr))
        if not ok:
            note = "compile unavailable: eager"
    batches = training_batches(digits(), seed=0, batch_size=config["batch_size"], device=device, frame_shape=SHAPE)
    try:
        warm, _ = time_steps(step, batches, device, speed, 2)  # the compiled step compiles here
        compile_s = sum(warm) if speed.compile else None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times, waits = time_steps(step, batches, device, speed, count)
    finally:
        batches.close()
    per_step = statistics.median(times)
    return {
        "batch": config["batch_size"], "s_per_step": per_step, "data_wait_ms": statistics.median(waits) * 1e3,
        "train_peak_mib": mib(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None,
        "compile_s": compile_s, "steps": config["steps"], "est_hours": hours(config["steps"], per_step), "note": note,
    }


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--budget", type=float, default=None, help="Seconds (default: 450 on cuda, 170 on cpu).")
    parser.add_argument("--preset", default=None, help="Default: paper on cuda, small on cpu.")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per mode (default: 10 on cuda, 3 on cpu).")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.preset = args.preset or ("paper" if cuda else "small")
    args.steps = args.steps or (10 if cuda else 3)
    if args.child:
        print(json.dumps(child(*args.child, device, args.preset, args.steps)))
        return
    report = Report(args.out, device, args.preset, args.budget or (450.0 if cuda else 170.0))
    report.write()
    for part in (lambda: run_tests(report), lambda: check_agreement(report, digits()),
                 lambda: profile_methods(report), lambda: time_modes(report, args)):
        part()
        report.write()
    failed = [row for row in report.rows if row.get("passed") is False]
    print(f"\n{report.out / 'gpu_check.md'}: {len(report.rows)} rows, {len(failed)} failed checks, "
          f"{time.monotonic() - report.began:.0f} s")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
