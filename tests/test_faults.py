"""Faults a hostile user meets: kills between the files of a cell, full and read-only disks, files where
folders should be, damaged cells, a stale summary, empty checks, file modes and unsafe plugin names."""
from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import stat
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import train_plugins  # noqa: F401  (registers train-test-net and train-test-squares)
from bench import checkpoint as ckpt
from bench import get_dataset, registry, results, storage
from bench.cli import main
from bench.errors import BenchError
from bench.framecache import FrameCache
from bench.train import train
from synthetic_results import per_sequence, write_cell

SQUARES = "train-test-squares"
NET = "train-test-net"


def bench(*args: str):
    return CliRunner().invoke(main, list(args))


def run_baseline(results_dir, *extra: str):
    return bench("run", "--methods", "baseline", "--dataset", SQUARES, "--preset", "tiny", "--device", "cpu",
                 "--quiet", "--results-dir", str(results_dir), *extra)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Recovery copies go to <cache>/recovered: a fresh cache per test."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(name, size, read_only)``: a small tmpfs at ``tmp_path / name`` (needs root; skipped otherwise)."""
    mounted = []

    def mount(name: str, size: str = "1m", read_only: bool = False):
        target = tmp_path / name
        target.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                                               capture_output=True).returncode:
            pytest.skip("mounting a small tmpfs needs root")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


def recovered(tmp_path) -> list:
    folder = tmp_path / "cache" / "recovered"
    return sorted(folder.iterdir()) if folder.is_dir() else []


# --- a cell is one commit -------------------------------------------------------------------------------------


def _write_then_die(root, arrays, die_in: str) -> None:
    """Child process: write a cell, killed (``os._exit``, no clean-up) after the first file of the cell
    (``die_in="write_new"``) or between the two renames of a replacement (``"rename"``)."""
    import bench.results as module

    real = {"write_new": storage.write_new, "rename": os.rename}[die_in]

    def dies_after_the_first(*args):
        real(*args)
        os._exit(9)

    if die_in == "write_new":
        module.storage.write_new = dies_after_the_first
    else:
        module.os.rename = dies_after_the_first
    write_cell(root, "mmnist", "frnn", arrays)


def killed_writer(root, arrays, die_in: str) -> int:
    process = multiprocessing.get_context("spawn").Process(target=_write_then_die, args=(root, arrays, die_in))
    process.start()
    process.join(timeout=600)  # generous: a loaded CI machine imports torch slowly
    if process.is_alive():
        process.kill()
    return process.exitcode


@pytest.mark.parametrize("die_in", ["write_new", "rename"])
def test_a_kill_inside_a_cell_write_leaves_the_old_cell_or_nothing(tmp_path, die_in):
    old, new = per_sequence(1.0, n=20), per_sequence(2.0, n=10)
    assert killed_writer(tmp_path, new, "write_new") == 9  # the first write of the cell, killed
    assert results.scan(tmp_path) == ([], [])  # nothing: no cell, nothing damaged
    write_cell(tmp_path, "mmnist", "frnn", old)
    assert killed_writer(tmp_path, new, die_in) == 9  # a replacement, killed
    cells, damaged = results.scan(tmp_path)
    assert damaged == []
    if die_in == "write_new":  # killed after its first file: the complete old cell
        (cell,) = cells
        assert cell.curves["n"][0] == 20 and np.array_equal(cell.per_sequence["mse"], old["mse"])
    else:  # killed between moving the old cell aside and the new one in: no cell
        assert cells == []
    assert [p.name for p in (tmp_path / "mmnist").iterdir() if p.name.startswith(".frnn.")]  # hidden leftovers
    write_cell(tmp_path, "mmnist", "frnn", new)  # the next write cleans them up
    assert sorted(p.name for p in (tmp_path / "mmnist").iterdir()) == [".frnn.lock", "frnn"]
    assert results.read_cell(tmp_path / "mmnist" / "frnn").curves["n"][0] == 10


