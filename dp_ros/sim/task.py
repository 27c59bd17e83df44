"""The reach-around task: bring the arm's tip to the red target behind the blue pillar.

The pillar stands between the arm's start pose and the target, so the tip has
to go around it, on the left or on the right; both are equally short and
equally good. A task instance (target position, start pose) is a pure function
of its seed, so any process that knows the seed knows the instance.

Success: the tip comes within ``success_radius`` of the target point (at the
working height above the red disc) within ``time_limit`` seconds of the reset,
without the arm having touched the pillar before. Which side the tip took is
decided from its path (where it first passed the pillar), so the same test
works for the expert and for a learned policy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dp_ros.node_params.sim import SIM
from dp_ros.sim.kinematics import SceneGeometry

TASK_NAME = "reach_around"
LEFT, RIGHT = "left", "right"
SOLUTIONS = (LEFT, RIGHT)


@dataclass(frozen=True)
class TaskConfig:
    """Randomisation and success test of the reach-around task (metres, seconds)."""

    target_x: tuple[float, float] = (0.42, 0.47)
    """Range of the target's distance in front of the arm (x)."""
    target_y: tuple[float, float] = (-0.06, 0.06)
    """Range of the target's sideways position (y, positive is the arm's left)."""
    start_x: tuple[float, float] = (0.15, 0.19)
    """Range of the tip's start position in front of the arm."""
    start_y: tuple[float, float] = (-0.03, 0.03)
    """Range of the tip's start position sideways."""
    working_height: float = 0.05
    """Height of the tip above the table at the start and at the target."""
    success_radius: float = 0.03
    """The task succeeds when the tip is this close to the target point."""
    time_limit: float = SIM["time_limit"].default
    """Seconds after the reset within which the target must be reached."""


@dataclass(frozen=True)
class TaskInstance:
    """One random instance of the task, drawn from its seed."""

    seed: int
    target: tuple[float, float, float]
    """The point the tip must reach: above the red disc's centre at the working height."""
    start_tip: tuple[float, float, float]
    start_joints: tuple[float, float, float]
    """Joint positions at the reset (ARM_JOINTS order)."""

    @classmethod
    def sample(cls, seed: int, geometry: SceneGeometry, config: TaskConfig = TaskConfig()) -> "TaskInstance":
        rng = np.random.default_rng(int(seed))
        height = config.working_height
        target = (rng.uniform(*config.target_x), rng.uniform(*config.target_y), height)
        start_tip = (rng.uniform(*config.start_x), rng.uniform(*config.start_y), height)
        start_joints = geometry.inverse(np.array(start_tip))
        return cls(seed=int(seed), target=tuple(float(v) for v in target),
                   start_tip=tuple(float(v) for v in start_tip),
                   start_joints=tuple(float(v) for v in start_joints))

    @property
    def target_disc(self) -> tuple[float, float]:
        """Where the red disc lies on the table (x, y)."""
        return self.target[0], self.target[1]


def solution_at_crossing(tip_y: float, geometry: SceneGeometry) -> str:
    """The side of the pillar a tip passing it at sideways position ``tip_y`` is on ("" when over it)."""
    offset = tip_y - geometry.obstacle_xy[1]
    if abs(offset) < geometry.obstacle_radius:
        return ""
    return LEFT if offset > 0 else RIGHT


class EpisodeMonitor:
    """Follows one episode's tip path and contacts; latches success, collision and the side taken."""

    def __init__(self, task: TaskInstance, geometry: SceneGeometry, config: TaskConfig = TaskConfig()):
        self.task = task
        self.geometry = geometry
        self.config = config
        self.success = False
        self.success_time: float | None = None
        self.collided = False
        self.solution = ""
        self.distance = float("inf")
        self._previous_x: float | None = None

    def update(self, episode_time: float, tip: np.ndarray, touching_obstacle: bool) -> None:
        """Record the state at ``episode_time`` seconds after the reset."""
        self.distance = float(np.linalg.norm(np.asarray(tip) - np.asarray(self.task.target)))
        if self.success:
            return
        if touching_obstacle:
            self.collided = True
        obstacle_x = self.geometry.obstacle_xy[0]
        if not self.solution and self._previous_x is not None and self._previous_x < obstacle_x <= tip[0]:
            self.solution = solution_at_crossing(float(tip[1]), self.geometry)
        self._previous_x = float(tip[0])
        if (not self.collided and self.distance <= self.config.success_radius
                and episode_time <= self.config.time_limit):
            self.success = True
            self.success_time = episode_time
