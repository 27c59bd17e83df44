"""Tiny real LeRobot datasets and Diffusion Policy checkpoints, made on the spot for tests.

Nothing here is a mock: datasets are written with LeRobot's own dataset API
(format v3.0, images as video) and checkpoints are randomly initialised
``DiffusionPolicy`` models saved with LeRobot's own pre/post-processors, laid
out as ``lerobot-train`` saves them (``pretrained_model/``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE, RobotInterface, parse_robot_interface


def tiny_robot(joints: Sequence[str] = ("j1", "j2", "j3"), cameras: Sequence[str] = ("front",), size: int = 32,
               control_rate: int = 10, command_rate: int | None = None, command_type: str = "joint_trajectory",
               trajectory_mode: str = "single_point", camera_type: str = "image", limit: float = 2.0,
               velocity_limit: float = 3.0, topic_prefix: str = "", interpolate_from: str = "measured",
               acceleration_limit: float | None = None) -> RobotInterface:
    """A small robot interface for tests (topics may be prefixed to keep tests apart)."""
    acceleration = {} if acceleration_limit is None else {"acceleration_limit": acceleration_limit}
    return parse_robot_interface({
        "name": "tiny_robot",
        "control_rate": control_rate,
        "command_rate": command_rate or control_rate,
        "joint_state_topic": f"{topic_prefix}/joint_states",
        "joints": [{"name": j, "position_limits": [-limit, limit], "velocity_limit": velocity_limit, **acceleration}
                   for j in joints],
        "cameras": [{"name": c, "topic": f"{topic_prefix}/camera/{c}/image_raw", "type": camera_type,
                     "width": size, "height": size} for c in cameras],
        "command": {"topic": f"{topic_prefix}/command", "type": command_type, "trajectory_mode": trajectory_mode,
                    "interpolate_from": interpolate_from},
        "action": {"source": "leader", "topic": f"{topic_prefix}/leader/joint_states"},
    }, source="tiny_robot")


def synthetic_frame(robot: RobotInterface, t: float, episode: int) -> dict[str, np.ndarray]:
    """A deterministic frame: smooth joint motion, images that show the state."""
    phase = 0.3 * episode
    state = np.array([0.8 * np.sin(0.7 * t + phase + k) for k in range(robot.num_joints)], dtype=np.float32)
    action = np.array([0.8 * np.sin(0.7 * (t + robot.control_period) + phase + k) for k in range(robot.num_joints)],
                      dtype=np.float32)
    frame: dict[str, np.ndarray] = {STATE_FEATURE: state, ACTION_FEATURE: action}
    for cam in robot.cameras:
        image = np.zeros((cam.height, cam.width, 3), dtype=np.uint8)
        column = int((state[0] + 1) / 2 * (cam.width - 1))
        image[:, max(0, column - 2):column + 3, 0] = 255
        image[..., 1] = np.uint8(128 + 100 * np.tanh(state[1 % robot.num_joints]))
        frame[cam.feature] = image
    return frame


def make_dataset(root: Path, robot: RobotInterface, episodes: int = 2, frames: int = 20,
                 task: str = "follow the sine", repo_id: str = "local/tiny") -> Path:
    """Write a LeRobot v3.0 dataset of synthetic episodes; returns its root."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset.create(repo_id=repo_id, fps=robot.fps, features=robot.lerobot_features(),
                                    root=root, robot_type=robot.name, use_videos=True)
    for episode in range(episodes):
        for i in range(frames):
            frame = synthetic_frame(robot, i * robot.control_period, episode)
            frame["task"] = task
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return Path(root)


def policy_config(robot: RobotInterface, horizon: int = 16, n_action_steps: int = 8, n_obs_steps: int = 2,
                  down_dims: Sequence[int] = (32, 64, 128), **overrides):
    """A small DiffusionConfig whose features match ``robot``."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    inputs = {STATE_FEATURE: PolicyFeature(FeatureType.STATE, (robot.num_joints,))}
    crop = None
    for cam in robot.cameras:
        inputs[cam.feature] = PolicyFeature(FeatureType.VISUAL, cam.shape)
        crop = (int(cam.height * 0.875), int(cam.width * 0.875))
    settings = dict(horizon=horizon, n_action_steps=n_action_steps, n_obs_steps=n_obs_steps, down_dims=tuple(down_dims),
                    crop_shape=crop, pretrained_backbone_weights=None, use_group_norm=True, device="cpu",
                    push_to_hub=False, spatial_softmax_num_keypoints=16, diffusion_step_embed_dim=32)
    settings.update(overrides)
    return DiffusionConfig(input_features=inputs,
                           output_features={ACTION_FEATURE: PolicyFeature(FeatureType.ACTION, (robot.num_joints,))},
                           **settings)


def make_checkpoint(directory: Path, robot: RobotInterface, seed: int = 0, stats: dict | None = None,
                    **config_overrides) -> Path:
    """Save a randomly initialised DiffusionPolicy with its processors; returns the folder."""
    import torch
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(seed)
    config = policy_config(robot, **config_overrides)
    policy = DiffusionPolicy(config)
    if stats is None:
        j = robot.num_joints
        limits = {"min": torch.tensor(robot.lower_limits, dtype=torch.float32),
                  "max": torch.tensor(robot.upper_limits, dtype=torch.float32),
                  "mean": torch.zeros(j), "std": torch.ones(j)}
        stats = {STATE_FEATURE: dict(limits), ACTION_FEATURE: dict(limits)}
        for cam in robot.cameras:
            stats[cam.feature] = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25),
                                  "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=stats)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(directory)
    preprocessor.save_pretrained(directory)
    postprocessor.save_pretrained(directory)
    return directory


def node_controller_config(n_action_steps: int = 8, **changes):
    """A ControllerConfig with the policy node's declared defaults, except ``changes`` (the node's own way to
    make one: dp_ros.node_params.policy.controller_config)."""
    from dp_ros.node_params.policy import POLICY, controller_config

    unknown = set(changes) - set(POLICY.defaults())
    assert not unknown, f"not policy_node parameters: {unknown}"
    return controller_config({**POLICY.defaults(), **changes}, n_action_steps)
