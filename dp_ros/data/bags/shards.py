"""Thousands of bags on a cluster: each job converts one shard of the bag list, then one step merges the shards.

A shard is a contiguous run of the bag list (shard ``i`` of ``n`` takes the
bags from ``i * len / n`` to ``(i + 1) * len / n``), so merging the shard
datasets in shard order with LeRobot's aggregation gives the episodes in the
order of one conversion of the whole list: the same dataset
(``examples/slurm/bag2lerobot_array.sh``, tested with two shards).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from dp_ros.data.bags.bag_conversion import check_output, move_into_place
from dp_ros.data.bags.bag_episodes import staging_path
from dp_ros.data.bags.conversion_options import ConversionError
from dp_ros.data.bags.parallel_conversion import merge_parts
from dp_ros.data.datasets.dataset_writer import DATASET_LABEL, is_dataset, read_episode_log


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N (ValueError otherwise)."""
    index, sep, count = text.partition("/")
    try:
        shard, shards = int(index), int(count)
    except ValueError:
        shard, shards = -1, 0
    if not sep or shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"--shard expects I/N with 0 <= I < N (e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT), "
                         f"got {text!r}")
    return shard, shards


def shard_of(bags: list, shard: int, shards: int) -> list:
    """The bags of shard ``shard`` of ``shards``: a contiguous run, in order (empty when there are fewer bags)."""
    return bags[shard * len(bags) // shards:(shard + 1) * len(bags) // shards]


def merge_shards(parts: list[str | Path], output: str | Path, repo_id: str = DATASET_LABEL,
                 overwrite: bool = False) -> int:
    """Merge the shard datasets ``parts`` (in the order given) into a new dataset at ``output``; returns the
    number of episodes. Written to a hidden folder and moved into place only when complete."""
    if not parts:
        raise ConversionError("no shard datasets given")
    missing = [str(p) for p in parts if not is_dataset(Path(p))]
    if missing:
        raise ConversionError(f"not LeRobot datasets: {', '.join(missing)}")
    output = Path(output).expanduser().absolute()
    check_output(output, overwrite)
    staging = staging_path(output)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        merge_parts([str(Path(p).absolute()) for p in parts], str(staging), repo_id)
        move_into_place(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(read_episode_log(output))
