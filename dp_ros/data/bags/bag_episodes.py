"""One worker's share of a conversion: bags checked, then converted in order into one new dataset.

Used by a serial conversion (:mod:`dp_ros.data.bags.bag_conversion`) and by each
worker process of a parallel one (:mod:`dp_ros.data.bags.parallel_conversion`).
"""
from __future__ import annotations

import os
from pathlib import Path
from collections import deque
from typing import Callable, Iterator

from dp_ros.data.bags.bag_reader import BagReader
from dp_ros.data.bags.bag_sync import BagSynchronizer, EpisodeEnd, Frame
from dp_ros.data.bags.conversion_options import ConversionOptions
from dp_ros.data.bags.conversion_report import ConversionReport
from dp_ros.data.bags.image_decoding import ImageDecodePool
from dp_ros.data.bags.sample_decoding import resolved
from dp_ros.data.bags.topic_plan import TopicPlan, check_bag
from dp_ros.data.datasets.dataset_writer import EpisodeWriter
from dp_ros.robot_interface import RobotInterface

Progress = Callable[[float], None]
"""Called with the bag seconds converted since the last call."""
DECODE_WINDOW = 8
"""Frames per decoding worker that may be in flight ahead of the writer (bounds the memory they hold)."""


def check_bags(bags: list[str | Path], plan: TopicPlan) -> float:
    """Open and check every bag (BagError naming the first problem); returns their total seconds."""
    seconds = 0.0
    for path in bags:
        with BagReader(path) as bag:
            check_bag(bag, plan)
            seconds += bag.duration
    return seconds


def in_frame_order(events: Iterator[Frame | EpisodeEnd], window: int) -> Iterator[Frame | EpisodeEnd]:
    """``events`` with their images decoded: up to ``window`` frames are being decoded ahead of the one
    handed on, in worker processes, while the caller encodes and writes."""
    pending: deque[Frame | EpisodeEnd] = deque()
    for event in events:
        pending.append(event)
        while len(pending) > window:
            yield _decoded(pending.popleft())
    while pending:
        yield _decoded(pending.popleft())


def _decoded(event: Frame | EpisodeEnd) -> Frame | EpisodeEnd:
    return Frame(event.time, resolved(event.values)) if isinstance(event, Frame) else event


def _bag_events(bag: BagReader, plan: TopicPlan, robot: RobotInterface, options: ConversionOptions,
                pool: ImageDecodePool | None, progress: Progress | None) -> Iterator[Frame | EpisodeEnd]:
    events = BagSynchronizer(bag, plan, robot, options, pool=pool).events(progress=progress)
    return events if pool is None else in_frame_order(events, window=DECODE_WINDOW * pool.jobs)


def write_episodes(bags: list[str | Path], staging: Path, robot: RobotInterface, options: ConversionOptions,
                   plan: TopicPlan, report: ConversionReport, repo_id: str, image_writer_threads: int,
                   progress: Progress | None = None, on_bag: Callable[[int, Path], None] | None = None,
                   decode_jobs: int = 1) -> None:
    """Convert ``bags`` in order into a new dataset at ``staging``; adds every episode to ``report``.

    ``decode_jobs`` > 1: images are decoded in that many worker processes, overlapped with encoding.
    """
    writer = EpisodeWriter(staging, robot, repo_id=repo_id, image_writer_threads=image_writer_threads)
    pool = ImageDecodePool(decode_jobs) if decode_jobs > 1 else None
    try:
        for number, path in enumerate(bags):
            if on_bag is not None:
                on_bag(number, Path(path))
            with BagReader(path) as bag:
                for event in _bag_events(bag, plan, robot, options, pool, progress):
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
        _close_quietly(writer, pool)
        raise
    writer.close()
    if pool is not None:
        pool.close()


def _close_quietly(writer: EpisodeWriter, pool: ImageDecodePool | None) -> None:
    for close in ([pool.close] if pool is not None else []) + [writer.close]:
        try:
            close()
        except Exception:  # noqa: BLE001 - the original error matters more
            pass


def staging_path(output: Path, tag: str = "") -> Path:
    return output.parent / f".{output.name}.incomplete-{os.getpid()}{tag}"
