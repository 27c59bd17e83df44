"""LeRobot dataset -> rosbag2 MCAP file, ROS-free: demonstrations back as the topics they came from.

Every frame becomes, stamped at its time (header stamp = bag receive time =
MCAP log time = publish time = start of the episode + the frame's timestamp,
in integer nanoseconds; the frame's timestamp is taken as frame_index / fps
when it is on that grid):

- the joint states (sensor_msgs/JointState, the robot interface's joint names);
- each camera as sensor_msgs/Image (rgb8) or CompressedImage (jpeg), as the
  robot interface says, at the dataset's image size;
- the action on its topic: a leader arm's JointState, or a command of the
  robot interface's command type. With the ``next_state`` action source there
  is no action topic; one more joint state, one period after the last frame,
  carries the last frame's action.

Episodes follow one another with a pause of ``episode_gap`` seconds and are
delimited by std_msgs/Bool messages on the marker topic (true at the first
frame, false half a period after the last), so ``bag2lerobot`` with its default
options (``--split auto`` finds the marker topic) gives the same episodes,
frames, timestamps, states and actions back; images within the video codec's loss. Messages are serialized with rosbags (no ROS install) and
written with the ``mcap`` library (zstd-compressed chunks, the ``ros2``
profile): ``ros2 bag play``, Foxglove and RViz read the file as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from dp_ros.data.datasets.dataset_files import (TIME_TOLERANCE, DatasetCheckError, DatasetFiles, decoded_frames,
                                       load_dataset_files, video_path)
from dp_ros.robot_interface import RobotInterface

MARKER_TOPIC = "/episode_marker"


class DatasetToBagError(ValueError):
    """The dataset cannot be written as a bag (the message says why)."""


@dataclass
class BagWriteReport:
    output: str
    episodes: int
    frames: int
    seconds: float
    """Bag time from the first to the last message."""


def camera_frames(root: Path, data: DatasetFiles, key: str) -> Iterator[np.ndarray]:
    """The decoded frames of camera ``key`` for every frame of every episode, in order."""
    fps = float(data.info["fps"])
    current: Path | None = None
    frames: Iterator[tuple[float, np.ndarray]] = iter(())
    for meta in data.episodes_meta:
        path = video_path(root, data.info, key, meta)
        if path != current:
            if not path.is_file():
                raise DatasetCheckError(f"{root}: video file {path} of {key} is missing")
            current, frames = path, decoded_frames(path)
        start, wanted, taken = float(meta[f"videos/{key}/from_timestamp"]), int(meta["length"]), 0
        for time, image in frames:
            if time < start - 0.5 / fps:  # a frame of an episode before this one
                continue
            yield image
            taken += 1
            if taken == wanted:
                break
        if taken < wanted:
            raise DatasetCheckError(f"{path}: {taken} frames of {key} for episode {meta['episode_index']}, "
                                    f"whose metadata says {wanted}")


class _Messages:
    """rosbags message builders for the robot interface's topics."""

    def __init__(self, robot: RobotInterface):
        from rosbags.typesys import Stores, get_typestore

        self.store = get_typestore(Stores.ROS2_JAZZY)
        self.types = self.store.types
        self.joints = list(robot.joint_names)

    def header(self, ns: int):
        T = self.types
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                        frame_id="")

    def joint_state(self, ns: int, positions: np.ndarray):
        return self.types["sensor_msgs/msg/JointState"](
            header=self.header(ns), name=self.joints, position=np.asarray(positions, dtype=np.float64),
            velocity=np.zeros(0), effort=np.zeros(0))

    def image(self, ns: int, rgb: np.ndarray, compressed: bool):
        if compressed:
            import cv2

            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise DatasetToBagError("OpenCV could not encode a frame as jpeg")
            return self.types["sensor_msgs/msg/CompressedImage"](header=self.header(ns), format="jpeg",
                                                                 data=encoded.reshape(-1))
        height, width = rgb.shape[:2]
        return self.types["sensor_msgs/msg/Image"](header=self.header(ns), height=height, width=width,
                                                   encoding="rgb8", is_bigendian=0, step=width * 3,
                                                   data=np.ascontiguousarray(rgb).reshape(-1))

    def command(self, ns: int, command_type: str, positions: np.ndarray, period: float):
        T = self.types
        positions = np.asarray(positions, dtype=np.float64)
        if command_type == "joint_state":
            return self.joint_state(ns, positions)
        if command_type == "float64_multi_array":
            layout = T["std_msgs/msg/MultiArrayLayout"](
                dim=[T["std_msgs/msg/MultiArrayDimension"](label="joints", size=len(positions), stride=len(positions))],
                data_offset=0)
            return T["std_msgs/msg/Float64MultiArray"](layout=layout, data=positions)
        step = int(round(period * 1e9))
        point = T["trajectory_msgs/msg/JointTrajectoryPoint"](
            positions=positions, velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
            time_from_start=T["builtin_interfaces/msg/Duration"](sec=step // 10**9, nanosec=step % 10**9))
        return T["trajectory_msgs/msg/JointTrajectory"](header=self.header(ns), joint_names=self.joints, points=[point])

    def marker(self, value: bool):
        return self.types["std_msgs/msg/Bool"](data=value)


class _McapOut:
    """A rosbag2-profile MCAP file written with the ``mcap`` library."""

    def __init__(self, path: Path, store):
        from mcap.writer import Writer

        self._store = store
        self._stream = open(path, "wb")
        self._writer = Writer(self._stream)
        self._writer.start(profile="ros2", library="dp_ros lerobot2bag")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, tuple[int, str]] = {}

    def write(self, topic: str, msgtype: str, ns: int, message) -> None:
        if topic not in self._channels:
            if msgtype not in self._schemas:
                definition, _ = self._store.generate_msgdef(msgtype, ros_version=2)
                self._schemas[msgtype] = self._writer.register_schema(msgtype, "ros2msg", definition.encode())
            self._channels[topic] = (self._writer.register_channel(topic, "cdr", self._schemas[msgtype]), msgtype)
        channel, _ = self._channels[topic]
        self._writer.add_message(channel, log_time=ns, publish_time=ns,
                                 data=bytes(self._store.serialize_cdr(message, msgtype)))

    def close(self) -> None:
        try:
            self._writer.finish()
        finally:
            self._stream.close()


def _offset_ns(timestamp: float, frame_index: int, fps: int) -> int:
    """Nanoseconds of a frame after its episode's start: frame_index / fps exactly when the (float32)
    timestamp is on that grid, as in every dataset with true time; else the timestamp as it is."""
    on_grid = frame_index / fps
    return int(round((on_grid if abs(timestamp - on_grid) < TIME_TOLERANCE else timestamp) * 1e9))


def _write_episode(out: _McapOut, build: _Messages, robot: RobotInterface, data: DatasetFiles, rows: np.ndarray,
                   images: dict[str, Iterator[np.ndarray]], base_ns: int, marker_topic: str,
                   progress: Callable[[int], None] | None) -> int:
    """One episode's messages from bag time ``base_ns``; returns the time of its last message (ns)."""
    period, source = 1.0 / robot.fps, robot.action.source
    if marker_topic:
        out.write(marker_topic, "std_msgs/msg/Bool", base_ns, build.marker(True))
    last_ns = base_ns
    for row in rows:
        ns = base_ns + _offset_ns(float(data.timestamp[row]), int(data.frame_index[row]), robot.fps)
        out.write(robot.joint_state_topic, "sensor_msgs/msg/JointState", ns, build.joint_state(ns, data.state[row]))
        for cam in robot.cameras:
            rgb = next(images[cam.feature])
            msgtype = "sensor_msgs/msg/CompressedImage" if cam.type == "compressed" else "sensor_msgs/msg/Image"
            out.write(cam.topic, msgtype, ns, build.image(ns, rgb, cam.type == "compressed"))
        if source == "leader":
            out.write(robot.action.topic, "sensor_msgs/msg/JointState", ns, build.joint_state(ns, data.action[row]))
        elif source == "command":
            message = build.command(ns, robot.command.type, data.action[row], period)
            out.write(robot.command.topic, message.__msgtype__, ns, message)
        last_ns = ns
        if progress is not None:
            progress(1)
    end_ns = last_ns - base_ns
    if source == "next_state":  # the state one period later is the last frame's action
        last_ns = base_ns + end_ns + int(round(period * 1e9))
        out.write(robot.joint_state_topic, "sensor_msgs/msg/JointState", last_ns,
                  build.joint_state(last_ns, data.action[rows[-1]]))
    if marker_topic:  # after the last frame (and its next state), before the next frame time
        last_ns = base_ns + end_ns + int(round(period * (1.5 if source == "next_state" else 0.5) * 1e9))
        out.write(marker_topic, "std_msgs/msg/Bool", last_ns, build.marker(False))
    return last_ns


def dataset_to_bag(root: str | Path, output: str | Path, robot: RobotInterface, start_time: float = 1.7e9,
                   episode_gap: float = 1.0, marker_topic: str = MARKER_TOPIC,
                   progress: Callable[[int], None] | None = None) -> BagWriteReport:
    """Write the dataset at ``root`` as the MCAP file ``output``; ``progress`` is called with frames written."""
    from dp_ros.data.datasets.dataset_writer import DatasetWriterError, check_compatible

    root, output = Path(root).expanduser(), Path(output).expanduser()
    data = load_dataset_files(root)
    try:
        check_compatible(root, robot)
    except DatasetWriterError as exc:
        raise DatasetToBagError(str(exc)) from None
    if data.state is None or data.action is None:
        raise DatasetToBagError(f"{root}: the dataset has no observation.state or no action")
    build = _Messages(robot)
    order = np.lexsort((data.frame_index, data.episode_index))
    images = {cam.feature: camera_frames(root, data, cam.feature) for cam in robot.cameras}
    out = _McapOut(output, build.store)
    episode_start_ns = int(round(start_time * 1e9))
    frames, first_ns, last_ns = 0, None, 0
    try:
        for meta in data.episodes_meta:
            rows = order[data.episode_index[order] == int(meta["episode_index"])]
            if not len(rows):
                continue
            first_ns = episode_start_ns if first_ns is None else first_ns
            last_ns = _write_episode(out, build, robot, data, rows, images, episode_start_ns, marker_topic, progress)
            frames += len(rows)
            episode_start_ns = last_ns + int(round(episode_gap * 1e9))
    except BaseException:
        out.close()
        output.unlink(missing_ok=True)
        raise
    out.close()
    return BagWriteReport(str(output), len(data.episodes_meta), frames, (last_ns - (first_ns or 0)) / 1e9)
