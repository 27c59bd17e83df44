"""sim_node and expert_node over real DDS, each in its own process, as a robot's driver would run."""
from __future__ import annotations

import random
import time
from contextlib import contextmanager

import numpy as np
import pytest
import yaml

from dp_ros.core.time_alignment import stamp_to_seconds
from dp_ros.robot_interface import default_robot_config_path
from dp_ros.sim.kinematics import scene_geometry
from dp_ros.sim.task import TaskInstance
from ros_testing import call_trigger, python_process, ros_node, spin_for, spin_until, stop_process

pytestmark = pytest.mark.dds

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow"]


def write_robot(directory, command_type="joint_trajectory", camera_type="image", prefix=""):
    """The shipped robot interface with another command or camera type, its topics under ``prefix``."""
    data = yaml.safe_load(default_robot_config_path().read_text())
    robot = data["robot"]
    robot["command"]["type"] = command_type
    robot["cameras"][0]["type"] = camera_type
    robot["joint_state_topic"] = prefix + robot["joint_state_topic"]
    robot["cameras"][0]["topic"] = prefix + robot["cameras"][0]["topic"]
    robot["command"]["topic"] = prefix + robot["command"]["topic"]
    robot["action"]["topic"] = prefix + robot["action"]["topic"]
    path = directory / f"robot_{command_type}_{camera_type}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_node(module, log_path, **parameters):
    args = ["-m", f"dp_ros.nodes.{module}", "--ros-args"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    log = open(log_path, "w")
    proc = python_process(args, stdout=log)
    proc.log_path = log_path
    return proc


def stop_node(proc) -> str:
    stop_process(proc)
    return proc.log_path.read_text()


class Listener:
    """Records what the simulator publishes, with receive times."""

    def __init__(self, node, camera_type="image", clock=False, prefix=""):
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CompressedImage, Image, JointState

        from dp_ros_msgs.msg import TaskStatus

        self.node = node
        self.joint_states, self.images, self.status, self.clock, self.leader = [], [], [], [], []
        record = lambda store: lambda msg: store.append((time.time(), msg))  # noqa: E731
        self.subscriptions = [
            node.create_subscription(JointState, prefix + "/joint_states", record(self.joint_states), 50),
            node.create_subscription(CompressedImage if camera_type == "compressed" else Image,
                                     prefix + "/camera/front/image_raw", record(self.images), 10),
            node.create_subscription(TaskStatus, prefix + "/task_status", record(self.status), 10),
            node.create_subscription(JointState, prefix + "/leader/joint_states", record(self.leader), 50),
        ]
        if clock:
            self.subscriptions.append(node.create_subscription(Clock, "/clock", record(self.clock), 50))

    def positions(self) -> np.ndarray:
        msg = self.joint_states[-1][1]
        return np.array([msg.position[msg.name.index(n)] for n in JOINTS])

    def latest_status(self):
        return self.status[-1][1]

    def clear(self) -> None:
        for store in (self.joint_states, self.images, self.status, self.clock, self.leader):
            store.clear()


@contextmanager
def running(ros, proc, listener):
    """``(proc, listener)`` once the simulator publishes; the listener's subscriptions and the node go after."""
    try:
        wait_until_running(ros, listener, proc)
        yield proc, listener
    finally:
        for sub in listener.subscriptions:
            ros.destroy_subscription(sub)
        stop_node(proc)


def wait_until_running(node, listener, proc, timeout=60.0):
    ok = spin_until(node, lambda: len(listener.joint_states) > 5 and listener.status, timeout)
    assert ok, f"the simulator published nothing: {proc.log_path.read_text()}"


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    with ros_node("sim_test") as node:
        yield node


@pytest.fixture(scope="module")
def trajectory_sim(ros, tmp_path_factory):
    """The default robot (JointTrajectory commands), seed 5."""
    directory = tmp_path_factory.mktemp("trajectory_sim")
    proc = start_node("sim_node", directory / "sim.log", seed=5, joint_state_rate=100.0, camera_rate=15.0)
    with running(ros, proc, Listener(ros)) as sim:
        yield sim


def test_joint_states_and_images_have_correct_stamps_and_rates(ros, trajectory_sim):
    proc, listener = trajectory_sim
    listener.clear()
    spin_for(ros, 3.0)
    stamps = np.array([stamp_to_seconds(m.header.stamp) for _, m in listener.joint_states])
    received = np.array([t for t, _ in listener.joint_states])
    assert len(stamps) > 100, proc.log_path.read_text()
    assert np.median(np.diff(stamps)) == pytest.approx(0.01, abs=1e-4)   # 100 Hz of simulated time
    assert np.all(np.diff(stamps) > 0)
    assert np.all(stamps <= received + 0.005)   # stamped when taken, never in the future
    assert np.median(received - stamps) < 0.1
    msg = listener.joint_states[-1][1]
    assert list(msg.name) == JOINTS and len(msg.position) == 3 and len(msg.velocity) == 3

    image_stamps = np.array([stamp_to_seconds(m.header.stamp) for _, m in listener.images])
    image_received = np.array([t for t, _ in listener.images])
    assert len(image_stamps) >= 15
    assert np.median(np.diff(image_stamps)) == pytest.approx(1 / 15, rel=0.25)
    assert np.all(image_stamps <= image_received + 0.005)
    assert np.median(image_received - image_stamps) < 0.2
    image = listener.images[-1][1]
    assert (image.width, image.height, image.encoding) == (96, 96, "rgb8")
    assert image.header.frame_id == "front_camera_optical_frame"

    status = listener.latest_status()
    assert status.task == "reach_around" and status.episode >= 1 and status.time_limit == 8.0
    assert status.episode_time > 0


def wait_until_at_rest(ros, listener, timeout=10.0, hold=0.5):
    """Spin until the arm has been still for ``hold`` seconds."""
    def resting():
        recent = [m for t, m in listener.joint_states[-200:] if t > time.time() - hold]
        return (listener.joint_states and listener.joint_states[0][0] < time.time() - hold and len(recent) > 5
                and max(abs(v) for m in recent for v in m.velocity) < 0.01)
    assert spin_until(ros, resting, timeout), "the arm did not come to rest"


def position_at(listener, stamp: float) -> np.ndarray:
    """The joint positions of the latest JointState stamped at or before ``stamp``."""
    msg = [m for _, m in listener.joint_states if stamp_to_seconds(m.header.stamp) <= stamp][-1]
    return np.array([msg.position[msg.name.index(n)] for n in JOINTS])


def test_joint_trajectory_commands_are_followed_in_time(ros, trajectory_sim):
    from builtin_interfaces.msg import Time
    from trajectory_msgs.msg import JointTrajectory

    from dp_ros.conversions.commands import make_trajectory

    proc, listener = trajectory_sim
    publisher = ros.create_publisher(JointTrajectory, "/arm_controller/joint_trajectory", 10)
    assert spin_until(ros, lambda: publisher.get_subscription_count() > 0, 20)
    wait_until_at_rest(ros, listener)
    start = listener.positions()
    first, second = start + [0.3, 0.0, 0.0], start + [0.3, -0.2, 0.2]
    begin = stamp_to_seconds(listener.joint_states[-1][1].header.stamp) + 0.3   # in the simulator's clock
    stamp = Time(sec=int(begin), nanosec=int((begin % 1) * 1e9))
    listener.joint_states.clear()
    publisher.publish(make_trajectory(JOINTS, [0.0, 0.6, 1.2], np.stack([start, first, second]), stamp=stamp))
    done = lambda: listener.joint_states and stamp_to_seconds(listener.joint_states[-1][1].header.stamp) > begin + 2  # noqa: E731
    assert spin_until(ros, done, 10)
    np.testing.assert_allclose(position_at(listener, begin - 0.05), start, atol=0.01)   # waits for its start time
    np.testing.assert_allclose(position_at(listener, begin + 0.3)[0], start[0] + 0.15, atol=0.05)   # halfway
    np.testing.assert_allclose(position_at(listener, begin + 0.9), (first + second) / 2, atol=0.05)
    np.testing.assert_allclose(listener.positions(), second, atol=0.02)
    ros.destroy_publisher(publisher)


def test_bad_commands_are_rejected_without_harm(ros, trajectory_sim):
    from trajectory_msgs.msg import JointTrajectory

    from dp_ros.conversions.commands import make_trajectory

    proc, listener = trajectory_sim
    publisher = ros.create_publisher(JointTrajectory, "/arm_controller/joint_trajectory", 10)
    assert spin_until(ros, lambda: publisher.get_subscription_count() > 0, 20)
    wait_until_at_rest(ros, listener)
    before = listener.positions()
    publisher.publish(make_trajectory(JOINTS, [0.1], np.array([[np.nan, 0.0, 0.0]])))
    publisher.publish(make_trajectory(["a", "b", "c"], [0.1], np.zeros((1, 3))))
    publisher.publish(JointTrajectory(joint_names=JOINTS))
    listener.clear()
    spin_for(ros, 1.0)
    assert len(listener.joint_states) > 20   # still running
    np.testing.assert_allclose(listener.positions(), before, atol=0.01)
    assert proc.poll() is None
    assert "rejected a command" in proc.log_path.read_text()
    ros.destroy_publisher(publisher)


def violations(listener):
    return listener.latest_status().limit_violations


def test_commands_a_real_controller_could_not_execute_are_counted_not_hidden(ros, trajectory_sim):
    from trajectory_msgs.msg import JointTrajectory

    from dp_ros.conversions.commands import make_trajectory

    proc, listener = trajectory_sim
    publisher = ros.create_publisher(JointTrajectory, "/arm_controller/joint_trajectory", 10)
    assert spin_until(ros, lambda: publisher.get_subscription_count() > 0, 20)
    wait_until_at_rest(ros, listener)
    before, start = listener.latest_status(), listener.positions()
    slow = start + [0.05, 0.0, 0.0]   # 0.5 rad/s of 2
    publisher.publish(make_trajectory(JOINTS, [0.1], slow[None, :]))
    assert spin_until(ros, lambda: listener.latest_status().commands_received > before.commands_received, 5)
    assert violations(listener) == before.limit_violations
    # the first round's bug: a point a fraction of a millisecond after the one before
    publisher.publish(make_trajectory(JOINTS, [0.02, 0.0205], np.stack([slow, slow + [0.1, 0.0, 0.0]])))
    publisher.publish(make_trajectory(JOINTS, [0.1], (slow + [0.0, 5.0, 0.0])[None, :]))   # beyond the limits
    assert spin_until(ros, lambda: violations(listener) >= before.limit_violations + 2, 5)
    status = listener.latest_status()
    assert status.worst_velocity_ratio > 30 and status.worst_position_excess > 1.0
    assert "breaks the joint limits as the controller executes it" in proc.log_path.read_text()
    spin_for(ros, 1.0)
    assert np.all(np.abs(listener.positions()) <= [1.6, 2.0, 2.6]), "the simulator still protects its model"
    ros.destroy_publisher(publisher)


def test_the_policy_node_commands_the_simulator_within_the_limits(ros, trajectory_sim, tmp_path):
    """A random (untrained) checkpoint for the simulated arm: wild plans, none breaking a limit as executed."""
    from lerobot_fixtures import make_checkpoint
    from dp_ros.robot_interface import load_robot_interface

    proc, listener = trajectory_sim
    checkpoint = make_checkpoint(tmp_path / "pretrained_model", load_robot_interface(default_robot_config_path()))
    assert call_trigger(ros, "/sim_node/reset").success
    before, log_start = listener.latest_status(), len(proc.log_path.read_text())
    policy = python_process(["-m", "dp_ros.cli.main", "run-policy", "--checkpoint", str(checkpoint),
                             "--noise-scheduler", "ddim", "--num-inference-steps", "4"],
                            stdout=open(tmp_path / "policy.log", "w"))
    try:
        received = lambda: listener.latest_status().commands_received > before.commands_received + 200  # noqa: E731
        assert spin_until(ros, received, 90), (tmp_path / "policy.log").read_text()
    finally:
        stop_process(policy)
    status = listener.latest_status()
    sim_warnings = [line for line in proc.log_path.read_text()[log_start:].splitlines() if "WARN" in line]
    if status.limit_violations != before.limit_violations and any("skipped ahead" in w for w in sim_warnings):
        # the simulated controller itself stalled (a starved CPU) and took commands late: the guarantee
        # assumes a controller that keeps time (README, "Not covered"); inconclusive, not passed
        pytest.skip("the simulator's physics stalled during the run: " + " | ".join(sim_warnings))
    assert status.limit_violations == before.limit_violations, "\n".join(sim_warnings)
    assert status.commands_rejected == before.commands_rejected


def test_reset_starts_a_new_random_episode(ros, trajectory_sim):
    proc, listener = trajectory_sim
    episodes, seeds, starts = [], [], []
    for _ in range(2):
        response = call_trigger(ros, "/sim_node/reset")
        assert response.success, response.message
        called = time.time()
        assert spin_until(ros, lambda: listener.status[-1][0] > called and listener.joint_states[-1][0] > called + 0.05, 5)
        status = listener.latest_status()
        assert f"seed {status.seed}" in response.message
        assert status.episode_time < 0.5 and not status.success
        episodes.append(status.episode)
        seeds.append(status.seed)
        starts.append(listener.positions())
    assert episodes[1] == episodes[0] + 1
    assert seeds[0] != seeds[1]
    assert np.abs(starts[0] - starts[1]).max() > 1e-3
    sequence = random.Random(5)
    expected = [sequence.randrange(0, 2**31 - 1) for _ in range(episodes[1])]
    assert seeds == expected[-2:]   # parameter seed makes the sequence of instances reproducible


def test_expert_demonstrations_succeed_on_both_sides(ros, trajectory_sim, tmp_path):
    proc, listener = trajectory_sim
    expert = start_node("expert_node", tmp_path / "expert.log", side="alternate", start_delay=0.3)
    try:
        listener.leader.clear()   # the expert leads once it hears the simulator: then it is connected
        assert spin_until(ros, lambda: len(listener.leader) > 5, 60), expert.log_path.read_text()
        solutions = []
        for _ in range(2):
            response = call_trigger(ros, "/sim_node/reset")
            assert response.success
            episode = int(response.message.split()[1].rstrip(","))
            listener.leader.clear()
            succeeded = lambda: any(m.episode == episode and m.success for _, m in listener.status)  # noqa: E731
            assert spin_until(ros, succeeded, 15), expert.log_path.read_text() + proc.log_path.read_text()
            status = next(m for _, m in listener.status if m.episode == episode and m.success)
            assert not status.collided and status.distance <= 0.03
            assert 0.3 < status.episode_time < status.time_limit
            solutions.append(status.solution)
            leader = listener.leader
            assert len(leader) > 50   # published as a leader arm would, at the command rate
            assert list(leader[-1][1].name) == JOINTS
            # once the motion is over, the leader's pose puts the tip on the task instance's target
            still = lambda: len(leader) > 3 and leader[-1][1].position == leader[-3][1].position  # noqa: E731
            assert spin_until(ros, still, 5)
            geometry = scene_geometry()
            task = TaskInstance.sample(status.seed, geometry)
            np.testing.assert_allclose(geometry.forward(np.array(leader[-1][1].position)), task.target, atol=1e-3)
        assert sorted(solutions) == ["left", "right"]
    finally:
        log = stop_node(expert)
    assert "passing the pillar on the left" in log and "passing the pillar on the right" in log


@pytest.fixture(scope="module")
def array_sim(ros, tmp_path_factory):
    directory = tmp_path_factory.mktemp("array_sim")
    robot = write_robot(directory, "float64_multi_array", prefix="/array")
    proc = start_node("sim_node", directory / "sim.log", robot_config=robot, seed=5, camera_rate=0.0,
                      task_status_topic="/array/task_status")
    with running(ros, proc, Listener(ros, prefix="/array")) as sim:
        yield sim


def test_float64_multi_array_commands_move_the_joints(ros, array_sim, trajectory_sim):
    from std_msgs.msg import Float64MultiArray

    proc, listener = array_sim
    assert listener.status[0][1].seed == random.Random(5).randrange(0, 2**31 - 1)   # same seed, same first task
    assert not listener.images   # camera_rate 0: no cameras
    publisher = ros.create_publisher(Float64MultiArray, "/array/arm_controller/joint_trajectory", 10)
    assert spin_until(ros, lambda: publisher.get_subscription_count() > 0, 20)
    target = listener.positions() + [-0.25, 0.1, 0.15]
    publisher.publish(Float64MultiArray(data=target.tolist()))
    publisher.publish(Float64MultiArray(data=[0.1, 0.2]))   # wrong size: rejected
    spin_for(ros, 1.5)
    np.testing.assert_allclose(listener.positions(), target, atol=0.02)
    assert "Float64MultiArray has 2 values" in proc.log_path.read_text()
    ros.destroy_publisher(publisher)


@pytest.fixture(scope="module")
def clock_sim(ros, tmp_path_factory):
    directory = tmp_path_factory.mktemp("clock_sim")
    robot = write_robot(directory, "joint_state", camera_type="compressed", prefix="/clocked")
    proc = start_node("sim_node", directory / "sim.log", robot_config=robot, publish_clock=True, camera_rate=10.0,
                      task_status_topic="/clocked/task_status")
    with running(ros, proc, Listener(ros, camera_type="compressed", clock=True, prefix="/clocked")) as sim:
        yield sim


def test_joint_state_commands_compressed_images_and_clock(ros, clock_sim):
    from sensor_msgs.msg import JointState

    from dp_ros.conversions.images import message_to_rgb
    from dp_ros.conversions.joint_state import make_joint_state

    proc, listener = clock_sim
    publisher = ros.create_publisher(JointState, "/clocked/arm_controller/joint_trajectory", 10)
    assert spin_until(ros, lambda: publisher.get_subscription_count() > 0, 20)
    target = listener.positions() + [0.2, -0.1, 0.1]
    publisher.publish(make_joint_state(list(reversed(JOINTS)), target[::-1]))   # matched by name
    listener.clear()
    spin_for(ros, 1.5)
    np.testing.assert_allclose(listener.positions(), target, atol=0.02)

    clock = np.array([stamp_to_seconds(m.clock) for _, m in listener.clock])
    assert len(clock) > 50 and np.all(np.diff(clock) > 0)
    assert clock[-1] < 600   # simulated time since start, not the wall clock
    stamps = np.array([stamp_to_seconds(m.header.stamp) for _, m in listener.joint_states])
    assert clock[0] - 0.1 <= stamps.min() and stamps.max() <= clock[-1] + 0.1   # stamped in simulated time
    np.testing.assert_allclose(np.diff(stamps), 0.01, atol=1e-6)
    status = listener.latest_status()
    assert stamp_to_seconds(status.header.stamp) < 600

    assert len(listener.images) >= 5
    image = listener.images[-1][1]
    assert image.format == "jpeg"
    assert message_to_rgb(image).shape == (96, 96, 3)
    assert stamp_to_seconds(image.header.stamp) < 600
    ros.destroy_publisher(publisher)


def test_bad_parameters_stop_the_node_with_a_clear_error(tmp_path):
    robot = tmp_path / "robot.yaml"
    data = yaml.safe_load(default_robot_config_path().read_text())
    data["robot"]["joints"][0]["name"] = "waist"
    robot.write_text(yaml.safe_dump(data))
    proc = start_node("sim_node", tmp_path / "sim.log", robot_config=robot)
    assert proc.wait(60) == 1
    log = proc.log_path.read_text()
    assert "cannot start" in log and "waist" in log and "shoulder_pan" in log


def test_dp_ros_sim_runs_simulator_and_expert_in_one_process(ros, tmp_path):
    robot = write_robot(tmp_path, prefix="/cli")
    log = tmp_path / "cli.log"
    proc = python_process(["-m", "dp_ros.cli.main", "sim", "--robot-config", str(robot), "--expert",
                           "--side", "alternate", "--auto-reset", "--seed", "1", "--duration", "20",
                           "--param", "task_status_topic=/cli/task_status", "--param", "auto_reset_delay=0.5"],
                          stdout=open(log, "w"))
    listener = Listener(ros, prefix="/cli")
    try:
        two_episodes = lambda: {m.solution for _, m in listener.status if m.success} == {"left", "right"}  # noqa: E731
        assert spin_until(ros, two_episodes, 40), log.read_text()
        assert listener.leader and listener.images
        assert proc.wait(40) == 0   # --duration ends it cleanly
    finally:
        for sub in listener.subscriptions:
            ros.destroy_subscription(sub)
        stop_process(proc)
    output = log.read_text()
    assert "passing the pillar on the left" in output and "passing the pillar on the right" in output
    assert "Traceback" not in output
