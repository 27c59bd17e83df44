"""The policy controller's state machine: one state enum, one transition table. ROS-free.

::

    event \\ phase   IDLE        WARMING_UP  RUNNING     STALLED     STOPPED     FAULT
    start           WARMING_UP  -           -           -           WARMING_UP  WARMING_UP
    ready           .           RUNNING     .           .           .           .
    stale           .           STALLED     STALLED     -           .           .
    fresh           .           .           .           WARMING_UP  .           .
    reset           -           WARMING_UP  WARMING_UP  WARMING_UP  -           -
    stop            STOPPED     STOPPED     STOPPED     STOPPED     -           STOPPED
    fault           FAULT       FAULT       FAULT       FAULT       FAULT       -

``-``: the event changes nothing in that phase (asked for, but already true); ``.``: the event cannot happen in
that phase (a bug if it does: :func:`next_phase` raises). Events:

- ``start``, ``stop``, ``reset``: the node's services (and the lifecycle's activate / deactivate);
- ``ready``: the first command of a plan made from a full, fresh history;
- ``stale``: the watchdog found an input older than its timeout;
- ``fresh``: every input is fresh again and the history is full (after ``stale``);
- ``fault``: inference failed, or the node found a fault.

Leaving WARMING_UP, RUNNING or STALLED for any phase but RUNNING *discards the plan and any chunk being
computed* (the controller starts a new epoch, see PolicyController._enter): a chunk whose observation
predates the epoch is never executed and never guides another. Leaving RUNNING also brings the arm to rest
(the controller's single stop path, PolicyController._stop_command). ``reset`` additionally forgets what was
sent, so the next command starts from the measured position.

Every phase reports one of the PolicyStatus codes (:class:`State`; STALLED reports STOPPED, with the watchdog's
reason).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class State(enum.IntEnum):
    """The status codes of dp_ros_msgs/PolicyStatus (values match the message's constants)."""

    IDLE = 0
    WARMING_UP = 1
    RUNNING = 2
    STOPPED = 3
    FAULT = 4


class Phase(enum.Enum):
    """What the controller is doing."""

    IDLE = "idle"
    """Not started: no commands."""
    WARMING_UP = "warming_up"
    """Started: waiting for a full, fresh observation history and the first chunk made from it."""
    RUNNING = "running"
    """Commanding from the plan."""
    STALLED = "stalled"
    """The watchdog stopped commanding: an input went silent. Waits for fresh data, then warms up again."""
    STOPPED = "stopped"
    """Stopped on request; start resumes."""
    FAULT = "fault"
    """Stopped by a failure; start resumes."""

    @property
    def status(self) -> State:
        return State.STOPPED if self is Phase.STALLED else State[self.name]

    @property
    def commanding(self) -> bool:
        """The phases in which the controller plans (requests and merges chunks)."""
        return self in (Phase.WARMING_UP, Phase.RUNNING)


class Event(enum.Enum):
    START = "start"
    READY = "ready"
    STALE = "stale"
    FRESH = "fresh"
    RESET = "reset"
    STOP = "stop"
    FAULT = "fault"


P, E = Phase, Event
TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (P.IDLE, E.START): P.WARMING_UP, (P.IDLE, E.RESET): P.IDLE, (P.IDLE, E.STOP): P.STOPPED,
    (P.IDLE, E.FAULT): P.FAULT,
    (P.WARMING_UP, E.START): P.WARMING_UP, (P.WARMING_UP, E.READY): P.RUNNING, (P.WARMING_UP, E.STALE): P.STALLED,
    (P.WARMING_UP, E.RESET): P.WARMING_UP, (P.WARMING_UP, E.STOP): P.STOPPED, (P.WARMING_UP, E.FAULT): P.FAULT,
    (P.RUNNING, E.START): P.RUNNING, (P.RUNNING, E.STALE): P.STALLED, (P.RUNNING, E.RESET): P.WARMING_UP,
    (P.RUNNING, E.STOP): P.STOPPED, (P.RUNNING, E.FAULT): P.FAULT,
    (P.STALLED, E.START): P.STALLED, (P.STALLED, E.STALE): P.STALLED, (P.STALLED, E.FRESH): P.WARMING_UP,
    (P.STALLED, E.RESET): P.WARMING_UP, (P.STALLED, E.STOP): P.STOPPED, (P.STALLED, E.FAULT): P.FAULT,
    (P.STOPPED, E.START): P.WARMING_UP, (P.STOPPED, E.RESET): P.STOPPED, (P.STOPPED, E.STOP): P.STOPPED,
    (P.STOPPED, E.FAULT): P.FAULT,
    (P.FAULT, E.START): P.WARMING_UP, (P.FAULT, E.RESET): P.FAULT, (P.FAULT, E.STOP): P.STOPPED,
    (P.FAULT, E.FAULT): P.FAULT,
}
"""(phase, event) -> next phase; a pair not listed cannot happen (see the module docstring's table)."""
del P, E


class InvalidTransition(RuntimeError):
    """An event that cannot happen in the current phase: a bug in the controller, never bad input."""


def next_phase(phase: Phase, event: Event) -> Phase:
    """The phase after ``event`` in ``phase`` (see the module docstring)."""
    try:
        return TRANSITIONS[(phase, event)]
    except KeyError:
        raise InvalidTransition(f"{event.value} cannot happen while {phase.value}") from None


@dataclass
class ChunkTicket:
    """A requested chunk: the epoch it belongs to, and the delay it was sampled to expect."""

    epoch: int
    expected_delay: float = 0.0


@dataclass(frozen=True)
class PendingStop:
    """A stop the next step carries out (:meth:`PolicyController._stop_command`)."""

    brake: bool
    """Send the command that brings the arm to rest (it may be moving)."""
    forget: bool
    """Then forget what was sent: the next command starts from the measured position (after a reset)."""
    measured: tuple | None = None
    """The newest joint state (positions, stamp) when the stop was asked for, for a stop after the history was
    cleared (a reset)."""
