"""rosbag2 reading with rosbags' storage readers: no ROS install, streaming, only the topics asked for.

Accepts a bag folder with ``metadata.yaml`` (split bags, and bags compressed by
rosbag2 per file or per message with zstd, included), a bag folder without it
(the storage files it holds are read as the parts of one bag, as ``ros2 bag
record`` leaves them after a crash), or a single ``.db3`` / ``.mcap`` file.
Opening reads the bag's summary only: no message definition is parsed until a
topic is decoded (see :mod:`dp_ros.data.bags.bag_types`), so whatever else a bag
holds never stops it from opening. Messages come one at a time in receive-time
order; a bag is never loaded whole.
"""
from __future__ import annotations

import heapq
import queue
import re
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from dp_ros.data.bags.bag_types import BagError, MessageDecoder, StoredDefinition, describe_error, make_decoder
from dp_ros.data.bags.mcap_chunks import chunk_index, chunked_messages, zstd_module

__all__ = ["BagError", "BagLayout", "BagMessage", "BagReader", "TopicInfo", "bag_layout", "header_stamp"]

STORAGE_SUFFIXES = (".db3", ".mcap")


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
    raw: bytes | memoryview


def _split_index(path: Path) -> tuple[int, str]:
    match = re.search(r"_(\d+)$", path.stem)
    return (int(match.group(1)) if match else -1, path.name)


@dataclass(frozen=True)
class BagLayout:
    """The storage files of a bag and how rosbag2 compressed them."""

    files: list[Path]
    compression: str = ""
    """``""``, ``file`` (each storage file is one zstd stream) or ``message`` (each message's data is)."""


