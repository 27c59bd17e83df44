"""What the Diffusion Policy guide asks of demonstration data, checked on a LeRobot v3.0 dataset.

Reads the dataset's files directly (info.json, the episode metadata and data
parquet files, the videos) and reports: the episode count against the minimum
for basic training (100) and the recommended 500; NaN or infinite values;
episodes whose timestamps are not evenly spaced at 1/fps from 0 (their time is
not true time: training would learn wrong speeds); frames dropped inside
episodes by older recorders, and episodes split at gaps (dp_ros's episode log);
action smoothness (jerk statistics, outliers by episode and frame); cameras
frozen while the arm moves; and the spread of episode lengths. Findings are
errors (the dataset should not be trained on as it is), warnings or notes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dp_ros.data.datasets.dataset_files import (TIME_TOLERANCE, DatasetCheckError, DatasetFiles, decoded_frames,
                                       load_dataset_files, video_path)
from dp_ros.data.datasets.dataset_report import ERROR, NOTE, WARNING, DatasetReport
from dp_ros.data.datasets.dataset_writer import read_episode_log

__all__ = ["CheckOptions", "DatasetCheckError", "check_dataset"]

MIN_EPISODES = 100
RECOMMENDED_EPISODES = 500


@dataclass
class CheckOptions:
    """Thresholds of ``dp-ros check-dataset``."""

    min_episodes: int = MIN_EPISODES
    """Fewer episodes is a warning (the guide's minimum for basic training)."""
    recommended_episodes: int = RECOMMENDED_EPISODES
    """Fewer episodes is a note (the guide's recommendation)."""
    jerk_outlier: float = 10.0
    """A jerk further than this many robust standard deviations (1.4826 x MAD) from the median is an outlier."""
    frozen_frames: int = 5
    """A camera showing the same image for this many consecutive frames while the arm moves is frozen."""
    frozen_difference: float = 0.5
    """Mean absolute pixel difference (0-255) below which two consecutive frames count as the same image."""
    check_videos: bool = True
    """Decode the videos to look for frozen cameras (the slowest check)."""
    max_listed: int = 20
    """At most this many findings of one kind are listed one by one."""


# --- reading --------------------------------------------------------------------------------
# --- the checks -------------------------------------------------------------------------------
def _check_structure(data: DatasetFiles, report: DatasetReport) -> dict[int, np.ndarray]:
    """Rows of each episode in frame order; errors for inconsistent indices."""
    rows: dict[int, np.ndarray] = {}
    order = np.lexsort((data.frame_index, data.episode_index))
    for episode in np.unique(data.episode_index):
        index = order[data.episode_index[order] == episode]
        rows[int(episode)] = index
        frames = data.frame_index[index]
        if not np.array_equal(frames, np.arange(len(frames))):
            report.add(ERROR, "frames", f"frame_index is not 0..{len(frames) - 1} in order", int(episode))
    declared = int(data.info.get("total_episodes", -1))
    if declared != len(rows) or declared != len(data.episodes_meta):
        report.add(ERROR, "episodes", f"info.json counts {declared} episodes, the episode metadata {len(data.episodes_meta)}"
                                      f" and the data {len(rows)}: the dataset is incomplete or damaged")
    for meta in data.episodes_meta:
        episode = int(meta["episode_index"])
        if episode in rows and int(meta.get("length", -1)) != len(rows[episode]):
            report.add(ERROR, "episodes", f"metadata says {meta.get('length')} frames, the data has {len(rows[episode])}",
                       episode)
    return rows


def _check_count(report: DatasetReport, options: CheckOptions) -> None:
    if report.episodes < options.min_episodes:
        report.add(WARNING, "episodes", f"{report.episodes} episodes: fewer than {options.min_episodes}, the Diffusion "
                                        f"Policy guide's minimum for basic training ({options.recommended_episodes} "
                                        "recommended)")
    elif report.episodes < options.recommended_episodes:
        report.add(NOTE, "episodes", f"{report.episodes} episodes: enough for basic training; "
                                     f"{options.recommended_episodes} are recommended")


def _check_nonfinite(data: DatasetFiles, rows: dict[int, np.ndarray], report: DatasetReport, options: CheckOptions) -> None:
    total = 0
    listed = 0
    for name, values in (("action", data.action), ("observation.state", data.state)):
        if values is None:
            continue
        bad_rows = np.flatnonzero(~np.all(np.isfinite(values), axis=1))
        total += int((~np.isfinite(values)).sum())
        for row in bad_rows:
            if listed < options.max_listed:
                report.add(ERROR, "nan", f"{name} holds NaN or Inf", int(data.episode_index[row]),
                           int(data.frame_index[row]))
            listed += 1
    if listed > options.max_listed:
        report.add(ERROR, "nan", f"... and {listed - options.max_listed} more frames with NaN or Inf")
    report.summary["nonfinite_values"] = total


def _check_timestamps(data: DatasetFiles, rows: dict[int, np.ndarray], report: DatasetReport,
                      options: CheckOptions) -> None:
    """Every episode's timestamps must be 0, 1/fps, 2/fps, ...: otherwise its time is not true time."""
    period = 1.0 / report.fps
    uneven = 0
    for episode, index in rows.items():
        times = data.timestamp[index]
        off_grid = np.flatnonzero(np.abs(times - np.arange(len(times)) * period) > TIME_TOLERANCE)
        if not len(off_grid):
            continue
        uneven += 1
        if uneven > options.max_listed:
            continue
        steps = np.diff(times)
        bad_steps = np.flatnonzero(np.abs(steps - period) > TIME_TOLERANCE)
        if len(bad_steps):
            k = int(bad_steps[0])
            what = (f"{len(bad_steps)} steps between frames are not {period * 1000:.0f} ms (first: "
                    f"{steps[k] * 1000:.0f} ms before frame {int(data.frame_index[index][k + 1])})")
            frame = int(data.frame_index[index][k + 1])
        else:
            what = f"they start at {times[0]:.3f} s instead of 0"
            frame = int(data.frame_index[index][0])
        report.add(ERROR, "timestamps", f"timestamps are not evenly spaced at 1/fps: {what}; time in this episode "
                                        "is not true time, so a policy trained on it learns wrong speeds", episode, frame)
    if uneven > options.max_listed:
        report.add(ERROR, "timestamps", f"... and {uneven - options.max_listed} more episodes with uneven timestamps")
    report.summary["uneven_timestamp_episodes"] = uneven


def _check_episode_log(root: Path, report: DatasetReport) -> None:
    """dp_ros's episode log: frames an older recorder dropped inside episodes, and episodes split at gaps."""
    log = read_episode_log(root)
    if not log:
        return
    dropped = {int(r["episode_index"]): int(r.get("frames_dropped", 0)) for r in log}
    report.summary["frames_dropped_inside"] = sum(dropped.values())
    for episode, count in dropped.items():
        if count:
            report.add(WARNING, "dropped", f"{count} frames were dropped inside this episode and the frames after them "
                                           "renumbered (an older dp_ros did this): its time is compressed where they "
                                           "were; record or convert it again", episode)
    splits = [r for r in log if r.get("gap_before") and int(r.get("part", 0)) > 0]
    report.summary["split_episodes"] = len(splits)
    for record in splits:
        gap = record["gap_before"]
        report.add(NOTE, "split", f"split from the previous episode at {gap['frames']} unusable frames "
                                  f"({gap['seconds']:.2f} s: {', '.join(gap['causes'])})", int(record["episode_index"]))


def _check_smoothness(data: DatasetFiles, rows: dict[int, np.ndarray], report: DatasetReport, options: CheckOptions) -> None:
    if data.action is None:
        report.add(ERROR, "action", "the dataset has no action feature")
        return
    fps = report.fps
    windows = []  # (episode, first frame, jerk vector)
    for episode, index in rows.items():
        actions = data.action[index]
        if len(actions) >= 4 and np.all(np.isfinite(actions)):
            jerk = np.diff(actions, n=3, axis=0) * fps ** 3
            windows += [(episode, int(k), jerk[k]) for k in range(len(jerk))]
    if not windows:
        return
    jerks = np.stack([w[2] for w in windows])
    magnitude = np.abs(jerks)
    median = np.median(jerks, axis=0)
    scale = 1.4826 * np.median(np.abs(jerks - median), axis=0)
    scale = np.where(scale > 0, scale, np.std(jerks, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(scale > 0, np.abs(jerks - median) / scale, 0.0)
    worst_joint = np.argmax(score, axis=1)
    outlier = score[np.arange(len(score)), worst_joint] > options.jerk_outlier
    names = data.info.get("features", {}).get("action", {}).get("names") or []
    flagged = 0
    k = 0
    while k < len(windows):  # one finding per run of consecutive outlier windows
        if not outlier[k]:
            k += 1
            continue
        end = k
        while end + 1 < len(windows) and outlier[end + 1] and windows[end + 1][0] == windows[k][0]:
            end += 1
        peak = k + int(np.argmax(score[k:end + 1].max(axis=1)))
        episode, first, _ = windows[peak]
        joint = int(worst_joint[peak])
        joint_name = names[joint] if joint < len(names) else f"joint {joint}"
        flagged += 1
        if flagged <= options.max_listed:
            report.add(WARNING, "smoothness",
                       f"action jerk {jerks[peak, joint]:.3g}/s^3 on {joint_name} at frames {first}-{first + 3} is "
                       f"{score[peak, joint]:.0f} robust deviations from typical: a jump in the demonstrated action",
                       episode, first)
        k = end + 1
    if flagged > options.max_listed:
        report.add(WARNING, "smoothness", f"... and {flagged - options.max_listed} more jerk outliers")
    per_joint_p95 = np.percentile(magnitude, 95, axis=0)
    report.summary["action_jerk"] = {
        "median": float(np.median(magnitude)), "p95": float(np.percentile(magnitude, 95)),
        "max": float(magnitude.max()), "outliers": flagged,
        "p95_per_joint": {names[j] if j < len(names) else str(j): float(v) for j, v in enumerate(per_joint_p95)}}


def _check_lengths(rows: dict[int, np.ndarray], report: DatasetReport) -> None:
    lengths = np.array([len(index) for index in rows.values()])
    if not len(lengths):
        return
    median = float(np.median(lengths))
    report.summary["episode_length"] = {"min": int(lengths.min()), "median": median, "max": int(lengths.max()),
                                        "std": float(lengths.std())}
    for episode, index in rows.items():
        n = len(index)
        if n < 0.5 * median or n > 2 * median:
            report.add(WARNING, "lengths", f"{n} frames, against a median of {median:g}: an unusually "
                                           f"{'short' if n < median else 'long'} demonstration", episode)


def _check_frozen(root: Path, data: DatasetFiles, rows: dict[int, np.ndarray], report: DatasetReport,
                  options: CheckOptions, progress: Callable[[int], None] | None) -> None:
    video_keys = [k for k, f in data.info.get("features", {}).items() if f.get("dtype") == "video"]
    runs = 0
    by_file: dict[tuple[str, Path], list[dict]] = {}
    for meta in data.episodes_meta:
        for key in video_keys:
            by_file.setdefault((key, video_path(root, data.info, key, meta)), []).append(meta)
    for (key, path), metas in by_file.items():
        if not path.is_file():
            report.add(ERROR, "videos", f"{key}: video file {path} is missing", int(metas[0]["episode_index"]))
            continue
        spans = [(float(m[f"videos/{key}/from_timestamp"]), float(m[f"videos/{key}/to_timestamp"]),
                  int(m["episode_index"])) for m in metas]
        differences: dict[int, list[float]] = {}
        previous: dict[int, np.ndarray] = {}
        try:
            for time, image in decoded_frames(path):
                episode = next((e for a, b, e in spans if a - 1e-3 <= time < b - 1e-3), None)
                if episode is None:
                    continue
                if episode in previous:
                    differences.setdefault(episode, []).append(
                        float(np.abs(image.astype(np.int16) - previous[episode]).mean()))
                previous[episode] = image.astype(np.int16)
        except Exception as exc:  # noqa: BLE001 - PyAV raises its own error kinds for damaged videos
            report.add(ERROR, "videos", f"{key}: cannot decode {path}: {exc}", int(metas[0]["episode_index"]))
            continue
        for episode, diffs in differences.items():
            runs += _frozen_runs(key, episode, np.array(diffs), data, rows, report, options)
        if progress is not None:
            progress(len(metas))
    report.summary["frozen_runs"] = runs


def _frozen_runs(key: str, episode: int, diffs: np.ndarray, data: DatasetFiles, rows: dict[int, np.ndarray],
                 report: DatasetReport, options: CheckOptions) -> int:
    """Runs of unchanged images during which the joint state moves; diffs[k] compares frames k and k+1."""
    same = diffs < options.frozen_difference
    state = data.state[rows[episode]] if data.state is not None and episode in rows else None
    found = 0
    k = 0
    while k < len(same):
        if not same[k]:
            k += 1
            continue
        end = k
        while end + 1 < len(same) and same[end + 1]:
            end += 1
        first, last = k, end + 1  # frames first..last show the same image
        if last - first + 1 >= options.frozen_frames:
            moved = state is not None and len(state) > last and np.abs(state[last] - state[first]).max() > 1e-3
            if moved:
                found += 1
                report.add(WARNING, "frozen", f"camera {key.removeprefix('observation.images.')} shows the same image "
                                              f"for frames {first}-{last} while the joints move: a frozen camera",
                           episode, first)
        k = end + 1
    return found


def check_dataset(root: str | Path, options: CheckOptions | None = None, progress: bool = False) -> DatasetReport:
    """Run every check; raises DatasetCheckError only when the dataset cannot be read at all."""
    options = options or CheckOptions()
    root = Path(root).expanduser()
    data = load_dataset_files(root)
    report = DatasetReport(root=str(root), fps=int(data.info.get("fps", 0)))
    if report.fps <= 0:
        raise DatasetCheckError(f"{root}: info.json has no valid fps")
    rows = _check_structure(data, report)
    report.episodes, report.frames = len(rows), int(len(data.episode_index))
    _check_count(report, options)
    _check_nonfinite(data, rows, report, options)
    _check_timestamps(data, rows, report, options)
    _check_episode_log(root, report)
    _check_smoothness(data, rows, report, options)
    _check_lengths(rows, report)
    if options.check_videos:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(data.episodes_meta) * max(1, sum(
                f.get("dtype") == "video" for f in data.info.get("features", {}).values())), unit="episode-video",
                desc="decoding videos", dynamic_ncols=True)
        _check_frozen(root, data, rows, report, options, bar.update if bar else None)
        if bar is not None:
            bar.close()
    report.data = data
    return report


