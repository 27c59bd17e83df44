"""A short end-to-end run of `dp-ros demo`: every stage over real topics, with few
demonstrations and few training steps (no success rate is asserted: a run this
short cannot reach one)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dp_ros.core.policy_runtime import PolicyRuntime
from dp_ros.robot_interface import default_robot_config_path, load_robot_interface

pytestmark = pytest.mark.training


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path):
    output = tmp_path / "demo"
    command = [sys.executable, "-m", "dp_ros.cli.main", "demo", "--output", str(output), "--episodes", "3",
               "--eval-episodes", "2", "--train-steps", "6", "--batch-size", "4"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    # 1. the recorded dataset loads in LeRobot, with the robot's features
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    robot = load_robot_interface(default_robot_config_path())
    dataset = LeRobotDataset("local/dp_ros_demo", root=output / "dataset")
    recording = json.loads((output / "recording.json").read_text())
    assert dataset.meta.total_episodes == recording["episodes"] >= 3  # the recorder's count: splits included
    assert dataset.fps == robot.fps
    frame = dataset[0]
    assert tuple(frame["observation.images.front"].shape) == (3, 96, 96)
    assert tuple(frame["observation.state"].shape) == (3,)
    demonstrations = len(recording["solutions"])
    assert demonstrations <= recording["episodes"] <= demonstrations + recording["splits"]
    assert set(recording["solutions"]) <= {"left", "right"}

    # 2. the trained checkpoint loads in the policy runtime and fits the robot
    runtime = PolicyRuntime.load(output / "train", device="cpu", noise_scheduler="ddim", num_inference_steps=2)
    runtime.check_robot(robot)
    assert runtime.predict_chunk([runtime.neutral_observation()] * runtime.n_obs_steps).shape == (8, 3)

    # 3. the policy node commanded the simulator in every closed-loop episode
    report = json.loads((output / "report.json").read_text())
    assert len(report["episodes"]) == 2
    for episode in report["episodes"]:
        assert episode["chunks"] > 0 and episode["inference_times"]
        assert len(episode["joint_positions"]) > 10
    assert report["summary"]["command_rate_hz"] > 0

    # 4. the report and its plots
    text = (output / "report.md").read_text()
    assert "closed-loop success" in text and "inference latency" in text
    assert "stage times: record " in text and "machine: " in text
    assert set(report["stage_seconds"]) == {"record", "train", "evaluate"}
    assert all(seconds > 0 for seconds in report["stage_seconds"].values())
    assert report["conditions"]["device"] in ("cpu", "cuda") and set(report["conditions"]["load_average_after"]) == {
        "record", "train", "evaluate"}
    for name in ("tip_paths.png", "latency_histogram.png", "solutions.png", "example_trajectory.png"):
        assert (output / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    # 5. a saved view per closed-loop episode, linked from the report, holding every chunk of the episode
    from dp_ros.view.rerun_log import layout_of_saved

    for episode in report["episodes"]:
        assert episode["view"] == f"views/episode_{episode['index']:03d}.rrd" and f"]({episode['view']})" in text
        layout = layout_of_saved(output / episode["view"])
        assert layout.chunk_count >= episode["chunks"] > 0 and layout.cameras == ["front"] and layout.scene

    # a second run reuses the dataset and the checkpoint; with --distill it distils a student of that checkpoint
    # and closes the loop with the student and its own sampler
    again_command = [sys.executable, "-m", "dp_ros.cli.main", "demo", "--output", str(output), "--episodes", "3",
                     "--eval-episodes", "1", "--train-steps", "6", "--batch-size", "4", "--distill", "2"]
    again = subprocess.run(again_command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "(reused)" in again.stdout and "2/3 student: " in again.stdout
    student = output / "distill" / "checkpoints" / "last" / "pretrained_model"
    assert json.loads((student / "dp_ros_sampler.json").read_text())["noise_scheduler"] == "consistency"
    report = json.loads((output / "report.json").read_text())
    assert Path(report["checkpoint"]).resolve() == student.resolve() and report["stage_seconds"]["distill"] > 0
    assert "consistency x3 steps (checkpoint)" in (output / "logs" / "policy.log").read_text()