def _layout_from_metadata(folder: Path) -> BagLayout:
    import yaml

    try:
        info = yaml.safe_load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        names = [Path(str(name)).name for name in info["relative_file_paths"]]
        mode = str(info.get("compression_mode") or "").lower()
        compression_format = str(info.get("compression_format") or "").lower()
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise BagError(f"{folder}: metadata.yaml is not rosbag2 metadata ({describe_error(exc)})") from None
    mode = "" if mode == "none" else mode
    if mode not in ("", "file", "message"):
        raise BagError(f"{folder}: unknown compression_mode {mode!r} in metadata.yaml")
    if mode and compression_format != "zstd":
        raise BagError(f"{folder}: compressed with {compression_format!r}; only zstd (rosbag2's default) is supported")
    files = [folder / name for name in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise BagError(f"{folder}: metadata.yaml lists storage files that are missing: {', '.join(missing)}")
    return BagLayout(files, mode)


def bag_layout(path: Path) -> BagLayout:
    """The storage files to read for ``path``: a folder with metadata.yaml, a folder of storage files, or one file."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag folder or file")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return _layout_from_metadata(path)
        parts = sorted((p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file()), key=_split_index)
        if not parts:
            raise BagError(f"{path}: not a rosbag2 bag (no metadata.yaml and no .db3 or .mcap files)")
        if len({p.suffix for p in parts}) > 1:
            raise BagError(f"{path}: holds both .db3 and .mcap files; a bag uses one storage format")
        return BagLayout(parts)
    if path.suffix not in STORAGE_SUFFIXES:
        raise BagError(f"{path}: not a rosbag2 file (expected a bag folder, a .db3 or an .mcap file)")
    return BagLayout([path])


def _decompressed_copy(file: Path, folder: Path) -> Path:
    """A file-mode compressed storage file (``name.mcap.zstd``), decompressed into ``folder``."""
    import shutil

    zstd = zstd_module()
    target = folder / file.with_suffix("").name
    with open(file, "rb") as source, zstd.open(source, "rb") as stream, open(target, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 22)
    return target


def header_stamp(raw: bytes | memoryview) -> float:
    """Seconds of the header stamp of a CDR-serialized message that starts with a std_msgs/Header.

    Reads 8 bytes after the 4-byte CDR encapsulation header instead of decoding
    the message (an image is decoded only when a frame uses it).
    """
    little_endian = raw[1] & 1
    sec, nanosec = struct.unpack_from("<iI" if little_endian else ">iI", raw, 4)
    return float(sec) + float(nanosec) * 1e-9


def _stored_definition(connection: Any) -> StoredDefinition:
    definition = connection.msgdef
    return StoredDefinition(definition.format.name.lower(), definition.data or "")


class BagReader:
    """One rosbag2 bag, opened for reading (use as a context manager)."""

    def __init__(self, path: str | Path):
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        self._readers: list[Any] = []
        self._chunks: list[list] = []
        self._decoders: dict[str, MessageDecoder] = {}
        self._scratch: tempfile.TemporaryDirectory | None = None
        try:
            self.layout = bag_layout(self.path)
            files = self.layout.files
            if self.layout.compression == "file":
                self._scratch = tempfile.TemporaryDirectory(prefix="dp_ros_bag_")
                files = [_decompressed_copy(f, Path(self._scratch.name)) for f in files]
            for part in files:
                reader = Reader(part)
                reader.open()
                self._readers.append(reader)
                self._chunks.append(chunk_index(part) if part.suffix == ".mcap" else [])
        except BagError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - rosbags, sqlite and struct raise many kinds on damaged files
            self.close()
            raise BagError(f"{self.path}: cannot open bag ({describe_error(exc)}); it is not a rosbag2 bag, or a "
                           "truncated or corrupt one") from None
        try:
            self._connections = [c for reader in self._readers for c in reader.connections]
            counts: dict[str, int] = {}
            types: dict[str, set[str]] = {}
            for connection in self._connections:
                counts[connection.topic] = counts.get(connection.topic, 0) + int(connection.msgcount)
                types.setdefault(connection.topic, set()).add(connection.msgtype or "")
            self.topics = {name: TopicInfo(name, " or ".join(sorted(types[name])), counts[name]) for name in counts}
            self.message_count = sum(int(r.message_count) for r in self._readers)
            with_messages = [r for r in self._readers if r.message_count]
            self.start_ns = min((int(r.start_time) for r in with_messages), default=0)
            self.end_ns = max((int(r.end_time) for r in with_messages), default=0)
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise BagError(f"{self.path}: cannot read bag summary ({describe_error(exc)})") from None

    @property
    def duration(self) -> float:
        """Seconds between the first and the last message."""
        return max(0.0, (self.end_ns - self.start_ns) / 1e9)

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        readers, self._readers = self._readers, []
        for reader in readers:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - closing a damaged bag must not hide the original error
                pass
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            scratch.cleanup()

    # -- decoding ----------------------------------------------------------------------
    def decoder(self, topic: str) -> MessageDecoder:
        """The decoder of ``topic``, from the definition stored in the bag or the standard one (BagError if none)."""
        if topic not in self._decoders:
            connections = [c for c in self._connections if c.topic == topic]
            if not connections:
                raise BagError(f"{self.path}: no topic {topic}")
            stored = next((d for d in map(_stored_definition, connections) if d.format != "none"),
                          StoredDefinition("none", ""))
            self._decoders[topic] = make_decoder(str(self.path), topic, connections[0].msgtype, stored)
        return self._decoders[topic]

    def deserialize(self, message: BagMessage) -> Any:
        decoder = self.decoder(message.topic)
        try:
            return decoder(message.raw)
        except Exception as exc:  # noqa: BLE001
            raise BagError(f"{self.path}: cannot decode a {message.msgtype} message on {message.topic} "
                           f"at {message.receive_ns / 1e9:.3f} s ({describe_error(exc)})") from None

    # -- reading -----------------------------------------------------------------------
    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Messages of ``topics`` in receive-time order, one at a time.

        They are read, decompressed and parsed in a background thread, a few ahead of the caller.
        """
        return _prefetched(self._messages(set(topics)))

    def _messages(self, wanted: set[str]) -> Iterator[BagMessage]:
        streams = []
        for reader, chunks in zip(self._readers, self._chunks):
            connections = {c.id: c for c in reader.connections if c.topic in wanted}
            if not connections:
                continue
            if chunks:
                streams.append((connections[channel], log_time, data)
                               for log_time, channel, data in chunked_messages(reader.path, chunks, set(connections)))
            else:
                streams.append(reader.messages(connections=list(connections.values())))
        if not streams:
            return
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda item: item[1])
        unpack = zstd_module().decompress if self.layout.compression == "message" else None
        current_topic = ""
        try:
            for connection, timestamp, raw in merged:
                current_topic = connection.topic
                yield BagMessage(connection.topic, connection.msgtype, int(timestamp), unpack(raw) if unpack else raw)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - corruption shows up while reading, in many forms
            where = f" after a message on {current_topic}" if current_topic else ""
            raise BagError(f"{self.path}: the bag is corrupt or truncated{where} ({describe_error(exc)})") from None


def _prefetched(items: Iterator, batch: int = 64, depth: int = 4) -> Iterator:
    """``items`` produced by a background thread in batches, up to ``depth`` batches ahead (its exceptions are
    raised here). Batches keep the hand-overs between the threads (each waits for the GIL) few."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(entry) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        chunk: list = []
        try:
            for item in items:
                chunk.append(item)
                if len(chunk) >= batch:
                    if not hand_over((chunk, None)):
                        return
                    chunk = []
            hand_over((chunk, None))
            hand_over((None, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            hand_over((None, exc))

    worker = threading.Thread(target=produce, name="bag-reader", daemon=True)
    worker.start()
    try:
        while True:
            chunk, error = slots.get()
            if chunk is None:
                if error is not None:
                    raise error
                return
            yield from chunk
    finally:
        stop.set()
        worker.join()