def test_a_mixed_cell_is_named_skipped_and_redone(tmp_path):
    """The issue's case: a new 10-sequence CSV beside the 20-sequence arrays of an older run."""
    out = tmp_path / "results"
    assert run_baseline(out).exit_code == 0
    assert run_baseline(tmp_path / "other", "--limit", "5").exit_code == 0
    shutil.copyfile(tmp_path / "other" / SQUARES / "baseline" / "steps.csv", out / SQUARES / "baseline" / "steps.csv")
    reason = "steps.csv is not the file this run wrote (its size or SHA-256 differs from meta.json's"
    with pytest.warns(UserWarning, match=rf"result {SQUARES}/baseline in .* is damaged: {re.escape(reason)}"):
        report = bench("report", "--results-dir", str(out))
    assert report.exit_code == 1 and "no complete results under" in report.output
    again = run_baseline(out)
    assert again.exit_code == 0, again.output
    assert f"redoing baseline/tiny on {SQUARES}: {reason}" in again.output and "skipping" not in again.output
    assert results.read_cell(out / SQUARES / "baseline").curves["n"][0] == 8


def test_a_truncated_npz_is_skipped_by_report_failed_by_check_and_redone_by_run(tmp_path):
    out = tmp_path / "results"
    write_cell(out, "mmnist", "frnn", per_sequence(2.0))
    assert run_baseline(out).exit_code == 0
    npz = out / SQUARES / "baseline" / "sequences.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    named = rf"result {SQUARES}/baseline in {out / SQUARES / 'baseline'} is damaged: sequences.npz is not the file"
    with pytest.warns(UserWarning, match=named):
        report = bench("report", "--results-dir", str(out), "--examples", "0")
    assert report.exit_code == 0, report.output  # the other cell is reported
    table = (out / "report" / "table2.md").read_text()
    assert "frnn" in table and "baseline" not in table
    reference = tmp_path / "reference"
    write_cell(tmp_path / "ref", "mmnist", "frnn", per_sequence(2.0))
    update = bench("check", "--results-dir", str(tmp_path / "ref"), "--reference", str(reference), "--update")
    assert update.exit_code == 0
    check = bench("check", "--results-dir", str(out), "--reference", str(reference))
    assert check.exit_code == 1 and "FAILED: 0 values drifted in 0 results, 1 other problems" in check.output
    assert f"! result {SQUARES}/baseline in {out / SQUARES / 'baseline'} is damaged: sequences.npz" in check.output
    refresh = bench("check", "--results-dir", str(out), "--reference", str(reference), "--update")
    assert refresh.exit_code == 1 and "cannot refresh the reference from damaged results" in refresh.output
    redo = bench("run", "--methods", "baseline,train-test-net", "--dataset", SQUARES, "--preset", "tiny", "--quiet",
                 "--device", "cpu", "--results-dir", str(out), "--checkpoint-dir", str(tmp_path / "ck"))
    assert redo.exit_code == 0, redo.output  # a damaged neighbour never breaks another cell's write
    assert f"redoing baseline/tiny on {SQUARES}: sequences.npz is not the file" in redo.output
    assert [(c.dataset, c.method) for c in results.scan(out)[0]] == [("mmnist", "frnn"), (SQUARES, "baseline"),
                                                                       (SQUARES, NET)]


def test_a_skipped_rerun_rebuilds_a_stale_summary(tmp_path):
    out = tmp_path / "results"
    assert run_baseline(out).exit_code == 0
    (out / "summary.csv").write_text("dataset,method\n")  # as left by a kill after the cell, before the summary
    again = run_baseline(out)
    assert "skipping baseline/tiny" in again.output
    assert (out / "summary.csv").read_text().splitlines()[1].startswith(f"{SQUARES},baseline,tiny,")


def test_results_in_the_old_layout_are_named(tmp_path):
    (tmp_path / "mmnist").mkdir()
    for suffix in (".csv", ".npz", ".json"):
        (tmp_path / "mmnist" / f"frnn{suffix}").write_text("")
    with pytest.warns(UserWarning, match=r"frnn.csv\|.npz\|.json are in the old layout, which vpbench no longer reads"):
        assert results.scan(tmp_path) == ([], [])


# --- output folders are checked before any work, and results survive a failed write -------------------------


def test_an_unwritable_results_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("bench.grid.run_request", lambda *a, **k: calls.append(a))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / SQUARES).write_text("a file where the dataset's folder goes")
    result = run_baseline(tmp_path / "results")
    folder = tmp_path / "results" / SQUARES
    assert result.exit_code == 1 and calls == []
    assert (f"Error: results folder {folder} is a file, not a folder; move it away or pass another "
            "--results-dir") in result.output


