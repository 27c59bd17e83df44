"""The scripted expert as a leader arm, episode after episode, without ROS (expert_node is its ROS face).

It follows the simulator's episodes (each new episode's seed gives the task instance, its reset stamp
tells which joint states belong to it), plans from the arm's pose ``start_delay`` after the reset (or on
request), and at any time gives the leader's pose and the command that makes the arm follow it, shaped by
the same safety filter as the policy node's (a trajectory carries the next ``COMMAND_HORIZON`` seconds of
the motion, so the arm keeps to its path when a command comes late). Once the motion is over no commands
are needed: the arm holds its last target by itself.
"""
from __future__ import annotations

import numpy as np

from dp_ros.core.command_shaping import Command, CommandSettings, CommandShaper
from dp_ros.core.safety import SafetyFilter
from dp_ros.node_params.policy import POLICY
from dp_ros.node_params.sim import EXPERT
from dp_ros.robot_interface import RobotInterface
from dp_ros.sim.expert import ExpertPlan, ScriptedExpert
from dp_ros.sim.kinematics import ARM_JOINTS
from dp_ros.sim.task import SOLUTIONS, TASK_NAME, TaskInstance

SIDE_CHOICES = ("random", "alternate") + SOLUTIONS
COMMAND_HORIZON = 0.3
"""Seconds of the motion each forwarded trajectory carries."""
JOIN_MARGIN = 2.0
"""An episode first seen later than start_delay + this after its reset is not demonstrated by itself."""


class Demonstrator:
    def __init__(self, robot: RobotInterface, expert: ScriptedExpert, side: str = EXPERT["side"].default,
                 start_on_reset: bool = EXPERT["start_on_reset"].default,
                 start_delay: float = EXPERT["start_delay"].default):
        if side not in SIDE_CHOICES:
            raise ValueError(f"side must be one of {SIDE_CHOICES}, got {side!r}")
        if start_delay < 0:
            raise ValueError("start_delay must be >= 0")
        self.robot, self.expert, self.side = robot, expert, side
        self.start_on_reset, self.start_delay = start_on_reset, start_delay
        self._arm_index = [robot.joint_names.index(n) for n in ARM_JOINTS]
        self._knots = robot.control_period * np.arange(1, int(round(COMMAND_HORIZON / robot.control_period)) + 1)
        # the expert's commands are shaped as the policy node's are by default
        self._shaper = CommandShaper(CommandSettings.for_robot(robot, lead_time=POLICY["trajectory_lead_time"].default,
                                                               timing_margin=POLICY["timing_margin"].default),
                                     SafetyFilter.for_robot(robot))
        self.episode: int | None = None
        self.task: TaskInstance | None = None
        self.demonstrations = 0
        self._reset_stamp = 0.0
        self._joints: np.ndarray | None = None
        self._joints_stamp = 0.0
        self._hold: np.ndarray | None = None
        self._plan: ExpertPlan | None = None
        self._plan_start = 0.0
        self._start_at: float | None = None

    # --- inputs ------------------------------------------------------------------------
    def on_task_status(self, episode: int, seed: int, task: str, stamp: float, episode_time: float,
                       now: float) -> str | None:
        """The simulator's status; returns a line for the log when there is something to say."""
        if episode == self.episode:
            return None
        if task != TASK_NAME:
            return f"the simulator runs task {task!r}; this expert solves {TASK_NAME!r}"
        self.episode, self.task = episode, TaskInstance.sample(seed, self.expert.geometry)
        self._reset_stamp = stamp - episode_time
        self._hold = self._plan = self._start_at = self._joints = None
        self._shaper.reset()  # the arm was put at a new start pose
        if not self.start_on_reset:
            return None
        if episode_time <= self.start_delay + JOIN_MARGIN:
            self._start_at = now + max(0.0, self.start_delay - episode_time)
            return None
        return (f"joined episode {episode} {episode_time:.1f} s after its reset; call ~/start for a demonstration, "
                f"or reset the simulator")

    def on_joint_state(self, stamp: float, joints: np.ndarray) -> None:
        if self.episode is not None and stamp + 1e-3 >= self._reset_stamp:  # a state from the current episode
            self._joints, self._joints_stamp = joints, stamp
            if self._hold is None and self._plan is None:
                self._hold = joints

    # --- demonstrations ----------------------------------------------------------------
    def _choose_side(self) -> str | None:
        if self.side in SOLUTIONS:
            return self.side
        if self.side == "alternate":
            return SOLUTIONS[self.demonstrations % 2]
        return None  # the expert's own random choice

    def start(self, now: float) -> str:
        """Plan from the current joint state and start moving; returns what it does."""
        if self.task is None:
            raise RuntimeError("no TaskStatus from the simulator yet; is sim_node running?")
        if self._joints is None:
            raise RuntimeError("no joint state since the reset")
        self._plan = self.expert.plan(self.task, self._joints[self._arm_index], self._choose_side())
        self._plan_start, self._start_at = now, None
        self.demonstrations += 1
        return f"episode {self.episode}: passing the pillar on the {self._plan.side}, {self._plan.duration:.1f} s to the target"

    def due_to_start(self, now: float) -> bool:
        return self._start_at is not None and now >= self._start_at and self._joints is not None

    def leader(self, now: float) -> np.ndarray | None:
        """The leader arm's pose at ``now`` (None before the first joint state of the episode)."""
        if self._plan is None:
            return self._hold
        target = np.empty(self.robot.num_joints)
        target[self._arm_index] = self._plan.at(now - self._plan_start)
        return target

    def command(self, now: float, period: float) -> Command | None:
        """The safe command that makes the arm follow the leader, or None when none is needed (``period``: the
        time until the next call)."""
        moving = self._plan is None or now - self._plan_start <= self._plan.duration + period
        if not moving or self._joints is None or self.leader(now) is None:
            return None

        def plan_after(t):
            return t + self._knots, np.stack([self.leader(t + k) for k in self._knots])

        return self._shaper.command(now, self.leader, plan_after, self._joints, now - self._joints_stamp)
