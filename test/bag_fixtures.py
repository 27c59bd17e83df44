"""Real rosbag2 bags written with ``rosbags`` (sqlite3 or MCAP) for the conversion tests and benchmark.

Every value is a known function of the message's stamp or index, so a test can
compute which message each frame must have taken: joint positions are
``state_value(stamp, joint)``, the leader's ``leader_value(stamp, joint)``, and
camera frames are uniform colours (R = level, G = 255 - level, B = 60) whose
``level`` is ``image_level(index)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from dp_ros.data.frame_sync import SAME_TIME
from dp_ros.robot_interface import RobotInterface

CAMERA_FORMATS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "jpeg", "png")


def state_value(stamp: float, joint: int) -> float:
    return 0.5 * math.sin(1.3 * stamp + joint)


def leader_value(stamp: float, joint: int) -> float:
    return 0.5 * math.sin(1.3 * stamp + joint) + 0.05


def image_level(index: int) -> int:
    return 16 + (index * 24) % 216


@dataclass
class BagSpec:
    seconds: float = 2.0
    start: float = 1_000.0
    """Header stamp of the first message, seconds."""
    state_rate: float = 50.0
    camera_rate: float = 15.0
    leader_rate: float = 50.0
    camera_formats: dict[str, str] = field(default_factory=dict)
    """Camera name -> one of CAMERA_FORMATS (default rgb8)."""
    image_size: tuple[int, int] = (64, 48)
    """Width, height of the recorded images."""
    joint_order: Sequence[str] | None = None
    """Joint names in the order the JointState messages list them (default: reversed, plus an extra joint)."""
    receive_delay: float = 0.004
    """Receive (bag) time minus header stamp."""
    camera_receive_delay: float = 0.02
    omit_topics: Sequence[str] = ()
    camera_gaps: Sequence[tuple[float, float]] = ()
    """(from, to) seconds after start during which the cameras publish nothing."""
    header_offsets: dict[str, float] = field(default_factory=dict)
    """Topic -> seconds added to its header stamps (a wrong clock)."""
    markers: Sequence[tuple[float, bool]] = ()
    """(seconds after start, value) std_msgs/Bool messages on /episode_marker."""
    pauses: Sequence[tuple[float, float]] = ()
    """(from, to) seconds after start during which nothing at all is published."""
    encoding_override: str | None = None
    """Write this encoding string into Image messages (to test unsupported encodings)."""
    command_rate: float = 0.0
    """Rate of JointTrajectory commands on the robot's command topic (positions leader_value, zero
    header stamp, joints reversed); 0 = none."""
    marker_definition: str | None = None
    """Write the markers as the custom type CUSTOM_MARKER_TYPE, storing this text as its definition
    (None: std_msgs/Bool). The data is always serialized with CUSTOM_MARKER_DEFINITION."""
    foreign: Sequence["ForeignTopic"] = ()
    """Topics copied from another bag (see foreign_topics), written beside the robot's."""


CUSTOM_MARKER_TYPE = "dp_test_msgs/msg/EpisodeEvent"
CUSTOM_MARKER_DEFINITION = "string note\nbool data\n"


@dataclass
class ForeignTopic:
    """A topic of another bag: its type, the definition that bag stores ("" if none) and its raw messages."""

    topic: str
    msgtype: str
    definition: str
    digest: str
    """The type's hash (RIHS01) as that bag stores it ("" if none)."""
    messages: list[tuple[float, bytes]]
    """(seconds after that bag's first message, serialized message)."""


def foreign_topics(bag: Path) -> list[ForeignTopic]:
    """Every topic of a real bag folder (one storage file), raw, with the definitions it stores."""
    from rosbags.rosbag2 import Reader

    (storage,) = [p for p in Path(bag).iterdir() if p.suffix in (".mcap", ".db3")]
    reader = Reader(storage)
    reader.open()
    try:
        topics = {c.topic: ForeignTopic(c.topic, c.msgtype, c.msgdef.data or "", c.digest or "", [])
                  for c in reader.connections}
        for connection, timestamp, raw in reader.messages():
            topics[connection.topic].messages.append(((timestamp - reader.start_time) / 1e9, bytes(raw)))
    finally:
        reader.close()
    return list(topics.values())