def test_a_read_only_results_folder_is_refused_before_any_work(tmp_path, tmpfs, monkeypatch):
    calls = []
    monkeypatch.setattr("bench.grid.run_request", lambda *a, **k: calls.append(a))
    folder = tmpfs("read-only", read_only=True)
    result = run_baseline(folder)
    assert result.exit_code == 1 and calls == []
    assert (f"Error: cannot write to results folder {folder}: Read-only file system; fix its permissions or "
            f"pass another --results-dir") in result.output


def test_a_full_results_folder_is_refused_before_any_work(tmp_path, tmpfs):
    folder = tmpfs("small", size="1m")
    result = run_baseline(folder)
    assert result.exit_code == 1
    assert (f"Error: results folder {folder} has 1.0 MiB free, about 8.0 MiB are needed; free some space or "
            f"pass another --results-dir") in result.output


def test_a_disk_that_fills_during_the_run_keeps_the_results(tmp_path, tmpfs, monkeypatch):
    """A real ENOSPC: the tmpfs passes the early check, then fills up while the cell is evaluated."""
    import bench.grid

    folder = tmpfs("fills", size="9m")
    evaluate = bench.grid.run_request

    def evaluate_then_fill(*args, **kwargs):
        result = evaluate(*args, **kwargs)
        with open(folder / "filler", "wb", buffering=0) as handle:
            with pytest.raises(OSError) as full:
                while True:
                    handle.write(b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC
        return result

    monkeypatch.setattr(bench.grid, "run_request", evaluate_then_fill)
    result = run_baseline(folder)
    (kept,) = recovered(tmp_path)
    cell = folder / SQUARES / "baseline"
    assert result.exit_code == 1
    assert (f"Error: cannot write results {cell} (No space left on device); the computed results are kept in "
            f"{kept}: move that folder to {cell} once the problem is fixed") in result.output
    assert results.read_cell(kept).curves["n"][0] == 8


def test_an_injected_enospc_keeps_the_results_and_other_cells_still_run(tmp_path, monkeypatch):
    out = tmp_path / "results"
    real = storage.write_new

    def full_for_baseline(path, data):
        if path.parent.name.startswith(".baseline.") and out in path.parents:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(storage, "write_new", full_for_baseline)
    result = bench("run", "--methods", "baseline,train-test-net", "--dataset", SQUARES, "--preset", "tiny", "--quiet",
                   "--device", "cpu", "--results-dir", str(out), "--checkpoint-dir", str(tmp_path / "ck"))
    (kept,) = recovered(tmp_path)
    assert result.exit_code == 1
    assert f"cannot write results {out / SQUARES / 'baseline'} (No space left on device); the computed results are " \
           f"kept in {kept}" in result.output
    assert [c.method for c in results.scan(out)[0]] == [NET]  # the other cell was written
    monkeypatch.undo()
    os.rename(kept, out / SQUARES / "baseline")  # what the message says to do
    assert run_baseline(out).output.count("skipping baseline/tiny") == 1


def test_a_checkpoint_that_cannot_be_saved_is_kept_elsewhere(tmp_path, monkeypatch):
    def full(path, checkpoint, keep=5):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt, "save", full)
    path = ckpt.checkpoint_path(SQUARES, NET, "tiny", tmp_path / "ck")
    with pytest.raises(BenchError) as error:
        train(NET, get_dataset(SQUARES), preset="tiny", checkpoint_dir=tmp_path / "ck", progress=False,
              echo=lambda _: None)
    (kept,) = recovered(tmp_path)
    assert str(error.value) == (f"cannot save checkpoint {path} (No space left on device); the training state at "
                                f"step 12 is kept in {kept}: move it to {path} to resume")
    assert ckpt.load(kept, method=NET)["step"] == 12


