"""What the Diffusion Policy guide asks of demonstration data, checked on a LeRobot v3.0 dataset.

Reads the dataset's files directly (info.json, the episode metadata and data
parquet files, the videos) and reports: the episode count against the minimum
for basic training (100) and the recommended 500; NaN or infinite values;
timestamp gaps and frames dropped while recording or converting (dp_ros's
episode log); action smoothness (jerk statistics, outliers by episode and
frame); cameras frozen while the arm moves; and the spread of episode lengths.
Findings are errors (the dataset should not be trained on as it is), warnings
or notes.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dp_ros.data.dataset_writer import read_episode_log

ERROR, WARNING, NOTE = "error", "warning", "note"
MIN_EPISODES = 100
RECOMMENDED_EPISODES = 500


class DatasetCheckError(ValueError):
    """The dataset cannot be read at all (the message says why)."""


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


@dataclass
class Finding:
    severity: str
    check: str
    message: str
    episode: int | None = None
    frame: int | None = None


@dataclass
class DatasetReport:
    root: str
    fps: int = 0
    episodes: int = 0
    frames: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    data: Any = field(default=None, repr=False)
    """The columns read, kept for plotting."""

    def add(self, severity: str, check: str, message: str, episode: int | None = None, frame: int | None = None):
        self.findings.append(Finding(severity, check, message, episode, frame))

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.root, "fps": self.fps, "episodes": self.episodes, "frames": self.frames,
                "errors": self.count(ERROR), "warnings": self.count(WARNING), "summary": self.summary,
                "findings": [asdict(f) for f in self.findings]}

    def text(self) -> str:
        s = self.summary
        lines = [f"dataset {self.root}: {self.episodes} episodes, {self.frames} frames at {self.fps} fps"]
        lengths = s.get("episode_length", {})
        if lengths:
            lines.append(f"  episode length   min {lengths['min']}  median {lengths['median']:g}  max {lengths['max']}  "
                         f"(std {lengths['std']:.1f} frames)")
        jerk = s.get("action_jerk", {})
        if jerk:
            lines.append(f"  action jerk      |jerk| median {jerk['median']:.3g}  p95 {jerk['p95']:.3g}  max "
                         f"{jerk['max']:.3g} (units/s^3); {jerk['outliers']} outlier windows")
        lines.append(f"  non-finite       {s.get('nonfinite_values', 0)} NaN/Inf values")
        lines.append(f"  timestamps       {s.get('timestamp_gaps', 0)} gaps")
        if "frames_dropped" in s:
            lines.append(f"  frames dropped   {s['frames_dropped']} while recording/converting "
                         f"(in {s.get('episodes_with_drops', 0)} episodes)")
        if "frozen_runs" in s:
            lines.append(f"  frozen cameras   {s['frozen_runs']} runs")
        for severity in (ERROR, WARNING, NOTE):
            for finding in (f for f in self.findings if f.severity == severity):
                lines.append(f"{severity.upper():8s}{finding.check}: {finding.message}")
        lines.append(f"{self.count(ERROR)} errors, {self.count(WARNING)} warnings")
        return "\n".join(lines)


# --- reading --------------------------------------------------------------------------------
def _read_parquets(folder: Path, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted(folder.glob("*/*.parquet"))
    if not paths:
        raise DatasetCheckError(f"no parquet files under {folder}")
    try:
        tables = [pq.read_table(p, columns=columns) for p in paths]
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for damaged files
        raise DatasetCheckError(f"cannot read the parquet files under {folder}: {exc}") from None
    return pa.concat_tables(tables, promote_options="default")


def _matrix(table, name: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    values = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    return values.reshape(len(column), -1) if len(column) else values.reshape(0, 0)


@dataclass
class _Data:
    info: dict
    episode_index: np.ndarray
    frame_index: np.ndarray
    timestamp: np.ndarray
    action: np.ndarray | None
    state: np.ndarray | None
    episodes_meta: list[dict]


def _load(root: Path) -> _Data:
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DatasetCheckError(f"{root} is not a LeRobot dataset (no meta/info.json)")
    info = json.loads(info_path.read_text())
    features = info.get("features", {})
    columns = [c for c in ("episode_index", "frame_index", "timestamp", "action", "observation.state") if c in features]
    table = _read_parquets(root / "data", columns)
    meta_table = _read_parquets(root / "meta" / "episodes")
    meta_columns = [c for c in meta_table.column_names if not c.startswith("stats/")]
    episodes_meta = meta_table.select(meta_columns).to_pylist()
    return _Data(info=info,
                 episode_index=np.asarray(table.column("episode_index").to_numpy(), dtype=np.int64),
                 frame_index=np.asarray(table.column("frame_index").to_numpy(), dtype=np.int64),
                 timestamp=np.asarray(table.column("timestamp").to_numpy(), dtype=np.float64),
                 action=_matrix(table, "action") if "action" in columns else None,
                 state=_matrix(table, "observation.state") if "observation.state" in columns else None,
                 episodes_meta=sorted(episodes_meta, key=lambda e: e["episode_index"]))


# --- the checks -------------------------------------------------------------------------------
def _check_structure(data: _Data, report: DatasetReport) -> dict[int, np.ndarray]:
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


def _check_nonfinite(data: _Data, rows: dict[int, np.ndarray], report: DatasetReport, options: CheckOptions) -> None:
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


def _check_timestamps(data: _Data, rows: dict[int, np.ndarray], report: DatasetReport, options: CheckOptions) -> None:
    period = 1.0 / report.fps
    gaps = 0
    for episode, index in rows.items():
        steps = np.diff(data.timestamp[index])
        if np.any(steps <= 0):
            report.add(ERROR, "timestamps", "timestamps do not increase", episode,
                       int(data.frame_index[index][1:][steps <= 0][0]))
        for k in np.flatnonzero(np.abs(steps - period) > 1e-4):
            if steps[k] > 0:
                gaps += 1
                if gaps <= options.max_listed:
                    report.add(WARNING, "timestamps", f"gap of {steps[k] * 1000:.0f} ms (expected {period * 1000:.0f} ms)",
                               episode, int(data.frame_index[index][k + 1]))
    report.summary["timestamp_gaps"] = gaps


def _check_dropped(root: Path, report: DatasetReport) -> None:
    log = read_episode_log(root)
    if not log:
        return
    dropped = {int(r["episode_index"]): int(r.get("frames_dropped", 0)) for r in log}
    report.summary["frames_dropped"] = sum(dropped.values())
    report.summary["episodes_with_drops"] = sum(1 for d in dropped.values() if d)
    lengths = {int(r["episode_index"]): int(r.get("length", 0)) for r in log}
    for episode, count in dropped.items():
        if count and count >= 0.05 * max(1, lengths.get(episode, 0) + count):
            report.add(WARNING, "dropped", f"{count} frames were dropped (stale or missing inputs) while recording "
                                           f"or converting: the episode has holes in time", episode)


def _check_smoothness(data: _Data, rows: dict[int, np.ndarray], report: DatasetReport, options: CheckOptions) -> None:
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


def _video_path(root: Path, info: dict, key: str, meta: dict) -> Path:
    template = info.get("video_path") or "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    return root / template.format(video_key=key, chunk_index=int(meta[f"videos/{key}/chunk_index"]),
                                  file_index=int(meta[f"videos/{key}/file_index"]))


def _decoded_frames(path: Path):
    """(time in seconds, HxWx3 uint8) for every frame of a video file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield float(frame.time), frame.to_ndarray(format="rgb24")


