"""Time-stamped action chunks, merged smoothly and read at any command time.

Every action of a chunk is stamped from the time of the observation it came
from (action k at ``obs_time + k * period``). Actions already in the past when
the chunk arrives are dropped and counted. A new chunk is merged into what is
left of the previous one:

- ``blend``: over the first ``blend_steps`` overlapping actions the command
  moves linearly from the old plan to the new one (no jump at the boundary).
  When the two plans differ by more than ``blend_max_deviation`` somewhere in
  the overlap they are taken for different solutions (a multimodal policy
  going left, then right): averaging them would aim between the two, so the
  new chunk replaces the old one instead (counted in ``divergent_chunks``);
- ``ensemble``: every time step averages all chunks that predicted it, the
  older predictions weighted ``exp(-ensemble_decay * age)`` (ACT's temporal
  ensembling);
- ``replace``: the new chunk replaces the old plan at once;
- ``guided``: the new chunk was sampled as a continuation of the plan
  (dp_ros.core.chunk_guidance), so it takes over from its first on-time action
  without blending, as long as that action was pinned to the plan (the chunk
  arrived within its expected delay, ``pinned_until``). A chunk that arrives
  later than that has unpinned first actions: they are cross-faded from the old
  plan over ``blend_steps`` actions, so they join the plan without a jump.

Between planned actions the command is interpolated linearly, so commands can
be sent faster than the policy's step rate. ROS-free and thread-safe.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from dp_ros.core.choices import Transition, values

TRANSITIONS = values(Transition)


@dataclass(frozen=True)
class MergeResult:
    kept: int
    dropped_late: int


class ActionSchedule:
    """The plan: sorted action times and the action for each."""

    def __init__(self, period: float, *, transition: str, blend_steps: int, ensemble_decay: float,
                 late_margin: float, blend_max_deviation: float):
        """The settings are the policy node's parameters of the same names (their defaults are declared there)."""
        if transition not in TRANSITIONS:
            raise ValueError(f"transition must be one of {', '.join(TRANSITIONS)}; got {transition!r}")
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self.transition = transition
        self.blend_steps = max(0, int(blend_steps))
        self.ensemble_decay = float(ensemble_decay)
        self.late_margin = float(late_margin)
        self.blend_max_deviation = float(blend_max_deviation)
        self.divergent_chunks = 0
        self._times = np.empty(0)
        self._actions = np.empty((0, 0))
        # for ensembling: the weighted sum and total weight behind each planned action
        self._weight_sums = np.empty(0)
        self._chunk_count = 0
        self._lock = threading.Lock()

    # --- writing ----------------------------------------------------------------------
    def add_chunk(self, obs_time: float, actions: np.ndarray, now: float,
                  pinned_until: float | None = None) -> MergeResult:
        """Merge a chunk whose first action belongs to ``obs_time``.

        ``pinned_until`` (guided): the time up to which the chunk's actions were pinned to the plan; when its
        first on-time action is later, the chunk arrived late and is cross-faded into the plan."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"a chunk must be (n_actions, n_joints); got {actions.shape}")
        times = obs_time + self.period * np.arange(actions.shape[0])
        on_time = times >= now + self.late_margin
        dropped = int(np.count_nonzero(~on_time))
        times, actions = times[on_time], actions[on_time]
        with self._lock:
            self._chunk_count += 1
            if times.size == 0:
                return MergeResult(0, dropped)
            self._drop_before(now)
            replaced = self.transition == Transition.REPLACE or self._actions.shape[1] != actions.shape[1]
            if self._times.size == 0 or replaced:
                self._set(times, actions, np.ones(times.size))
            elif self.transition == Transition.BLEND:
                self._blend(times, actions)
            elif self.transition == Transition.GUIDED:
                late = pinned_until is not None and times[0] > pinned_until + 1e-9
                self._cross_fade(times, actions) if late else self._splice(times, actions)
            else:
                self._ensemble(times, actions)
        return MergeResult(int(times.size), dropped)

    def _set(self, times: np.ndarray, actions: np.ndarray, weights: np.ndarray) -> None:
        self._times, self._actions, self._weight_sums = times, actions, weights

    def _old_plan_at(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The old plan's value at ``times`` and whether each lies within the old plan's span."""
        inside = (times >= self._times[0] - 1e-9) & (times <= self._times[-1] + 1e-9)
        values = np.stack([np.interp(times, self._times, self._actions[:, j]) for j in range(self._actions.shape[1])],
                          axis=1)
        return values, inside

    def _blend(self, times: np.ndarray, actions: np.ndarray) -> None:
        old_values, inside = self._old_plan_at(times)
        if inside.any() and np.max(np.abs(old_values[inside] - actions[inside])) > self.blend_max_deviation:
            self.divergent_chunks += 1
            self._set(times, actions, np.ones(times.size))
            return
        self._cross_fade(times, actions, old_values, inside)

    def _cross_fade(self, times: np.ndarray, actions: np.ndarray, old_values: np.ndarray | None = None,
                    inside: np.ndarray | None = None) -> None:
        """Over the first ``blend_steps`` overlapping actions, move linearly from the old plan to the new one."""
        if old_values is None:
            old_values, inside = self._old_plan_at(times)
        merged = actions.copy()
        overlap = np.flatnonzero(inside)[: self.blend_steps]
        for rank, index in enumerate(overlap):
            w_new = (rank + 1) / (len(overlap) + 1)
            merged[index] = (1 - w_new) * old_values[index] + w_new * actions[index]
        self._splice(times, merged)

    def _splice(self, times: np.ndarray, actions: np.ndarray) -> None:
        """The old plan up to the new actions' first time, the new actions from then on."""
        keep_old = self._times < times[0] - 1e-9
        self._set(np.concatenate([self._times[keep_old], times]),
                  np.concatenate([self._actions[keep_old], actions]),
                  np.ones(int(keep_old.sum()) + times.size))

    def _ensemble(self, times: np.ndarray, actions: np.ndarray) -> None:
        # Older predictions already carry weight; the newcomer gets exp(-decay * (chunks so far)) relative
        # weight, which is ACT's w_i = exp(-m * i) with i counted from the oldest chunk.
        new_weight = float(np.exp(-self.ensemble_decay * (self._chunk_count - 1)))
        old_values, inside = self._old_plan_at(times)
        old_weights = np.interp(times, self._times, self._weight_sums)
        merged = actions.copy()
        weights = np.full(times.size, new_weight)
        merged[inside] = ((old_values[inside] * old_weights[inside, None] + actions[inside] * new_weight)
                          / (old_weights[inside, None] + new_weight))
        weights[inside] = old_weights[inside] + new_weight
        keep_old = self._times < times[0] - 1e-9
        self._set(np.concatenate([self._times[keep_old], times]),
                  np.concatenate([self._actions[keep_old], merged]),
                  np.concatenate([self._weight_sums[keep_old], weights]))

    def _drop_before(self, t: float) -> None:
        """Forget actions before ``t`` but keep the last one before it (to interpolate from)."""
        before = int(np.searchsorted(self._times, t, side="right")) - 1
        if before > 0:
            self._times = self._times[before:]
            self._actions = self._actions[before:]
            self._weight_sums = self._weight_sums[before:]

    def clear(self) -> None:
        with self._lock:
            self._set(np.empty(0), np.empty((0, 0)), np.empty(0))
            self._chunk_count = 0

    # --- reading ----------------------------------------------------------------------
    def at(self, t: float) -> np.ndarray | None:
        """The planned action at time ``t`` (interpolated), or None when the plan has run out.

        Before the first planned action the first one is returned (the nearest target).
        """
        with self._lock:
            if self._times.size == 0 or t > self._times[-1] + 1e-9:
                return None
            return np.array([np.interp(t, self._times, self._actions[:, j]) for j in range(self._actions.shape[1])])

    def remaining(self, t: float) -> int:
        """Planned actions at or after ``t`` (the queue depth)."""
        with self._lock:
            return int(self._times.size - np.searchsorted(self._times, t - 1e-9, side="left"))

    def remaining_time(self, t: float) -> float:
        with self._lock:
            return float(self._times[-1] - t) if self._times.size else -np.inf

    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """Times and actions of the whole plan (with the last action before now, which commands interpolate from)."""
        with self._lock:
            return self._times.copy(), self._actions.copy()

    def upcoming(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Times and actions of the plan strictly after ``t``."""
        with self._lock:
            start = int(np.searchsorted(self._times, t + 1e-9, side="left"))
            return self._times[start:].copy(), self._actions[start:].copy()
