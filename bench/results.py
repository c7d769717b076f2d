"""Result cells: one folder per (dataset, method), committed as a unit, validated when read.

Under ``results/``:

* ``<dataset>/<method>/steps.csv``: one row per predicted step: ``step, mse, mse_se, psnr, psnr_se,
  dssim, dssim_se, n`` (se = standard error over test sequences), then ``psnr_inf``, the number of
  infinite PSNRs (identical frames) dropped from that step's PSNR mean.
* ``<dataset>/<method>/sequences.npz``: per-sequence x step arrays ``mse``, ``psnr``, ``dssim`` (N, 10),
  plus the qualitative examples ``examples_index``, ``examples_context``, ``examples_target``,
  ``examples_pred`` (uint8 frames).
* ``<dataset>/<method>/meta.json``: metadata (method, preset, config, dataset, conventions, costs, ...)
  and ``files``: the size and SHA-256 of the two files above.
* ``summary.csv`` (Table 2 style): its 10-step value is the mean of the per-step means (the paper's
  Table 2); its standard error is taken over sequences of each sequence's 10-step mean.

**A cell is one commit.** Its files are written into a hidden sibling folder (``.<method>.<pid>.<token>.new``),
flushed to disk, and that folder is renamed to ``<method>``: one rename makes the whole cell visible.
Replacing a cell renames the old folder aside, the new one in, then deletes the old one. A process
killed at any moment leaves the complete old cell, the complete new one, or (killed between those two
renames) no cell, never a mix; hidden leftovers are ignored by readers and removed by the next write of
that cell, which holds the cell's lock (:mod:`bench.locks`) so that two processes never write one cell.

Why a folder rather than three loose files carrying a shared run id: with loose files, a kill between two
of them has already overwritten part of the old cell, so readers could only refuse both versions; the
folder keeps the old cell whole until the new one is complete, with one rename on any POSIX file
system. (Linux's ``renameat2(RENAME_EXCHANGE)`` would close the gap between the two renames of a
replacement; the portable pair is simpler, and its worst case, a missing cell, is what ``bench run`` redoes.)

**Readers validate.** :func:`read_cell` checks both files against the sizes and hashes in ``meta.json``
(a file changed by hand, truncated, or copied from another run fails), parses the CSV and checks the
arrays' shapes against it; any failure raises :class:`DamagedCell`, naming the cell and what is wrong.
A read that races a replacement of the same cell is retried once. :func:`scan` returns the complete
and the damaged cells (and warns about results in the older layout of loose files); ``bench report``
and ``bench check`` skip damaged cells with a warning (``check`` counts them as failures) and ``bench
run`` redoes them. ``summary.csv`` is rebuilt from the complete cells under its own lock, by ``bench
run`` after each cell and at its end, even when every cell was skipped, so an interrupted run never
leaves it stale.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import locks, storage
from .longform import LONG_COLUMNS, SEQUENCE_COLUMNS, labelled, long_steps, sequence_table, step_rows, ten_step
from .errors import BenchError
from .protocol import METRICS, STEP_COLUMNS

REQUIRED_COLUMNS = STEP_COLUMNS[:-1]  # psnr_inf came later; older CSVs (and references) lack it
FILES = {"csv": "steps.csv", "npz": "sequences.npz", "json": "meta.json"}
CELL_BYTES = 8 << 20  # room one cell needs at most (10,000 sequences and colour examples: about 5 MiB)
LOCK_ADVICE = "wait for it to finish or pass another --results-dir"


class DamagedCell(BenchError):
    """A cell whose files are missing, unreadable or inconsistent with each other."""

    def __init__(self, folder: Path, reason: str):
        self.folder, self.reason = Path(folder), reason
        self.dataset, self.method = self.folder.parent.name, self.folder.name
        super().__init__(f"result {self.dataset}/{self.method} in {self.folder} is damaged: {reason}")


@dataclass
class StoredCell:
    """One complete, validated cell: its per-step curves, metadata and arrays."""

    dataset: str
    method: str
    folder: Path
    curves: dict[str, np.ndarray]
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def per_sequence(self) -> dict[str, np.ndarray]:
        return {name: self.arrays[name] for name in METRICS}

    @property
    def examples(self) -> dict[str, np.ndarray]:
        """The saved qualitative examples (``examples_index``, ``_context``, ``_target``, ``_pred``)."""
        return {key: value for key, value in self.arrays.items() if key.startswith("examples_")}


def cell_folder(results_dir: str | os.PathLike, dataset: str, method: str) -> Path:
    return Path(results_dir) / dataset / method


def cell_lock(folder: Path):
    """The cell's exclusive lock (a context manager); refused at once when another process holds it."""
    return locks.exclusive(folder, f"results {folder}", LOCK_ADVICE)


