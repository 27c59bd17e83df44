"""The simulated robot without ROS: MuJoCo physics, position targets, cameras, task and success test.

Joint vectors in this API follow the robot interface's joint order (the
``robot`` given, by default config/robot.yaml); the interface's joints must be
the arm's joints and its cameras must be cameras of the model. Time is the
simulation time in seconds; it keeps running across resets, and
``episode_time`` counts from the last reset.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dp_ros.core.choices import CommandForm, InterpolateFrom
from dp_ros.core.command_execution import (CommandLedger, ControllerModel, JointLimits, LimitCheck,
                                           points_from_receipt)
from dp_ros.robot_interface import RobotInterface, default_robot_config_path, load_robot_interface
from dp_ros.sim.kinematics import ARM_JOINTS, MODEL_PATH, SceneGeometry, load_model
from dp_ros.sim.task import TASK_NAME, EpisodeMonitor, TaskConfig, TaskInstance
from dp_ros.sim.trajectory import TrajectoryFollower


class SimConfigurationError(ValueError):
    """The robot interface does not describe the simulated arm (the message says what differs)."""


@dataclass(frozen=True)
class EpisodeStatus:
    """What the task-status topic reports."""

    episode: int
    """Episodes started so far (the first reset makes it 1)."""
    seed: int
    task: str
    episode_time: float
    success: bool
    success_time: float | None
    """Episode time at which the success test first held (None before)."""
    collided: bool
    """The arm touched the pillar before reaching the target: this episode cannot succeed."""
    solution: str
    """``left`` or ``right``: the side of the pillar the tip passed; ``""`` until it has passed."""
    distance: float
    """Distance from the tip to the target point (m)."""
    time_limit: float


@dataclass(frozen=True)
class SimState:
    """A copy of the state at one instant, safe to hand to other threads."""

    time: float
    positions: np.ndarray
    """Joint positions, robot interface order."""
    velocities: np.ndarray
    qpos: np.ndarray
    """MuJoCo's qpos and mocap positions: what a renderer needs."""
    mocap_pos: np.ndarray
    tip: np.ndarray
    status: EpisodeStatus


MEASURED_HISTORY = 0.5
"""Seconds of measured joint positions kept to judge a command from where the arm was when it arrived."""
COMMAND_LATENESS = 0.1
"""Seconds after its receipt by which a command has reached the physics thread: a stream of steps that has
sent nothing for that long is judged as stopped (see CommandLedger.settle)."""


def _sim_robot(robot: RobotInterface | None) -> RobotInterface:
    return robot if robot is not None else load_robot_interface(default_robot_config_path())


