"""Merge LeRobot datasets converted in parts (the shards of a cluster array job) into one, in the order given.

LeRobot's dataset aggregation copies parquet rows and video packets (nothing is
re-encoded); dp_ros's episode log is joined with the episode indices shifted.
Shards converted with `dp-ros bag2lerobot --shard I/N` and merged in shard order
give the same dataset as one conversion of all the bags. The result is written
to a hidden folder and moved to --output only when complete.

Examples:
  dp-ros merge-datasets shards/shard-00000 shards/shard-00001 -o data/fleet
  dp-ros merge-datasets $(ls -d shards/shard-* | sort) -o data/fleet

Exit codes: 0 merged, 1 the merge failed (nothing written at --output), 2 bad options.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("parts", nargs="+", metavar="DATASET", help="LeRobot dataset folders, merged in this order")
    parser.add_argument("-o", "--output", required=True, help="folder of the merged dataset (must not exist)")
    from dp_ros.data.datasets.dataset_writer import DATASET_LABEL

    parser.add_argument("--repo-id", default=DATASET_LABEL,
                        help="LeRobot repo_id written into the dataset (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset at --output (only once the merged one is complete)")


def run(args: argparse.Namespace) -> int:
    from dp_ros.data.bags.conversion_options import ConversionError
    from dp_ros.data.bags.shards import merge_shards

    try:
        episodes = merge_shards(args.parts, args.output, repo_id=args.repo_id, overwrite=args.overwrite)
    except ConversionError as exc:
        print(f"merge-datasets: error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(args.parts)} datasets, {episodes} episodes -> {args.output}")
    return 0
