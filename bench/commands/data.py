"""``bench data verify|prepare``: check a dataset's raw files against its protocol; fill the frame cache."""
from __future__ import annotations

import click

from .. import get_dataset
from ..errors import BenchError
from ..videoset import VideoDataset
from ._options import data_dir_option, dataset_options_option, parse_pairs

SHOWN = 10  # names listed per category before "... and N more"

dataset_option = click.option("--dataset", required=True, help="Dataset name: kth, ucf101 or mmnist.")
jobs_option = click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
                           help="Decode videos in N parallel threads.")


@click.group("data")
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
    echo = click.echo
    if dataset == "mmnist":
        return _verify_mmnist(data)
    if not isinstance(data, VideoDataset):
        raise BenchError(f"`bench data verify` does not know how to check dataset {dataset!r}")
    inventory = data.inventory()
    counts = {split: sum(v.split == split for v in inventory.videos) for split in ("train", "test")}
    echo(f"{dataset} in {data.data_dir}: the protocol expects {len(inventory.videos)} videos "
         f"({counts['train']} train, {counts['test']} test)")
    present = inventory.present()
    checked = data.prepare(present, jobs=jobs, check_only=True)
    readable = {name for name in checked.entries}
    for split in ("train", "test"):
        ok = sum(v.name in readable for v in present if v.split == split)
        echo(f"  {split}: {ok} present and readable of {counts[split]}")
    missing = [v.name for v in inventory.missing()]
    _listing("missing", missing)
    _listing("unreadable", checked.failures)
    _listing("video files the protocol does not use", [str(path) for path in inventory.extra])
    if missing or checked.failures:
        raise BenchError(f"dataset {dataset!r} in {data.data_dir} is incomplete: "
                         f"{len(missing)} videos missing, {len(checked.failures)} unreadable")


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


def _verify_mmnist(data) -> None:
    """The MNIST image files the generator draws digits from, checked against their MD5s."""
    from ..datasets.mmnist import FILES, read_idx_images

    click.echo(f"mmnist in {data.data_dir}: the generator expects {FILES['test'][0]} (test digits) and "
               f"{FILES['train'][0]} (training digits), gzipped or not")
    problems = []
    for kind, (stem, md5) in FILES.items():
        path = data._path(kind)
        if path is None:
            note = "; training then uses half of the test digits" if kind == "train" else ""
            click.echo(f"  {kind}: {stem} is missing{note}")
            problems += [stem] if kind == "test" else []
            continue
        try:
            images = read_idx_images(path, md5)
        except BenchError as error:
            click.echo(f"  {kind}: unreadable: {error}")
            problems.append(stem)
        else:
            click.echo(f"  {kind}: {path.name}: {len(images)} images, MD5 of the content matches")
    if problems:
        raise BenchError(f"dataset 'mmnist' in {data.data_dir} cannot be used: "
                         f"{', '.join(problems)} missing or unreadable")


def _listing(title: str, items: list[str]) -> None:
    if not items:
        return
    click.echo(f"  {title}: {len(items)}")
    for item in items[:SHOWN]:
        click.echo(f"    {item}")
    if len(items) > SHOWN:
        click.echo(f"    ... and {len(items) - SHOWN} more")
