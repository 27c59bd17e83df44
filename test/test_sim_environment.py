"""The simulated arm without ROS: kinematics, stepping, targets, resets, the task, the expert, rendering."""
import time

import numpy as np
import pytest
import yaml

from dp_ros.robot_interface import load_robot_interface, default_robot_config_path, parse_robot_interface
from dp_ros.sim import rendering
from dp_ros.sim.environment import SimConfigurationError, SimEnvironment
from dp_ros.sim.expert import ScriptedExpert, evaluate_expert, minimum_jerk, plan_demonstration
from dp_ros.sim.kinematics import ARM_JOINTS, UnreachableError, scene_geometry
from dp_ros.sim.realtime import RealTimeSimulation
from dp_ros.sim.task import LEFT, RIGHT, TaskConfig, TaskInstance
from dp_ros.sim.trajectory import TrajectoryFollower


@pytest.fixture(scope="module")
def env():
    environment = SimEnvironment(seed=0)
    yield environment
    environment.close()


def robot_dict(**changes):
    """The shipped robot interface as a mapping, with changes."""
    data = yaml.safe_load(default_robot_config_path().read_text())["robot"]
    data.update(changes)
    return data


def test_kinematics_match_the_mujoco_model(env):
    rng = np.random.default_rng(1)
    geometry = env.geometry
    for _ in range(20):
        joints = rng.uniform([-1.5, 0.3, 0.2], [1.5, 1.8, 2.4])
        np.testing.assert_allclose(geometry.forward(joints), env.pose_tip_at(env.from_arm_order(joints)), atol=1e-9)
        np.testing.assert_allclose(geometry.forward(geometry.inverse(geometry.forward(joints))),
                                   geometry.forward(joints), atol=1e-9)
    with pytest.raises(UnreachableError):
        geometry.inverse(np.array([1.0, 0.0, 0.05]))
    env.reset(0)


def test_position_targets_move_the_joints_and_time_advances(env):
    env.reset(1)
    start_time = env.time
    target = env.joint_positions() + np.array([0.3, -0.2, 0.25])
    env.set_position_target(target)
    env.run(1.5)
    assert env.time == pytest.approx(start_time + 1.5, abs=env.timestep)
    np.testing.assert_allclose(env.joint_positions(), target, atol=0.01)
    assert np.all(np.abs(env.joint_velocities()) < 0.05)


def test_targets_are_clamped_to_the_robot_interface_limits(env):
    env.reset(2)
    env.set_position_target(np.array([5.0, 1.2, 1.0]))
    env.run(2.0)
    pan = env.joint_names.index("shoulder_pan")
    assert env.joint_positions()[pan] == pytest.approx(env.robot.upper_limits[pan], abs=0.02)


