"""What users read: help lines, `bench list`, training messages, and no citation of files they lack."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

import bench.train
import train_plugins  # noqa: F401  (registers train-test-net and train-test-squares)
from bench.cli import main

REPO = Path(__file__).resolve().parents[1]
# Citations of files outside the repository: the design notes and specs the code was written from.
OUTSIDE = re.compile(r"specs/|\.\./shared|shared/data|frnn\.md|baselines\.md|\bthe spec\b|\bspec's\b|\bspec\s+(§|section|\d)|§")


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("name", ["ablate", "check", "data", "list", "profile", "report", "run", "train"])
def test_help_lists_the_command_in_one_uncut_sentence(name):
    line = next(line for line in invoke("--help").output.splitlines() if line.strip().startswith(name + " "))
    summary = line.split(name, 1)[1].strip()
    assert summary.endswith(".") and not summary.endswith("..."), line
    assert len(line) <= 80


def test_list_cites_no_file_outside_the_repository():
    for args in (["list"], ["list", "--json"]):
        output = invoke(*args).output
        assert "kth" in output and "frnn" in output
        assert not OUTSIDE.search(output), OUTSIDE.search(output)


@pytest.mark.parametrize("folder", ["bench", "methods", "datasets", "benchmarks", "scripts"])
def test_code_cites_the_paper_not_files_outside_the_repository(folder):
    cited = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted((REPO / folder).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert cited == []


def train_cli(tmp_path, steps, *extra):
    return invoke("train", "--method", "train-test-net", "--dataset", "train-test-squares", "--preset", "tiny",
                  "--steps", str(steps), "--checkpoint-dir", str(tmp_path), "--data-workers", "0", *extra)


def test_resume_says_how_many_steps_remain(tmp_path):
    assert "Resuming" not in train_cli(tmp_path, 3, "--quiet").output
    output = train_cli(tmp_path, 5, "--quiet").output
    assert "at step 3: training 2 more steps to 5." in output
    assert "Trained steps 3->5" in output


def test_missing_mnist_training_digits_are_announced_before_the_progress_bar(tmp_path, monkeypatch):
    """The warning comes from the data check, before the bar starts, not from the stream inside it."""
    events = []

    class Bar(bench.train.tqdm):
        def __init__(self, *args, **kwargs):
            events.append("bar")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(bench.train, "tqdm", Bar)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *rest: events.append(str(message))
        result = invoke("train", "--method", "frnn", "--dataset", "mmnist", "--data-dir", str(tmp_path), "--preset",
                        "tiny", "--steps", "1", "--data-workers", "0", "--checkpoint-dir", str(tmp_path / "ck"))
    assert result.exit_code == 0, result.output
    announced = [i for i, event in enumerate(events) if "MNIST training images not found" in event]
    assert len(announced) == 1 and "bar" in events and announced[0] < events.index("bar"), events