@dataclass
class Published:
    """What was written on one topic: header stamps and receive times in seconds (as a reader computes
    them from the stored nanoseconds; 0.0 for no header or a zero stamp), image levels."""

    header: list[float] = field(default_factory=list)
    receive: list[float] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    """Camera topics: the image level of each message."""


def _times(spec: BagSpec, rate: float, phase: float, gaps: Sequence[tuple[float, float]] = ()) -> list[tuple[int, float]]:
    count = int(spec.seconds * rate)
    out = []
    for i in range(count):
        rel = phase + i / rate
        if any(a <= rel < b for a, b in list(gaps) + list(spec.pauses)):
            continue
        out.append((i, spec.start + rel))
    return out


def _image_pixels(fmt: str, level: int, width: int, height: int) -> tuple[str, np.ndarray]:
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = level, 255 - level, 60
    if fmt == "rgb8":
        return fmt, rgb
    if fmt == "bgr8":
        return fmt, rgb[..., ::-1].copy()
    if fmt == "rgba8":
        return fmt, np.dstack([rgb, np.full((height, width), 255, np.uint8)])
    if fmt == "bgra8":
        return fmt, np.dstack([rgb[..., ::-1], np.full((height, width), 255, np.uint8)])
    if fmt == "mono8":
        return fmt, np.full((height, width), level, dtype=np.uint8)
    raise ValueError(fmt)


