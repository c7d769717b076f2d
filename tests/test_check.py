"""`bench check`: passes on the reference itself, fails on injected drift, names what is missing."""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.check import DEFAULT_TOLERANCES, Difference, compare, format_table, parse_tolerance, update_reference
from bench.cli import main
from bench.errors import BenchError
from bench.results import read_curves
from synthetic_results import cell_from_csv, per_sequence, write_cell

COMMITTED = Path(__file__).parents[1] / "results" / "reference"


@pytest.fixture
def dirs(tmp_path):
    """A results folder with two cells and a reference made from it."""
    results, reference = tmp_path / "results", tmp_path / "results" / "reference"
    write_cell(results, "mmnist", "baseline", per_sequence(1.0, n=20))
    write_cell(results, "kth", "frnn", per_sequence(2.0, n=20))
    update_reference(results, reference)
    return results, reference


def rerun(results: Path, dataset: str, step: int, metric: str, change, meta: dict | None = None) -> None:
    """Write the fixture's cell of ``dataset`` again with ``metric`` of every sequence at ``step`` changed
    (so its per-step mean changes the same way)."""
    method, quality = {"mmnist": ("baseline", 1.0), "kth": ("frnn", 2.0)}[dataset]
    arrays = per_sequence(quality, n=20)
    arrays[metric][:, step - 1] = change(arrays[metric][:, step - 1])
    write_cell(results, dataset, method, arrays, meta=meta)


def edit(path: Path, step: int, column: str, change) -> None:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[step - 1][column] = repr(change(float(rows[step - 1][column])))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def check(*args: str):
    return CliRunner().invoke(main, ["check", *args])


def test_the_reference_passes_against_itself(dirs):
    results, reference = dirs
    result = check("--results-dir", str(results), "--reference", str(reference))
    assert result.exit_code == 0, result.output
    assert "ok: 60 values within tolerance" in result.output
    assert result.output.count(" ok\n") == 6  # worst step of 2 cells x 3 metrics


def test_injected_drift_fails_and_is_named(dirs):
    results, reference = dirs
    rerun(results, "kth", 5, "mse", lambda v: v * 1.05)
    result = check("--results-dir", str(results), "--reference", str(reference))
    assert result.exit_code == 1
    drift = [line for line in result.output.splitlines() if line.endswith("DRIFT")]
    assert len(drift) == 1 and drift[0].split()[:4] == ["kth", "frnn", "mse", "5"]
    assert "FAILED: 1 values drifted in 1 results" in result.output
    loose = check("--results-dir", str(results), "--reference", str(reference), "--tolerance", "mse=0.06,0")
    assert loose.exit_code == 0, loose.output


def test_psnr_tolerance_is_absolute_by_default(dirs):
    results, reference = dirs
    rerun(results, "mmnist", 10, "psnr", lambda v: v + 0.04)
    assert compare(results, reference).ok
    rerun(results, "mmnist", 10, "psnr", lambda v: v + 0.06)
    failures = compare(results, reference).failures
    assert [(d.metric, d.step) for d in failures] == [("psnr", 10)]
    assert failures[0].diff == pytest.approx(0.06) and failures[0].allowed == DEFAULT_TOLERANCES["psnr"][1]


def test_missing_reference_and_missing_result_are_reported(dirs):
    results, reference = dirs
    write_cell(results, "ucf101", "frnn", per_sequence(2.0, n=20))
    shutil.rmtree(results / "mmnist")
    result = check("--results-dir", str(results), "--reference", str(reference))
    assert result.exit_code == 1
    assert f"! missing reference for ucf101/frnn: no {reference / 'ucf101' / 'frnn.csv'}" in result.output
    assert "! missing result for mmnist/baseline" in result.output


def test_a_changed_test_set_is_not_comparable_rather_than_drift(dirs):
    results, reference = dirs
    write_cell(results, "kth", "frnn", per_sequence(2.0, n=19))
    result = compare(results, reference)
    assert not result.ok and not result.problems and not result.failures
    assert [str(m) for m in result.mismatches] == [
        "kth/frnn: not comparable: reference made from frnn tiny, untrained, 20 sequences; "
        "yours from frnn tiny, untrained, 19 sequences"
    ]
    assert {d.dataset for d in result.differences} == {"mmnist"}  # its values were not compared


def test_another_preset_or_training_length_is_named_not_counted_as_drift(dirs):
    results, reference = dirs
    # the README's main job against a reference made like CI's grid: other preset, steps and sequences
    write_cell(results, "kth", "frnn", per_sequence(2.0, n=20), meta={"trained_steps": 40})
    update_reference(results, reference)
    write_cell(results, "kth", "frnn", per_sequence(3.0, n=30), preset="small", meta={"trained_steps": 10000})
    outcome = check("--results-dir", str(results), "--reference", str(reference))
    assert outcome.exit_code == 1
    assert ("! kth/frnn: not comparable: reference made from frnn tiny, 40 training steps, 20 sequences; "
            "yours from frnn small, 10000 training steps, 30 sequences") in outcome.output
    assert "DRIFT" not in outcome.output
    assert "FAILED: 1 results not comparable with the reference" in outcome.output
    assert "0 values drifted in 0 results" in outcome.output
    write_cell(results, "kth", "frnn", per_sequence(2.0, n=20), preset="small", meta={"trained_steps": 40})
    assert [m.method for m in compare(results, reference).mismatches] == ["frnn"]  # the preset alone


