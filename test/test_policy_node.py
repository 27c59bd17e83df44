"""The policy node over real DDS: another process plays the robot's drivers, the
node runs as its own process from a real (tiny) LeRobot checkpoint, and this
test process listens to its commands and calls its services."""
from __future__ import annotations

import itertools
import subprocess
import time
from contextlib import contextmanager

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from dp_ros.robot_interface import save_robot_interface
from lerobot_fixtures import make_checkpoint, tiny_robot
from ros_testing import change_state, python_process, ros_node, spin_for, spin_until, stop_process

pytestmark = pytest.mark.dds

LIMIT, VELOCITY = 1.0, 1.5
_names = itertools.count()


def robot_for(tmp_path, **kwargs):
    prefix = f"/pn{next(_names)}"
    settings = dict(control_rate=10, command_rate=50, limit=LIMIT, velocity_limit=VELOCITY, topic_prefix=prefix)
    settings.update(kwargs)
    robot = tiny_robot(**settings)
    return robot, save_robot_interface(robot, tmp_path / f"robot{prefix.strip('/')}.yaml")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "pretrained_model", tiny_robot(limit=LIMIT))


@contextmanager
def running_system(robot_yaml, checkpoint, *params, drivers=True, still_arm=False):
    """The fake drivers (``still_arm``: the joint positions held still) and `dp-ros run-policy`, each a process."""
    drivers_args = ["test/sensor_publisher.py", str(robot_yaml)] + (["--still"] if still_arm else [])
    drivers_proc = python_process(drivers_args, stdin=subprocess.PIPE) if drivers else None
    node = python_process(["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", str(checkpoint),
                           "--robot-config", str(robot_yaml), "--noise-scheduler", "ddim",
                           "--num-inference-steps", "4", *params])
    log = []
    try:
        yield drivers_proc, node, log
    finally:
        log.append(stop_process(node))
        if drivers_proc:
            stop_process(drivers_proc)


def tell(drivers, command: str) -> float:
    """Send a command to the driver process; returns the wall time it took effect."""
    drivers.stdin.write(command + "\n")
    drivers.stdin.flush()
    while True:
        line = drivers.stdout.readline()
        assert line, "driver process ended"
        if line.startswith("done"):
            return float(line.split()[-1])


def command_positions(msg, robot):
    if hasattr(msg, "points"):
        assert list(msg.joint_names) == robot.joint_names
        return [np.array(p.positions) for p in msg.points]
    if hasattr(msg, "layout"):
        return [np.array(msg.data)]
    assert list(msg.name) == robot.joint_names
    return [np.array(msg.position)]


def assert_at_command_rate_within_positions(received, robot, limit: float) -> None:
    """A command every 20 ms (the median is robust to a loaded 2-core machine's hiccups), finite, in limits."""
    gaps = np.diff([t for t, _ in received])
    assert 0.015 < np.median(gaps) < 0.03, f"expected a command every 20 ms, median gap {np.median(gaps) * 1000:.1f} ms"
    for _, msg in received:
        for positions in command_positions(msg, robot):
            assert positions.shape == (len(robot.joint_names),) and np.all(np.isfinite(positions))
            assert np.all(np.abs(positions) <= limit + 1e-9)


def listen(node, robot):
    from dp_ros.conversions.commands import command_message_class
    from dp_ros_msgs.msg import PolicyStatus

    commands, statuses = [], []
    node.create_subscription(command_message_class(robot.command.type), robot.command.topic,
                             lambda m: commands.append((time.time(), m)), 100)
    node.create_subscription(PolicyStatus, "/policy_node/status", statuses.append, 10)
    return commands, statuses


@pytest.mark.parametrize("command_type,mode", [("joint_trajectory", "chunk"), ("joint_trajectory", "single_point"),
                                               ("float64_multi_array", "chunk"), ("joint_state", "chunk")])
def test_commands_at_the_command_rate_in_each_type(tmp_path, checkpoint, command_type, mode):
    robot, robot_yaml = robot_for(tmp_path, command_type=command_type, trajectory_mode=mode)
    with running_system(robot_yaml, checkpoint) as (drivers, node_proc, log), ros_node("listener") as node:
        commands, statuses = listen(node, robot)
        assert spin_until(node, lambda: len(commands) >= 60, 90), log
        first = len(commands)
        spin_for(node, 2.0)
        received = commands[first:]
    assert_at_command_rate_within_positions(received, robot, LIMIT)
    if command_type == "joint_trajectory":
        sizes = {len(msg.points) for _, msg in received}
        assert sizes == {1} if mode == "single_point" else max(sizes) > 1
    assert statuses[-1].state_name == "running"
    assert statuses[-1].chunks_produced > 0


