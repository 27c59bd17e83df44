"""Is the policy fast enough for its robot? What will happen if not, and what to change.

A chunk of ``n_action_steps`` actions covers ``n_action_steps`` control periods
of motion. The node asks for the next chunk when ``replan_steps`` planned
actions remain; a chunk that takes longer than those arrives with its first
actions already in the past (they are dropped as late), and a chunk that takes
longer than all the actions it covers can never catch up: every action is late
and the robot does not move. ROS-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dp_ros.core.checkpoint_sampler import CONSISTENCY_STEPS, DEFAULT_SAMPLER, DEFAULT_STEPS


@dataclass(frozen=True)
class SpeedVerdict:
    level: str
    """ok, late (some actions of each chunk dropped) or too_slow (every action late)."""
    message: str
    """What will happen and what to change; empty when ok."""


def judge_speed(chunk_seconds: float, control_period: float, n_action_steps: int, replan_steps: int,
                max_action_steps: int, sampler: str, steps: int) -> SpeedVerdict:
    """The verdict for a chunk that takes ``chunk_seconds`` (measured at warm-up or in operation)."""
    covered = n_action_steps * control_period
    lead = replan_steps * control_period
    ms = chunk_seconds * 1000
    if chunk_seconds <= lead:
        return SpeedVerdict("ok", "")
    needed = math.ceil(chunk_seconds / control_period)
    if chunk_seconds < covered:
        late = needed - replan_steps
        return SpeedVerdict("late", (
            f"a chunk takes {ms:.0f} ms but is requested only {lead * 1000:.0f} ms ({replan_steps} actions) before the "
            f"plan runs out: about {late} action(s) of every chunk will arrive late and be dropped, and the arm may "
            f"pause between chunks. Change: replan_steps: {min(needed + 1, n_action_steps)} or more, or a faster "
            f"sampler ({faster_sampler(chunk_seconds, sampler, steps)})"))
    fixes = [f"a faster sampler ({faster_sampler(chunk_seconds, sampler, steps)})",
             f"a lower control rate (at most {n_action_steps / chunk_seconds:.1f} Hz for {n_action_steps} actions "
             "per chunk; the policy must be trained at that rate)"]
    if needed + 1 <= max_action_steps:
        fixes.append(f"more actions per chunk (n_action_steps: {needed + 1}, at most {max_action_steps})")
    return SpeedVerdict("too_slow", (
        f"a chunk takes {ms:.0f} ms but covers only {covered * 1000:.0f} ms of actions ({n_action_steps} at "
        f"{1 / control_period:g} Hz): every action will be late when its chunk arrives, so the robot will not move. "
        "Change: " + "; or ".join(fixes)))


def faster_sampler(chunk_seconds: float, sampler: str, steps: int) -> str:
    """A sampler with fewer network calls and its estimated cost (cost scales about with the steps)."""
    per_step = chunk_seconds / max(steps, 1)
    if sampler != "consistency" and steps > DEFAULT_STEPS:
        return (f"noise_scheduler: {DEFAULT_SAMPLER} with num_inference_steps: {DEFAULT_STEPS}, about "
                f"{per_step * DEFAULT_STEPS * 1000:.0f} ms; or a student from `dp-ros distill` with "
                f"{CONSISTENCY_STEPS} steps, about {per_step * CONSISTENCY_STEPS * 1000:.0f} ms")
    if sampler != "consistency":
        return (f"a student from `dp-ros distill` (consistency, {CONSISTENCY_STEPS} steps), about "
                f"{per_step * CONSISTENCY_STEPS * 1000:.0f} ms")
    if steps > 1:
        return f"num_inference_steps: 1, about {per_step * 1000:.0f} ms"
    return "a GPU or a smaller network (down_dims): the sampler already takes one step"
