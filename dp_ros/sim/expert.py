"""The scripted expert: goes around the pillar on the left or the right, chosen at random per episode.

It plans from privileged state (the task instance and the arm's current
joints): a smooth tip path (a cubic Bezier curve from the tip to the target,
pulled to one side of the pillar) traversed with minimum-jerk timing, turned
into joint targets by inverse kinematics. Every demonstration of a side has the
same shape and duration, which keeps them easy to learn.

:func:`evaluate_expert` runs it offline (no ROS) over many seeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from dp_ros.node_params.sim import EXPERT
from dp_ros.sim.kinematics import SceneGeometry
from dp_ros.sim.task import LEFT, RIGHT, SOLUTIONS, TaskConfig, TaskInstance


@dataclass(frozen=True)
class ExpertConfig:
    """Shape and timing of the expert's motion."""

    duration: float = EXPERT["duration"].default
    """Seconds from the start pose to the target."""
    side_offset: float = 0.14
    """How far sideways from the pillar's axis the path passes (m)."""
    approach: float = 0.08
    """The path turns sideways this far before the pillar (m, along x)."""
    departure: float = 0.06
    """... and turns back towards the target this far after it (m, along x)."""
    sample_rate: float = 100.0
    """Samples per second of the planned joint trajectory (interpolated linearly between)."""


def minimum_jerk(phase: np.ndarray) -> np.ndarray:
    """Minimum-jerk time scaling of a 0..1 phase: zero velocity and acceleration at both ends."""
    phase = np.clip(phase, 0.0, 1.0)
    return phase ** 3 * (10 - 15 * phase + 6 * phase ** 2)


def _bezier(control: np.ndarray, s: np.ndarray) -> np.ndarray:
    s = s[:, None]
    return ((1 - s) ** 3 * control[0] + 3 * (1 - s) ** 2 * s * control[1]
            + 3 * (1 - s) * s ** 2 * control[2] + s ** 3 * control[3])


@dataclass(frozen=True)
class ExpertPlan:
    """Joint targets over time for one demonstration (ARM_JOINTS order; time 0 = its start)."""

    side: str
    times: np.ndarray
    joints: np.ndarray
    """(K, 3) joint targets at ``times``."""
    tip_path: np.ndarray
    """(K, 3) planned tip positions."""

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def at(self, t: float) -> np.ndarray:
        """The joint target ``t`` seconds after the start (the start pose before 0, the end pose after)."""
        return np.array([np.interp(t, self.times, self.joints[:, j]) for j in range(self.joints.shape[1])])


def plan_demonstration(geometry: SceneGeometry, task: TaskInstance, start_joints: np.ndarray, side: str,
                       config: ExpertConfig = ExpertConfig()) -> ExpertPlan:
    """The expert's motion from ``start_joints`` (ARM_JOINTS order) to the target, passing on ``side``."""
    if side not in SOLUTIONS:
        raise ValueError(f"side must be one of {SOLUTIONS}, got {side!r}")
    start = geometry.forward(np.asarray(start_joints, dtype=np.float64))
    target = np.array(task.target)
    height = target[2]
    obstacle_x, obstacle_y = geometry.obstacle_xy
    lateral = obstacle_y + (config.side_offset if side == LEFT else -config.side_offset)
    control = np.array([start,
                        [obstacle_x - config.approach, lateral, height],
                        [obstacle_x + config.departure, lateral, height],
                        target])
    count = max(2, int(round(config.duration * config.sample_rate)) + 1)
    times = np.linspace(0.0, config.duration, count)
    tips = _bezier(control, minimum_jerk(times / config.duration))
    joints = geometry.inverse(tips)
    joints[0] = start_joints  # start exactly where the arm is
    return ExpertPlan(side=side, times=times, joints=joints, tip_path=tips)


class ScriptedExpert:
    """Plans demonstrations, choosing the side at random for each one (seedable)."""

    def __init__(self, geometry: SceneGeometry, config: ExpertConfig = ExpertConfig(), seed: int | None = None):
        self.geometry = geometry
        self.config = config
        self._rng = np.random.default_rng(seed)

    def choose_side(self) -> str:
        return SOLUTIONS[int(self._rng.integers(0, 2))]

    def plan(self, task: TaskInstance, start_joints: np.ndarray, side: str | None = None) -> ExpertPlan:
        return plan_demonstration(self.geometry, task, start_joints, side or self.choose_side(), self.config)


@dataclass(frozen=True)
class ExpertEpisode:
    """The outcome of one offline expert episode."""

    seed: int
    side: str
    """The side the expert chose."""
    success: bool
    solution: str
    """The side the task's path test saw (should equal ``side``)."""
    success_time: float | None
    """Seconds from the reset to success."""
    collided: bool


@dataclass(frozen=True)
class ExpertEvaluation:
    episodes: list[ExpertEpisode] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return sum(e.success for e in self.episodes) / max(1, len(self.episodes))

    def solution_counts(self) -> dict[str, int]:
        return {side: sum(e.solution == side for e in self.episodes) for side in SOLUTIONS}

    def summary(self) -> str:
        counts = self.solution_counts()
        times = [e.success_time for e in self.episodes if e.success_time is not None]
        mean_time = f", mean time to success {np.mean(times):.2f} s" if times else ""
        return (f"expert: {sum(e.success for e in self.episodes)}/{len(self.episodes)} successful "
                f"({100 * self.success_rate:.0f}%), left {counts[LEFT]}, right {counts[RIGHT]}{mean_time}")


def run_expert_episode(env, expert: ScriptedExpert, seed: int, side: str | None = None, command_rate: float = 50.0,
                       start_delay: float = EXPERT["start_delay"].default, settle: float = 0.5) -> ExpertEpisode:
    """One episode in a :class:`~dp_ros.sim.environment.SimEnvironment`, commanded like the expert node does:
    one target per command period, each to be reached by the next period."""
    task = env.reset(seed)
    plan = expert.plan(task, np.array(task.start_joints), side)
    period = 1.0 / command_rate
    steps_per_command = max(1, int(round(period / env.timestep)))
    env.run(start_delay)
    elapsed = 0.0
    end = min(plan.duration + settle, env.task_config.time_limit)
    while elapsed < end and not env.status().success:
        target = env.from_arm_order(plan.at(elapsed + period))
        env.follow_trajectory(np.array([env.time + period]), target[None, :])
        env.step(steps_per_command)
        elapsed += steps_per_command * env.timestep
    status = env.status()
    return ExpertEpisode(seed=int(seed), side=plan.side, success=status.success, solution=status.solution,
                         success_time=env.monitor.success_time, collided=status.collided)


def evaluate_expert(seeds: Iterable[int], sides: Sequence[str] | None = None, robot=None,
                    task_config: TaskConfig = TaskConfig(), expert_config: ExpertConfig = ExpertConfig(),
                    expert_seed: int = 0, command_rate: float = 50.0) -> ExpertEvaluation:
    """Run the expert offline on each seed (sides: one per seed, or None to choose at random)."""
    from dp_ros.sim.environment import SimEnvironment

    env = SimEnvironment(robot=robot, task_config=task_config)
    try:
        expert = ScriptedExpert(env.geometry, expert_config, seed=expert_seed)
        seeds = list(seeds)
        chosen = list(sides) if sides is not None else [None] * len(seeds)
        if len(chosen) != len(seeds):
            raise ValueError(f"got {len(chosen)} sides for {len(seeds)} seeds")
        return ExpertEvaluation([run_expert_episode(env, expert, seed, side, command_rate)
                                 for seed, side in zip(seeds, chosen)])
    finally:
        env.close()
