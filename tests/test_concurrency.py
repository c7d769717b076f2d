"""Processes that meet: two trainers on one checkpoint, two runs on one cell, and `--jobs` workers whose
parent is killed."""
from __future__ import annotations

import csv
import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import checkpoint as ckpt
from bench import locks
from bench.cli import main

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "BENCH_PLUGINS": "train_plugins", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
SQUARES, NET = "train-test-squares", "train-test-net"


def bench(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(condition, seconds: float = 600) -> None:  # generous: CI machines can be heavily loaded
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_trainer_of_one_checkpoint_is_refused_and_the_first_keeps_its_log(tmp_path):
    args = ["train", "--method", NET, "--dataset", SQUARES, "--preset", "tiny", "--steps", "100000", "--log-every",
            "1", "--checkpoint-every", "100000", "--set", "delay=0.02", "--checkpoint-dir", str(tmp_path), "--quiet"]
    path = ckpt.checkpoint_path(SQUARES, NET, "tiny", tmp_path)
    first = bench(*args)
    try:
        wait_for(lambda: ckpt.log_path(path).exists() or first.poll() is not None)
        second = bench(*args)
        refused = second.communicate(timeout=600)[0]
        assert first.poll() is None, "the first trainer ended before the second tried"
    finally:
        first.send_signal(signal.SIGTERM)  # it saves the steps done, then stops
        stopped = first.communicate(timeout=600)[0]
    assert second.returncode == 1
    assert f"Error: checkpoint {path} is in use by process {first.pid} (`bench {' '.join(args[:5])}" in refused
    assert refused.rstrip().endswith("); wait for that run to finish, or pass another --checkpoint-dir")
    step = ckpt.load(path)["step"]
    assert f"Interrupted: saved step {step} to {path}." in stopped
    with open(ckpt.log_path(path), newline="") as handle:  # the first trainer's whole log, untouched
        assert [int(row["step"]) for row in csv.DictReader(handle)] == list(range(1, step + 1))
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == [f".{path.name}.lock"]


def _hold(path: str, ready, release) -> None:
    with locks.exclusive(Path(path), f"results {path}", "wait"):
        ready.set()
        release.wait(600)


def test_a_second_run_on_a_cell_being_written_is_refused_before_any_work(tmp_path, monkeypatch):
    import train_plugins  # noqa: F401

    monkeypatch.setenv("BENCH_COMMAND", "bench run --methods baseline (the first)")
    folder = tmp_path / SQUARES / "baseline"
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(folder), ready, release))
    holder.start()
    try:
        assert ready.wait(600)
        calls = []
        monkeypatch.setattr("bench.grid.run_request", lambda *a, **k: calls.append(a))
        result = CliRunner().invoke(main, ["run", "--methods", "baseline", "--dataset", SQUARES, "--preset", "tiny",
                                           "--quiet", "--results-dir", str(tmp_path)])
    finally:
        release.set()
        holder.join(600)
    assert result.exit_code == 1 and calls == []
    assert (f"Error: results {folder} is in use by process {holder.pid} (`bench run --methods baseline (the first)`, "
            f"since ") in result.output
    assert "; wait for it to finish or pass another --results-dir" in result.output


def test_jobs_workers_die_with_their_killed_parent(tmp_path):
    """SIGKILL `bench run --jobs 2` while a worker trains: the workers stop within seconds (the trainer
    saving its checkpoint first), instead of training on for minutes."""
    psutil = pytest.importorskip("psutil")
    path = ckpt.checkpoint_path(SQUARES, NET, "tiny", tmp_path / "ck")
    parent = bench("run", "--methods", f"baseline,{NET}", "--dataset", SQUARES, "--preset", "tiny", "--quiet",
                   "--jobs", "2", "--set", "steps=100000", "--set", "delay=0.02", "--device", "cpu",
                   "--results-dir", str(tmp_path / "results"), "--checkpoint-dir", str(tmp_path / "ck"))
    try:
        # steps are done (the log has a row: the data workers have started), so the trainer has work to save
        wait_for(lambda: _logged_rows(ckpt.log_path(path)) > 0 or parent.poll() is not None)
        assert parent.poll() is None, parent.communicate()[0]
        workers = psutil.Process(parent.pid).children(recursive=True)
        assert workers
        parent.kill()
        parent.wait()
        gone, alive = psutil.wait_procs(workers, timeout=120)
    finally:
        parent.kill()
    for process in alive:
        process.kill()
    assert not alive, [process.cmdline() for process in alive]
    step = ckpt.load(path)["step"]  # the trainer saved on its way out
    assert 0 < step < 100000
    time.sleep(1.0)
    assert ckpt.load(path)["step"] == step  # and nothing writes any more
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def _logged_rows(log: Path) -> int:
    return max(len(log.read_text().splitlines()) - 1, 0) if log.exists() else 0


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    def refuse(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(locks.fcntl, "flock", refuse)
    with pytest.warns(UserWarning, match=r"cannot lock .*\.x\.lock \(No locks available\): nothing stops another "
                                         r"process from writing results x at the same time"):
        with locks.exclusive(tmp_path / "x", "results x", "wait"):
            with locks.exclusive(tmp_path / "x", "results x", "wait"):  # re-entrant within one process
                pass