def write_cell(results_dir: str | os.PathLike, dataset: str, method: str, per_sequence: dict[str, np.ndarray],
               examples: dict[str, np.ndarray], metadata: dict[str, Any]) -> Path:
    """Commit one cell (see the module's docs); returns its folder. When the results folder fails at
    write time (full, read-only), the cell is written to a recovery folder instead and the error says where."""
    folder = cell_folder(results_dir, dataset, method)
    files = _encode(per_sequence, examples, metadata)
    try:
        with cell_lock(folder):
            _commit(folder, files)
    except (OSError, BenchError) as error:  # BenchError: another process holds the cell
        reason = storage.describe(error) if isinstance(error, OSError) else str(error)
        kept = storage.recover(f"{dataset}-{method}", lambda target: _commit(target, files))
        if kept is None:
            raise BenchError(f"cannot write results {folder} ({reason}), nor a copy in a recovery folder: "
                             "the results of this cell are lost") from None
        raise BenchError(f"cannot write results {folder} ({reason}); the computed results are kept in {kept}: "
                         f"move that folder to {folder} once the problem is fixed") from None
    return folder


def _encode(per_sequence, examples, metadata) -> dict[str, bytes]:
    """The cell's files as bytes; ``meta.json`` records the size and SHA-256 of the others."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=STEP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(step_rows(per_sequence))
    arrays = io.BytesIO()
    np.savez_compressed(arrays, **per_sequence, **examples)
    files = {FILES["csv"]: text.getvalue().encode(), FILES["npz"]: arrays.getvalue()}
    meta = {**metadata, "files": {name: _fingerprint(data) for name, data in files.items()}}
    files[FILES["json"]] = (json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n").encode()
    return files


def _fingerprint(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _commit(folder: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into a hidden sibling of ``folder``, then rename it to ``folder`` (the caller
    holds the cell's lock, so hidden siblings left by killed writers can go)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (*folder.parent.glob(f".{folder.name}.*.new"), *folder.parent.glob(f".{folder.name}.*.old")):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = storage.hidden_sibling(folder, "new")
    old = None
    try:
        os.mkdir(staging)
        for name, data in files.items():
            storage.write_new(staging / name, data)
        storage.fsync_dir(staging)
        if os.path.lexists(folder):
            old = storage.hidden_sibling(folder, "old")
            os.rename(folder, old)
        os.rename(staging, folder)
    except BaseException:
        if old is not None and not os.path.lexists(folder):
            os.rename(old, folder)  # put the previous cell back
            old = None
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    storage.fsync_dir(folder.parent)


def read_cell(folder: str | os.PathLike) -> StoredCell:
    """The validated cell in ``folder``; :class:`DamagedCell` when it is not complete and consistent."""
    folder = Path(folder)
    before = _identity(folder)
    try:
        return _read(folder)
    except DamagedCell:
        if _identity(folder) == before:  # not replaced by a writer while it was read
            raise
    return _read(folder)


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        stat = folder.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _read(folder: Path) -> StoredCell:
    try:
        meta = json.loads((folder / FILES["json"]).read_bytes())
    except FileNotFoundError:
        raise DamagedCell(folder, f"{FILES['json']} is missing") from None
    except (OSError, ValueError) as error:
        raise DamagedCell(folder, f"{FILES['json']} cannot be read ({_why(error)})") from None
    recorded = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(recorded, dict):
        raise DamagedCell(folder, f"{FILES['json']} does not list the cell's files")
    data = {}
    for name in (FILES["csv"], FILES["npz"]):
        try:
            data[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            raise DamagedCell(folder, f"{name} is missing") from None
        except OSError as error:
            raise DamagedCell(folder, f"{name} cannot be read ({_why(error)})") from None
        if recorded.get(name) != _fingerprint(data[name]):
            raise DamagedCell(folder, f"{name} is not the file this run wrote (its size or SHA-256 differs from "
                                      f"{FILES['json']}'s: changed, truncated or copied from another run)")
    try:
        curves = parse_curves(data[FILES["csv"]].decode(), folder / FILES["csv"])
        with np.load(io.BytesIO(data[FILES["npz"]])) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except BenchError as error:
        raise DamagedCell(folder, str(error)) from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:  # np.load's errors
        raise DamagedCell(folder, f"{FILES['npz']} cannot be read ({_why(error)})") from None
    shapes = {name: getattr(arrays.get(name), "shape", None) for name in METRICS}
    expected = (int(curves["n"][0]), len(curves["step"]))
    if any(shape != expected for shape in shapes.values()):
        raise DamagedCell(folder, f"{FILES['npz']} holds arrays of shapes {shapes}, {FILES['csv']} says {expected}")
    return StoredCell(folder.parent.name, folder.name, folder, curves, meta, arrays)


def _why(error: Exception) -> str:
    return storage.describe(error) if isinstance(error, OSError) else str(error) or type(error).__name__


def read_curves(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A per-step results CSV (a cell's ``steps.csv`` or a reference file) as arrays keyed by column."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read {path}: {_why(error)}") from None
    return parse_curves(text, path)


def parse_curves(text: str, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parse per-step CSV ``text`` (from ``path``, named in errors); a clear error when it is malformed."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or set(REQUIRED_COLUMNS) - set(rows[0]):
        raise BenchError(f"{path} is not a per-step results file: it needs the columns {', '.join(REQUIRED_COLUMNS)}")
    columns = [key for key in rows[0] if key in STEP_COLUMNS]
    try:
        curves = {key: np.array([float(row[key]) for row in rows]) for key in columns}
    except (TypeError, ValueError):
        raise BenchError(f"{path} has a value that is not a number") from None
    if not np.array_equal(curves["step"], np.arange(1, len(rows) + 1)):
        raise BenchError(f"{path}: the steps must run 1, 2, ... {len(rows)} in order")
    return curves


def scan(results_dir: str | os.PathLike) -> tuple[list[StoredCell], list[DamagedCell]]:
    """Every cell under ``results_dir``, sorted: the complete ones and the damaged ones. A folder
    ``<dataset>/<method>/`` is a cell when it holds any of the cell's files; hidden folders are not."""
    root = Path(results_dir)
    complete, damaged = [], []
    for folder in sorted(root.glob("*/*")):
        if folder.name.startswith(".") or folder.parent.name.startswith(".") or not folder.is_dir():
            continue
        if any((folder / name).exists() for name in FILES.values()):
            try:
                complete.append(read_cell(folder))
            except DamagedCell as error:
                damaged.append(error)
    for meta in sorted(root.glob("*/*.json")):  # the layout before cell folders
        if meta.with_suffix(".npz").is_file() and not meta.name.startswith("."):
            warnings.warn(f"{meta.with_suffix('')}.csv|.npz|.json are in the old layout, which vpbench no longer "
                          f"reads; `bench run` writes that cell again as {meta.with_suffix('')}/", stacklevel=2)
    return complete, damaged