class SimEnvironment:
    """The arm, the pillar and the target in MuJoCo, stepped on demand (no threads, no ROS)."""

    def __init__(self, robot: RobotInterface | None = None, task_config: TaskConfig = TaskConfig(),
                 model_path: str | Path = MODEL_PATH, seed: int | None = None):
        """Loads the model and starts episode 1 on the task instance of ``seed`` (random if None)."""
        import mujoco

        self._mujoco = mujoco
        self.robot = _sim_robot(robot)
        self.task_config = task_config
        self.model = load_model(model_path)
        self.data = mujoco.MjData(self.model)
        self.geometry = SceneGeometry.from_model(self.model)
        self.joint_names = self.robot.joint_names
        self._check_robot()
        # robot order -> model qpos / actuator indices
        self._qpos_index = np.array([self.model.joint(n).qposadr[0] for n in self.joint_names])
        self._qvel_index = np.array([self.model.joint(n).dofadr[0] for n in self.joint_names])
        self._actuator_index = np.array([self.model.actuator(n).id for n in self.joint_names])
        self._to_arm_order = np.array([self.joint_names.index(n) for n in ARM_JOINTS])
        self._lower = np.array(self.robot.lower_limits)
        self._upper = np.array(self.robot.upper_limits)
        self._max_step = np.array(self.robot.velocity_limits) * self.timestep
        self._setpoint = np.zeros(len(self.joint_names))
        self._tip_site = self.model.site("tip").id
        self._target_mocap = self.model.body("target").mocapid[0]
        self._obstacle_geom = self.model.geom("obstacle").id
        arm_bodies = {self.model.body(n).id for n in ("pan_link", "upper_arm", "forearm")}
        self._arm_geoms = {g for g in range(self.model.ngeom) if self.model.geom_bodyid[g] in arm_bodies}
        self._renderer = None
        self._seed_rng = np.random.default_rng()
        self.episode = 0
        self.episode_start = 0.0
        self.task: TaskInstance | None = None
        self.monitor: EpisodeMonitor | None = None
        self.follower = TrajectoryFollower(self.joint_positions())
        self._measured = deque(maxlen=max(2, int(round(MEASURED_HISTORY / self.timestep))))
        self.commands = CommandLedger(ControllerModel(
            JointLimits.for_robot(self.robot), CommandForm.of(self.robot.command.type),
            self.robot.command.interpolate_from, 1.0 / self.robot.command_rate, self.robot.update_period))
        self.reset(seed)

    def _check_robot(self) -> None:
        names = set(self.joint_names)
        if names != set(ARM_JOINTS):
            raise SimConfigurationError(
                f"robot interface {self.robot.source_path or self.robot.name} has joints {self.joint_names}, but the "
                f"simulated arm has {list(ARM_JOINTS)}; use config/robot.yaml (or a copy with these joints)")
        model_cameras = [self.model.camera(i).name for i in range(self.model.ncam)]
        for cam in self.robot.cameras:
            if cam.name not in model_cameras:
                raise SimConfigurationError(
                    f"robot interface camera {cam.name!r} is not in the simulated scene (it has {model_cameras}); "
                    f"rename the camera in the robot interface")

    # --- episodes --------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> TaskInstance:
        """Start a new episode on a random task instance (``seed`` makes it reproducible)."""
        mujoco = self._mujoco
        if seed is None:
            seed = int(self._seed_rng.integers(0, 2**31 - 1))
        task = TaskInstance.sample(seed, self.geometry, self.task_config)
        start = self.from_arm_order(np.array(task.start_joints))
        self.data.qpos[self._qpos_index] = start
        self.data.qvel[:] = 0.0
        self.data.qacc_warmstart[:] = 0.0
        self.data.mocap_pos[self._target_mocap] = [task.target[0], task.target[1], 0.002]
        self.follower.hold(start)
        self.commands.model.reset()
        self._setpoint = start.copy()
        self.data.ctrl[self._actuator_index] = start
        mujoco.mj_forward(self.model, self.data)
        self._measured.clear()
        self._measured.append((self.time, self.joint_positions()))
        self.task = task
        self.episode += 1
        self.episode_start = self.data.time
        self.monitor = EpisodeMonitor(task, self.geometry, self.task_config)
        self.monitor.update(0.0, self.tip_position(), False)
        return task

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def episode_time(self) -> float:
        return float(self.data.time - self.episode_start)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    # --- commands --------------------------------------------------------------------
    def clamp(self, positions: np.ndarray) -> np.ndarray:
        """Positions clipped to the robot interface's joint limits."""
        return np.clip(positions, self._lower, self._upper)

    def set_position_target(self, positions: np.ndarray) -> None:
        """Hold these joint positions (robot order) from now on."""
        self.follower.hold(self.clamp(np.asarray(positions, dtype=np.float64)))

    def follow_trajectory(self, times: np.ndarray, positions: np.ndarray, from_measured: bool = False,
                          receipt: float | None = None) -> None:
        """Follow targets ``positions`` (P, J) at simulation ``times`` (P,), replacing the current ones from
        ``receipt`` (default: now) on, starting from the set-point then (or, ``from_measured``, from the
        measured joint positions)."""
        start = self.measured_at(self.time if receipt is None else receipt) if from_measured else None
        self.follower.follow(self.time if receipt is None else receipt, times,
                             self.clamp(np.asarray(positions, dtype=np.float64)), start)

    def command_step(self, target: np.ndarray, receipt: float | None = None) -> LimitCheck:
        """A step command (forward_command_controller, JointState) taken at ``receipt`` (default: now); judged,
        then held."""
        receipt = self.time if receipt is None else receipt
        check = self.commands.judge(receipt, np.zeros(1), np.asarray(target)[None, :], self.measured_at(receipt))
        self.follow_trajectory(np.array([receipt]), np.asarray(target)[None, :], receipt=receipt)
        return check

    def command_trajectory(self, times_after_receipt: np.ndarray, positions: np.ndarray,
                           receipt: float | None = None) -> LimitCheck:
        """A JointTrajectory taken at ``receipt`` (default: now; later when the physics lags the controller's
        clock), its points ``times_after_receipt`` seconds after it; judged as joint_trajectory_controller
        executes it (the robot interface's ``interpolate_from``), then followed."""
        receipt = self.time if receipt is None else receipt
        times_after_receipt = np.asarray(times_after_receipt, dtype=np.float64)
        check = self.commands.judge(receipt, *points_from_receipt(times_after_receipt, positions),
                                    self.measured_at(receipt))
        self.follow_trajectory(receipt + times_after_receipt, positions,
                               from_measured=self.robot.command.interpolate_from == InterpolateFrom.MEASURED,
                               receipt=receipt)
        return check

    def shift_schedule(self, seconds: float) -> None:
        """Move every commanded time ``seconds`` later (earlier when negative): the physics skipped ahead."""
        self.follower.shift(seconds)
        self.commands.model.shift(seconds)

    def position_target(self) -> np.ndarray:
        return self.follower.sample(self.time)

    # --- stepping --------------------------------------------------------------------
    def step(self, count: int = 1) -> None:
        """Advance the physics by ``count`` timesteps, following the current targets.

        The set-point moves towards the target no faster than the robot
        interface's velocity limits, as a real arm's drives would.
        """
        mujoco = self._mujoco
        for _ in range(count):
            desired = self.follower.sample(self.data.time)
            self._setpoint += np.clip(desired - self._setpoint, -self._max_step, self._max_step)
            self.data.ctrl[self._actuator_index] = self._setpoint
            mujoco.mj_step(self.model, self.data)
            self._measured.append((self.time, self.joint_positions()))
            self.monitor.update(self.episode_time, self.tip_position(), self._touching_obstacle())
        self.commands.settle(self.time - COMMAND_LATENESS)

    def run(self, seconds: float) -> None:
        """Advance the physics by ``seconds``."""
        self.step(max(0, int(round(seconds / self.timestep))))

    def _touching_obstacle(self) -> bool:
        if self.data.ncon == 0:
            return False
        for first, second in self.data.contact.geom:
            if (first == self._obstacle_geom and second in self._arm_geoms) or \
                    (second == self._obstacle_geom and first in self._arm_geoms):
                return True
        return False

    # --- observations ----------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos_index].copy()

    def measured_at(self, t: float) -> np.ndarray:
        """The joint positions at simulated time ``t`` (the latest at or before it, within the last
        ``MEASURED_HISTORY`` seconds): where a controller that took a command at ``t`` measured the arm, though
        the physics thread gets to the command a few steps later."""
        if t >= self.time or not self._measured:
            return self.joint_positions()
        for stamp, positions in reversed(self._measured):
            if stamp <= t + 1e-12:
                return positions.copy()
        return self._measured[0][1].copy()

    def pose_tip_at(self, positions: np.ndarray) -> np.ndarray:
        """Where the tool tip is with the joints at ``positions`` (robot interface order), by MuJoCo's own
        kinematics; the simulated arm is put back as it was."""
        saved = self.data.qpos.copy()
        try:
            self.data.qpos[self._qpos_index] = positions
            self._mujoco.mj_kinematics(self.model, self.data)
            return self.tip_position()
        finally:
            self.data.qpos[:] = saved
            self._mujoco.mj_kinematics(self.model, self.data)

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._qvel_index].copy()

    def tip_position(self) -> np.ndarray:
        return self.data.site_xpos[self._tip_site].copy()

    def to_arm_order(self, positions: np.ndarray) -> np.ndarray:
        """Robot interface order -> ARM_JOINTS order (what the kinematics and the expert use)."""
        return np.asarray(positions)[..., self._to_arm_order]

    def from_arm_order(self, positions: np.ndarray) -> np.ndarray:
        """ARM_JOINTS order -> robot interface order."""
        positions = np.asarray(positions)
        return positions[..., [ARM_JOINTS.index(n) for n in self.joint_names]]

    def status(self) -> EpisodeStatus:
        monitor = self.monitor
        return EpisodeStatus(episode=self.episode, seed=self.task.seed, task=TASK_NAME,
                             episode_time=self.episode_time, success=monitor.success,
                             success_time=monitor.success_time, collided=monitor.collided,
                             solution=monitor.solution, distance=monitor.distance,
                             time_limit=self.task_config.time_limit)

    def snapshot(self) -> SimState:
        return SimState(time=self.time, positions=self.joint_positions(), velocities=self.joint_velocities(),
                        qpos=self.data.qpos.copy(), mocap_pos=self.data.mocap_pos.copy(),
                        tip=self.tip_position(), status=self.status())

    def privileged_state(self) -> dict:
        """Everything a scripted expert may know: the task instance, the pillar, the tip and the joints."""
        return {
            "task": self.task,
            "target": np.array(self.task.target),
            "obstacle_xy": np.array(self.geometry.obstacle_xy),
            "obstacle_radius": self.geometry.obstacle_radius,
            "tip": self.tip_position(),
            "joint_positions": self.joint_positions(),
            "status": self.status(),
        }

    # --- cameras ---------------------------------------------------------------------
    def camera_sizes(self) -> dict[str, tuple[int, int]]:
        """Camera name -> (width, height), from the robot interface."""
        return {cam.name: (cam.width, cam.height) for cam in self.robot.cameras}

    def render(self, camera: str | None = None) -> np.ndarray:
        """The current (height, width, 3) uint8 RGB image of a camera (the first one by default)."""
        from dp_ros.sim.rendering import CameraRenderer

        if not self.robot.cameras:
            raise SimConfigurationError("the robot interface lists no cameras")
        camera = camera or self.robot.cameras[0].name
        if camera not in self.camera_sizes():
            raise SimConfigurationError(f"no camera {camera!r}; the robot interface has {list(self.camera_sizes())}")
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model, self.camera_sizes())
        return self._renderer.render(self.data.qpos, self.data.mocap_pos, camera)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
