"""``bench data verify|prepare``: check a dataset's raw files against its protocol; fill the frame cache."""
from __future__ import annotations

import click

from .. import get_dataset
from ..errors import BenchError
from ..videoset import VideoDataset
from ._options import data_dir_option, dataset_options_option, parse_pairs

dataset_option = click.option("--dataset", required=True, help="Dataset name: kth, ucf101 or mmnist.")
jobs_option = click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                           help="Decode videos in N parallel threads.")


@click.group("data", short_help="Verify raw dataset files or decode them into the frame cache.")
def command() -> None:
    """Check raw dataset files (verify) and decode videos into the frame cache (prepare)."""


@command.command("verify")
@dataset_option
@data_dir_option
@dataset_options_option
@jobs_option
def verify(dataset, data_dir, dataset_options, jobs):
    """Report which files DATASET's protocol expects, which are present, missing or unreadable.

    Videos not yet in the cache are decoded to check them (nothing is written). Exits 1 when
    anything is missing or unreadable.
    """
    data = get_dataset(dataset, data_dir=data_dir, **parse_pairs(dataset_options, "-o/--option"))
    problem = data.verify(click.echo, jobs=jobs)
    if problem:
        raise BenchError(problem)


@command.command("prepare")
@dataset_option
@data_dir_option
@dataset_options_option
@jobs_option
@click.option("--skip-bad", is_flag=True, help="Warn about unreadable videos instead of failing.")
def prepare(dataset, data_dir, dataset_options, jobs, skip_bad):
    """Decode and preprocess every present video of DATASET into the frame cache, in parallel.

    Bad videos fail the command after everything else is cached (or, with --skip-bad, are counted
    in a warning). Videos already cached are not decoded again.
    """
    data = get_dataset(dataset, data_dir=data_dir, skip_bad=skip_bad,
                       **parse_pairs(dataset_options, "-o/--option"))
    if not isinstance(data, VideoDataset):
        data.test_clips(20)
        click.echo(f"{dataset} has no decoded-frame cache to fill; its files in {data.data_dir} are ready")
        return
    videos = data.inventory().present()
    if not videos:
        raise BenchError(f"no {dataset} videos found in {data.data_dir} (set --data-dir)")
    prepared = data.prepare(videos, jobs=jobs)
    click.echo(f"{len(prepared.entries)} {dataset} videos are in the cache {data.cache.folder}")
    if prepared.failures:
        if not skip_bad:
            raise BenchError(f"{prepared.failures[0]} ({len(prepared.failures)} bad videos in all; "
                             "the others are cached; --skip-bad accepts this)")
        click.echo(f"Warning: skipped {len(prepared.failures)} bad {dataset} videos; first: {prepared.failures[0]}",
                   err=True)
