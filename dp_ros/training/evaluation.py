"""Offline evaluation of a Diffusion Policy on held-out episodes of a LeRobot dataset.

For every evaluated frame the policy sees the same observation history it would
see on the robot (``n_obs_steps`` frames, 1/fps apart) and predicts a chunk of
``n_action_steps`` actions; these are compared with the demonstrated actions of
the same steps (actions past the episode's end are left out). Reported, per joint
and overall, in the units of the actions:

- MSE and MAE between predicted and demonstrated actions;
- action diversity: the standard deviation across repeated samples for the same
  observation (different noise), averaged over the chunk and the probed frames.
  Near 0 means the policy has collapsed to one answer; large values mean it
  hesitates between several.

Run it once per sampler and step count (``ddpm:100``, ``ddim:10``, ...) to see what
fewer denoising steps cost on your own data. ROS-free.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE

PAD_SUFFIX = "_is_pad"


class EvaluationError(ValueError):
    """The dataset, episodes or sampler given for an evaluation cannot be used."""


@dataclass
class ActionErrors:
    """Errors between predicted and demonstrated actions."""

    mse_per_joint: np.ndarray
    mae_per_joint: np.ndarray
    mse: float
    mae: float
    count: int
    """Number of (frame, chunk step) pairs compared."""


@dataclass
class EvaluationResult:
    """Metrics of one sampler setting on one set of episodes."""

    sampler: str
    num_inference_steps: int
    checkpoint: str
    dataset: str
    episodes: list[int]
    frames: int
    actions_compared: int
    n_action_steps: int
    joint_names: list[str]
    mse_per_joint: dict[str, float]
    mae_per_joint: dict[str, float]
    mse: float
    mae: float
    diversity_per_joint: dict[str, float]
    diversity: float
    diversity_samples: int
    diversity_frames: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def action_errors(predicted: np.ndarray, demonstrated: np.ndarray, valid: np.ndarray | None = None) -> ActionErrors:
    """MSE and MAE per joint and overall; arrays (N, K, J), ``valid`` (N, K) marks pairs to count."""
    predicted = np.asarray(predicted, dtype=np.float64)
    demonstrated = np.asarray(demonstrated, dtype=np.float64)
    if predicted.shape != demonstrated.shape or predicted.ndim != 3:
        raise ValueError(f"predicted {predicted.shape} and demonstrated {demonstrated.shape} must both be (N, K, J)")
    mask = np.ones(predicted.shape[:2], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if mask.shape != predicted.shape[:2]:
        raise ValueError(f"valid {mask.shape} must be (N, K) = {predicted.shape[:2]}")
    count = int(mask.sum())
    if count == 0:
        raise ValueError("no valid actions to compare")
    diff = (predicted - demonstrated)[mask]  # (count, J)
    mse_j, mae_j = np.mean(diff**2, axis=0), np.mean(np.abs(diff), axis=0)
    return ActionErrors(mse_j, mae_j, float(np.mean(diff**2)), float(np.mean(np.abs(diff))), count)


def action_diversity(samples: np.ndarray) -> tuple[np.ndarray, float]:
    """Std across repeated samples: ``samples`` (R, N, K, J) -> (per joint (J,), overall)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 4 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (R>=2, N, K, J); got {samples.shape}")
    std = samples.std(axis=0)  # (N, K, J)
    per_joint = std.mean(axis=(0, 1))
    return per_joint, float(per_joint.mean())