def write_bag(path: Path, robot: RobotInterface, storage: str = "sqlite3", spec: BagSpec | None = None,
              leader_topic: str | None = None, compression: str = "", writer: str = "rosbags") -> dict[str, Published]:
    """Write a bag of joint states, leader joint states and cameras for ``robot``; returns what was published.

    ``writer``: ``rosbags`` (a rosbag2 folder in ``storage`` format, compressed with zstd per file or per
    message as rosbag2 does when ``compression`` is ``file`` or ``message``) or ``mcap`` (the ``mcap``
    library's writer with its defaults, zstd-compressed chunks: a folder holding one .mcap file and no
    metadata.yaml).
    """
    from rosbags.typesys import Stores, get_typestore

    spec = spec or BagSpec()
    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    joint_order = list(spec.joint_order) if spec.joint_order is not None else list(reversed(robot.joint_names)) + ["extra_joint"]
    leader_topic = leader_topic or robot.action.topic
    published: dict[str, Published] = {}
    records: list[tuple[int, str, str, object]] = []

    def header(topic: str, stamp: float):
        stamp += spec.header_offsets.get(topic, 0.0)
        ns = int(round(stamp * 1e9))
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                        frame_id="base")

    def add(topic: str, msgtype: str, stamp: float, receive: float, msg: object, level: int = -1,
            stamped: bool = True) -> None:
        """``msg`` may be a function making the message when it is written (images: bounded memory)."""
        # record the times exactly as a reader computes them from the stored nanoseconds
        receive_ns = int(round(receive * 1e9))
        stamp_ns = int(round((stamp + spec.header_offsets.get(topic, 0.0)) * 1e9)) if stamped else 0
        published.setdefault(topic, Published())
        published[topic].header.append(float(stamp_ns // 10**9) + float(stamp_ns % 10**9) * 1e-9)
        published[topic].receive.append(receive_ns / 1e9)
        published[topic].levels.append(level)
        records.append((receive_ns, topic, msgtype, msg))

    def image_msg(topic: str, stamp: float, level: int, fmt: str) -> object:
        width, height = spec.image_size
        if fmt in ("jpeg", "png"):
            _, rgb = _image_pixels("rgb8", level, width, height)
            ok, encoded = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", rgb[..., ::-1],
                                       [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpeg" else [])
            assert ok
            return T["sensor_msgs/msg/CompressedImage"](header=header(topic, stamp), format=fmt, data=encoded.reshape(-1))
        encoding, pixels = _image_pixels(fmt, level, width, height)
        return T["sensor_msgs/msg/Image"](
            header=header(topic, stamp), height=height, width=width, encoding=spec.encoding_override or encoding,
            is_bigendian=0, step=width * (pixels.shape[2] if pixels.ndim == 3 else 1), data=pixels.reshape(-1))

    def joint_state(topic: str, stamp: float, fn) -> object:
        positions = {name: fn(stamp, k) for k, name in enumerate(robot.joint_names)}
        positions["extra_joint"] = 9.0
        return T["sensor_msgs/msg/JointState"](
            header=header(topic, stamp), name=joint_order,
            position=np.array([positions[n] for n in joint_order], dtype=np.float64),
            velocity=np.zeros(0), effort=np.zeros(0))

    for topic, rate, fn, phase in ((robot.joint_state_topic, spec.state_rate, state_value, 0.003),
                                   (leader_topic, spec.leader_rate, leader_value, 0.007)):
        if topic in spec.omit_topics or not topic:
            continue
        for _, stamp in _times(spec, rate, phase):
            add(topic, "sensor_msgs/msg/JointState", stamp, stamp + spec.receive_delay, joint_state(topic, stamp, fn))

    for cam in robot.cameras:
        if cam.topic in spec.omit_topics:
            continue
        fmt = spec.camera_formats.get(cam.name, "rgb8")
        for index, stamp in _times(spec, spec.camera_rate, 0.011, spec.camera_gaps):
            level = image_level(index)
            receive = stamp + spec.camera_receive_delay
            msgtype = "sensor_msgs/msg/CompressedImage" if fmt in ("jpeg", "png") else "sensor_msgs/msg/Image"
            add(cam.topic, msgtype, stamp, receive, lambda topic=cam.topic, stamp=stamp, level=level, fmt=fmt:
                image_msg(topic, stamp, level, fmt), level)

    if spec.command_rate and robot.command.topic not in spec.omit_topics:
        for _, stamp in _times(spec, spec.command_rate, 0.005):
            names = list(reversed(robot.joint_names))
            point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
                positions=np.array([leader_value(stamp, robot.joint_names.index(n)) for n in names]),
                velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                time_from_start=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=100_000_000))
            zero = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="")
            msg = T["trajectory_msgs/msg/JointTrajectory"](header=zero, joint_names=names, points=[point])
            add(robot.command.topic, "trajectory_msgs/msg/JointTrajectory", stamp, stamp + spec.receive_delay, msg,
                stamped=False)

    definitions: dict[str, tuple[str, str]] = {}
    """Topic -> (definition, type hash) to store instead of the standard ones."""
    if spec.marker_definition is not None:
        custom = _custom_store()
        definitions["/episode_marker"] = (spec.marker_definition, custom.hash_rihs01(CUSTOM_MARKER_TYPE))
    for offset, value in spec.markers:
        stamp = spec.start + offset
        if spec.marker_definition is None:
            add("/episode_marker", "std_msgs/msg/Bool", stamp, stamp, T["std_msgs/msg/Bool"](data=value), stamped=False)
        else:
            event = custom.types[CUSTOM_MARKER_TYPE](note="episode boundary", data=value)
            add("/episode_marker", CUSTOM_MARKER_TYPE, stamp, stamp,
                bytes(custom.serialize_cdr(event, CUSTOM_MARKER_TYPE)), stamped=False)
    for foreign in spec.foreign:
        definitions[foreign.topic] = (foreign.definition, foreign.digest)
        for offset, raw in foreign.messages:
            stamp = spec.start + 0.1 + offset
            add(foreign.topic, foreign.msgtype, stamp, stamp, raw, stamped=False)

    records.sort(key=lambda r: (r[0], r[1]))
    if writer == "mcap":
        _write_with_mcap_library(Path(path), records, ts, definitions)
    else:
        _write_with_rosbags(Path(path), records, ts, storage, compression, definitions)
    return published