def test_the_preset_of_an_untrained_method_does_not_make_it_incomparable(dirs):
    results, reference = dirs  # the copy-last baseline has no weights: its presets are the same method
    write_cell(results, "mmnist", "baseline", per_sequence(1.0, n=20), preset="small")
    outcome = compare(results, reference)
    assert outcome.mismatches == [] and outcome.ok
    write_cell(results, "mmnist", "baseline", per_sequence(1.0, n=30), preset="small")
    assert [m.method for m in compare(results, reference).mismatches] == ["baseline"]  # other sequences still count


def test_a_result_made_like_the_reference_is_compared_and_its_drift_caught(dirs):
    results, reference = dirs
    write_cell(results, "kth", "frnn", per_sequence(2.0, n=20), meta={"trained_steps": 40})
    update_reference(results, reference)
    assert json.loads((reference / "kth" / "frnn.json").read_text()) == {
        "method": "frnn", "preset": "tiny", "trained_steps": 40, "n_sequences": 20}
    assert compare(results, reference).ok
    rerun(results, "kth", 2, "dssim", lambda v: v * 1.1, meta={"trained_steps": 40})
    result = compare(results, reference)
    assert not result.mismatches and [(d.method, d.metric, d.step) for d in result.failures] == [("frnn", "dssim", 2)]


def test_a_reference_without_its_origin_compares_the_sequence_count_only(dirs):
    results, reference = dirs
    (reference / "kth" / "frnn.json").unlink()
    write_cell(results, "kth", "frnn", per_sequence(2.0, n=20), preset="small", meta={"trained_steps": 5})
    assert compare(results, reference).ok
    write_cell(results, "kth", "frnn", per_sequence(2.0, n=10), preset="small")
    assert str(compare(results, reference).mismatches[0]).startswith(
        "kth/frnn: not comparable: reference made from frnn, 20 sequences; yours from frnn small")


def test_nan_matches_only_nan():
    assert Difference("d", "m", "psnr", 1, math.nan, math.nan, 0.1).ok
    assert not Difference("d", "m", "psnr", 1, math.nan, 20.0, 0.1).ok
    assert not Difference("d", "m", "psnr", 1, 20.0, math.nan, 0.1).ok


def test_tolerance_option_parsing():
    assert parse_tolerance("PSNR=0.001,0.1") == ("psnr", (0.001, 0.1))
    for bad, message in (("ssim=1,1", "must be one of"), ("mse=0.1", "METRIC=REL,ABS"), ("mse=-1,0", "non-negative")):
        with pytest.raises(BenchError, match=message):
            parse_tolerance(bad)
    result = check("--tolerance", "mse=x,y", "--reference", ".")
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_update_replaces_the_reference(dirs):
    results, reference = dirs
    rerun(results, "kth", 1, "dssim", lambda v: v * 2)
    shutil.rmtree(results / "mmnist")
    result = check("--results-dir", str(results), "--reference", str(reference), "--update")
    assert result.exit_code == 0, result.output
    assert "now holds 1 results; removed" in result.output and not (reference / "mmnist" / "baseline.csv").exists()
    assert not (reference / "mmnist" / "baseline.json").exists()
    assert compare(results, reference).ok


def test_all_steps_lists_every_value(dirs):
    results, reference = dirs
    assert len(format_table(compare(results, reference), all_steps=True).splitlines()) == 1 + 60


def test_missing_reference_folder_is_a_clear_error(tmp_path):
    result = check("--results-dir", str(tmp_path), "--reference", str(tmp_path / "none"))
    assert result.exit_code == 1 and "reference directory" in result.output and "does not exist" in result.output


@pytest.mark.parametrize("committed", [COMMITTED, COMMITTED.with_name("reference-shipped")], ids=lambda p: p.name)
def test_the_committed_reference_passes_on_itself_and_catches_drift(tmp_path, committed):
    files = sorted(committed.glob("*/*.csv"))
    origins = {path: json.loads(path.with_suffix(".json").read_text()) for path in files}
    for path, origin in origins.items():
        curves = read_curves(path)
        assert len(curves["step"]) == 10 and (curves["n"] > 0).all(), path
        assert origin["method"] == path.stem and origin["n_sequences"] == curves["n"].max(), path
        assert origin["preset"] in ("tiny", "small") and "trained_steps" in origin, path
        cell_from_csv(tmp_path, path.parent.name, path.stem, path.read_text(), origin)
    assert check("--results-dir", str(tmp_path), "--reference", str(committed)).exit_code == 0
    edited = tmp_path / "edited.csv"
    shutil.copyfile(files[0], edited)
    edit(edited, 3, "dssim", lambda v: v * 1.02)
    cell_from_csv(tmp_path, files[0].parent.name, files[0].stem, edited.read_text(), origins[files[0]])
    result = check("--results-dir", str(tmp_path), "--reference", str(committed))
    drift = [line.split()[:4] for line in result.output.splitlines() if line.endswith("DRIFT")]
    assert result.exit_code == 1 and drift == [[files[0].parent.name, files[0].stem, "dssim", "3"]]