def test_guided_transition_commands_at_rate_within_the_limits_at_chunk_boundaries(tmp_path, checkpoint):
    """As the demo's arm is commanded: chunk trajectories started from the desired state, acceleration limits."""
    robot, robot_yaml = robot_for(tmp_path, command_type="joint_trajectory", trajectory_mode="chunk",
                                  interpolate_from="desired", acceleration_limit=20.0)
    with running_system(robot_yaml, checkpoint, "--param", "transition=guided") as (drivers, node_proc, log), \
            ros_node("listener") as node:
        judge = ExecutionJudge(node, robot)
        commands, statuses = listen(node, robot)
        assert spin_until(node, lambda: statuses and statuses[-1].chunks_produced >= 8, 90), log
        first = len(commands)
        spin_for(node, 2.0)
    received = commands[first:]
    assert_at_command_rate_within_positions(received, robot, LIMIT)
    # chunks arrived while these were executed: no command, at a chunk boundary or not, moves the arm faster
    # (or accelerates it harder) than the limits allow, from where the controller starts it
    worst = judge.ledger.worst
    assert judge.ledger.judged >= len(received)
    assert judge.ledger.violations == 0, f"{judge.ledger.violations} of {judge.ledger.judged}: {worst.describe()}"
    status = statuses[-1]
    assert status.state_name == "running" and status.chunks_produced >= 10
    assert status.self_check_failures == 0


def adversarial_checkpoint(directory, nan=False):
    """A real checkpoint whose outputs are far outside the limits (or NaN)."""
    import torch

    j = 3
    wide = {"min": torch.full((j,), -40.0), "max": torch.full((j,), 40.0), "mean": torch.zeros(j), "std": torch.ones(j)}
    narrow = {"min": torch.full((j,), -1.0), "max": torch.full((j,), 1.0), "mean": torch.zeros(j), "std": torch.ones(j)}
    image = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25),
             "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}
    path = make_checkpoint(directory, tiny_robot(limit=LIMIT), seed=3,
                           stats={"observation.state": narrow, "action": wide, "observation.images.front": image})
    if nan:
        weights = load_file(path / "model.safetensors")
        key = next(k for k in weights if "final_conv" in k and k.endswith("bias"))
        weights[key] = torch.full_like(weights[key], float("nan"))
        save_file(weights, path / "model.safetensors")
    return path


class ExecutionJudge:
    """This process plays the robot's controller: it takes each command when DDS delivers it (the received
    timestamp) and judges its execution from where the controller starts it (core.command_execution).

    Step commands need the fake drivers' arm held still (``running_system(still_arm=True)``), as a
    position-controlled arm is: a forward controller's first step starts from where the arm is, and an arm that
    moves on its own (0.4 rad/s) is somewhere else by the time the node's and this judge's newest joint states
    differ by a sample; the first step's speed, and so the second's acceleration, would then depend on which
    sample each side saw (up to 2x the acceleration limit, on no command's account)."""

    def __init__(self, node, robot):
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import JointState

        from dp_ros.conversions.commands import command_message_class, parse_command
        from dp_ros.conversions.joint_state import JointOrder
        from dp_ros.core.command_execution import CommandLedger, ControllerModel, JointLimits

        form = "trajectory" if robot.command.type == "joint_trajectory" else "step"
        self.ledger = CommandLedger(ControllerModel(JointLimits.for_robot(robot), form,
                                                    robot.command.interpolate_from, 1.0 / robot.command_rate))
        self.order, self.parse, self.measured, self.checks = JointOrder(robot.joint_names), parse_command, None, []
        node.create_subscription(JointState, robot.joint_state_topic, self._on_joint_state, qos_profile_sensor_data)
        node.create_subscription(command_message_class(robot.command.type), robot.command.topic, self._on_command, 100)

    def _on_joint_state(self, msg):
        self.measured = self.order.positions(msg)

    def _on_command(self, msg, info):
        command = self.parse(msg, self.order)
        assert command.stamp is None or not hasattr(msg, "points"), "trajectories start on receipt (stamp zero)"
        receipt = info["received_timestamp"] * 1e-9
        self.checks.append(self.ledger.judge(receipt, command.times_from_start, command.positions, self.measured))