def _custom_store():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(CUSTOM_MARKER_DEFINITION, CUSTOM_MARKER_TYPE))
    return store


def _serialized(ts, msg, msgtype: str) -> bytes:
    """``msg``: a message, a function making it, or already serialized bytes."""
    if isinstance(msg, bytes):
        return msg
    return ts.serialize_cdr(msg() if callable(msg) else msg, msgtype)


def _write_with_rosbags(path: Path, records, ts, storage: str, compression: str,
                        definitions: dict[str, tuple[str, str]]) -> None:
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    plugin = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[storage]
    writer = Writer(path, version=9, storage_plugin=plugin)
    if compression:
        writer.set_compression({"file": CompressionMode.FILE, "message": CompressionMode.MESSAGE}[compression],
                               CompressionFormat.ZSTD)
    with writer:
        connections = {}
        for _, topic, msgtype, _ in records:
            if topic in definitions and topic not in connections:
                definition, digest = definitions[topic]
                connections[topic] = writer.add_connection(topic, msgtype, msgdef=definition, rihs01=digest)
            elif topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=ts)
        for receive_ns, topic, msgtype, msg in records:
            writer.write(connections[topic], receive_ns, _serialized(ts, msg, msgtype))


def _write_with_mcap_library(path: Path, records, ts, definitions: dict[str, tuple[str, str]]) -> None:
    from mcap.writer import Writer

    path.mkdir(parents=True)
    with open(path / f"{path.name}_0.mcap", "wb") as stream:
        writer = Writer(stream)
        writer.start(profile="ros2", library="dp_ros tests")
        schemas: dict[str, int] = {}
        channels: dict[str, int] = {}
        for receive_ns, topic, msgtype, msg in records:
            if topic not in channels:
                if msgtype not in schemas:
                    definition = definitions[topic][0] if topic in definitions else ts.generate_msgdef(msgtype, 2)[0]
                    schemas[msgtype] = writer.register_schema(msgtype, "ros2msg", definition.encode())
                channels[topic] = writer.register_channel(topic, "cdr", schemas[msgtype])
            writer.add_message(channels[topic], log_time=receive_ns, data=_serialized(ts, msg, msgtype),
                               publish_time=receive_ns)
        writer.finish()


def expected_pick(stamps: Sequence[float], t: float) -> int | None:
    """Index of the latest stamp at or before t (brute force, for checking the converter; stamps within
    SAME_TIME after t count as at t)."""
    best = None
    for i, s in enumerate(stamps):
        if s <= t + SAME_TIME and (best is None or s >= stamps[best]):
            best = i
    return best


