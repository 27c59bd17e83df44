"""The one module that reaches into LeRobot's internals: version check, and loud failures when an internal is gone."""
from __future__ import annotations

import json
import subprocess
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


def _with_lerobot_version(tmp_path, version: str) -> dict:
    """An environment in which the installed distribution metadata says lerobot ``version``: a dist-info folder
    ahead of site-packages on the path, which is what importlib.metadata (and so the check) reads first."""
    import os

    site = tmp_path / "site"
    info = site / f"lerobot-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lerobot\nVersion: {version}\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.mark.parametrize("entry_point", [
    ["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", "nowhere"],
    ["-m", "dp_ros.nodes.policy_node"],
    ["-m", "dp_ros.entry_points", "policy_node"],
    ["-m", "dp_ros.cli.main", "train", "--help"],
])
def test_an_unsupported_lerobot_gives_one_line_and_exit_code_2(tmp_path, entry_point):
    from ros_testing import python_process

    proc = python_process(entry_point, env=_with_lerobot_version(tmp_path, "0.5.0"), stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "lerobot 0.5.0 is installed but dp_ros supports lerobot" in lines[0]
    assert str(lerobot_compat.SUPPORTED_LEROBOT) in lines[0]


def test_doctor_reports_an_unsupported_lerobot(tmp_path):
    from ros_testing import python_process

    code = "import json, dp_ros.cli.doctor as d; print(json.dumps(d.check_lerobot().__dict__))"
    proc = python_process(code, env=_with_lerobot_version(tmp_path, "0.7.2"))
    out, _ = proc.communicate(timeout=120)
    check = json.loads(out.strip().splitlines()[-1])
    assert not check["ok"] and "lerobot 0.7.2 is installed" in check["detail"], out


def test_the_pinned_release_is_inside_the_supported_range():
    from pathlib import Path

    pins = [line for line in (Path(__file__).parent.parent / "requirements.txt").read_text().splitlines()
            if line.startswith("lerobot")]
    assert len(pins) == 1 and lerobot_compat.SUPPORTED_LEROBOT.contains(pins[0].split("==")[1])
