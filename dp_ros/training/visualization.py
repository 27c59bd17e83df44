"""What ``dp-ros visualize`` draws, computed with a PolicyRuntime on dataset frames (ROS-free)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE
from dp_ros.training.evaluation import PAD_SUFFIX, EvaluationError, policy_batch


@dataclass
class DenoisingTrace:
    """The whole predicted trajectory at every denoising step, for one observation."""

    steps: list[np.ndarray]
    """(horizon, J) per step: first the initial noise, last the result (unnormalised)."""
    demonstrated: np.ndarray
    """(K, J) demonstrated actions from the observation's time on (episode end left out)."""


@dataclass
class EpisodeRollout:
    """Chunks predicted along an episode as the robot would execute them (open loop per chunk)."""

    predicted: np.ndarray
    """(T, J) predicted actions, chunk after chunk."""
    demonstrated: np.ndarray
    """(T, J) demonstrated actions."""
    chunk_starts: list[int]
    """Frame index at which each chunk starts."""


def _demonstrated(item) -> np.ndarray:
    actions = item[ACTION_FEATURE].numpy()
    return actions[~item[ACTION_FEATURE + PAD_SUFFIX].numpy()]


def denoising_trace(runtime, dataset, frame: int) -> DenoisingTrace:
    """Denoise the observation history at ``frame`` of ``dataset`` (indices within the loaded episodes)."""
    if not 0 <= frame < len(dataset):
        raise EvaluationError(f"frame {frame} is outside the episode (0..{len(dataset) - 1})")
    item = dataset[frame]
    _, steps = runtime.predict_from_batch(policy_batch([item], [STATE_FEATURE, *runtime.image_keys]),
                                          return_denoising=True)
    return DenoisingTrace([s[0] for s in steps], _demonstrated(item))


def episode_rollout(runtime, dataset, stride: int | None = None) -> EpisodeRollout:
    """Predict a chunk every ``stride`` frames (default n_action_steps) over the loaded episode."""
    stride = stride or runtime.n_action_steps
    if not 1 <= stride <= runtime.n_action_steps:
        raise EvaluationError(f"stride {stride} must be between 1 and n_action_steps ({runtime.n_action_steps}): "
                              "a chunk holds no more actions")
    keys = [STATE_FEATURE, *runtime.image_keys]
    predicted, demonstrated, starts = [], [], []
    length = len(dataset)
    for start in range(0, length, stride):
        item = dataset[start]
        chunk = runtime.predict_from_batch(policy_batch([item], keys))[0]
        take = min(stride, length - start, len(chunk))
        predicted.append(chunk[:take])
        demonstrated.append(_demonstrated(item)[:take])
        starts.append(start)
    return EpisodeRollout(np.concatenate(predicted), np.concatenate(demonstrated), starts)