def _check_frozen(root: Path, data: _Data, rows: dict[int, np.ndarray], report: DatasetReport,
                  options: CheckOptions, progress: Callable[[int], None] | None) -> None:
    video_keys = [k for k, f in data.info.get("features", {}).items() if f.get("dtype") == "video"]
    runs = 0
    by_file: dict[tuple[str, Path], list[dict]] = {}
    for meta in data.episodes_meta:
        for key in video_keys:
            by_file.setdefault((key, _video_path(root, data.info, key, meta)), []).append(meta)
    for (key, path), metas in by_file.items():
        if not path.is_file():
            report.add(ERROR, "videos", f"{key}: video file {path} is missing", int(metas[0]["episode_index"]))
            continue
        spans = [(float(m[f"videos/{key}/from_timestamp"]), float(m[f"videos/{key}/to_timestamp"]),
                  int(m["episode_index"])) for m in metas]
        differences: dict[int, list[float]] = {}
        previous: dict[int, np.ndarray] = {}
        try:
            for time, image in _decoded_frames(path):
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


def _frozen_runs(key: str, episode: int, diffs: np.ndarray, data: _Data, rows: dict[int, np.ndarray],
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
    data = _load(root)
    report = DatasetReport(root=str(root), fps=int(data.info.get("fps", 0)))
    if report.fps <= 0:
        raise DatasetCheckError(f"{root}: info.json has no valid fps")
    rows = _check_structure(data, report)
    report.episodes, report.frames = len(rows), int(len(data.episode_index))
    _check_count(report, options)
    _check_nonfinite(data, rows, report, options)
    _check_timestamps(data, rows, report, options)
    _check_dropped(root, report)
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


def plot_report(report: DatasetReport, path: str | Path, episodes_shown: int = 10) -> Path:
    """A PNG: episode lengths, actions of the first episodes, the jerk distribution, drops and frozen frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = report.data
    rows = {e: np.flatnonzero(data.episode_index == e) for e in np.unique(data.episode_index)}
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    fig.suptitle(f"dp-ros check-dataset: {Path(report.root).name} ({report.episodes} episodes, {report.fps} fps)")

    ax = axes[0, 0]
    episodes = sorted(rows)
    ax.bar(episodes, [len(rows[e]) for e in episodes], color="tab:blue", label="frames")
    ax.axhline(report.summary.get("episode_length", {}).get("median", 0), color="k", ls="--", label="median")
    ax.set(title="Episode lengths", xlabel="episode", ylabel="frames")
    ax.legend()

    ax = axes[0, 1]
    names = data.info.get("features", {}).get("action", {}).get("names") or []
    if data.action is not None:
        for e in episodes[:episodes_shown]:
            for j in range(data.action.shape[1]):
                ax.plot(np.arange(len(rows[e])) / report.fps, data.action[rows[e], j], color=f"C{j}", alpha=0.6,
                        label=(names[j] if j < len(names) else f"joint {j}") if e == episodes[0] else None)
    ax.set(title=f"Actions of the first {min(episodes_shown, len(episodes))} episodes", xlabel="time in episode (s)",
           ylabel="action")
    ax.legend(loc="upper right", fontsize="small")

    ax = axes[1, 0]
    if data.action is not None:
        jerks = [np.abs(np.diff(data.action[rows[e]], n=3, axis=0)).ravel() * report.fps ** 3
                 for e in episodes if len(rows[e]) >= 4]
        jerks = np.concatenate(jerks) if jerks else np.zeros(0)
        jerks = jerks[np.isfinite(jerks) & (jerks > 0)]
        if len(jerks):
            ax.hist(np.log10(jerks), bins=60, color="tab:orange", label="|jerk| of action, all joints")
            ax.axvline(np.log10(np.percentile(jerks, 95)), color="k", ls="--", label="95th percentile")
    ax.set(title="Action smoothness", xlabel="log10 |jerk| (units/s^3)", ylabel="windows")
    ax.legend()

    ax = axes[1, 1]
    dropped = {int(r["episode_index"]): int(r.get("frames_dropped", 0)) for r in read_episode_log(Path(report.root))}
    frozen = {}
    for finding in report.findings:
        if finding.check == "frozen" and finding.episode is not None:
            frozen[finding.episode] = frozen.get(finding.episode, 0) + 1
    ax.bar(np.array(episodes) - 0.2, [dropped.get(e, 0) for e in episodes], width=0.4, label="frames dropped")
    ax.bar(np.array(episodes) + 0.2, [frozen.get(e, 0) for e in episodes], width=0.4, label="frozen camera runs")
    ax.set(title="Data problems per episode", xlabel="episode", ylabel="count")
    ax.set_ylim(0, max([1, *dropped.values(), *frozen.values()]) * 1.1)
    ax.legend()

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def nan_safe(value: Any) -> Any:
    """JSON has no NaN: replace non-finite floats by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_safe(v) for v in value]
    return value
