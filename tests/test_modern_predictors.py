"""What ConvLSTM, PredRNN and SimVP share: the prediction contract on every dataset's frames, and the
command line beside the paper's methods (listed, run on Moving MNIST, reported in one Table 2 and
one Fig. 2)."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from method_helpers import frames, seeded
from bench import checkpoint as ckpt
from bench.cli import main
from bench.errors import BenchError

MODERN = ["convlstm", "predrnn", "simvp"]
PAPER = ["baseline", "frnn", "rladder", "prednet", "srivastava", "mathieu", "villegas"]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("name, context, clip", [("convlstm", 1, 11), ("predrnn", 1, 11), ("simvp", 10, 20)])
def test_frames_of_the_wrong_shape_or_length_are_refused_by_name(name, context, clip):
    model = seeded(name, (1, 32, 32))
    with pytest.raises(BenchError, match=rf"^{name}: the context must be \(B, T>={context}, 1, 32, 32\), "
                                         r"got \(2, 10, 3, 32, 32\)$"):
        model.predict(torch.rand(2, 10, 3, 32, 32), 10)
    with pytest.raises(BenchError, match="the context must be"):
        model.predict(torch.rand(2, context - 1, 1, 32, 32), 10)
    with pytest.raises(BenchError, match=f"^{name}: horizon must be at least 1, got 0$"):
        model.predict(torch.rand(2, 10, 1, 32, 32), 0)
    with pytest.raises(BenchError, match=rf"^{name}: a training clip must be \(B, T>={clip}, 1, 32, 32\)"):
        model.training_step(torch.rand(2, clip - 1, 1, 32, 32))


@pytest.mark.parametrize("name", ["predrnn", "simvp"])
def test_init_from_keeps_the_weights_but_restarts_the_schedule(name, tmp_path):
    source = seeded(name, (1, 32, 32))
    clip = frames(length=20, shape=(1, 32, 32))
    for _ in range(2):
        source.training_step(clip)
    path = tmp_path / "source.pt"
    ckpt.save(path, ckpt.pack(source, preset="tiny", dataset="d", step=2, seed=0))
    fresh = seeded(name, (1, 32, 32), seed=1)
    ckpt.load_weights(fresh, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), source.parameters()))
    assert source.step_count.item() == 2 and fresh.step_count.item() == 0


def test_list_shows_the_modern_predictors_beside_the_papers_methods():
    listing = json.loads(run("list", "--json").output)["methods"]
    assert set(MODERN + PAPER) <= set(listing)
    for name in MODERN:
        assert listing[name]["presets"] == ["paper", "small", "tiny"]


@pytest.mark.slow  # trains four tiny presets, scores them and renders the report: about a minute on one core
def test_run_and_report_put_them_in_one_table_and_one_figure(mnist_dir, tmp_path):
    results = tmp_path / "results"
    ran = run("run", "--methods", ",".join(MODERN + ["frnn"]), "--dataset", "mmnist", "--data-dir", str(mnist_dir),
              "--preset", "tiny", "--limit", "16", "--results-dir", str(results),
              "--checkpoint-dir", str(tmp_path / "checkpoints"), "--quiet")
    assert ran.exit_code == 0, ran.output
    reported = run("report", "--results-dir", str(results), "--paper", "--examples", "1")
    assert reported.exit_code == 0, reported.output
    table = (results / "report" / "table2.md").read_text()
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ") and "[tiny]" in line]
    assert rows == ["| frnn [tiny]", "| convlstm [tiny]", "| predrnn [tiny]", "| simvp [tiny]"]  # paper's first
    assert "| frnn (paper) |" in table  # the paper's row beside a paper method's own
    assert (results / "report" / "fig2.png").stat().st_size > 0