@pytest.mark.parametrize("command, option, value, what, folder", [
    (["train", "--method", NET, "--dataset", SQUARES, "--preset", "tiny", "--quiet"],
     "--checkpoint-dir", "sub", "checkpoint folder", f"sub/{SQUARES}"),
    (["run", "--methods", NET, "--dataset", SQUARES, "--preset", "tiny", "--quiet", "--results-dir", "{tmp}/r"],
     "--checkpoint-dir", "sub", "checkpoint folder", f"sub/{SQUARES}"),
    (["profile", "--methods", "baseline", "--dataset", SQUARES, "--preset", "tiny", "--device", "cpu"],
     "--out", "sub/x.csv", "output folder", "sub"),
    (["report", "--results-dir", "{tmp}/r"], "--out", "sub", "report folder", "sub"),
])
def test_each_output_option_names_a_file_in_the_way(tmp_path, command, option, value, what, folder):
    write_cell(tmp_path / "r", "mmnist", "frnn", per_sequence(1.0))  # something to report
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    result = bench(*[arg.format(tmp=tmp_path) for arg in command], option, str(blocker / value))
    assert result.exit_code == 1, result.output
    assert (f"Error: {what} {blocker / folder} cannot be created: {blocker} is a file, not a folder; move it away "
            f"or pass another {option}") in result.output
    assert "Traceback" not in result.output


# --- reading: the drift check, checkpoints, MNIST files --------------------------------------------------------


def test_check_fails_with_nothing_to_compare(tmp_path):
    (tmp_path / "reference").mkdir()
    missing = bench("check", "--results-dir", str(tmp_path / "none"), "--reference", str(tmp_path / "reference"))
    assert missing.exit_code == 1
    assert f"Error: results directory {tmp_path / 'none'} does not exist; run `bench run`" in missing.output
    (tmp_path / "results").mkdir()
    empty = bench("check", "--results-dir", str(tmp_path / "results"), "--reference", str(tmp_path / "reference"))
    assert empty.exit_code == 1 and "ok:" not in empty.output
    assert (f"! nothing to compare: no results under {tmp_path / 'results'} and no reference files under "
            f"{tmp_path / 'reference'}") in empty.output


def test_a_wrong_mnist_magic_number_is_named_as_such(tmp_path):
    from bench.datasets.mmnist import read_idx_images

    labels = tmp_path / "t10k-labels-idx1-ubyte"  # the labels file, mistaken for the images
    labels.write_bytes((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(3 + 8))
    with pytest.raises(BenchError, match=rf"^MNIST file {labels} is not an IDX image file \(its magic number is 2049, "
                                         r"not 2051\); replace it with the original download$"):
        read_idx_images(labels, md5="0" * 32)


# --- file modes and plugin names --------------------------------------------------------------------------------


def test_written_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert run_baseline(tmp_path / "results").exit_code == 0
        assert bench("report", "--results-dir", str(tmp_path / "results"), "--examples", "0").exit_code == 0
        train(NET, get_dataset(SQUARES), preset="tiny", checkpoint_dir=tmp_path / "ck", progress=False,
              echo=lambda _: None)
        cache = FrameCache(tmp_path / "cache", "kth", {})
        cache.put(cache.folder / "entry.npy", np.zeros((2, 1, 4, 4), np.uint8))
    finally:
        os.umask(previous)
    cell = tmp_path / "results" / SQUARES / "baseline"
    files = [*cell.iterdir(), tmp_path / "results" / "summary.csv", tmp_path / "results" / "report" / "table2.csv",
             ckpt.checkpoint_path(SQUARES, NET, "tiny", tmp_path / "ck"), cache.folder / "entry.npy"]
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: 0o644 for path in files}
    assert stat.S_IMODE(cell.stat().st_mode) == 0o755


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "x y", "-flag", "a.b", "..", "C:x"])
def test_registered_names_must_be_safe_path_components(name):
    with pytest.raises(BenchError, match=re.escape(f"cannot register method {name!r}: a name must be letters, digits")):
        registry.Registry("method", "bench.methods", "vpbench.tests.none").register(name)


def test_meta_json_lists_the_files_of_its_cell(tmp_path):
    """The format readers rely on: meta.json holds the size and SHA-256 of steps.csv and sequences.npz."""
    write_cell(tmp_path, "kth", "frnn", per_sequence(1.0))
    folder = tmp_path / "kth" / "frnn"
    meta = json.loads((folder / "meta.json").read_text())
    for name in ("steps.csv", "sequences.npz"):
        data = (folder / name).read_bytes()
        assert meta["files"][name] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