@pytest.mark.parametrize("command_type,mode,interpolate_from,acceleration", [
    ("joint_trajectory", "chunk", "desired", None), ("joint_trajectory", "chunk", "measured", 20.0),
    ("joint_trajectory", "single_point", "measured", None), ("float64_multi_array", "chunk", "measured", 20.0),
    ("joint_state", "chunk", "measured", None)])
def test_every_command_executes_within_the_limits_for_adversarial_outputs(tmp_path, command_type, mode,
                                                                           interpolate_from, acceleration):
    robot, robot_yaml = robot_for(tmp_path, command_type=command_type, trajectory_mode=mode,
                                  interpolate_from=interpolate_from, acceleration_limit=acceleration)
    checkpoint = adversarial_checkpoint(tmp_path / "wild")
    with running_system(robot_yaml, checkpoint, still_arm=command_type != "joint_trajectory") as \
            (drivers, node_proc, log), ros_node("listener") as node:
        judge = ExecutionJudge(node, robot)
        statuses = []
        from dp_ros_msgs.msg import PolicyStatus
        node.create_subscription(PolicyStatus, "/policy_node/status", statuses.append, 10)
        assert spin_until(node, lambda: len(judge.checks) >= 150, 90), log
        spin_until(node, lambda: statuses and statuses[-1].commands_published >= 150, 5)
    worst, ledger = judge.ledger.worst, judge.ledger
    # a step taken off its controller update (delivered over half an update late: a hold, then a double step)
    # breaks a limit whatever it holds; the node cannot prevent it, the judge counts it (README, safety)
    content_violations = ledger.violations - ledger.off_schedule_violations
    assert content_violations == 0, (f"{ledger.violations} of {ledger.judged} ({ledger.off_schedule_violations} off "
                                      f"schedule): {worst.describe()}")
    assert worst.velocity_ratio > 0.5, "the policy is wild: commands go as fast as allowed"
    status = statuses[-1]
    assert status.self_check_failures == 0
    assert status.position_clamps > 0 and status.velocity_clamps > 0
    assert acceleration is None or status.acceleration_clamps > 0


def test_a_policy_that_outputs_nan_never_commands(tmp_path):
    robot, robot_yaml = robot_for(tmp_path, command_type="float64_multi_array")
    checkpoint = adversarial_checkpoint(tmp_path / "nan", nan=True)
    with running_system(robot_yaml, checkpoint) as (drivers, node_proc, log), ros_node("listener") as node:
        commands, statuses = listen(node, robot)
        assert spin_until(node, lambda: statuses and statuses[-1].nonfinite_rejections > 0, 90), log
        spin_for(node, 1.0)
    assert commands == []
    assert statuses[-1].chunks_produced == 0


@pytest.mark.parametrize("command_type", ["float64_multi_array", "joint_trajectory"])
def test_watchdog_stops_within_two_control_periods_and_resumes(tmp_path, checkpoint, command_type):
    """With default parameters; a trajectory's last command is the one that brings the arm to rest."""
    robot, robot_yaml = robot_for(tmp_path, command_type=command_type, trajectory_mode="chunk")
    period = robot.control_period
    with running_system(robot_yaml, checkpoint) as (drivers, node_proc, log), ros_node("listener") as node:
        commands, statuses = listen(node, robot)
        assert drivers.stdout.readline().startswith("ready")
        assert spin_until(node, lambda: len(commands) >= 30, 90), log
        for stream in ("front", "joint_states"):
            stalled_at = tell(drivers, f"stall {stream}")
            spin_for(node, 1.0)
            last = max(t for t, _ in commands)
            assert last - stalled_at <= 2 * period, f"{stream}: commands went on {last - stalled_at:.3f}s after the stall"
            assert statuses[-1].state_name == "stopped" and "watchdog" in statuses[-1].reason, (stream, statuses[-1].reason, log)
            count = len(commands)
            tell(drivers, f"resume {stream}")
            assert spin_until(node, lambda: len(commands) > count + 20, 30), f"no commands after {stream} resumed"
        assert statuses[-1].watchdog_trips >= 2


