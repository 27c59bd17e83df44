"""What the policy plans, as ROS topics of the policy node (part of policy_node, not a node of its own).

- ``~/plan`` (trajectory_msgs/JointTrajectory): the plan being executed, every time it changes (a chunk joins
  it; an empty trajectory when it is forgotten by stop, reset, watchdog or fault). Its header stamp is the
  time of its first action; each point is due at stamp + time_from_start.
- ``~/chunks`` (dp_ros_msgs/PolicyChunk): each chunk as it joined the plan, with its observation stamp, compute
  time, pinned span and late actions.
- ``~/safety_interventions`` (dp_ros_msgs/SafetyIntervention): each command the safety filter changed, and
  each command that brought the arm to rest.

Parameter ``publish_plan``: ``on_demand`` (default) builds and sends a message only while someone subscribes
to its topic, ``always`` sends them regardless (for a bag recorder that subscribes late), ``off`` creates none
of these topics. Messages are built and sent in a thread of their own; the command loop only compares four
counters per command and hands over the rare intervention.
"""
from __future__ import annotations

import queue
import threading

import numpy as np

from dp_ros.conversions.plan import Intervention, chunk_message, intervention_message, plan_message
from dp_ros.core.choices import PlanPublishing, values
from dp_ros.core.command_shaping import Command
from dp_ros.core.plan_events import ChunkRecord

PUBLISH_PLAN_MODES = values(PlanPublishing)
PLAN_TOPIC, CHUNKS_TOPIC, INTERVENTIONS_TOPIC = "~/plan", "~/chunks", "~/safety_interventions"


class PlanPublisher:
    """Publishes the controller's plan events on behalf of ``node`` (see the module docstring)."""

    def __init__(self, node, controller, joint_names: list[str], mode: str, qos_depth: int = 10):
        if mode not in PUBLISH_PLAN_MODES:
            raise ValueError(f"publish_plan must be one of {', '.join(PUBLISH_PLAN_MODES)}; got {mode!r}")
        self.mode = mode
        self.controller = controller
        self.joint_names = list(joint_names)
        self.published = {"plan": 0, "chunks": 0, "interventions": 0}
        if mode == PlanPublishing.OFF:
            return
        from trajectory_msgs.msg import JointTrajectory

        from dp_ros_msgs.msg import PolicyChunk, SafetyIntervention

        self.clock = controller.clock
        self._plan_pub = node.create_publisher(JointTrajectory, PLAN_TOPIC, qos_depth)
        self._chunk_pub = node.create_publisher(PolicyChunk, CHUNKS_TOPIC, qos_depth)
        self._intervention_pub = node.create_publisher(SafetyIntervention, INTERVENTIONS_TOPIC, qos_depth)
        self._counters = self._counter_values()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dp_ros_plan_publisher", daemon=True)
        self._thread.start()
        controller.add_chunk_listener(lambda record: self._queue.put(("chunk", record)))
        controller.add_plan_cleared_listener(lambda: self._queue.put(("cleared", None)))

    def _wanted(self, publisher) -> bool:
        return self.mode == PlanPublishing.ALWAYS or publisher.get_subscription_count() > 0

    def _counter_values(self) -> tuple[int, int, int, int]:
        counters, stats = self.controller.safety.counters, self.controller.stats
        return (counters.position_clamps, counters.velocity_clamps, counters.acceleration_clamps, stats.stop_commands)

    # --- called by the command loop after each published command -----------------------------
    def on_command(self, command: Command) -> None:
        """Note ``command`` (just published): if the safety filter changed it, or it stops the arm, hand it to
        the publishing thread."""
        if self.mode == PlanPublishing.OFF:
            return
        counters = self._counter_values()
        if counters == self._counters:
            return
        changed = [a != b for a, b in zip(counters, self._counters)]
        self._counters = counters
        kinds = tuple(name for name, hit in zip(("position", "velocity", "acceleration", "stop"), changed) if hit)
        if self._wanted(self._intervention_pub):
            # the plan the command was shaped from (a deactivate or reset may have discarded it since)
            self._queue.put(("intervention", (command, kinds, self.controller.command_plan)))

    # --- the publishing thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            kind, payload = self._queue.get()
            if kind == "close":
                return
            try:
                if kind == "chunk":
                    self._publish_chunk(payload)
                elif kind == "cleared" and self._wanted(self._plan_pub):
                    self._plan_pub.publish(plan_message(self.joint_names, [], None, self.clock()))
                    self.published["plan"] += 1
                elif kind == "intervention":
                    self._publish_intervention(*payload)
            except Exception as exc:  # noqa: BLE001 - a view's topic must never take the node down
                self.controller.log("warn", f"could not publish the plan's {kind}: {exc}")

    def _publish_chunk(self, record: ChunkRecord) -> None:
        if self._wanted(self._chunk_pub):
            self._chunk_pub.publish(chunk_message(record, self.joint_names))
            self.published["chunks"] += 1
        if self._wanted(self._plan_pub):
            self._plan_pub.publish(plan_message(self.joint_names, record.plan_times, record.plan_actions,
                                                record.merged_at))
            self.published["plan"] += 1

    def _publish_intervention(self, command: Command, kinds: tuple[str, ...], plan) -> None:
        due = command.stamp + np.asarray(command.times_from_start)
        if plan is not None and len(plan[0]):  # past its end the plan holds its last action (so does the command)
            times, actions = plan
            planned_array = np.stack([np.interp(due, times, actions[:, j]) for j in range(actions.shape[1])], axis=1)
        else:  # a stop command: no plan behind it
            planned_array = np.empty((0, len(self.joint_names)))
        intervention = Intervention(command.stamp, kinds, command.times_from_start, planned_array,
                                    np.asarray(command.positions))
        self._intervention_pub.publish(intervention_message(intervention, self.joint_names))
        self.published["interventions"] += 1

    def publishers(self) -> list:
        """The topics' publishers (for their node to destroy after :meth:`close`)."""
        return [] if self.mode == "off" else [self._plan_pub, self._chunk_pub, self._intervention_pub]

    def close(self) -> None:
        if self.mode != PlanPublishing.OFF:
            self._queue.put(("close", None))
            self._thread.join(timeout=2.0)
