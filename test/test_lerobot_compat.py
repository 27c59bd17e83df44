"""The one module that reaches into LeRobot's internals: version check, and loud failures when an internal is gone."""
from __future__ import annotations

import types

import pytest
import torch

from lerobot_fixtures import synthetic_frame, tiny_robot

from dp_ros import lerobot_compat
from dp_ros.lerobot_compat import LeRobotCompatError, check_lerobot_version


def test_the_installed_lerobot_is_supported_and_others_are_refused_by_name():
    assert check_lerobot_version() == "0.6.1"
    for version in ("0.5.9", "0.7.0", "1.0.0"):
        with pytest.raises(LeRobotCompatError, match=rf"lerobot {version} is installed but dp_ros supports"):
            check_lerobot_version(version)


def test_frame_queues_of_a_real_streaming_dataset_and_a_loud_error_when_lerobot_renamed_them(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    robot = tiny_robot()
    # a streaming dataset made the way dp_ros's EpisodeWriter makes one, through LeRobot's public API
    dataset = LeRobotDataset.create(repo_id="local/compat", fps=robot.fps, features=robot.lerobot_features(),
                                    root=tmp_path / "ds", robot_type=robot.name, use_videos=True,
                                    streaming_encoding=True, encoder_queue_maxsize=300)
    try:
        dataset.add_frame({**synthetic_frame(robot, 0.0, 0), "task": "t"})
        queues = lerobot_compat.encoder_frame_queues(dataset)
        assert queues and all(hasattr(q, "full") for q in queues)
        # A LeRobot release without the attribute cannot be installed here; an object shaped like a writer
        # whose encoder lacks the queue table stands in for it.
        renamed = types.SimpleNamespace(writer=types.SimpleNamespace(_streaming_encoder=object()))
        with pytest.raises(LeRobotCompatError, match=r"StreamingVideoEncoder\._frame_queues.*supports lerobot"):
            lerobot_compat.encoder_frame_queues(renamed)
    finally:
        dataset.save_episode()
        dataset.finalize()


def test_global_conditioning_fails_by_name_on_a_model_without_it():
    # PolicyRuntime's tests run the real call (every chunk goes through it); a model lacking it is any other module.
    with pytest.raises(LeRobotCompatError, match=r"DiffusionModel\._prepare_global_conditioning"):
        lerobot_compat.diffusion_global_conditioning(torch.nn.Module(), {})


def test_the_training_loop_hooks_find_lerobots_functions_or_fail_by_name():
    from lerobot.scripts import lerobot_train

    for name in ("update_policy", "save_checkpoint", "update_last_checkpoint"):
        assert callable(getattr(lerobot_train, name)), name   # what hook_training_loop wraps, in this LeRobot
    renamed = types.SimpleNamespace(update_policy=print, save_checkpoint=print)   # a LeRobot that renamed one
    with pytest.raises(LeRobotCompatError, match=r"lerobot_train\.update_last_checkpoint"):
        lerobot_compat.hook_training_loop(renamed, print, print, print, print)
