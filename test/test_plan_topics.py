"""The policy node's plan topics over real DDS: a subscriber in this process receives ~/plan, ~/chunks and
~/safety_interventions from the node running as its own process (a real tiny checkpoint, real drivers), and
what they say agrees with the commands the node actually published."""
from __future__ import annotations

import itertools
import subprocess
import time
from contextlib import contextmanager

import numpy as np
import pytest

from dp_ros.robot_interface import save_robot_interface
from lerobot_fixtures import make_checkpoint, tiny_robot
from ros_testing import change_state, python_process, ros_node, spin_for, spin_until, stop_process

pytestmark = pytest.mark.dds
LIMIT = 2.0
_names = itertools.count()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "pretrained_model", tiny_robot(limit=1.0))


@contextmanager
def policy_system(tmp_path, checkpoint, velocity_limit: float):
    prefix = f"/pt{next(_names)}"
    robot = tiny_robot(control_rate=10, command_rate=50, limit=LIMIT, velocity_limit=velocity_limit,
                       topic_prefix=prefix, trajectory_mode="chunk")
    robot_yaml = save_robot_interface(robot, tmp_path / "robot.yaml")
    drivers = python_process(["test/sensor_publisher.py", str(robot_yaml)], stdin=subprocess.PIPE)
    node = python_process(["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", str(checkpoint),
                           "--robot-config", str(robot_yaml), "--noise-scheduler", "ddim", "--num-inference-steps",
                           "4", "--no-autostart", "--param", "transition=guided"])
    log = []
    try:
        yield robot, log
    finally:
        log.append(stop_process(node))
        stop_process(drivers)


class PlanListener:
    """Everything the node says about its plan and commands, with the order in which it arrived."""

    def __init__(self, node, robot):
        from trajectory_msgs.msg import JointTrajectory

        from dp_ros.conversions.plan import parse_chunk, parse_plan
        from dp_ros_msgs.msg import PolicyChunk, PolicyStatus, SafetyIntervention

        self.events: list[tuple[str, object]] = []
        self.statuses = []
        node.create_subscription(PolicyChunk, "/policy_node/chunks", lambda m: self.events.append(("chunk", parse_chunk(m))), 100)
        node.create_subscription(JointTrajectory, "/policy_node/plan", lambda m: self.events.append(("plan", parse_plan(m))), 100)
        node.create_subscription(SafetyIntervention, "/policy_node/safety_interventions",
                                 lambda m: self.events.append(("intervention", m)), 100)
        node.create_subscription(JointTrajectory, robot.command.topic, lambda m: self.events.append(("command", m)), 200)
        node.create_subscription(PolicyStatus, "/policy_node/status", self.statuses.append, 10)

    def of(self, kind: str) -> list:
        return [payload for k, payload in self.events if k == kind]


def run_episode(node, listener, log, chunks: int) -> None:
    assert spin_until(node, lambda: listener.statuses and listener.statuses[-1].state_name == "idle", 90), log
    spin_for(node, 0.5)  # discovery of this subscriber by the node's plan publishers
    assert change_state(node, "/policy_node", "activate")
    assert spin_until(node, lambda: len(listener.of("chunk")) >= chunks, 90), log
    assert change_state(node, "/policy_node", "deactivate")
    stopped = time.monotonic()
    assert spin_until(node, lambda: listener.statuses[-1].state_name == "stopped"
                      and listener.statuses[-1].header.stamp.sec > 0 and time.monotonic() > stopped + 0.5, 20), log


def check_chunks_against_plans(listener) -> None:
    """Each chunk: late count and pinned span as its stamps say; the plan after it carries it from its first on-time
    action; its pinned actions are the plan it continued."""
    previous_plan, plans_seen = None, 0
    chunk = None
    for kind, payload in listener.events:
        if kind == "chunk":
            chunk = payload
            assert chunk.dropped_late == int(np.count_nonzero(chunk.times < chunk.merged_at))
            assert chunk.delay == pytest.approx(chunk.merged_at - chunk.observation_time, abs=1e-6)
            assert 0 < chunk.compute_time < chunk.delay
            if chunk.pinned_count:
                assert previous_plan is not None and len(previous_plan[0]), "pinned to a plan that was not there"
                times, rows = previous_plan
                pinned_times = chunk.times[chunk.pinned]
                expected = np.stack([np.interp(pinned_times, times, rows[:, j]) for j in range(rows.shape[1])], 1)
                np.testing.assert_allclose(chunk.actions[chunk.pinned], expected, atol=1e-4)
        elif kind == "plan" and chunk is not None and len(payload[0]):
            times, rows = payload
            on_time = chunk.times[chunk.executable]
            if not len(on_time):  # every action was late (a stalled CPU): the chunk left the plan as it was
                continue
            # true stamps: the plan's points after the merge are the chunk's on-time actions at their own times
            tail = times >= on_time[0] - 1e-6
            np.testing.assert_allclose(times[tail], on_time, atol=1e-6)
            # a chunk later than it was sampled for joins by a cross-fade over blend_steps (4) actions
            skip = 4 if chunk.arrived_late else 0
            np.testing.assert_allclose(rows[tail][skip:], chunk.actions[chunk.executable][skip:], atol=1e-9)
            previous_plan, plans_seen, chunk = payload, plans_seen + 1, None
    assert plans_seen >= 5


