"""A PNG overview of a checked dataset (``dp-ros check-dataset --plot``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dp_ros.data.datasets.dataset_report import DatasetReport
from dp_ros.data.datasets.dataset_writer import read_episode_log


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
    dropped = {int(r["episode_index"]): int(r.get("frames_dropped", 0)) + int(r.get("gap_before", {}).get("frames", 0))
               for r in read_episode_log(Path(report.root))}
    frozen = {}
    for finding in report.findings:
        if finding.check == "frozen" and finding.episode is not None:
            frozen[finding.episode] = frozen.get(finding.episode, 0) + 1
    ax.bar(np.array(episodes) - 0.2, [dropped.get(e, 0) for e in episodes], width=0.4, label="unusable frames before it or inside it")
    ax.bar(np.array(episodes) + 0.2, [frozen.get(e, 0) for e in episodes], width=0.4, label="frozen camera runs")
    ax.set(title="Data problems per episode", xlabel="episode", ylabel="count")
    ax.set_ylim(0, max([1, *dropped.values(), *frozen.values()]) * 1.1)
    ax.legend()

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


