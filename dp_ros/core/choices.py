"""The named choices of dp_ros's settings, each listed once (ROS-free, torch-free).

Node parameters (dp_ros.node_params) take their allowed values from here, and the core compares against
these members (a ``StrEnum`` member equals its text, so ``"guided" == Transition.GUIDED``).

"Unset" has one spelling in Python: ``None`` (the checkpoint's own sampler or step count). A ROS
parameter cannot be None, so the node parameters spell it with their declared default (``""`` for a
name, ``0`` for a count), turned into None where the node reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


def values(choice: type[StrEnum]) -> tuple[str, ...]:
    """The texts of a choice's members, in their order (a parameter's or option's allowed values)."""
    return tuple(member.value for member in choice)


class Transition(StrEnum):
    """How a new chunk joins the plan (node parameter ``transition``)."""

    GUIDED = "guided"
    BLEND = "blend"
    ENSEMBLE = "ensemble"
    REPLACE = "replace"


class CommandForm(StrEnum):
    """How a controller executes a command: a time-parameterised trajectory, or a step of the set-point."""

    TRAJECTORY = "trajectory"
    STEP = "step"

    @classmethod
    def of(cls, command_type: str) -> "CommandForm":
        """The form of a robot interface's ``command.type``: a JointTrajectory is a trajectory; a
        Float64MultiArray or JointState command is a step of the set-point."""
        return cls.TRAJECTORY if command_type == "joint_trajectory" else cls.STEP


class InterpolateFrom(StrEnum):
    """Where a trajectory controller starts a new trajectory (robot interface ``command.interpolate_from``)."""

    MEASURED = "measured"
    DESIRED = "desired"


class PlanPublishing(StrEnum):
    """When the policy node publishes its plan, chunks and safety interventions (node parameter ``publish_plan``)."""

    ON_DEMAND = "on_demand"
    ALWAYS = "always"
    OFF = "off"


class StampSource(StrEnum):
    """The time of a sensor message (node parameter ``stamp_source``)."""

    HEADER = "header"
    RECEIVE = "receive"


SAMPLERS = ("ddpm", "ddim", "dpmsolver++", "unipc", "sde-dpmsolver++", "consistency")
"""Samplers the policy can sample with (dp_ros.core.samplers makes them; consistency: dp_ros.core.consistency)."""


class SamplerChoiceError(ValueError):
    """A "sampler:steps" text that names no sampler or no positive step count."""


@dataclass(frozen=True)
class SamplerChoice:
    """A sampler and its number of denoising steps (None: the checkpoint's own); the one parser of
    "sampler:steps" texts."""

    name: str | None = None
    steps: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name or 'checkpoint'}:{self.steps or 'default'}"

    @property
    def text(self) -> str:
        """The "sampler:steps" text that :meth:`parse` reads back as this choice."""
        return f"{self.name or 'checkpoint'}" + (f":{self.steps}" if self.steps else "")

    @classmethod
    def parse(cls, text: str) -> "SamplerChoice":
        """``ddim:10``, ``ddpm`` (the checkpoint's step count) or ``checkpoint`` (the checkpoint's sampler)."""
        name, _, steps = text.strip().lower().partition(":")
        if name in ("", "checkpoint", "default"):
            name = None
        elif name not in SAMPLERS:
            raise SamplerChoiceError(f"unknown sampler {name!r} in {text!r}; use one of {', '.join(SAMPLERS)} "
                                     "(optionally :steps, e.g. ddim:10)")
        if steps and (not steps.isdigit() or int(steps) < 1):
            raise SamplerChoiceError(f"the step count in {text!r} must be a positive whole number")
        return cls(name, int(steps) if steps else None)
