"""What the policy controller tells observers about its plan, without ROS.

Each chunk that joins the plan becomes a :class:`ChunkRecord`: the chunk as the
policy computed it, when its observation was taken and when it was merged, what
was dropped as late and which part was pinned to the executing plan (guided
transition), and the plan as it stands after the merge. Observers (the policy
node's plan publisher) register with ``PolicyController.add_chunk_listener``;
listeners run in the inference thread after the merge, outside the controller's
lock, so they must be quick (copying into a queue or publishing one message).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class PinnedSpan:
    """Leading actions of a chunk that were pinned to the executing plan (guided transition)."""

    start: int = 0
    count: int = 0
    expected_delay: float = 0.0
    """Seconds from the observation to the merge that the chunk was sampled for."""


def pinned_span(plan_steps: np.ndarray, delay_steps: float, n_actions: int, period: float) -> PinnedSpan:
    """The chunk actions ``k`` (due ``k`` policy steps after the observation) that a guide pins: due before the
    expected arrival (``delay_steps``) and inside the plan's span (``plan_steps``, the plan's times in policy steps
    after the observation), as ``ChunkGuide.on_horizon`` pins them."""
    expected_delay = float(delay_steps) * period
    if len(plan_steps) == 0 or n_actions <= 0:
        return PinnedSpan(expected_delay=expected_delay)
    steps = np.arange(n_actions, dtype=np.float64)
    covered = (steps >= plan_steps[0] - 1e-6) & (steps <= plan_steps[-1] + 1e-6)
    pinned = np.flatnonzero(covered & (steps < delay_steps))
    if pinned.size == 0:
        return PinnedSpan(expected_delay=expected_delay)
    return PinnedSpan(int(pinned[0]), int(pinned.size), expected_delay)


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as it joined the plan."""

    index: int
    """Chunks merged before this one since the controller started."""
    observation_time: float
    """Stamp of the newest observation the chunk was computed from; action k is due ``k * period`` after it."""
    merged_at: float
    """When the chunk joined the plan (the controller's clock)."""
    compute_time: float
    """Seconds of inference."""
    period: float
    actions: np.ndarray
    """(N, J) every action of the chunk, as the policy returned them."""
    dropped_late: int
    """Leading actions already due at the merge (never executed)."""
    pinned: PinnedSpan
    transition: str
    plan_times: np.ndarray
    """Times of the plan after the merge (with the last action before the merge, which commands start from)."""
    plan_actions: np.ndarray

    @property
    def times(self) -> np.ndarray:
        """When each action of the chunk is due."""
        return self.observation_time + self.period * np.arange(self.actions.shape[0])

    @property
    def delay(self) -> float:
        return self.merged_at - self.observation_time


ChunkListener = Callable[[ChunkRecord], None]
