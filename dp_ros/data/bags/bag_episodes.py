"""One worker's share of a conversion: bags checked, then converted in order into one new dataset.

Used by a serial conversion (:mod:`dp_ros.data.bags.bag_conversion`) and by each
worker process of a parallel one (:mod:`dp_ros.data.bags.parallel_conversion`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from dp_ros.data.bags.bag_reader import BagReader
from dp_ros.data.bags.bag_sync import BagSynchronizer, Frame
from dp_ros.data.bags.conversion_options import ConversionOptions
from dp_ros.data.bags.conversion_report import ConversionReport
from dp_ros.data.bags.topic_plan import TopicPlan, check_bag
from dp_ros.data.datasets.dataset_writer import EpisodeWriter
from dp_ros.robot_interface import RobotInterface

Progress = Callable[[float], None]
"""Called with the bag seconds converted since the last call."""


def check_bags(bags: list[str | Path], plan: TopicPlan) -> float:
    """Open and check every bag (BagError naming the first problem); returns their total seconds."""
    seconds = 0.0
    for path in bags:
        with BagReader(path) as bag:
            check_bag(bag, plan)
            seconds += bag.duration
    return seconds


def write_episodes(bags: list[str | Path], staging: Path, robot: RobotInterface, options: ConversionOptions,
                   plan: TopicPlan, report: ConversionReport, repo_id: str, image_writer_threads: int,
                   progress: Progress | None = None, on_bag: Callable[[int, Path], None] | None = None) -> None:
    """Convert ``bags`` in order into a new dataset at ``staging``; adds every episode to ``report``."""
    writer = EpisodeWriter(staging, robot, repo_id=repo_id, image_writer_threads=image_writer_threads)
    try:
        for number, path in enumerate(bags):
            if on_bag is not None:
                on_bag(number, Path(path))
            with BagReader(path) as bag:
                for event in BagSynchronizer(bag, plan, robot, options).events(progress=progress):
                    if isinstance(event, Frame):
                        writer.add_frame(event.values, options.task)
                        continue
                    result = event.result
                    if result.frames >= options.min_frames:
                        result.saved_as = writer.save_episode(result.record(1.0 / robot.fps)).index
                    else:
                        writer.discard_episode()
                    report.episodes.append(result)
    except BaseException:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
    writer.close()


def staging_path(output: Path, tag: str = "") -> Path:
    return output.parent / f".{output.name}.incomplete-{os.getpid()}{tag}"