def write_split_bag(path: Path, robot: RobotInterface, storage: str, spec: BagSpec, parts: int = 2,
                    with_metadata: bool = True) -> dict[str, Published]:
    """A bag split into ``parts`` storage files by time, as ``ros2 bag record --max-bag-duration`` leaves it;
    without metadata.yaml when ``with_metadata`` is False (a recording that was killed)."""
    import shutil

    import yaml

    path = Path(path)
    path.mkdir(parents=True)
    suffix = ".db3" if storage == "sqlite3" else ".mcap"
    combined: dict[str, Published] = {}
    metadata = None
    names = []
    for part in range(parts):
        lo, hi = spec.seconds * part / parts, spec.seconds * (part + 1) / parts
        part_spec = BagSpec(**{**spec.__dict__, "pauses": list(spec.pauses) + [(-1e9, lo), (hi, 1e9)]})
        scratch = path.parent / f".{path.name}_part{part}"
        published = write_bag(scratch, robot, storage, part_spec)
        for topic, pub in published.items():
            target = combined.setdefault(topic, Published())
            target.header += pub.header
            target.receive += pub.receive
            target.levels += pub.levels
        name = f"{path.name}_{part}{suffix}"
        shutil.move(str(scratch / f"{scratch.name}{suffix}"), str(path / name))
        names.append(name)
        part_meta = yaml.safe_load((scratch / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        if metadata is None:
            metadata = part_meta
        else:
            counts = {t["topic_metadata"]["name"]: t for t in metadata["topics_with_message_count"]}
            for topic in part_meta["topics_with_message_count"]:
                name_ = topic["topic_metadata"]["name"]
                if name_ in counts:
                    counts[name_]["message_count"] += topic["message_count"]
                else:
                    metadata["topics_with_message_count"].append(topic)
            metadata["message_count"] += part_meta["message_count"]
            end = part_meta["starting_time"]["nanoseconds_since_epoch"] + part_meta["duration"]["nanoseconds"]
            metadata["duration"]["nanoseconds"] = end - metadata["starting_time"]["nanoseconds_since_epoch"]
        shutil.rmtree(scratch)
    metadata["relative_file_paths"] = names
    metadata["files"] = []
    if with_metadata:
        (path / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": metadata}))
    return combined


# --- what a converted dataset must hold ------------------------------------------------
def load_dataset(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/test", root=root)


def expected_frames(streams: dict[str, list[float]], fps: int, tolerance: float, leads: dict[str, float] | None = None,
                    start: float = -math.inf, end: float | None = None):
    """Frame times and, per kept frame, the index each stream takes; plus the number of dropped frames."""
    leads = leads or {}
    period = 1.0 / fps
    firsts = []
    for name, stamps in streams.items():
        if name in leads:
            continue
        fresh = [s for s in stamps if s >= start - tolerance]
        firsts.append(max(fresh[0], start))
    t0 = max(firsts)
    watermark = max(max(s for s in stamps if s >= start) for stamps in streams.values())
    end = watermark if end is None else end
    max_lead = max(leads.values(), default=0.0)
    kept, dropped, k = [], 0, 0
    while True:
        t = t0 + k * period
        if t > end - max_lead + 1e-9:
            break
        k += 1
        picks = {}
        for name, stamps in streams.items():
            target = t + leads.get(name, 0.0)
            index = expected_pick(stamps, target)
            if index is not None and target - stamps[index] <= tolerance:
                picks[name] = index
        if len(picks) == len(streams):
            kept.append((t, picks))
        else:
            dropped += 1
    return kept, dropped


def check_frames(dataset, robot, published, kept, first_index=0):
    """Compare dataset frames from ``first_index`` with the brute-force ``kept`` frames (see expected_frames)."""
    state_topic, leader_topic = robot.joint_state_topic, robot.action.topic
    for offset, (t, picks) in enumerate(kept):
        item = dataset[first_index + offset]
        state_stamp = published[state_topic].header[picks["state"]]
        np.testing.assert_allclose(item["observation.state"].numpy(),
                                   [state_value(state_stamp, j) for j in range(robot.num_joints)], atol=1e-6)
        if "action" in picks:
            leader_stamp = published[leader_topic].header[picks["action"]]
            np.testing.assert_allclose(item["action"].numpy(),
                                       [leader_value(leader_stamp, j) for j in range(robot.num_joints)], atol=1e-6)
        for cam in robot.cameras:
            level = published[cam.topic].levels[picks[cam.name]]
            rgb = item[cam.feature].numpy() * 255
            assert abs(rgb[0].mean() - level) < 8 and abs(rgb[1].mean() - (255 - level)) < 8, (offset, cam.name)


def recorded_streams(robot, published, source="header"):
    """Stamps of every stream as the converter sees them (``header`` or ``receive`` times)."""
    pick = (lambda p: p.header) if source == "header" else (lambda p: p.receive)
    streams = {"state": pick(published[robot.joint_state_topic])}
    for cam in robot.cameras:
        streams[cam.name] = pick(published[cam.topic])
    streams["action"] = pick(published[robot.action.topic])
    return streams