# --- data ------------------------------------------------------------------------
def dataset_info(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "meta" / "info.json"
    if not path.is_file():
        raise EvaluationError(f"no LeRobot dataset at {root} ({path} is missing)")
    return json.loads(path.read_text())


def trained_episodes(checkpoint_dir: Path) -> tuple[str | None, list[int] | None]:
    """(dataset root, episodes) the checkpoint was trained on, from its train_config.json if present."""
    try:
        dataset = json.loads((Path(checkpoint_dir) / "train_config.json").read_text()).get("dataset") or {}
    except (OSError, json.JSONDecodeError):
        return None, None
    return dataset.get("root"), dataset.get("episodes")


def held_out_episodes(checkpoint_dir: Path, root: str | Path, total: int) -> tuple[list[int], str]:
    """Episodes of ``root`` the checkpoint did not train on, and a note on how they were chosen."""
    trained_root, trained = trained_episodes(checkpoint_dir)
    same = trained_root is not None and Path(trained_root).resolve() == Path(root).resolve()
    if same and trained is not None:
        left = [e for e in range(total) if e not in set(trained)]
        if left:
            return left, f"episodes {left}: those the checkpoint did not train on"
        return list(range(total)), "all episodes (the checkpoint trained on all of them: these are training errors)"
    if same:
        return list(range(total)), "all episodes (the checkpoint trained on all of them: these are training errors)"
    return list(range(total)), "all episodes"


def load_dataset(root: str | Path, episodes: Sequence[int] | None, n_obs_steps: int, n_action_steps: int,
                 image_keys: Sequence[str], repo_id: str = "local/eval"):
    """A LeRobotDataset yielding observation histories and the demonstrated action chunk per frame."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    info = dataset_info(root)
    total = int(info.get("total_episodes", 0))
    wrong = [e for e in (episodes or []) if not 0 <= e < total]
    if wrong:
        raise EvaluationError(f"episodes {wrong} do not exist in {root} (it holds 0..{total - 1})")
    features = info.get("features", {})
    missing = [k for k in (STATE_FEATURE, ACTION_FEATURE, *image_keys) if k not in features]
    if missing:
        raise EvaluationError(f"dataset {root} lacks {missing}, which the checkpoint needs")
    fps = float(info["fps"])
    history = [-(n_obs_steps - 1 - i) / fps for i in range(n_obs_steps)]
    delta = {STATE_FEATURE: history, **{k: history for k in image_keys},
             ACTION_FEATURE: [k / fps for k in range(n_action_steps)]}
    return LeRobotDataset(repo_id, root=root, episodes=list(episodes) if episodes is not None else None,
                          delta_timestamps=delta)


def frame_indices(length: int, max_frames: int | None) -> list[int]:
    """All frames, or ``max_frames`` of them evenly spread."""
    if not max_frames or max_frames >= length:
        return list(range(length))
    return sorted({int(round(i)) for i in np.linspace(0, length - 1, max_frames)})


def policy_batch(items: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    import torch

    return {k: torch.stack([item[k] for item in items]) for k in keys}


# --- evaluation ----------------------------------------------------------------------
def evaluate(runtime, dataset, sampler_label: str, episodes: Sequence[int], batch_size: int = 16,
             max_frames: int | None = None, diversity_samples: int = 8, diversity_frames: int = 4,
             joint_names: Sequence[str] | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvaluationResult:
    """Action errors and diversity of ``runtime`` (a PolicyRuntime) on ``dataset`` (from ``load_dataset``)."""
    keys = [STATE_FEATURE, *runtime.image_keys]
    indices = frame_indices(len(dataset), max_frames)
    if not indices:
        raise EvaluationError("the selected episodes hold no frames")
    predicted, demonstrated, valid = [], [], []
    done = 0
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start:start + batch_size]]
        predicted.append(runtime.predict_from_batch(policy_batch(items, keys)))
        demonstrated.append(np.stack([item[ACTION_FEATURE].numpy() for item in items]))
        valid.append(np.stack([~item[ACTION_FEATURE + PAD_SUFFIX].numpy() for item in items]))
        done += len(items)
        if progress is not None:
            progress(done, len(indices) + diversity_frames)
    errors = action_errors(np.concatenate(predicted), np.concatenate(demonstrated), np.concatenate(valid))

    probe = frame_indices(len(dataset), diversity_frames)
    samples = []
    for i in probe:
        item = dataset[i]
        chunk = runtime.predict_from_batch(policy_batch([item] * diversity_samples, keys))  # (R, K, J)
        samples.append(chunk)
        done += 1
        if progress is not None:
            progress(done, len(indices) + diversity_frames)
    per_joint_div, diversity = action_diversity(np.stack(samples, axis=1))  # (R, N, K, J)

    names = list(joint_names) if joint_names else [f"joint_{j}" for j in range(runtime.action_dim)]
    return EvaluationResult(
        sampler=sampler_label.split(":")[0], num_inference_steps=runtime.num_inference_steps,
        checkpoint=str(runtime.checkpoint), dataset=str(dataset.root), episodes=[int(e) for e in episodes],
        frames=len(indices), actions_compared=errors.count, n_action_steps=runtime.n_action_steps,
        joint_names=names,
        mse_per_joint=dict(zip(names, map(float, errors.mse_per_joint))),
        mae_per_joint=dict(zip(names, map(float, errors.mae_per_joint))),
        mse=errors.mse, mae=errors.mae,
        diversity_per_joint=dict(zip(names, map(float, per_joint_div))), diversity=diversity,
        diversity_samples=diversity_samples, diversity_frames=len(probe))


def format_results(results: Sequence[EvaluationResult]) -> str:
    """A plain-text table: one row per sampler, MSE / MAE / diversity overall and per joint."""
    if not results:
        return ""
    names = results[0].joint_names
    header = f"{'sampler':<14}{'MSE':>11}{'MAE':>11}{'diversity':>11}   per joint MAE ({', '.join(names)})"
    lines = [header, "-" * len(header)]
    for r in results:
        per_joint = ", ".join(f"{r.mae_per_joint[n]:.4f}" for n in names)
        lines.append(f"{r.sampler + ':' + str(r.num_inference_steps):<14}{r.mse:>11.5f}{r.mae:>11.5f}"
                     f"{r.diversity:>11.5f}   {per_joint}")
    return "\n".join(lines)
