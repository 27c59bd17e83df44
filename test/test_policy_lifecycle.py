"""policy_node's lifecycle and live parameters over real DDS: the node runs as its own process (`dp-ros
run-policy`) from a real tiny checkpoint, another process plays the robot's drivers, and this process drives
the transitions and sets parameters through the node's lifecycle and parameter services, as `ros2 lifecycle
set` and `ros2 param set` do."""
from __future__ import annotations

import time

import numpy as np
import pytest
from lifecycle_msgs.msg import State

from dp_ros.demo.client import DemoClient
from ros_testing import call_service, call_trigger, change_state, ros_node, spin_for, spin_until
from test_policy_node import (ExecutionJudge, adversarial_checkpoint, checkpoint, command_positions,  # noqa: F401
                              listen, robot_for, running_system)

pytestmark = pytest.mark.dds
NODE = "/policy_node"


def lifecycle_state(node) -> int:
    from lifecycle_msgs.srv import GetState

    return call_service(node, GetState, f"{NODE}/get_state", GetState.Request()).current_state.id


def set_parameter(node, name: str, value):
    """What `ros2 param set /policy_node NAME VALUE` does: one SetParameters call; returns its result."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return call_service(node, SetParameters, f"{NODE}/set_parameters", request).results[0]


def diagnostics(node) -> dict:
    """The policy node's newest /diagnostics key-values (kept up to date while ``node`` spins)."""
    from diagnostic_msgs.msg import DiagnosticArray

    latest = {}

    def on_message(msg):
        for status in msg.status:
            if status.name.startswith("policy_node"):
                latest.update({kv.key: kv.value for kv in status.values})
    node.create_subscription(DiagnosticArray, "/diagnostics", on_message, 10)
    return latest


def chunk_transitions(node) -> list:
    """(arrival in this process, transition) of each chunk on ~/chunks."""
    from dp_ros_msgs.msg import PolicyChunk

    chunks = []
    node.create_subscription(PolicyChunk, f"{NODE}/chunks", lambda m: chunks.append((time.monotonic(), m.transition)),
                             100)
    return chunks


def deactivate_and_check_the_stop(node, commands, statuses, judge, robot):
    """deactivate: answered once the stop has gone; afterwards the arm is at rest and nothing more is sent."""
    seen = len(statuses)
    assert spin_until(node, lambda: len(statuses) > seen, 5), "a fresh status before deactivating"
    before = statuses[-1]
    stops_before, steps_before = before.stop_commands, before.commands_published
    assert change_state(node, NODE, "deactivate")
    assert lifecycle_state(node) == State.PRIMARY_STATE_INACTIVE
    spin_for(node, 0.5)  # what was sent before the answer may still be on its way
    count = len(commands)
    spin_for(node, 1.5)
    assert len(commands) == count, f"{len(commands) - count} commands while inactive"
    assert spin_until(node, lambda: statuses[-1].commands_published > steps_before, 5)
    after = statuses[-1]
    if robot.command.type == "joint_trajectory":  # the plan's trajectory was replaced by one that ends at rest
        # (a watchdog trip on a starved machine just before deactivate stops the arm first: then that stop it is)
        trips = after.watchdog_trips - before.watchdog_trips
        assert 1 <= after.stop_commands - stops_before <= 1 + trips, (
            f"one stop through the controller's stop path: {after.stop_commands - stops_before}, {trips} trips")
    else:  # steps: each braking step counts; as many as the acceleration limit needs from the velocity limit
        bound = int(np.ceil(max(robot.velocity_limits) / (min(robot.acceleration_limits) / robot.command_rate))) + 1
        assert stops_before <= statuses[-1].stop_commands <= stops_before + bound
        settle = judge.ledger.settle(time.time())  # the controller holds the last step: judged too
        assert settle is None or settle.within_limits, settle.describe()
    assert statuses[-1].state_name == "stopped"
    last = command_positions(commands[-1][1], robot)
    assert all(np.all(np.isfinite(p)) and np.all(np.abs(p) <= 1.0 + 1e-9) for p in last)
    ledger = judge.ledger
    content_violations = ledger.violations - ledger.off_schedule_violations
    assert content_violations == 0, f"{ledger.violations} of {ledger.judged}: {ledger.worst.describe()}"