def test_a_checkpoint_that_does_not_fit_the_robot_is_refused(tmp_path, checkpoint):
    robot, robot_yaml = robot_for(tmp_path, joints=("a", "b", "c", "d"))
    node = python_process(["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", str(checkpoint),
                           "--robot-config", str(robot_yaml)])
    output, _ = node.communicate(timeout=120)
    assert node.returncode == 1
    assert "does not fit robot interface" in output and "the robot has 4 joints" in output


def test_bad_inputs_give_warnings_never_a_crash_or_a_bad_command(tmp_path, checkpoint):
    robot, robot_yaml = robot_for(tmp_path, command_type="float64_multi_array")
    with running_system(robot_yaml, checkpoint) as (drivers, node_proc, log), ros_node("listener") as node:
        commands, statuses = listen(node, robot)
        assert drivers.stdout.readline().startswith("ready")
        assert spin_until(node, lambda: len(commands) >= 30, 90), log
        for bad in ("encoding 32FC1", "drop_joint j2", "nan", "stamp_offset -0.5"):
            tell(drivers, bad)
            spin_for(node, 0.8)
            tell(drivers, "ok")
            count = len(commands)
            assert spin_until(node, lambda: len(commands) > count + 10, 30), f"no recovery after {bad}"
        tell(drivers, "size 64 48")  # frames of another size are resized, commanding goes on
        count = len(commands)
        assert spin_until(node, lambda: len(commands) > count + 20, 30)
        assert node_proc.poll() is None, "the node must survive bad input"
    output = log[-1]
    for expected in ("unsupported image encoding '32FC1'", "lacks joints ['j2']", "NaN or Inf",
                     "stamps went back", "resizing them"):
        assert expected in output, f"missing warning {expected!r} in:\n{output[-3000:]}"
    positions = np.array([np.array(m.data) for _, m in commands])
    assert np.all(np.isfinite(positions)) and np.all(np.abs(positions) <= LIMIT + 1e-9)


def test_a_controller_that_starts_trajectories_elsewhere_is_an_error(tmp_path, checkpoint):
    """joint_trajectory_controller cannot run here (no ros2_control from a registry): a node of its name
    declares its parameters as the controller does, and the policy node reads them over ROS at start-up. A
    controller that starts trajectories from the measured state, where the robot interface says desired, is
    an error: the node faults and stops commanding."""
    from rclpy.parameter import Parameter

    from dp_ros.nodes.controller_check import controller_node, interpolate_from

    assert controller_node("/arm_controller/joint_trajectory") == "/arm_controller"
    assert controller_node("/joint_commands") is None
    assert interpolate_from({"interpolate_from_desired_state": False, "open_loop_control": False}) == "measured"
    assert interpolate_from({"interpolate_from_desired_state": False, "open_loop_control": True}) == "desired"
    robot, _ = robot_for(tmp_path, command_type="joint_trajectory", trajectory_mode="chunk", interpolate_from="desired")
    topic = robot.command.topic.rpartition("/")[0] + "/arm_controller/joint_trajectory"
    robot = robot.model_copy(update={"command": robot.command.model_copy(update={"topic": topic})})
    robot_yaml = save_robot_interface(robot, tmp_path / "robot_with_controller.yaml")
    namespace, _, name = controller_node(robot.command.topic).rpartition("/")
    with ros_node(name, namespace=namespace or "/", automatically_declare_parameters_from_overrides=True,
                  parameter_overrides=[Parameter("interpolate_from_desired_state", value=False),
                                       Parameter("interpolation_method", value="splines"),
                                       Parameter("joints", value=robot.joint_names)]) as stand_in, \
            running_system(robot_yaml, checkpoint) as (drivers, node_proc, log):
        commands, statuses = listen(stand_in, robot)
        assert spin_until(stand_in, lambda: statuses and statuses[-1].state == 4, 90), "FAULT"
        spin_for(stand_in, 0.5)
        count = len(commands)
        spin_for(stand_in, 1.0)
        assert len(commands) == count, "no command after the fault"
        # deactivating works; activating again is refused until the node is configured again
        assert change_state(stand_in, "/policy_node", "deactivate")
        assert not change_state(stand_in, "/policy_node", "activate")
        spin_for(stand_in, 1.0)
        assert len(commands) == count, "no command after the refused activate"
        assert statuses[-1].state == 4
    assert "starts new trajectories from the measured state but the robot interface says interpolate_from: desired" \
        in statuses[-1].reason and "no command is sent" in log[-1], log[-1][-3000:]
