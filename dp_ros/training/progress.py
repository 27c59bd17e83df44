"""Progress of a LeRobot training run, read from the events its entry point prints.

``dp_ros.training.lerobot_entry`` prints one JSON object per line after
``EVENT_PREFIX``: ``started`` and ``ended`` (every rank, with its pid and how it
ended), ``step`` (the main rank: step, loss, learning rate, throughput) and
``checkpoint`` (the main rank, once a checkpoint is complete). ``ProgressTracker``
turns them into ``TrainingProgress`` snapshots and keeps the ranks' fates, so a
failure names the rank that failed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from dp_ros.training.lerobot_entry import EVENT_PREFIX

STATES = ("idle", "starting", "training", "finished", "stopped", "failed")


@dataclass(frozen=True)
class TrainingProgress:
    """A snapshot of a training run, as TrainingStatus publishes it."""

    state: str = "idle"
    """idle, starting, training, finished, stopped or failed."""
    step: int = 0
    """Optimisation steps done (absolute, also when resuming)."""
    total_steps: int = 0
    """Optimisation steps requested."""
    loss: float = math.nan
    """Training loss averaged over the steps since the previous update (the main process's share of the batch)."""
    learning_rate: float = math.nan
    """Learning rate at the newest step."""
    grad_norm: float = math.nan
    """Gradient norm at the newest step."""
    samples_per_second: float = math.nan
    """Training throughput of all processes together since the previous update."""
    eta_seconds: float = math.nan
    """Estimated time left."""
    checkpoint_path: str = ""
    """The newest complete checkpoint (a pretrained_model/ folder), empty if none yet."""
    checkpoint_step: int = 0
    """The step of that checkpoint."""
    message: str = ""
    """What happened, in words."""

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


def parse_event(line: str) -> dict[str, Any] | None:
    """The event of a trainer output line, None for any other line."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


@dataclass
class RankFate:
    """What one training process reported."""

    pid: int
    state: str = "running"
    """running (no end reported yet), finished, stopped or failed."""
    error: str = ""


@dataclass
class Ranks:
    """The training processes of this machine, by global rank, as their events describe them."""

    world_size: int = 0
    by_rank: dict[int, RankFate] = field(default_factory=dict)

    def pid(self, rank: int) -> int | None:
        fate = self.by_rank.get(rank)
        return fate.pid if fate else None

    def running_pids(self) -> list[int]:
        return [f.pid for f in self.by_rank.values() if f.state == "running"]

    def any_stopped(self) -> bool:
        return any(f.state == "stopped" for f in self.by_rank.values())

    def failure(self) -> str:
        """Which rank failed and how, in words ("" when no rank is known to have failed).

        A rank that ended without a word (killed by a signal, e.g. out of memory) is the likely
        cause when the others failed after it; then the first rank that reported an error.
        """
        of = f" of {self.world_size}" if self.world_size > 1 else ""
        silent = [r for r, f in sorted(self.by_rank.items()) if f.state == "running"]
        failed = [(r, f) for r, f in self.by_rank.items() if f.state == "failed"]
        parts = [f"rank {r}{of} (pid {self.by_rank[r].pid}) ended without reporting why (killed by a signal, e.g. "
                 "the out-of-memory killer?)" for r in silent]
        if failed:
            rank, fate = failed[0]
            parts.append(f"rank {rank}{of} failed: {fate.error}")
        return "; ".join(parts)


class ProgressTracker:
    """Turns trainer events into TrainingProgress snapshots (ETA from the step rate on ``clock``)."""

    def __init__(self, total_steps: int, initial_step: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.ranks = Ranks()
        self._first: tuple[float, int] | None = None
        self.progress = TrainingProgress(state="starting", step=initial_step, total_steps=total_steps,
                                         message="trainer starting: loading LeRobot, the dataset and the model")

    def feed(self, event: dict[str, Any]) -> bool:
        """Take one event; True when the progress changed."""
        before = self.progress
        kind = event.get("event")
        if kind == "started":
            self.ranks.world_size = int(event.get("world_size", 1))
            self.ranks.by_rank[int(event["rank"])] = RankFate(pid=int(event["pid"]))
        elif kind == "ended":
            fate = self.ranks.by_rank.setdefault(int(event["rank"]), RankFate(pid=0))
            fate.state, fate.error = str(event.get("state", "failed")), str(event.get("error", ""))
        elif kind == "step":
            self._on_step(event)
        elif kind == "checkpoint":
            step = int(event["step"])
            self.progress = replace(self.progress, checkpoint_path=str(event["path"]), checkpoint_step=step,
                                    message=f"checkpoint of step {step} saved")
        return self.progress != before

    def _on_step(self, event: dict[str, Any]) -> None:
        p = self.progress
        step, now = int(event["step"]), self.clock()
        eta = p.eta_seconds
        if self._first is None:
            self._first = (now, step)
        elif step > self._first[1] and now > self._first[0]:
            rate = (step - self._first[1]) / (now - self._first[0])
            eta = max(0, p.total_steps - step) / rate
        if step >= p.total_steps:
            eta = 0.0
        self.progress = replace(p, state="training", step=step, eta_seconds=eta,
                                loss=_number(event.get("loss")), learning_rate=_number(event.get("lr")),
                                grad_norm=_number(event.get("grad_norm")),
                                samples_per_second=_number(event.get("samples_per_second")),
                                message=p.message if p.state == "training" else "training")

    def finish(self, state: str, message: str) -> TrainingProgress:
        done = state == "finished"  # also on the other machines of a multi-machine run, which see no steps
        self.progress = replace(self.progress, state=state, message=message,
                                step=self.progress.total_steps if done else self.progress.step,
                                eta_seconds=0.0 if done else self.progress.eta_seconds)
        return self.progress


class StepLines:
    """When to write a progress line: a new step, at most every ``interval`` seconds, and always the last step."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._step = -1
        self._time = -math.inf

    def due(self, progress: TrainingProgress) -> bool:
        if progress.state != "training" or progress.step <= self._step:
            return False
        now = self.clock()
        if now - self._time < self.interval and progress.step < progress.total_steps:
            return False
        self._step, self._time = progress.step, now
        return True


def format_step_line(p: TrainingProgress) -> str:
    """One line of progress: step, loss, learning rate, throughput, ETA."""
    return (f"step {p.step}/{p.total_steps} loss {p.loss:.4f} lr {p.learning_rate:.1e} "
            f"{p.samples_per_second:.1f} samples/s ETA {format_duration(p.eta_seconds)}")


def format_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:d}:{rest % 60:02d}"


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