def complete_cells(results_dir: str | os.PathLike) -> list[StoredCell]:
    """The complete cells of ``results_dir`` (:func:`scan`), with a warning naming each damaged one, which
    is left out; a clear error when the folder does not exist."""
    root = Path(results_dir)
    if not root.is_dir():
        raise BenchError(f"results directory {root} does not exist; run `bench run` first or pass --results-dir")
    complete, damaged = scan(root)
    for error in damaged:
        warnings.warn(f"{error}; left out until `bench run` redoes it", stacklevel=3)
    return complete


def load_results(results_dir: str | os.PathLike = "results", per_sequence: bool = False):
    """Every complete result under ``results_dir`` (:func:`complete_cells`) as a :class:`pandas.DataFrame`.

    By default one row per (dataset, method, step, metric): columns ``dataset, method, preset, step,
    metric, mean, se, n``, the numbers of each result's ``steps.csv``: ``mean`` and ``se`` over test
    sequences, ``n`` the sequences averaged (for PSNR, those with a finite value: identical frames give an
    infinite PSNR, which is left out of the mean). With ``per_sequence``, one row per (dataset, method,
    test sequence, step): columns ``dataset, method, preset, sequence, step, mse, psnr, dssim``, the values
    as scored (infinite PSNRs kept as ``inf``).

    Example, the Table 2 values (the mean of the 10 per-step means) of a ``bench run``::

        table = bench.load_results("results")
        table.groupby(["dataset", "method", "metric"])["mean"].mean().unstack("metric")
    """
    return _tables(complete_cells(results_dir), per_sequence)


