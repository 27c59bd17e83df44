"""PolicyStatus and diagnostic_msgs from the policy controller's state."""
from __future__ import annotations

from dataclasses import dataclass

from dp_ros.core.policy_controller import State


@dataclass(frozen=True)
class PolicySnapshot:
    """Everything PolicyStatus reports, gathered by the node."""

    state: State
    reason: str
    last_inference_time: float
    mean_inference_time: float
    queue_depth: int
    newest_observation_age: float
    chunks_produced: int
    actions_dropped_late: int
    inference_errors: int
    queue_underruns: int
    commands_published: int
    command_rate: float
    stop_commands: int
    position_clamps: int
    velocity_clamps: int
    acceleration_clamps: int
    nonfinite_rejections: int
    self_check_failures: int
    watchdog_trips: int
    watchdog_timeout: float
    worst_publish_delay: float = 0.0
    """Longest time from computing a command to sending it (kept in reserve by the safety filter)."""
    late_commands_withdrawn: int = 0
    """Commands not sent because they were ready too long after they were computed."""
    expected_chunk_delay: float = 0.0
    """Seconds from observation to merge the next chunk is expected to take (the pinned span of guided)."""
    late_chunks: int = 0
    """Chunks that arrived later than expected (delay outliers: joined to the plan by a cross-fade)."""
    last_late_chunk_delay: float = 0.0
    """Seconds from observation to merge of the latest of them."""
    chunks_discarded: int = 0
    """Chunks computed from observations older than the last stop, reset, fault or watchdog recovery."""
    future_stamps_refused: int = 0
    """Sensor samples not used because they were stamped too far after their arrival (a clock ahead)."""
    stop_steps: int = 0
    """Step commands sent to bring a stream of steps to rest within the acceleration limits."""
    speed_warning: str = ""
    """Set when a chunk takes longer than the plan gives it (dp_ros.core.speed_check): what happens, what to change."""
    last_chunk_sampler: str = ""
    """Sampler and steps of the newest chunk (``ddim x4``); a live change shows here from the next chunk on."""
    transition_in_force: str = ""
    """How new chunks join the plan (the live parameter transition, as taken at the last chunk request)."""
    velocity_scale_in_force: float = 1.0
    """The fraction of the velocity and acceleration limits in force (a lowered velocity_scale eases down to it)."""


COUNTERS = ("chunks_produced", "actions_dropped_late", "inference_errors", "queue_underruns", "commands_published",
            "stop_commands", "position_clamps", "velocity_clamps", "acceleration_clamps", "nonfinite_rejections",
            "self_check_failures", "watchdog_trips")


def policy_status_msg(snapshot: PolicySnapshot, stamp=None):
    from dp_ros_msgs.msg import PolicyStatus

    msg = PolicyStatus()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.state = int(snapshot.state)
    msg.state_name = snapshot.state.name.lower()
    msg.reason = snapshot.reason
    msg.last_inference_time = float(snapshot.last_inference_time)
    msg.mean_inference_time = float(snapshot.mean_inference_time)
    msg.queue_depth = int(snapshot.queue_depth)
    age = snapshot.newest_observation_age
    msg.newest_observation_age = float(age) if age != float("inf") else -1.0
    for name in COUNTERS:
        setattr(msg, name, int(getattr(snapshot, name)))
    msg.command_rate = float(snapshot.command_rate)
    msg.watchdog_timeout = float(snapshot.watchdog_timeout)
    return msg


def policy_diagnostics_msg(node_name: str, snapshot: PolicySnapshot, stamp=None):
    """A DiagnosticArray with one status for the policy node (OK / WARN / ERROR)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    level = {State.RUNNING: DiagnosticStatus.OK, State.IDLE: DiagnosticStatus.OK,
             State.WARMING_UP: DiagnosticStatus.OK, State.STOPPED: DiagnosticStatus.WARN,
             State.FAULT: DiagnosticStatus.ERROR}[snapshot.state]
    message = f"{snapshot.state.name.lower()}: {snapshot.reason}"
    if snapshot.speed_warning and level == DiagnosticStatus.OK:
        level, message = DiagnosticStatus.WARN, f"{message}; too slow: {snapshot.speed_warning}"
    status = DiagnosticStatus(level=level, name=f"{node_name}: diffusion policy", hardware_id="dp_ros",
                              message=message)
    values = {
        "last_inference_time_s": f"{snapshot.last_inference_time:.4f}",
        "mean_inference_time_s": f"{snapshot.mean_inference_time:.4f}",
        "queue_depth": str(snapshot.queue_depth),
        "newest_observation_age_s": f"{snapshot.newest_observation_age:.3f}",
        "command_rate_hz": f"{snapshot.command_rate:.2f}",
        "watchdog_timeout_s": f"{snapshot.watchdog_timeout:.3f}",
        "worst_publish_delay_s": f"{snapshot.worst_publish_delay:.4f}",
        "late_commands_withdrawn": str(snapshot.late_commands_withdrawn),
        "expected_chunk_delay_s": f"{snapshot.expected_chunk_delay:.3f}",
        "late_chunks": str(snapshot.late_chunks),
        "last_late_chunk_delay_s": f"{snapshot.last_late_chunk_delay:.3f}",
        "chunks_discarded": str(snapshot.chunks_discarded),
        "future_stamps_refused": str(snapshot.future_stamps_refused),
        "stop_steps": str(snapshot.stop_steps),
        "speed_warning": snapshot.speed_warning,
        "last_chunk_sampler": snapshot.last_chunk_sampler,
        "transition": snapshot.transition_in_force,
        "velocity_scale": f"{snapshot.velocity_scale_in_force:.4f}",
        **{name: str(getattr(snapshot, name)) for name in COUNTERS},
    }
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    array = DiagnosticArray(status=[status])
    if stamp is not None:
        array.header.stamp = stamp
    return array
