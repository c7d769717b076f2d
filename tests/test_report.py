"""`bench report`: loading results, 10-step means and SEs, significance, tables, figures, the command."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba

from bench import figures, results
from bench.cli import main
from bench.errors import BenchError
from bench.paper import paper_curves, paper_table
from bench.stats import blank_step, datasets_of, holm, load_cells, methods_of, paired_p, sequence_counts, significance
from bench.tables import _cost, table_csv, table_latex, table_markdown, table_rows
from synthetic_results import per_sequence, write_cell, write_grid


@pytest.fixture
def two_methods(tmp_path):
    """mmnist: baseline, a good method, and its twin (the same up to symmetric noise)."""
    good = per_sequence(2.0, n=60, seed=1)
    noise = np.random.default_rng(5).normal(0, 1e-4, size=good["mse"].shape)
    twin = {"mse": good["mse"] + noise, "dssim": good["dssim"] - noise}
    twin["psnr"] = 10 * np.log10(1 / twin["mse"])
    write_cell(tmp_path, "mmnist", "baseline", per_sequence(1.0, n=60, seed=2), {"params": 0, "predict_flops": 0})
    write_cell(tmp_path, "mmnist", "frnn", good, {"params": 123456, "predict_flops": 4.5e9})
    write_cell(tmp_path, "mmnist", "twin", twin)
    return tmp_path


def test_load_cells_orders_by_paper_and_skips_reference_and_report(tmp_path):
    write_grid(tmp_path, datasets=("ucf101", "mmnist"), methods=("frnn", "zeta", "baseline"))
    (tmp_path / "reference" / "mmnist").mkdir(parents=True)
    (tmp_path / "reference" / "mmnist" / "frnn.csv").write_text("not,a,result\n")
    (tmp_path / "report").mkdir()
    cells = load_cells(tmp_path)
    assert [(c.dataset, c.method) for c in cells] == [
        ("mmnist", "baseline"), ("mmnist", "frnn"), ("mmnist", "zeta"),
        ("ucf101", "baseline"), ("ucf101", "frnn"), ("ucf101", "zeta"),
    ]
    assert datasets_of(cells) == ["mmnist", "ucf101"] and methods_of(cells) == ["baseline", "frnn", "zeta"]


def test_ten_step_mean_and_its_standard_error(tmp_path):
    arrays = per_sequence(1.5, n=30, seed=3)
    arrays["psnr"][4, 2] = math.inf  # a perfect frame: dropped, not averaged
    write_cell(tmp_path, "kth", "frnn", arrays)
    (cell,) = load_cells(tmp_path)
    assert cell.mean("mse") == pytest.approx(arrays["mse"].mean())  # equal n per step: mean of step means
    per_seq = arrays["mse"].mean(axis=1)
    assert cell.se("mse") == pytest.approx(per_seq.std(ddof=1) / math.sqrt(30))
    psnr = np.where(np.isinf(arrays["psnr"]), np.nan, arrays["psnr"])
    assert cell.sequence_means("psnr")[4] == pytest.approx(np.nanmean(psnr[4]))
    assert math.isfinite(cell.mean("psnr")) and math.isfinite(cell.se("psnr"))


def test_wilcoxon_and_holm_by_hand():
    best = np.linspace(0.01, 0.02, 40)
    n, p = paired_p(best, best + np.linspace(1e-3, 2e-3, 40))  # all 40 differences negative, no ties
    assert n == 40 and p == pytest.approx(2 * 0.5**40)  # the exact two-sided p: 2 / 2**40
    assert paired_p(best, best.copy()) == (40, 1.0)
    assert math.isnan(paired_p(best, best[:30])[1])  # unpaired: different test sets
    adjusted = holm([0.01, 0.04, math.nan, 0.03])
    assert adjusted[:2] == pytest.approx([0.03, 0.06]) and adjusted[3] == pytest.approx(0.06)
    assert math.isnan(adjusted[2])


def test_significance_separates_a_twin_from_a_worse_method(two_methods):
    tests = {(c.metric, c.method): c for c in significance(load_cells(two_methods))}
    assert {c.best for c in tests.values()} <= {"frnn", "twin"}
    assert tests["mse", "baseline"].significant and tests["mse", "baseline"].n == 60
    twin_or_frnn = tests.get(("mse", "twin")) or tests[("mse", "frnn")]
    assert not twin_or_frnn.significant and twin_or_frnn.p_holm > 0.05


def test_markdown_bolds_the_best_daggers_the_tie_and_shows_costs(two_methods):
    cells = load_cells(two_methods)
    rows = table_rows(cells, significance(cells))
    text = table_markdown(rows, ["mmnist"], sequence_counts(cells))
    lines = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    best = min(cells, key=lambda c: c.mean("mse"))
    other = "twin" if best.method == "frnn" else "frnn"
    assert f"**{best.mean('mse'):.5f}** ± {best.se('mse'):.5f}" in lines[f"{best.method} [tiny]"]
    assert "†" in lines[f"{other} [tiny]"].split(" | ")[1] and "†" not in lines["baseline [tiny]"]
    assert "| 123k | 4.5G | – |" in lines["frnn [tiny]"]  # params, predict FLOPs, no peak memory
    assert lines["Method"].count("|") == lines["baseline [tiny]"].count("|") == 8


def test_a_collapsed_method_is_labelled_blank(two_methods):
    meta_path = two_methods / "mmnist" / "frnn" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "intensity": {"collapsed": True}}))
    cells = load_cells(two_methods)
    text = table_markdown(table_rows(cells, significance(cells)), ["mmnist"], {"mmnist": "60"})
    assert "| frnn [tiny] (blank on mmnist) |" in text and "| baseline [tiny] |" in text
    assert '"blank on D"' in text
    meta_path.write_text(json.dumps({**meta, "intensity": {"collapsed": False, "blank_from_step": 4}}))
    rows = table_rows(load_cells(two_methods), [])
    assert "| frnn [tiny] (blank on mmnist from step 4) |" in table_markdown(rows, ["mmnist"], {"mmnist": "60"})
    assert "mmnist from step 4" in table_csv(rows, ["mmnist"]).splitlines()[2]


def test_n_per_dataset_in_the_tables(tmp_path):
    write_cell(tmp_path, "mmnist", "baseline", per_sequence(1.0, n=30))
    write_cell(tmp_path, "mmnist", "frnn", per_sequence(2.0, n=12))
    write_cell(tmp_path, "kth", "frnn", per_sequence(2.0, n=7))
    cells = load_cells(tmp_path)
    counts = sequence_counts(cells)
    assert counts == {"mmnist": "12–30", "kth": "7"}
    rows = table_rows(cells, significance(cells))
    assert "Test sequences scored: Moving MNIST n = 12–30; KTH n = 7." in table_markdown(rows, datasets_of(cells), counts)
    lines = table_csv(rows, datasets_of(cells)).splitlines()
    frnn = dict(zip(lines[0].split(","), lines[2].split(",")))
    assert (frnn["method"], frnn["mmnist_n"], frnn["kth_n"]) == ("frnn", "12", "7")


def test_paper_values_that_beat_ours_are_bold_and_the_note_says_so(tmp_path):
    write_cell(tmp_path, "mmnist", "baseline", per_sequence(1.0, n=20))  # MSE about 0.03: beats the paper's 0.07
    write_cell(tmp_path, "mmnist", "frnn", per_sequence(50.0, n=20))  # beats the paper's fRNN on every metric

    def paper_cells(method: str) -> list[str]:
        cells = load_cells(tmp_path)
        text = table_markdown(table_rows(cells, significance(cells), paper=True), ["mmnist"], sequence_counts(cells))
        return next(line for line in text.splitlines() if line.startswith(f"| {method} (paper) |")).split(" | ")[1:4]

    assert paper_cells("frnn") == ["*0.00947*", "*21.386*", "*0.04376*"]
    write_cell(tmp_path, "mmnist", "frnn", per_sequence(1.1, n=20))  # now the paper's fRNN beats all of ours
    assert paper_cells("frnn") == ["***0.00947***", "***21.386***", "***0.04376***"]
    assert paper_cells("baseline") == ["*0.06989*", "*11.745*", "*0.20718*"]
    cells = load_cells(tmp_path)
    note = "The paper's values (italic) are in bold where they beat the best of ours."
    assert note in table_markdown(table_rows(cells, [], paper=True), ["mmnist"], sequence_counts(cells))
    assert note not in table_markdown(table_rows(cells, []), ["mmnist"], sequence_counts(cells))


def test_fig2_marks_the_steps_from_which_a_method_predicts_blank_frames(two_methods):
    for method, intensity in (("frnn", {"collapsed": False, "blank_from_step": 4}), ("twin", {"collapsed": True})):
        meta_path = two_methods / "mmnist" / method / "meta.json"
        meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "intensity": intensity}))
    cells = load_cells(two_methods)
    assert [blank_step(c) for c in cells] == [None, 4, 1]
    colors = figures.method_colors(methods_of(cells))
    for ax in figures.fig2(cells).axes:
        marks = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert [(line.get_xdata()[0], to_rgba(line.get_color())) for line in marks] == [
            (4, to_rgba(colors["frnn"])), (1, to_rgba(colors["twin"]))]
        assert [t.get_text() for t in ax.texts] == ["frnn blank →", "twin blank →"]


def test_cost_scatter_labels_stay_inside_the_axes(tmp_path):
    write_grid(tmp_path, datasets=("mmnist",), methods=("baseline", "prednet", "frnn"))
    assert_labels_inside_axes(figures.cost_scatter(load_cells(tmp_path)))


def test_cost_scatter_log_axis_ticks_do_not_overlap_the_zero_tick(tmp_path):
    """Copy-last costs 0 FLOPs: a symlog axis whose linear range is not a decade drew "0" on "10^-2"."""
    write_grid(tmp_path, datasets=("mmnist",), methods=("baseline", "prednet", "frnn"))
    cells = load_cells(tmp_path)
    for cell, flops in zip(cells, (0.0, 0.09e9, 50e9)):
        cell.meta["costs"] = {**cell.meta.get("costs", {}), "predict_flops": flops}
    fig = figures.cost_scatter(cells)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog"
    boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()),
                   key=lambda box: box.x0)
    assert len(boxes) >= 3
    assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:]))


def assert_labels_inside_axes(fig) -> None:
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        for text in ax.texts:
            label = text.get_window_extent(renderer)
            assert box.x0 <= label.x0 and label.x1 <= box.x1, text.get_text()


def test_a_blank_mark_at_the_last_step_keeps_its_label_inside_the_axes(two_methods):
    meta_path = two_methods / "mmnist" / "frnn" / "meta.json"
    intensity = {"collapsed": False, "blank_from_step": 10}
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "intensity": intensity}))
    fig = figures.fig2(load_cells(two_methods))
    assert all([t.get_text() for t in ax.texts] == ["frnn blank →"] for ax in fig.axes)
    assert_labels_inside_axes(fig)


def test_summary_states_n_collapse_and_training_speed(tmp_path):
    timed = {"params": 10, "train_steps_per_s": None}
    write_cell(tmp_path, "mmnist", "frnn", per_sequence(2.0, n=12), timed, meta={
        "trained_steps": 300, "training": {"train_seconds": 150.0},
        "intensity": {"collapsed": False, "blank_from_step": 7}})
    write_cell(tmp_path, "mmnist", "mcnet", per_sequence(1.5, n=12), timed, meta={
        "trained_steps": 600, "training": {"train_minutes": 5.0}, "intensity": {"collapsed": True,
                                                                                "blank_from_step": 1}})
    write_cell(tmp_path, "mmnist", "baseline", per_sequence(1.0, n=12), timed, meta={
        "intensity": {"collapsed": False, "blank_from_step": None}})
    with open(results.write_summary(tmp_path)) as handle:
        rows = {row["method"]: row for row in csv.DictReader(handle)}
    assert list(rows["frnn"])[:4] == ["dataset", "method", "preset", "n"]
    assert [(r["n"], r["collapsed"], r["blank_from_step"], r["train_steps_per_s"]) for r in rows.values()] == [
        ("12", "false", "", ""), ("12", "false", "7", "2.0"), ("12", "true", "1", "2.0")]


def test_cost_formatting():
    assert [_cost(v, 1000, "") for v in (0, 10371, 142958592, 3.3e9, math.nan)] == ["0", "10.4k", "143M", "3.3G", "–"]
    assert [_cost(v, 1024, "B") for v in (807436, 2**20, 1536 * 2**30)] == ["789KiB", "1MiB", "1.5TiB"]


def test_paper_rows_use_the_harness_names():
    table = paper_table()
    assert table["mmnist", "frnn"] == {"mse": 0.00947, "psnr": 21.386, "dssim": 0.04376}
    assert table["kth", "prednet"]["mse"] == 0.00309  # "lotter" in the paper, renamed in the shipped copy
    curves = paper_curves()
    assert curves["mmnist", "baseline", "mse"][0] == 0.04923 and len(curves["ucf101", "frnn", "dssim"]) == 10


def test_csv_and_latex_with_the_paper_overlay(tmp_path):
    write_grid(tmp_path, datasets=("mmnist", "kth"), methods=("baseline", "prednet", "frnn"))
    cells = load_cells(tmp_path)
    rows = table_rows(cells, significance(cells), paper=True)
    assert [(r.method, r.source) for r in rows] == [
        ("baseline", "ours"), ("baseline", "paper"), ("prednet", "ours"), ("prednet", "paper"),
        ("frnn", "ours"), ("frnn", "paper"),
    ]
    lines = table_csv(rows, ["mmnist", "kth"]).splitlines()
    header = lines[0].split(",")
    assert header[:8] == ["method", "source", "preset", "blank_on", "mmnist_n", "mmnist_mse", "mmnist_mse_se",
                          "mmnist_mse_p"]
    assert len(header) == 4 + 2 * (1 + 9 + 3)
    paper_prednet = dict(zip(header, lines[4].split(",")))
    assert paper_prednet["kth_mse"] == "0.00309" and paper_prednet["kth_mse_se"] == "" and paper_prednet["kth_n"] == ""
    assert dict(zip(header, lines[3].split(",")))["kth_n"] == "40"
    tex = table_latex(rows, ["mmnist", "kth"], sequence_counts(cells))
    body = [line for line in tex.splitlines() if line.endswith("\\\\") and not line.startswith("Method")]
    assert {line.count("&") for line in body} == {12}
    assert "\\textit{0.00947}" in tex and "\\multicolumn{6}{c}{KTH ($n = 40$)}" in tex and "\\textbf{" in tex
    assert "Test sequences scored: Moving MNIST n = 40; KTH n = 40." in tex


def test_fig2_panels_lines_bands_and_legend(tmp_path):
    write_grid(tmp_path, datasets=("mmnist", "kth"), methods=("baseline", "rladder", "frnn"))
    cells = load_cells(tmp_path)
    fig = figures.fig2(cells, paper=True)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:3]] == [
        "Moving MNIST (n = 40): MSE", "Moving MNIST (n = 40): PSNR", "Moving MNIST (n = 40): DSSIM"]
    assert axes[3].get_title() == "KTH (n = 40): MSE" and axes[5].get_xlabel() == "predicted step"
    assert [ax.get_ylabel().split()[0] for ax in axes] == ["MSE", "PSNR", "DSSIM"] * 2
    assert len(axes[0].containers) == 3  # one set of SE error bars per method
    lines = {line.get_label(): line for line in axes[0].get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"baseline", "rladder", "frnn", "baseline (paper)", "rladder (paper)", "frnn (paper)"}
    assert to_rgba(lines["baseline"].get_color()) == to_rgba("black")
    assert lines["frnn (paper)"].get_linestyle() == "--" and list(lines["frnn"].get_xdata()) == list(range(1, 11))
    assert list(lines["frnn (paper)"].get_ydata()) == list(paper_curves()["mmnist", "frnn", "mse"])
    assert sum(isinstance(c, PolyCollection) for c in axes[0].collections) == 3  # one SE band per method
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "baseline", "baseline (paper)", "rladder", "rladder (paper)", "frnn", "frnn (paper)"]
    plain = figures.fig2(cells)
    assert [t.get_text() for t in plain.legends[0].get_texts()] == ["baseline", "rladder", "frnn"]


def test_fig2_lines_and_bands_are_the_steps_csv_means_and_standard_errors(tmp_path):
    arrays = per_sequence(2.0, n=8, seed=3)
    arrays["psnr"][[1, 4], 2] = math.inf  # identical frames: left out of the step's mean and SE, and counted
    write_cell(tmp_path, "mmnist", "frnn", arrays)
    (cell,) = load_cells(tmp_path)
    axes = figures.fig2([cell]).axes
    assert axes[1].get_title() == "Moving MNIST (n = 8): PSNR (2 infinite left out)"
    assert axes[0].get_title() == "Moving MNIST (n = 8): MSE"
    for ax, metric in zip(axes, ("mse", "psnr", "dssim")):
        (line,) = [line for line in ax.get_lines() if line.get_label() == "frnn"]
        assert np.allclose(line.get_ydata(), cell.curves[metric])
        (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
        low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
        mean, se = cell.curves[metric], cell.curves[f"{metric}_se"]
        assert low == pytest.approx((mean - se).min()) and high == pytest.approx((mean + se).max())


def test_cost_scatter_panels_and_points(tmp_path):
    write_grid(tmp_path, datasets=("mmnist",), methods=("baseline", "frnn"))
    cells = load_cells(tmp_path)
    fig = figures.cost_scatter(cells)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel().startswith("GFLOPs") and fig.axes[1].get_xlabel().startswith("peak memory")
    assert [t.get_text() for t in fig.axes[0].texts] == ["baseline", "frnn"]
    for cell in cells:
        cell.meta["costs"] = {}
    assert figures.cost_scatter(cells) is None


def test_strip_canvas_layout_and_yellow_frames():
    context = np.full((10, 1, 4, 6), 50, np.uint8)
    context[-1] = 60
    target = np.full((10, 1, 4, 6), 100, np.uint8)
    pred = np.full((10, 1, 4, 6), 200, np.uint8)
    canvas = figures.strip_canvas(context, target, [pred, pred], border=1, gap=2)
    cell_h, cell_w = 4 + 2 + 2, 6 + 2 + 2
    assert canvas.shape == (3 * cell_h - 2, 15 * cell_w - 2, 3) and canvas.dtype == np.uint8
    assert (canvas[1, 4 * cell_w + 1] == 60).all() and (canvas[0, 0] == 255).all()  # last context frame, white edge
    assert (canvas[1, 5 * cell_w + 1] == 100).all()  # first target
    top, left = cell_h, 5 * cell_w
    assert tuple(canvas[top, left]) == figures.YELLOW and tuple(canvas[top + 5, left + 7]) == figures.YELLOW
    assert (canvas[top + 1:top + 5, left + 1:left + 7] == 200).all()
    assert (canvas[top:top + 6, :left - 2] == 255).all()  # nothing under the context
    with pytest.raises(BenchError, match="do not match"):
        figures.strip_canvas(context, target, [pred[:, :, :3]])


def test_example_strips_one_row_per_method(tmp_path):
    write_grid(tmp_path, datasets=("ucf101",), methods=("baseline", "frnn"))
    strips = figures.example_strips(load_cells(tmp_path), "ucf101", count=1)
    assert [index for index, _ in strips] == [3]
    ax = strips[0][1].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ground truth", "baseline", "frnn"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in range(6, 21)]
    assert ax.get_images()[0].get_array().shape == (3 * (64 + 6) - 2, 15 * (80 + 6) - 2, 3)


def test_report_command_on_one_dataset_and_one_method(tmp_path):
    write_cell(tmp_path / "results", "kth", "frnn", per_sequence(1.0))
    result = CliRunner().invoke(main, ["report", "--results-dir", str(tmp_path / "results"), "--paper"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "results" / "report"
    assert {p.name for p in out.iterdir()} == {
        "table2.csv", "table2.md", "table2.tex", "significance.csv", "fig2.png", "fig2.pdf", "strips"}
    assert sorted(p.name for p in (out / "strips").iterdir()) == ["kth_11.png", "kth_3.png"]
    table = (out / "table2.md").read_text()
    assert "| frnn [tiny] | **" in table and "| frnn (paper) | ***0.00175***" in table  # the paper's beats ours
    assert (out / "significance.csv").read_text().splitlines() == ["dataset,metric,best,method,n,p,p_holm,significant"]


@pytest.mark.slow  # renders 9 + 6 panels to png and pdf: ~15 s on an idle core
def test_report_command_on_the_full_grid(tmp_path):
    write_grid(tmp_path)
    result = CliRunner().invoke(main, ["report", "--results", str(tmp_path), "--out", str(tmp_path / "out"),
                                       "--examples", "1"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "strips").iterdir()) == ["kth_3.png", "mmnist_3.png", "ucf101_3.png"]
    assert (out / "cost_quality.pdf").stat().st_size > 0 and (out / "fig2.png").stat().st_size > 0
    assert len((out / "table2.csv").read_text().splitlines()) == 1 + 7
    assert len((out / "significance.csv").read_text().splitlines()) == 1 + 3 * 3 * 6
    again = CliRunner().invoke(main, ["report", "--results", str(tmp_path), "--out", str(tmp_path / "out"),
                                      "--examples", "0"])
    assert again.exit_code == 0, again.output  # the previous report inside results/ is not read as results


def test_clear_errors(tmp_path):
    result = CliRunner().invoke(main, ["report", "--results-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "does not exist" in result.output
    write_cell(tmp_path, "mmnist", "frnn", per_sequence(1.0))
    (tmp_path / "mmnist" / "frnn" / "steps.csv").write_text("step,mse\n1,0.1\n")
    with pytest.warns(UserWarning, match="result mmnist/frnn in .* is damaged: steps.csv is not the file this run wrote"):
        result = CliRunner().invoke(main, ["report", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no complete results under" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(BenchError, match="no complete results under"):
        load_cells(tmp_path / "mmnist")


def test_incomplete_cells_are_not_read(tmp_path):
    write_cell(tmp_path, "mmnist", "baseline", per_sequence(1.0))
    write_cell(tmp_path, "mmnist", "frnn", per_sequence(2.0))
    (tmp_path / "mmnist" / "frnn" / "meta.json").unlink()
    with pytest.warns(UserWarning, match=r"result mmnist/frnn in .* is damaged: meta.json is missing; left out"):
        assert [c.method for c in load_cells(tmp_path)] == ["baseline"]


def test_tables_and_figures_name_datasets_by_their_plugin_label():
    from bench import list_datasets
    from bench.paper import dataset_label

    assert dataset_label("bouncing_balls") == "Bouncing balls" and dataset_label("mmnist") == "Moving MNIST"
    assert dataset_label("a-plugin-not-installed") == "a-plugin-not-installed"
    shipped = {"bouncing_balls", "kth", "mmnist", "ucf101"}  # the suite's test plugins need no label
    assert shipped <= set(list_datasets()) and all(dataset_label(name) != name for name in shipped)
