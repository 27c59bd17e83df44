"""``bag2lerobot --jobs N``: bags converted in worker processes, merged by LeRobot's dataset aggregation.

The bags are shared out in order, in runs of about equal bag seconds, so the
parts merged in job order hold the episodes in the order of a serial conversion.
Each worker writes its own dataset next to the output; LeRobot's
``aggregate_datasets`` merges them (parquet rows and video packets are copied,
never re-encoded), and dp_ros's episode log is joined with the episode indices
shifted. Workers report their progress to the parent's one progress bar (their
own and LeRobot's bars are switched off). The workers are forked from a server
process that imports LeRobot and torch once, so a job costs no import time.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue as queue_module
import shutil
import time
from pathlib import Path
from typing import Any

from dp_ros.data.bags.bag_episodes import staging_path, write_episodes
from dp_ros.data.bags.bag_reader import BagReader
from dp_ros.data.bags.conversion_options import ConversionOptions
from dp_ros.data.bags.conversion_report import ConversionReport
from dp_ros.data.datasets.dataset_writer import EPISODE_LOG, read_episode_log
from dp_ros.data.bags.topic_plan import plan_topics
from dp_ros.robot_interface import RobotInterface

_progress_queue = None


def share_out(durations: list[float], jobs: int) -> list[list[int]]:
    """Contiguous runs of bag indices, one per job, of about equal total duration (none empty)."""
    total = sum(durations) or float(len(durations))
    weights = durations if sum(durations) else [1.0] * len(durations)
    groups: list[list[int]] = [[] for _ in range(jobs)]
    done = 0.0
    for index, weight in enumerate(weights):
        job = min(jobs - 1, int((done + weight / 2) / total * jobs))
        groups[job].append(index)
        done += weight
    return [g for g in groups if g]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _set_progress_queue(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _convert_part(bags: list[str], part: str, robot: RobotInterface, options: ConversionOptions,
                  repo_id: str) -> dict[str, Any]:
    """In a worker: convert ``bags`` into the dataset ``part``."""
    cpu = time.process_time()
    report = ConversionReport(output=part, fps=robot.fps)
    write_episodes(bags, Path(part), robot, options, plan_topics(robot, options), report, repo_id,
                   image_writer_threads=1, progress=_progress_queue.put)
    return {"episodes": report.episodes, "peak_rss_mb": peak_rss_mb(), "cpu_s": time.process_time() - cpu}


def merge_parts(parts: list[str], output: str, repo_id: str) -> dict[str, float]:
    """In a worker: LeRobot's aggregation of the part datasets into ``output``, and the joined episode log."""
    from lerobot.datasets.aggregate import aggregate_datasets

    cpu = time.process_time()
    aggregate_datasets(repo_ids=[repo_id] * len(parts), aggr_repo_id=repo_id, roots=[Path(p) for p in parts],
                       aggr_root=Path(output))
    lines, offset = [], 0
    for part in parts:
        records = read_episode_log(Path(part))
        lines += [json.dumps({**r, "episode_index": int(r["episode_index"]) + offset}) for r in records]
        offset += len(records)
    (Path(output) / EPISODE_LOG).write_text("".join(line + "\n" for line in lines))
    return {"peak_rss_mb": peak_rss_mb(), "cpu_s": time.process_time() - cpu}


@contextlib.contextmanager
def _environment(**values: str):
    """Environment variables set while worker processes are started (they copy the environment)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait(result, bar, progress_queue) -> Any:
    while not result.ready():
        try:
            bar.update(progress_queue.get(timeout=0.2))
        except queue_module.Empty:
            pass
    while True:
        try:
            bar.update(progress_queue.get_nowait())
        except queue_module.Empty:
            break
    return result.get()


def convert_in_parallel(bags: list, staging: Path, robot: RobotInterface, options: ConversionOptions,
                        report: ConversionReport, repo_id: str, jobs: int, bar) -> None:
    """Convert ``bags`` with ``jobs`` worker processes into a new dataset at ``staging``; fills ``report``."""
    import multiprocessing

    durations = []
    for path in bags:
        with BagReader(path) as bag:
            durations.append(bag.duration)
    groups = share_out(durations, jobs)
    parts = [staging_path(staging, f".part{job}") for job in range(len(groups))]
    # Workers fork from one server that imported LeRobot and torch once (seconds of CPU each time otherwise);
    # the server itself is started from a clean interpreter, so no thread of this process is forked.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["dp_ros.data.bags.parallel_conversion", "lerobot.datasets.lerobot_dataset",
                                    "lerobot.datasets.aggregate"])
    progress_queue = context.Queue()
    try:
        with _environment(TQDM_DISABLE="1"):
            pool = context.Pool(len(groups), initializer=_set_progress_queue, initargs=(progress_queue,))
        try:
            bar.set_description(f"{len(bags)} bags in {len(groups)} jobs")
            pending = [pool.apply_async(_convert_part, ([str(bags[i]) for i in group], str(part), robot, options,
                                                        repo_id)) for group, part in zip(groups, parts)]
            saved_parts = []
            for job, (result, group, part) in enumerate(zip(pending, groups, parts)):
                outcome = _wait(result, bar, progress_queue)
                offset = len(report.saved)
                for episode in outcome["episodes"]:
                    if episode.saved_as is not None:
                        episode.saved_as += offset
                    report.episodes.append(episode)
                report.jobs.append({"job": job, "bags": len(group), "peak_rss_mb": round(outcome["peak_rss_mb"], 1),
                                    "cpu_s": round(outcome["cpu_s"], 2)})
                if any(e.saved_as is not None for e in outcome["episodes"]):
                    saved_parts.append(str(part))
            if saved_parts:
                bar.set_description(f"merging {len(saved_parts)} parts")
                merged = _wait(pool.apply_async(merge_parts, (saved_parts, str(staging), repo_id)), bar,
                               progress_queue)
                report.jobs.append({"job": "merge", "bags": 0, "peak_rss_mb": round(merged["peak_rss_mb"], 1),
                                    "cpu_s": round(merged["cpu_s"], 2)})
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    finally:
        for part in parts:
            shutil.rmtree(part, ignore_errors=True)
