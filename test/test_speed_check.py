"""A policy too slow for its robot says so: the verdict, and the node saying it at start and on /diagnostics."""
from __future__ import annotations

import pytest

from dp_ros.core.speed_check import judge_speed
from lerobot_fixtures import make_checkpoint, tiny_robot
from ros_testing import python_process, ros_node, spin_until, stop_process
from test_policy_node import robot_for


def test_fast_enough_late_and_too_slow():
    assert judge_speed(0.15, 0.1, 8, 4, 15, "sde-dpmsolver++", 5).level == "ok"
    late = judge_speed(0.55, 0.1, 8, 4, 15, "sde-dpmsolver++", 5)
    assert late.level == "late" and "about 2 action(s) of every chunk will arrive late" in late.message
    assert "replan_steps: 7" in late.message
    # the stock LeRobot case of the issue: DDPM-100 at 1033 ms for 8 actions at 10 Hz
    slow = judge_speed(1.033, 0.1, 8, 4, 15, "ddpm", 100)
    assert slow.level == "too_slow" and "the robot will not move" in slow.message
    assert "sde-dpmsolver++ with num_inference_steps: 5, about 52 ms" in slow.message
    assert "at most 7.7 Hz" in slow.message and "n_action_steps: 12, at most 15" in slow.message
    student = judge_speed(0.9, 0.1, 8, 4, 8, "consistency", 2)
    assert "num_inference_steps: 1, about 450 ms" in student.message and "n_action_steps" not in student.message


@pytest.mark.dds
def test_the_node_says_at_start_and_in_its_diagnostics_that_it_is_too_slow(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray

    # 20 Hz control and one action per chunk: 50 ms of motion per chunk, against 100 network calls of DDPM
    robot, robot_yaml = robot_for(tmp_path, control_rate=20, command_rate=50)
    checkpoint = make_checkpoint(tmp_path / "ckpt" / "pretrained_model", tiny_robot(limit=1.0))
    drivers = python_process(["test/sensor_publisher.py", str(robot_yaml)])
    node_proc = python_process(["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", str(checkpoint),
                                "--robot-config", str(robot_yaml), "--noise-scheduler", "ddpm",
                                "--num-inference-steps", "100", "--param", "n_action_steps=1"])
    warnings, found = [], False
    try:
        with ros_node("listener") as node:
            node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: warnings.extend(
                (s, {kv.key: kv.value for kv in s.values}) for s in m.status if "policy_node" in s.name), 10)
            found = spin_until(node, lambda: any(v.get("speed_warning") for _, v in warnings), 90)
    finally:
        log = stop_process(node_proc)
        stop_process(drivers)
    assert found, log[-3000:]
    status, values = next((s, v) for s, v in warnings if v.get("speed_warning"))
    assert status.level == b"\x01" or status.level == 1  # WARN
    assert "the robot will not move" in values["speed_warning"] and "too slow" in status.message
    assert "policy too slow for this robot" in log and "a faster sampler (noise_scheduler: sde-dpmsolver++" in log
