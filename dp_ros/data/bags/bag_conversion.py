"""rosbag2 -> LeRobot dataset: every bag checked first, then converted in order (or in parallel processes).

Topics come from the robot interface (joint states, cameras, the demonstrated
action), with overrides (:mod:`dp_ros.data.bags.topic_plan`); each bag becomes
episodes of frames by :mod:`dp_ros.data.bags.bag_sync`. The output is written to a
hidden staging folder next to the target and moved into place only when every
bag converted, so a failure never leaves a half dataset that looks whole.
With ``jobs > 1`` and one bag, its images are decoded in ``jobs`` worker
processes while this one reads, samples, encodes and writes. With several, the bags are shared out in order among worker processes and
their datasets merged by LeRobot's own aggregation
(:mod:`dp_ros.data.bags.parallel_conversion`): the same dataset as a serial run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from dp_ros.data.bags.bag_episodes import check_bags, staging_path, write_episodes
from dp_ros.data.bags.conversion_options import ConversionError, ConversionOptions
from dp_ros.data.bags.conversion_report import ConversionReport
from dp_ros.data.bags.parallel_conversion import convert_in_parallel
from dp_ros.data.bags.topic_plan import plan_topics
from dp_ros.data.datasets.dataset_writer import DATASET_LABEL, is_dataset
from dp_ros.robot_interface import RobotInterface


def check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} exists; choose a new output folder or pass --overwrite")
    if output.exists() and not (is_dataset(output) or (output.is_dir() and not any(output.iterdir()))):
        raise ConversionError(f"{output} exists and is not a LeRobot dataset; refusing to overwrite it")


def move_into_place(staging: Path, output: Path) -> None:
    if output.exists():
        old = output.parent / f".{output.name}.replaced-{os.getpid()}"
        os.replace(output, old)
        os.replace(staging, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, output)


def convert_bags(bags: list[str | Path], output: str | Path, robot: RobotInterface,
                 options: ConversionOptions | None = None, overwrite: bool = False, progress: bool = True,
                 repo_id: str = DATASET_LABEL, image_writer_threads: int = 2, jobs: int = 1) -> ConversionReport:
    """Convert ``bags`` (in order) into one LeRobot dataset at ``output``; returns the statistics.

    ``jobs``: worker processes. With more than one and several bags, the bags are converted in parallel and
    merged; a single bag is read and written by this process while ``jobs`` workers decode its images.
    """
    options = options or ConversionOptions()
    options.validate()
    if not bags:
        raise ConversionError("no bags given")
    if jobs < 1:
        raise ConversionError(f"jobs must be at least 1, got {jobs}")
    output = Path(output).expanduser().absolute()
    check_output(output, overwrite)
    plan = plan_topics(robot, options)
    seconds = check_bags(bags, plan)  # every bag, before anything is written

    report = ConversionReport(output=str(output), fps=robot.fps, bag_seconds=seconds)
    staging = staging_path(output)
    shutil.rmtree(staging, ignore_errors=True)
    bar = progress_bar(seconds, progress)
    try:
        if jobs > 1 and len(bags) > 1:
            convert_in_parallel(bags, staging, robot, options, report, repo_id, min(jobs, len(bags)), bar)
        else:
            write_episodes(bags, staging, robot, options, plan, report, repo_id, image_writer_threads,
                           progress=bar.update, decode_jobs=jobs,
                           on_bag=lambda number, path: bar.set_description(f"bag {number + 1}/{len(bags)} {path.name}"))
        bar.close()
        if not report.saved:
            raise ConversionError("no episode had enough synchronised frames; nothing was written.\n" + report.summary())
        move_into_place(staging, output)
    except BaseException:
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


class _NoBar:
    def update(self, _: float) -> None:
        pass

    def set_description(self, _: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total_seconds: float, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=round(total_seconds, 1), unit="s", unit_scale=False, dynamic_ncols=True,
                bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of bag [{elapsed}<{remaining}]")