@pytest.mark.parametrize("command_type,mode", [("joint_trajectory", "chunk"), ("float64_multi_array", "chunk")])
def test_lifecycle_configure_activate_deactivate_with_a_bounded_stop_and_activate_again(tmp_path, checkpoint,
                                                                                         command_type, mode):
    robot, robot_yaml = robot_for(tmp_path, command_type=command_type, trajectory_mode=mode, acceleration_limit=20.0)
    with running_system(robot_yaml, checkpoint, "--no-autostart", still_arm=command_type != "joint_trajectory") as \
            (drivers, node_proc, log), \
            ros_node("lifecycle_driver") as node:
        judge = ExecutionJudge(node, robot)
        commands, statuses = listen(node, robot)
        # autostart off: configured (checkpoint loaded, checked, warmed up), not commanding
        assert spin_until(node, lambda: statuses and statuses[-1].state_name == "idle", 90), log
        assert lifecycle_state(node) == State.PRIMARY_STATE_INACTIVE
        spin_for(node, 1.0)
        assert commands == [], "no command before activate"

        assert change_state(node, NODE, "activate")
        assert lifecycle_state(node) == State.PRIMARY_STATE_ACTIVE
        assert spin_until(node, lambda: len(commands) > 40, 30), "commands flow once active"
        deactivate_and_check_the_stop(node, commands, statuses, judge, robot)

        count = len(commands)
        assert change_state(node, NODE, "activate")
        assert spin_until(node, lambda: len(commands) > count + 20, 30), "commands flow again"
        assert call_trigger(node, f"{NODE}/reset").success
        assert spin_until(node, lambda: len(commands) > count + 60, 30), "runs again after ~/reset"
        services = {name for name, _ in node.get_service_names_and_types()}
        assert f"{NODE}/reset" in services and f"{NODE}/change_state" in services
        assert not {f"{NODE}/start", f"{NODE}/stop"} & services, "activate and deactivate replace ~/start, ~/stop"

        assert change_state(node, NODE, "deactivate")
        assert change_state(node, NODE, "cleanup")
        assert lifecycle_state(node) == State.PRIMARY_STATE_UNCONFIGURED
        assert spin_until(node, lambda: node.count_publishers(robot.command.topic) == 0, 5), "cleanup releases"
        response = call_trigger(node, f"{NODE}/reset")
        assert not response.success and "not configured" in response.message
        assert change_state(node, NODE, "configure"), "configures again after cleanup"
        assert spin_until(node, lambda: node.count_publishers(robot.command.topic) == 1, 5)
        assert change_state(node, NODE, "activate")
        count = len(commands)
        assert spin_until(node, lambda: len(commands) > count + 20, 60), "commands after a second configure"
        demo = DemoClient(robot)  # the demo drives the node the same way, by transition label
        try:
            demo.change_state(NODE, "deactivate")
        finally:
            demo.close()
        assert lifecycle_state(node) == State.PRIMARY_STATE_INACTIVE
        assert node_proc.poll() is None


def test_live_parameters_take_effect_at_the_next_chunk_and_unsafe_changes_are_refused(tmp_path, checkpoint):
    robot, robot_yaml = robot_for(tmp_path, command_type="joint_state")
    with running_system(robot_yaml, checkpoint) as (drivers, node_proc, log), ros_node("param_setter") as node:
        commands, statuses = listen(node, robot)
        values, chunks = diagnostics(node), chunk_transitions(node)
        assert spin_until(node, lambda: len(commands) > 20, 90), log
        assert lifecycle_state(node) == State.PRIMARY_STATE_ACTIVE, "autostart on: active without a transition call"
        assert spin_until(node, lambda: values.get("last_chunk_sampler") == "ddim x4", 10), values
        assert spin_until(node, lambda: len(chunks) >= 2, 30) and {t for _, t in chunks} == {"guided"}

        result = set_parameter(node, "num_inference_steps", 2)
        assert result.successful, result.reason
        produced = statuses[-1].chunks_produced
        assert spin_until(node, lambda: values.get("last_chunk_sampler") == "ddim x2", 10), values
        assert statuses[-1].chunks_produced > produced
        result = set_parameter(node, "transition", "replace")
        assert result.successful, result.reason
        set_at = time.monotonic()
        assert spin_until(node, lambda: chunks[-1][1] == "replace" and values.get("transition") == "replace", 10)
        switched = [i for i in range(1, len(chunks)) if chunks[i][1] != chunks[i - 1][1]]
        assert len(switched) == 1 and chunks[switched[0]][0] > set_at, "one switch, at a chunk after the change"
        count = len(commands)
        assert spin_until(node, lambda: len(commands) > count + 20, 30), "commanding goes on"

        refused = {"velocity_scale": (1.0001, "velocity_scale"),  # above 1: not a valid value at all
                   "checkpoint": ("/elsewhere", "checkpoint is read when the node is configured"),
                   "autostart": (False, "autostart acts only when the node starts"),
                   "num_inference_steps": (10_000, "num_train_timesteps"),  # live, but beyond the checkpoint
                   "transition": ("teleport", "must be one of")}
        for name, (value, reason) in refused.items():
            result = set_parameter(node, name, value)
            assert not result.successful and reason in result.reason, (name, result.reason)
        assert set_parameter(node, "velocity_scale", 1.0).successful, "the limit in force again: no change"
        result = set_parameter(node, "velocity_scale", 0.5)
        assert result.successful, result.reason
        result = set_parameter(node, "velocity_scale", 0.8)
        assert not result.successful and "velocity_scale can only be lowered" in result.reason, result.reason
        spin_for(node, 1.5)
        assert values.get("transition") == "replace" and values.get("last_chunk_sampler") == "ddim x2", values
        assert node_proc.poll() is None


