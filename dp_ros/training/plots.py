"""PNG plots for people: the denoising process, and predicted versus demonstrated actions.

Both draw one panel per joint with time in seconds on the x axis, titled, with
labelled axes and a legend. matplotlib's Agg backend: no display needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _figure(joints: int, title: str):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(joints, 1, figsize=(9, 2.2 * joints + 1.0), sharex=True, squeeze=False)
    fig.suptitle(title)
    return plt, fig, axes[:, 0]


def denoising_steps_to_show(total: int, shown: int) -> list[int]:
    """Indices of ``shown`` steps out of ``total``, evenly spread, always with the first and the last."""
    if total <= shown:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, shown)})


def plot_denoising(trajectories: Sequence[np.ndarray], path: str | Path, joint_names: Sequence[str], fps: float,
                   n_obs_steps: int, demonstrated: np.ndarray | None = None, title: str = "Denoising process",
                   shown: int = 6) -> Path:
    """The action trajectory at several denoising steps, per joint.

    ``trajectories``: (horizon, J) arrays, first the initial noise, last the result.
    ``demonstrated``: (K, J) demonstrated actions from the observation's time on, drawn dashed.
    Time 0 is the newest observation; the trajectory starts n_obs_steps-1 steps before it.
    """
    steps = [np.asarray(t) for t in trajectories]
    horizon, joints = steps[-1].shape
    time = (np.arange(horizon) - (n_obs_steps - 1)) / fps
    plt, fig, axes = _figure(joints, title)
    cmap = plt.get_cmap("viridis")
    picked = denoising_steps_to_show(len(steps), shown)
    last = len(steps) - 1
    for j, ax in enumerate(axes):
        for order, i in enumerate(picked):
            if i == 0:
                label = "step 0: initial noise"
            elif i == last:
                label = f"step {i}: final actions"
            else:
                label = f"step {i} of {last}"
            color = cmap(0.85 * (1 - order / max(1, len(picked) - 1)))
            ax.plot(time, steps[i][:, j], color=color, linewidth=2.4 if i == last else 1.1,
                    alpha=1.0 if i == last else 0.8, label=label)
        if demonstrated is not None:
            demo = np.asarray(demonstrated)
            ax.plot(np.arange(len(demo)) / fps, demo[:, j], "k--", linewidth=1.6, label="demonstrated")
        ax.axvline(0.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylabel(f"{joint_names[j]}\naction")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time from the newest observation (s)")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="denoising")
    return _save(plt, fig, path)


def plot_episode_actions(predicted: np.ndarray, demonstrated: np.ndarray, path: str | Path,
                         joint_names: Sequence[str], fps: float, chunk_starts: Sequence[int] = (),
                         title: str = "Predicted vs demonstrated actions") -> Path:
    """Predicted and demonstrated actions over an episode, per joint; ``chunk_starts`` marks new chunks."""
    predicted, demonstrated = np.asarray(predicted), np.asarray(demonstrated)
    joints = demonstrated.shape[1]
    plt, fig, axes = _figure(joints, title)
    for j, ax in enumerate(axes):
        ax.plot(np.arange(len(demonstrated)) / fps, demonstrated[:, j], color="black", linewidth=1.6,
                label="demonstrated")
        ax.plot(np.arange(len(predicted)) / fps, predicted[:, j], color="tab:orange", linewidth=1.4,
                label="predicted")
        for k, start in enumerate(chunk_starts):
            ax.axvline(start / fps, color="tab:blue", alpha=0.45, linewidth=0.9, linestyle="--",
                       label="new chunk" if k == 0 else None)
        ax.set_ylabel(f"{joint_names[j]}\naction")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time in the episode (s)")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(plt, fig, path)


def _save(plt, fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part")
    fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path
