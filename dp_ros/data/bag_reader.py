"""rosbag2 reading with ``rosbags``: no ROS install, streaming, clear errors.

Accepts a bag folder with ``metadata.yaml`` (split bags included), a bag folder
without it (the storage files it holds are read as the parts of one bag, as
``ros2 bag record`` leaves them after a crash), or a single ``.db3`` / ``.mcap``
file. Messages come one at a time in time order; a bag is never loaded whole.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

STORAGE_SUFFIXES = (".db3", ".mcap")
HEADER_FIRST_TYPES = frozenset({
    "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/JointState",
    "trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Header"})
"""Message types whose serialized form starts with a std_msgs/Header (so its stamp can be read without decoding)."""


class BagError(ValueError):
    """A bag cannot be read (the message names the bag, and the topic when there is one)."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    receive_ns: int
    """When the recorder stored the message (the bag's own timestamp), nanoseconds."""
    raw: bytes


def _split_index(path: Path) -> tuple[int, str]:
    match = re.search(r"_(\d+)$", path.stem)
    return (int(match.group(1)) if match else -1, path.name)


def storage_paths(path: Path) -> list[Path]:
    """The paths rosbags should open for ``path`` (a bag folder or a storage file)."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag folder or file")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return [path]
        parts = sorted((p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file()), key=_split_index)
        if not parts:
            raise BagError(f"{path}: not a rosbag2 bag (no metadata.yaml and no .db3 or .mcap files)")
        suffixes = {p.suffix for p in parts}
        if len(suffixes) > 1:
            raise BagError(f"{path}: holds both .db3 and .mcap files; a bag uses one storage format")
        return parts
    if path.suffix not in STORAGE_SUFFIXES:
        raise BagError(f"{path}: not a rosbag2 file (expected a bag folder, a .db3 or an .mcap file)")
    return [path]


def header_stamp(raw: bytes) -> float:
    """Seconds of the header stamp of a CDR-serialized message that starts with a std_msgs/Header.

    Reads 8 bytes after the 4-byte CDR encapsulation header instead of decoding
    the message (an image is decoded only when a frame uses it).
    """
    little_endian = raw[1] & 1
    sec, nanosec = struct.unpack_from("<iI" if little_endian else ">iI", raw, 4)
    return float(sec) + float(nanosec) * 1e-9


def _describe(exc: BaseException) -> str:
    text = " ".join(str(a) for a in exc.args) if exc.args else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BagReader:
    """One rosbag2 bag, opened for reading (use as a context manager)."""

    def __init__(self, path: str | Path):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        paths = storage_paths(self.path)
        try:
            self._reader = AnyReader(paths, default_typestore=get_typestore(Stores.ROS2_JAZZY))
            self._reader.open()
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - rosbags, sqlite (apsw) and struct raise many kinds on damaged files
            raise BagError(f"{self.path}: cannot open bag ({_describe(exc)}); it may be truncated or corrupt") from None
        try:
            self.topics = {name: TopicInfo(name, info.msgtype or "", info.msgcount)
                           for name, info in self._reader.topics.items()}
            self.message_count = int(self._reader.message_count)
            self.start_ns = int(self._reader.start_time) if self.message_count else 0
            self.end_ns = int(self._reader.end_time) if self.message_count else 0
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise BagError(f"{self.path}: cannot read bag summary ({_describe(exc)})") from None

    @property
    def duration(self) -> float:
        """Seconds between the first and the last message."""
        return max(0.0, (self.end_ns - self.start_ns) / 1e9)

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        reader, self._reader = getattr(self, "_reader", None), None
        if reader is not None and reader.stack is not None:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - closing a damaged bag must not hide the original error
                pass

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Messages of ``topics`` in receive-time order, one at a time."""
        wanted = set(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        if connections:
            yield from self._read(connections)

    def _read(self, connections) -> Iterator[BagMessage]:
        current_topic = ""
        try:
            for connection, timestamp, raw in self._reader.messages(connections=connections):
                current_topic = connection.topic
                yield BagMessage(connection.topic, connection.msgtype, int(timestamp), raw)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - corruption shows up while reading, in many forms
            where = f" after a message on {current_topic}" if current_topic else ""
            raise BagError(f"{self.path}: the bag is corrupt or truncated{where} ({_describe(exc)})") from None

    def deserialize(self, message: BagMessage) -> Any:
        try:
            return self._reader.deserialize(message.raw, message.msgtype)
        except Exception as exc:  # noqa: BLE001
            raise BagError(f"{self.path}: cannot decode a {message.msgtype} message on {message.topic} "
                           f"at {message.receive_ns / 1e9:.3f} s ({_describe(exc)})") from None
