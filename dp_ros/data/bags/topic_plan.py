"""Which bag topic feeds which dataset feature, and whether a bag has them all in a form we can decode."""
from __future__ import annotations

from dataclasses import dataclass

from dp_ros.data.bags.bag_reader import BagError, BagReader
from dp_ros.data.bags.conversion_options import ConversionError, ConversionOptions
from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE, RobotInterface

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
COMMAND_TYPES = ("trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Float64MultiArray", JOINT_STATE_TYPE)


@dataclass(frozen=True)
class StreamPlan:
    name: str
    """The stream's name: the LeRobot feature it feeds."""
    topic: str
    accepted_types: tuple[str, ...]
    what: str
    """In words, for error messages."""

    @property
    def is_command(self) -> bool:
        """Commands may carry a zero header stamp (then their receive time is used)."""
        return self.accepted_types == COMMAND_TYPES


@dataclass(frozen=True)
class TopicPlan:
    streams: tuple[StreamPlan, ...]
    action_source: str
    split_topic: str
    split: str = "bag"
    """How episodes are delimited: ``bag``, ``marker`` or ``gap``; ``auto`` until resolved for a bag."""

    def for_bag(self, bag: BagReader) -> "TopicPlan":
        """This plan for one bag: ``auto`` becomes ``marker`` when the bag has the marker topic, else ``bag``."""
        if self.split != "auto":
            return self
        if self.split_topic in bag.topics:
            return TopicPlan(self.streams, self.action_source, self.split_topic, "marker")
        return TopicPlan(self.streams, self.action_source, "", "bag")

    @property
    def topics(self) -> list[str]:
        topics = [s.topic for s in self.streams]
        return topics + ([self.split_topic] if self.split_topic else [])


def plan_topics(robot: RobotInterface, options: ConversionOptions) -> TopicPlan:
    unknown = sorted(set(options.camera_topics) - {c.name for c in robot.cameras})
    if unknown:
        raise ConversionError(f"camera topic given for {unknown}, but the robot interface has cameras "
                              f"{[c.name for c in robot.cameras]}")
    streams = [StreamPlan(STATE_FEATURE, options.joint_state_topic or robot.joint_state_topic, (JOINT_STATE_TYPE,),
                          "joint states")]
    for cam in robot.cameras:
        streams.append(StreamPlan(cam.feature, options.camera_topics.get(cam.name, cam.topic), IMAGE_TYPES,
                                  f"camera {cam.name!r}"))
    source = options.action_source or robot.action.source
    if source == "leader":
        topic = options.action_topic or robot.action.topic
        if not topic:
            raise ConversionError("action source 'leader' needs the leader arm's JointState topic (--action-topic)")
        streams.append(StreamPlan(ACTION_FEATURE, topic, (JOINT_STATE_TYPE,), "action (leader joint states)"))
    elif source == "command":
        streams.append(StreamPlan(ACTION_FEATURE, options.action_topic or robot.command.topic, COMMAND_TYPES,
                                  "action (commands)"))
    split_topic = options.split_topic if options.split in ("marker", "auto") else ""
    return TopicPlan(tuple(streams), source, split_topic, options.split)


def check_bag(bag: BagReader, plan: TopicPlan) -> None:
    """Raise BagError naming every needed topic that is absent, empty, of the wrong type or not decodable.

    Only the needed topics are looked at: whatever else the bag holds does not matter.
    """
    if bag.message_count == 0:
        raise BagError(f"{bag.path}: the bag holds no messages")
    problems = []
    for stream in plan.streams:
        info = bag.topics.get(stream.topic)
        if info is None:
            problems.append(f"no topic {stream.topic} ({stream.what})")
        elif info.msgtype not in stream.accepted_types:
            problems.append(f"topic {stream.topic} ({stream.what}) has type {info.msgtype or 'unknown'}, "
                            f"expected {' or '.join(stream.accepted_types)}")
        elif info.count == 0:
            problems.append(f"topic {stream.topic} ({stream.what}) has no messages")
    plan = plan.for_bag(bag)
    if plan.split == "marker" and plan.split_topic not in bag.topics:
        problems.append(f"no marker topic {plan.split_topic}")
    if problems:
        listing = ", ".join(f"{name} [{info.msgtype}]" for name, info in sorted(bag.topics.items()))
        raise BagError(f"{bag.path}: " + "; ".join(problems) + f". The bag has: {listing}. Map topics with "
                       "--joint-state-topic, --camera-topic NAME=TOPIC or --action-topic, or fix the robot interface.")
    for topic in plan.topics:
        bag.decoder(topic)  # BagError naming the topic and its type when it cannot be decoded
