"""The policy controller's settings that change while it runs, from the next chunk on. ROS-free.

:class:`LiveSettings` keeps the changes asked for (``transition``, ``delay_margin``, the guidance settings and
a lower ``velocity_scale``) until the next chunk is requested: that chunk is the first requested, sampled and
merged with them; the chunk being computed keeps the settings it started with.

:class:`LimitEasing` tightens the speed limits while the arm moves. The velocity (and acceleration) limits in
force are the robot interface's times a scale (``velocity_scale``). Lowering the scale at once could leave the
arm, moving at up to the old velocity limit, above the new one: the safety filter would then have to choose
between the new velocity limit and the acceleration limit. Instead the scale in force falls, command by
command, so that each joint's velocity limit drops by at most half its new acceleration limit times the
command period: every command is shaped within the limits in force when it is sent (which only ever get
tighter), and the arm slows down no harder than the new acceleration limit allows. Without acceleration limits
the new scale applies at once. Loosening is refused: a looser limit is a decision for the node's
configuration, not something to slip in while running.
"""
from __future__ import annotations

import numpy as np

from dp_ros.core.action_schedule import TRANSITIONS
from dp_ros.core.joint_limits import JointLimits

RAMP_FRACTION = 0.5
"""Per command period, the velocity limit drops by at most this fraction of the new acceleration limit times
the period."""


class LimitEasing:
    """The scale of the limits in force, moving towards a lower target one command at a time."""

    def __init__(self, robot, scale: float, command_period: float):
        JointLimits.for_robot(robot, scale)  # checks the scale
        self.robot = robot
        self.scale = float(scale)
        """The scale in force."""
        self.target = float(scale)
        """The scale the limits are moving to (equal to ``scale`` once there)."""
        self.command_period = float(command_period)

    def tighten(self, scale: float) -> None:
        """Move to ``scale`` (not above the one in force, nor the one being moved to; raises ValueError)."""
        JointLimits.for_robot(self.robot, scale)
        if scale > min(self.scale, self.target) + 1e-12:
            raise ValueError(f"velocity_scale can only be lowered while configured ({min(self.scale, self.target):g} "
                             f"in force; asked {scale:g}): a looser limit is read when the node is configured")
        self.target = float(scale)

    def step_size(self) -> float:
        """How much the scale may fall in one command period at the target's acceleration limits (inf: at once)."""
        acceleration = self.robot.acceleration_limits
        if acceleration is None:
            return float("inf")
        velocity = np.asarray(self.robot.velocity_limits, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(velocity), np.asarray(acceleration, dtype=np.float64) / velocity, np.inf)
        return float(RAMP_FRACTION * self.target * self.command_period * np.min(ratio))

    def next_limits(self) -> JointLimits | None:
        """The limits for the next command if the scale in force changes now (None: it does not)."""
        if self.scale <= self.target:
            return None
        self.scale = max(self.target, self.scale - self.step_size())
        return JointLimits.for_robot(self.robot, self.scale)


class LiveSettings:
    """Changes of a running controller's settings, staged until the next chunk (see the module docstring)."""

    NAMES = ("transition", "delay_margin", "guidance_gradient_steps", "guidance_max_weight", "velocity_scale")
    """ControllerConfig fields that change while running (velocity_scale only lower)."""

    def __init__(self, robot, config, log=lambda level, text: None):
        self.config, self.log = config, log
        self.easing = LimitEasing(robot, config.velocity_scale, 1.0 / robot.command_rate)
        self.staged: dict = {}

    def check(self, changes: dict) -> None:
        """Raise ValueError, with the reason, if ``changes`` cannot be made while running."""
        unknown = sorted(set(changes) - set(self.NAMES))
        if unknown:
            raise ValueError(f"not changeable while running: {', '.join(unknown)}")
        if changes.get("transition", TRANSITIONS[0]) not in TRANSITIONS:
            raise ValueError(f"transition must be one of {', '.join(TRANSITIONS)}; got {changes['transition']!r}")
        if "velocity_scale" in changes:
            easing = self.easing
            lowest = min(easing.scale, easing.target, self.staged.get("velocity_scale", easing.target))
            LimitEasing(easing.robot, lowest, 1.0).tighten(changes["velocity_scale"])

    def stage(self, changes: dict) -> None:
        """Keep ``changes`` (checked) for the next chunk (call with the controller's lock held)."""
        self.check(changes)
        self.staged.update(changes)

    def take_if_due(self, planner, now: float) -> None:
        """(Lock held, at each command.) Take the staged changes if ``planner`` requests the next chunk now: it is
        the first chunk requested, sampled and merged with them (the planner takes them: use_config)."""
        if self.staged and planner.due(now):
            self.take()
            planner.use_config()

    def take(self) -> dict:
        """The staged changes become the config's (call with the lock held, no chunk pending); returns them."""
        staged, self.staged = self.staged, {}
        for name, value in staged.items():
            setattr(self.config, name, value)
        if "velocity_scale" in staged:
            self.easing.tighten(staged["velocity_scale"])
        self.log("info", "from this chunk on: " + ", ".join(f"{k} = {v}" for k, v in staged.items()))
        return staged

    def ease(self, safety, published) -> None:
        """(Lock held, before each command.) The limits in force for the safety filter and its model of the
        controller, while a lower velocity_scale is eased in."""
        limits = self.easing.next_limits()
        if limits is not None:
            safety.limits = published.limits = limits