def check_commands_against_plans(listener) -> tuple[int, int]:
    """Every point of every published command after its first (the plan at the lead time) is an action of a
    plan at that action's spacing, unless a SafetyIntervention names the command. Returns (plain, intervened)."""
    interventions = [np.asarray(m.commanded).reshape(len(m.times_from_start), -1) for m in listener.of("intervention")]
    # plans are sent by their own thread, so a command shaped from a new plan may arrive before it
    plans = [(i, payload[1]) for i, (kind, payload) in enumerate(listener.events) if kind == "plan" and len(payload[0])]
    plain = intervened = 0
    for position, (kind, payload) in enumerate(listener.events):
        before = [rows for i, rows in plans if i < position][-2:]
        after = [rows for i, rows in plans if i > position][:2]
        if kind == "command" and before and len(payload.points) > 2:
            points = np.array([p.positions for p in payload.points])
            if any(c.shape == points.shape and np.allclose(c, points, atol=1e-12) for c in interventions):
                intervened += 1
                continue
            candidates = np.vstack(before + after)
            for point in points[1:]:
                assert np.min(np.max(np.abs(candidates - point), axis=1)) < 1e-9, \
                    "a published command holds a point that is in no plan and no intervention names it"
            offsets = np.diff([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in payload.points[1:]])
            np.testing.assert_allclose(offsets, 0.1, atol=1e-6)
            plain += 1
    return plain, intervened


def test_plan_and_chunks_agree_with_the_published_commands(tmp_path, checkpoint):
    with policy_system(tmp_path, checkpoint, velocity_limit=50.0) as (robot, log), ros_node("plan_listener") as node:
        listener = PlanListener(node, robot)
        run_episode(node, listener, log, chunks=8)
        spin_for(node, 0.5)
    chunks = listener.of("chunk")
    assert [c.index for c in chunks] == list(range(len(chunks))), "a chunk was lost or numbered twice"
    status = listener.statuses[-1]
    assert status.chunks_produced == len(chunks)
    assert status.actions_dropped_late == sum(c.dropped_late for c in chunks)
    assert any(c.pinned_count for c in chunks), "guided chunks after the first pin part of the plan"
    check_chunks_against_plans(listener)
    plain, _ = check_commands_against_plans(listener)
    assert plain >= 20
    # the stop forgets the plan (an empty trajectory) and its stopping command is an intervention
    assert any(len(p[0]) == 0 for p in listener.of("plan"))
    assert any(m.stop_command for m in listener.of("intervention"))


def test_safety_interventions_name_the_clamped_commands(tmp_path, checkpoint):
    """Slow joints: the filter slows most commands; each intervention holds what was published and the plan
    it departed from."""
    with policy_system(tmp_path, checkpoint, velocity_limit=0.2) as (robot, log), ros_node("plan_listener") as node:
        listener = PlanListener(node, robot)
        run_episode(node, listener, log, chunks=4)
    commands = [np.array([p.positions for p in m.points]) for m in listener.of("command")]
    clamps = [m for m in listener.of("intervention") if m.velocity_clamp]
    assert len(clamps) >= 5, log
    status = listener.statuses[-1]
    assert len(clamps) <= status.velocity_clamps
    for msg in (m for m in clamps if not m.stop_command):
        commanded = np.asarray(msg.commanded).reshape(len(msg.times_from_start), -1)
        assert any(c.shape == commanded.shape and np.allclose(c, commanded, atol=1e-12) for c in commands), \
            "an intervention names a command that was never published"
        planned = np.asarray(msg.planned).reshape(commanded.shape)
        assert msg.largest_change == pytest.approx(np.max(np.abs(commanded - planned)))
        assert msg.largest_change > 0
    plain, intervened = check_commands_against_plans(listener)
    assert intervened >= 5