def _tables(cells: list[StoredCell], per_sequence: bool = False):
    """The long per-step (or per-sequence) table of ``cells``, labelled with dataset, method and preset."""
    import pandas as pd

    if not cells:
        return pd.DataFrame(columns=SEQUENCE_COLUMNS if per_sequence else LONG_COLUMNS)
    return pd.concat([labelled(sequence_table(cell.per_sequence) if per_sequence else long_steps(cell.curves),
                               dataset=cell.dataset, method=cell.method, preset=str(cell.meta.get("preset", "")))
                      for cell in cells], ignore_index=True)


def write_summary(results_dir: str | os.PathLike) -> Path:
    """Rebuild ``summary.csv`` from the complete cells' long tables: one row per (dataset, method): preset,
    test sequences scored (``n``), 10-step means and SEs (:func:`bench.longform.ten_step`), whether the
    predictions collapsed to blank frames (``collapsed``, ``blank_from_step``), then costs. Holds the
    summary's lock (waiting for it), so the last rebuild sees every cell."""
    target = Path(results_dir) / "summary.csv"
    with locks.exclusive(target, f"summary {target}", LOCK_ADVICE, wait=True):
        cells = scan(results_dir)[0]
        table2 = ten_step(_tables(cells), _tables(cells, per_sequence=True)) if cells else None
        rows, cost_keys = [], []
        for cell in cells:
            intensity = cell.meta.get("intensity") or {}
            row = {"dataset": cell.dataset, "method": cell.method, "preset": cell.meta.get("preset", ""),
                   "n": int(cell.curves["n"].max()), **table2.loc[(cell.dataset, cell.method)].to_dict(),
                   "collapsed": _flag(intensity.get("collapsed")), "blank_from_step": intensity.get("blank_from_step")}
            costs = {**cell.meta.get("costs", {})}
            if costs.get("train_steps_per_s") is None and "train_steps_per_s" in costs:
                costs["train_steps_per_s"] = training_speed(cell.meta)
            for key in costs:
                if key not in cost_keys and not isinstance(costs[key], (dict, list)):
                    cost_keys.append(key)
            rows.append((row, costs))
        columns = ["dataset", "method", "preset", "n", *METRICS, *(f"{m}_se" for m in METRICS),
                   "collapsed", "blank_from_step", *cost_keys]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row, costs in rows:
            values = {**row, **{key: costs.get(key) for key in cost_keys}}
            writer.writerow({key: "" if value is None else value for key, value in values.items()})
        storage.atomic_write(target, text.getvalue().encode())
    return target


def _flag(value: Any) -> str:
    return "" if value is None else str(bool(value)).lower()


def training_speed(meta: dict[str, Any]) -> float | None:
    """Training steps per second of the weights a result used, from their training record (the user's
    checkpoint: steps over training seconds; shipped weights: over the manifest's training minutes);
    ``None`` when unknown (an untrainable method, or no training time recorded)."""
    steps, history = meta.get("trained_steps"), meta.get("training") or {}
    seconds = history.get("train_seconds")
    if seconds is None and history.get("train_minutes") is not None:
        seconds = 60 * history["train_minutes"]
    return steps / seconds if steps and seconds else None