def test_trajectory_follower_interpolates_and_replaces():
    follower = TrajectoryFollower(np.zeros(2))
    follower.follow(now=1.0, times=np.array([2.0, 3.0]), positions=np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(follower.sample(1.0), [0, 0])
    np.testing.assert_allclose(follower.sample(1.5), [0.5, 1.0])   # from the set-point at receipt to point 1
    np.testing.assert_allclose(follower.sample(2.5), [2.0, 2.0])   # between the points
    np.testing.assert_allclose(follower.sample(9.0), [3.0, 2.0])   # holds the last point
    follower.follow(now=2.5, times=np.array([3.5]), positions=np.array([[0.0, 0.0]]))  # replaces, from where it was
    np.testing.assert_allclose(follower.sample(3.0), [1.0, 1.0])
    follower.follow(now=5.0, times=np.array([4.0, 6.0]), positions=np.array([[0.0, 0.0], [2.0, 2.0]]))
    np.testing.assert_allclose(follower.sample(5.0), [1.0, 1.0])   # points in the past are passed over
    with pytest.raises(ValueError):
        follower.follow(now=0.0, times=np.array([2.0, 1.0]), positions=np.zeros((2, 2)))


def test_following_a_trajectory_moves_through_its_points(env):
    env.reset(3)
    start = env.joint_positions()
    points = np.stack([start + [0.2, 0, 0], start + [0.4, 0, 0]])
    env.follow_trajectory(env.time + np.array([0.5, 1.0]), points)
    env.run(0.5)
    assert env.joint_positions()[0] == pytest.approx(start[0] + 0.2, abs=0.05)
    env.run(1.0)
    assert env.joint_positions()[0] == pytest.approx(start[0] + 0.4, abs=0.01)


def test_commands_are_judged_as_the_controller_executes_them_and_still_protected(env):
    env.reset(4)
    before = env.commands.violations
    start = env.joint_positions()
    assert env.command_trajectory(np.array([0.1, 0.2]), np.stack([start + 0.05, start + 0.1])).within_limits
    env.run(0.05)
    # replacing it mid-way with a point 5 ms ahead of a set-point that is 0.025 rad behind: 5x the speed limit
    check = env.command_trajectory(np.array([0.005]), (env.position_target() + 0.05)[None, :])
    assert check.velocity_ratio == pytest.approx(5.0, rel=0.05) and env.commands.violations == before + 1
    wild = env.command_trajectory(np.array([5.0]), np.array([[5.0, 0.0, 0.0]]))
    assert wild.position_excess > 3 and env.commands.violations == before + 2
    env.run(1.0)
    assert np.all(env.joint_positions() <= np.array(env.robot.upper_limits) + 0.02), "the model is still protected"


def test_a_trajectory_starts_from_the_measured_position_when_the_robot_interface_says_so():
    robot = load_robot_interface(default_robot_config_path())
    robot = robot.model_copy(update={"command": robot.command.model_copy(update={"interpolate_from": "measured"})})
    env = SimEnvironment(robot, seed=5)
    try:
        start = env.joint_positions()
        env.command_trajectory(np.array([0.3]), (start + 0.3)[None, :])
        env.run(0.15)
        lag = env.position_target() - env.joint_positions()
        assert np.all(lag > 0.01), "the arm lags its set-point"
        measured = env.joint_positions()
        env.command_trajectory(np.array([0.1]), (start + 0.3)[None, :])
        np.testing.assert_allclose(env.follower.sample(env.time), measured)
        # a command the physics gets to 30 ms after it arrived starts from where the arm was when it arrived
        arrived, measured_then = env.time, env.joint_positions()
        env.run(0.03)
        assert np.abs(env.joint_positions() - measured_then).max() > 1e-3, "the arm moved on meanwhile"
        np.testing.assert_allclose(env.measured_at(arrived), measured_then)
        env.command_trajectory(np.array([0.1]), (start + 0.3)[None, :], receipt=arrived)
        np.testing.assert_allclose(env.follower.sample(arrived), measured_then)
    finally:
        env.close()


def test_reset_randomises_and_is_seedable(env):
    first = env.reset(11)
    episode = env.episode
    assert env.episode_time == 0.0
    np.testing.assert_allclose(env.to_arm_order(env.joint_positions()), first.start_joints)
    np.testing.assert_allclose(env.data.mocap_pos[0][:2], first.target[:2])
    targets = {tuple(np.round(env.reset(seed).target, 6)) for seed in range(12, 20)}
    assert len(targets) == 8
    assert env.reset(11) == first and env.episode == episode + 9
    config = TaskConfig()
    for seed in range(50):
        task = TaskInstance.sample(seed, env.geometry, config)
        assert config.target_x[0] <= task.target[0] <= config.target_x[1]
        assert config.target_y[0] <= task.target[1] <= config.target_y[1]
    random_resets = {env.reset().seed for _ in range(5)}
    assert len(random_resets) == 5


def test_expert_succeeds_with_both_solutions():
    seeds = list(range(12))
    evaluation = evaluate_expert(seeds, sides=[LEFT, RIGHT] * 6)
    assert evaluation.success_rate == 1.0, evaluation.episodes
    for episode in evaluation.episodes:
        assert episode.solution == episode.side and not episode.collided
        assert 1.0 < episode.success_time < TaskConfig().time_limit
    assert evaluation.solution_counts() == {LEFT: 6, RIGHT: 6}
    assert "12/12" in evaluation.summary()


def test_expert_chooses_both_sides_at_random_and_seedably():
    geometry = scene_geometry()
    task = TaskInstance.sample(5, geometry)
    expert = ScriptedExpert(geometry, seed=7)
    sides = [expert.plan(task, np.array(task.start_joints)).side for _ in range(30)]
    assert {LEFT, RIGHT} <= set(sides)
    again = ScriptedExpert(geometry, seed=7)
    assert [again.plan(task, np.array(task.start_joints)).side for _ in range(30)] == sides


def test_expert_motion_is_smooth_and_within_the_robot_limits():
    robot = load_robot_interface(default_robot_config_path())
    geometry = scene_geometry()
    order = [ARM_JOINTS.index(n) for n in robot.joint_names]
    for seed in range(10):
        task = TaskInstance.sample(seed, geometry)
        for side in (LEFT, RIGHT):
            plan = plan_demonstration(geometry, task, np.array(task.start_joints), side)
            joints = plan.joints[:, order]
            assert np.all(joints >= np.array(robot.lower_limits)) and np.all(joints <= np.array(robot.upper_limits))
            velocity = np.abs(np.diff(joints, axis=0) / np.diff(plan.times)[:, None])
            assert np.all(velocity.max(axis=0) < np.array(robot.velocity_limits))
            np.testing.assert_allclose(plan.joints[0], task.start_joints, atol=1e-9)
            np.testing.assert_allclose(plan.tip_path[-1], task.target, atol=1e-9)
            assert np.all(np.sign(plan.tip_path[len(plan.times) // 2, 1] - geometry.obstacle_xy[1])
                          == (1 if side == LEFT else -1))
    assert minimum_jerk(np.array([0.0, 0.5, 1.0])).tolist() == [0.0, 0.5, 1.0]


def test_a_straight_path_hits_the_pillar_and_cannot_succeed(env):
    task = env.reset(4)
    start, target = np.array(task.start_tip), np.array(task.target)
    for fraction in np.linspace(0, 1, 150):
        tip = start + fraction * (target - start)
        env.set_position_target(env.from_arm_order(env.geometry.inverse(tip)))
        env.run(0.02)
    env.run(1.0)
    status = env.status()
    assert status.collided and not status.success
    assert status.distance < TaskConfig().success_radius   # it got there, but not cleanly


def test_success_needs_the_time_limit():
    quick = evaluate_expert([3], sides=[LEFT], task_config=TaskConfig(time_limit=1.0))
    assert not quick.episodes[0].success


def test_rendering_gives_the_robot_interface_image_size(env):
    env.reset(6)
    image = env.render("front")
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    red = (image[..., 0] > 180) & (image[..., 1] < 80) & (image[..., 2] < 80)
    blue = (image[..., 2] > 150) & (image[..., 0] < 100)
    assert red.sum() > 5 and blue.sum() > 5   # the target and the pillar are visible
    env.reset(7)
    assert np.abs(env.render().astype(int) - image.astype(int)).sum() > 0
    data = robot_dict(cameras=[{"name": "front", "topic": "/cam", "type": "image", "width": 64, "height": 48}])
    small = SimEnvironment(parse_robot_interface(data), seed=1)
    try:
        assert small.render().shape == (48, 64, 3)
    finally:
        small.close()


def test_robot_interface_must_describe_the_simulated_arm():
    data = robot_dict()
    data["joints"] = [dict(j, name=j["name"] + "_x") for j in data["joints"]]
    with pytest.raises(SimConfigurationError, match="shoulder_pan"):
        SimEnvironment(parse_robot_interface(data))
    data = robot_dict(cameras=[{"name": "wrist", "topic": "/cam"}])
    with pytest.raises(SimConfigurationError, match="wrist"):
        SimEnvironment(parse_robot_interface(data))


def test_joint_order_follows_the_robot_interface():
    data = robot_dict()
    data["joints"] = list(reversed(data["joints"]))
    env = SimEnvironment(parse_robot_interface(data), seed=9)
    assert env.joint_names == ["elbow", "shoulder_lift", "shoulder_pan"]
    np.testing.assert_allclose(env.joint_positions(), np.array(env.task.start_joints)[::-1])


def test_gl_backend_choice(monkeypatch):
    assert rendering.choose_gl_backend({"MUJOCO_GL": "EGL"}) == "egl"   # the user's choice is kept
    monkeypatch.setattr(rendering, "_nvidia_gpu_present", lambda: False)
    assert rendering.choose_gl_backend({}) == "osmesa"
    monkeypatch.setattr(rendering, "_nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(rendering, "_library_present", lambda name: name == "EGL")
    assert rendering.choose_gl_backend({}) == "egl"
    assert rendering.active_backend() == "osmesa"   # conftest sets MUJOCO_GL=osmesa before mujoco is imported


def test_missing_osmesa_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(rendering, "_library_present", lambda name: False)
    with pytest.raises(rendering.RenderingUnavailable, match="libosmesa6"):
        rendering.check_rendering_available()


class SteppedClock:
    """Time that passes only when the physics thread waits for it, or when the test moves it on."""

    def __init__(self):
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall_time(self) -> float:
        return 1.7e9 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        time.sleep(0)   # let the test's thread run


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 60.0
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_real_time_simulation_paces_steps_by_its_clock_and_takes_commands():
    env = SimEnvironment(seed=21)
    clock = SteppedClock()
    states = []
    sim = RealTimeSimulation(env, state_rate=50.0, on_state=states.append, monotonic=clock.monotonic,
                             wall_time=clock.wall_time, sleep=clock.sleep)
    start_time, start_clock = env.time, clock.now
    sim.start()
    try:
        _wait_for(lambda: sim.latest().time - start_time >= 0.6, "the physics did not advance")
        target = env.joint_positions() + np.array([0.2, 0.1, -0.1])
        sim.call(lambda e: e.set_position_target(target))
        _wait_for(lambda: sim.latest().time - start_time >= 1.6, "the physics stopped")
        task = sim.call(lambda e: e.reset(22))
    finally:
        sim.stop()
    latest = sim.latest()
    # simulated time is the clock's time, stamps are its wall time, never ahead of either
    assert 0 <= (clock.now - start_clock) - (latest.time - start_time) <= env.timestep + 1e-9
    assert -1e-6 <= clock.wall_time() - sim.stamp(latest.time) <= env.timestep + 1e-6   # float64 at 1.7e9 s
    spacing = np.diff([s.time for s in states])
    np.testing.assert_allclose(spacing, 0.02, atol=1e-6)   # states exactly at the state rate
    moved = [s for s in states if np.allclose(s.positions, target, atol=0.02)]
    assert moved, "the position target set from another thread was not reached"
    assert task.seed == 22 and sim.latest().status.episode == 2
    assert sim.resyncs == 0 and not sim.running


def test_a_starved_physics_skips_ahead_instead_of_racing():
    env = SimEnvironment(seed=21)
    clock = SteppedClock()
    sim = RealTimeSimulation(env, state_rate=50.0, max_lag=0.1, monotonic=clock.monotonic,
                             wall_time=clock.wall_time, sleep=clock.sleep)
    sim.start()
    try:
        _wait_for(lambda: sim.latest().time >= 0.2, "the physics did not advance")
        before = sim.call(lambda e: e.time)
        received = clock.monotonic()   # a command arrives, then the physics thread gets no CPU for a second
        clock.now += 1.0
        _wait_for(lambda: sim.resyncs == 1, "the lag was not noticed")
        after, receipt = sim.call(lambda e: (e.time, sim.sim_time_at(received)))
    finally:
        sim.stop()
    assert after - before < 0.05, "the lost second was skipped, not simulated at full speed"
    # in the physics thread the command's arrival is placed in the time base the schedules were moved to
    assert -1.0 - 2 * env.timestep <= receipt - before <= -1.0 + 2 * env.timestep
    assert abs(clock.wall_time() - sim.stamp(sim.latest().time)) <= 2 * env.timestep, "stamps follow the wall clock"


def test_dp_ros_sim_help_explains_every_option():
    import argparse

    from dp_ros.cli import sim

    class OptionsParser(argparse.ArgumentParser):
        """Keeps every action add_argument returns (argparse's public answer), to check each one's help."""
        def __init__(self):
            self.options = []
            super().__init__()

        def add_argument(self, *args, **kwargs):
            action = super().add_argument(*args, **kwargs)
            self.options.append(action)
            return action

    parser = OptionsParser()
    sim.add_arguments(parser)
    assert len(parser.options) > 5
    for action in parser.options:
        assert action.help, action.dest
    assert sim.__doc__ and "--expert" in sim.__doc__


def test_the_demonstrator_leads_the_arm_to_success_within_the_limits(env):
    """expert_node's behaviour without ROS: episodes from the status, commands shaped like the policy node's."""
    from dp_ros.sim.demonstrator import Demonstrator

    demonstrator = Demonstrator(env.robot, ScriptedExpert(env.geometry, seed=0), side="alternate", start_delay=0.2)
    violations_before = env.commands.violations
    sides = []
    for seed in (21, 22):
        task = env.reset(seed)
        status = env.status()
        demonstrator.on_task_status(status.episode, task.seed, status.task, env.time, 0.0, now=env.time)
        while env.episode_time < 4.0 and not env.status().success:
            demonstrator.on_joint_state(env.time, env.joint_positions())
            if demonstrator.due_to_start(env.time):
                demonstrator.start(env.time)
            command = demonstrator.command(env.time, 0.02)
            if command is not None:
                env.command_trajectory(command.times_from_start, command.positions)
            env.run(0.02)
        assert env.status().success and not env.status().collided
        sides.append(env.status().solution)
    assert sorted(sides) == ["left", "right"]
    assert env.commands.violations == violations_before