def test_a_tightened_velocity_scale_eases_in_at_the_next_chunk_within_the_limits(tmp_path):
    """A policy that always asks for more than the limits allow: commands at the velocity limit, then at the new,
    lower one once set (`ros2 param set /policy_node velocity_scale 0.5`); every command within the limits."""
    robot, robot_yaml = robot_for(tmp_path, command_type="float64_multi_array", acceleration_limit=20.0)
    with running_system(robot_yaml, adversarial_checkpoint(tmp_path / "wild"), still_arm=True) as \
            (drivers, node_proc, log), \
            ros_node("param_setter") as node:
        judge = ExecutionJudge(node, robot)
        commands, statuses = listen(node, robot)
        values = diagnostics(node)
        assert spin_until(node, lambda: len(commands) >= 100, 90), log
        assert values.get("velocity_scale") == "1.0000"
        result = set_parameter(node, "velocity_scale", 0.5)
        assert result.successful, result.reason
        assert spin_until(node, lambda: values.get("velocity_scale") == "0.5000", 10), values
        eased = len(commands)
        assert spin_until(node, lambda: len(commands) >= eased + 100, 30)
        spin_for(node, 0.2)
    period, limit = 1.0 / robot.command_rate, robot.velocity_limits[0]
    targets = np.array([np.array(m.data) for _, m in commands])
    speeds = np.abs(np.diff(targets, axis=0)).max(axis=1) / period
    assert speeds[:eased - 1].max() > 0.9 * limit, "the policy is wild: at the velocity limit before the change"
    assert speeds[eased:].max() <= 0.5 * limit * (1 + 1e-6), "the new velocity limit once in force"
    assert speeds[eased:].max() > 0.45 * limit, "still commanding at the new limit"
    ledger = judge.ledger
    content_violations = ledger.violations - ledger.off_schedule_violations
    assert content_violations == 0, f"{ledger.violations} of {ledger.judged}: {ledger.worst.describe()}"
    assert statuses[-1].self_check_failures == 0


@pytest.mark.parametrize("command_type", ["float64_multi_array", "joint_trajectory"])
def test_ctrl_c_while_commanding_brings_the_arm_to_rest_before_exiting(tmp_path, command_type):
    """SIGINT (Ctrl-C, or `ros2 launch` stopping) while a wild policy commands at full speed: the node sends the
    bounded stop of deactivate before ROS shuts down, then exits cleanly. Without it a stream of steps just ends
    at full speed (the controller stops the set-point within one update) and a trajectory runs on to its end."""
    import signal

    robot, robot_yaml = robot_for(tmp_path, command_type=command_type, acceleration_limit=20.0)
    with running_system(robot_yaml, adversarial_checkpoint(tmp_path / "wild"),
                        still_arm=command_type != "joint_trajectory") as (drivers, node_proc, log), \
            ros_node("interrupter") as node:
        judge = ExecutionJudge(node, robot)
        commands, statuses = listen(node, robot)
        assert spin_until(node, lambda: len(commands) >= 60, 90), log
        interrupted = time.time()
        node_proc.send_signal(signal.SIGINT)
        assert spin_until(node, lambda: node_proc.poll() is not None, 15), "the node did not exit after Ctrl-C"
        spin_for(node, 0.5)   # the last commands on their way
        output = node_proc.stdout.read()
        log.append(output)
        assert node_proc.returncode == 0, output[-3000:]
    after = [msg for t, msg in commands if t > interrupted]
    assert after, "no command after Ctrl-C: the arm was left moving"
    ledger = judge.ledger
    settle = ledger.settle(time.time())   # a stream of steps: the controller holds the last one
    assert settle is None or settle.within_limits, "the stream ended moving: " + settle.describe()
    if command_type == "joint_trajectory":   # the last trajectory comes to rest within the acceleration limit
        last = np.array([p.positions for p in after[-1].points])
        times = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in after[-1].points])
        assert times[-1] - times[0] < 1.0, "the stop's trajectory ends soon (not the plan's whole chunk)"
        np.testing.assert_allclose(last[-1], last[-2], atol=1e-9)
    content_violations = ledger.violations - ledger.off_schedule_violations
    assert content_violations == 0, f"{ledger.violations} of {ledger.judged}: {ledger.worst.describe()}"
    assert "interrupted: bringing the arm to rest" in output, output[-3000:]
