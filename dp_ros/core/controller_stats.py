"""What the policy controller counts (the node reports it in PolicyStatus and /diagnostics). ROS-free."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Stats:
    chunks_produced: int = 0
    actions_dropped_late: int = 0
    commands_published: int = 0
    watchdog_trips: int = 0
    inference_errors: int = 0
    queue_underruns: int = 0
    stop_commands: int = 0
    last_inference_time: float = 0.0
    total_inference_time: float = 0.0
    worst_publish_delay: float = 0.0
    """Longest time from computing a command to its leaving the process (seconds)."""
    late_commands_withdrawn: int = 0
    """Commands not sent because they were ready too long after they were computed (see ``confirm``)."""
    chunks_discarded: int = 0
    """Chunks computed from observations older than the last stop, reset, fault or watchdog recovery: never
    executed, never used as guidance."""

    @property
    def mean_inference_time(self) -> float:
        return self.total_inference_time / self.chunks_produced if self.chunks_produced else 0.0
