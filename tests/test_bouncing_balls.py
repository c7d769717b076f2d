"""Bouncing balls: exact elastic physics, no overlap, seeded determinism, centred anti-aliased discs."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from click.testing import CliRunner

import bench
from bench.cli import main
from bench.datasets import bouncing_balls as bb
from bench.errors import BenchError


def events_of(seed: int, balls: int = 3, length: int = 200):
    events: list = []
    positions, velocities = bb.simulate(np.random.default_rng(seed), balls, length, events=events)
    return positions, velocities, events


def test_collisions_conserve_momentum_and_kinetic_energy():
    ball_hits = wall_hits = 0
    for seed in range(5):
        *_, events = events_of(seed)
        for _, kind, i, j, before, after in events:
            energy_before, energy_after = (before**2).sum(), (after**2).sum()  # equal masses
            assert energy_after == pytest.approx(energy_before, rel=1e-12)
            if kind == "ball":
                ball_hits += 1
                np.testing.assert_allclose(after[i] + after[j], before[i] + before[j], atol=1e-15)
                assert not np.allclose(after[[i, j]], before[[i, j]])  # the velocities did change
                others = [k for k in range(len(before)) if k not in (i, j)]
                np.testing.assert_array_equal(after[others], before[others])
            else:
                wall_hits += 1
                assert after[i, j] == -before[i, j]
    assert ball_hits > 5 and wall_hits > 50  # both kinds happened


def test_speeds_are_constant_between_collisions_and_energy_over_a_whole_run():
    positions, velocities, events = events_of(1)
    energy = (velocities**2).sum(axis=(1, 2))
    np.testing.assert_allclose(energy, 3 * bb.SPEED**2, rtol=1e-12)
    event_frames = {int(np.ceil(time)) for time, *_ in events}
    for t in range(1, len(positions)):
        if t + 1 not in event_frames:  # no contact during (t, t+1]: straight motion at constant velocity
            np.testing.assert_allclose(positions[t] - positions[t - 1], velocities[t], atol=1e-12)


def test_balls_never_overlap_or_leave_the_box():
    for seed in range(20):
        positions, _, _ = events_of(seed, balls=4, length=100)
        assert positions.min() >= bb.RADIUS - 1e-9 and positions.max() <= 1 - bb.RADIUS + 1e-9
        for i, j in itertools.combinations(range(4), 2):
            gaps = np.hypot(*(positions[:, i] - positions[:, j]).T)
            assert gaps.min() >= 2 * bb.RADIUS - 1e-9


def test_too_many_balls_are_refused():
    with pytest.raises(BenchError, match="do not fit"):
        bench.get_dataset("bouncing_balls", balls=20)


@pytest.mark.parametrize("size", [64, 32])
def test_a_rendered_disc_is_centred_on_its_ball(size):
    rng = np.random.default_rng(3)
    for _ in range(10):
        centre = bb.RADIUS + rng.random(2) * (1 - 2 * bb.RADIUS)
        frame = bb.render(centre[None, :], size)[0].astype(float)
        rows, cols = np.indices(frame.shape) + 0.5  # pixel centres
        centroid = np.array([(frame * rows).sum(), (frame * cols).sum()]) / frame.sum()
        np.testing.assert_allclose(centroid, centre * size, atol=0.02)  # 1/50 pixel (uint8 rounding)
        area = frame.sum() / 255
        assert area == pytest.approx(np.pi * (bb.RADIUS * size) ** 2, rel=0.01)  # anti-aliased edge, right area
        assert 0 < ((frame > 0) & (frame < 255)).sum()  # gray edge pixels exist


def test_test_set_and_training_stream_are_deterministic_and_distinct():
    first = bench.get_dataset("bouncing_balls", test_size=8).test_clips(20)
    second = bench.get_dataset("bouncing_balls", test_size=8).test_clips(20)
    assert len(first) == 8
    np.testing.assert_array_equal(first.batch(range(8)), second.batch(range(8)))
    np.testing.assert_array_equal(first[3], first.batch([3])[0])
    data = bench.get_dataset("bouncing_balls")
    a, b, c = (next(data.train_clips(20, seed)) for seed in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not any(np.array_equal(a, clip) for clip in first.batch(range(8)))


def test_clips_have_the_protocol_shape_and_move():
    data = bench.get_dataset("bouncing_balls", size="48", balls="2", test_size=3)
    assert data.frame_shape == (1, 48, 48)
    clips = data.test_clips(20).batch(range(3))
    assert clips.shape == (3, 20, 1, 48, 48) and clips.dtype == np.uint8
    assert clips.max() == 255 and clips.min() == 0
    assert (np.abs(np.diff(clips.astype(int), axis=1)).sum(axis=(2, 3, 4)) > 0).all()
    assert data.params()["balls"] == 2 and data.params()["size"] == 48


def test_bench_run_scores_the_baseline_with_no_data_folder(tmp_path):
    result = CliRunner().invoke(main, [
        "run", "--methods", "baseline", "--dataset", "bouncing_balls", "--limit", "16",
        "--results-dir", str(tmp_path / "results"), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "results" / "summary.csv").read_text()
    assert "bouncing_balls,baseline" in summary
