"""rosbag2 -> LeRobot dataset: fixed-fps causal synchronisation, episodes, statistics.

Topics come from the robot interface (joint states, cameras, the demonstrated
action), with overrides. Frames are taken at the robot's fps; each feature gets
the latest message at or before the frame time (the action with the
``next_state`` source: the latest joint state at or before the *next* frame
time). A frame whose newest message of some feature is older than the tolerance
is dropped, or stops the conversion (user's choice). Times are the messages'
header stamps or the bag's receive times (user's choice). The bag is read as a
stream: memory stays bounded whatever the bag length, and images are decoded
only for the frames that use them.

The output is written to a hidden staging folder next to the target and moved
into place only when every bag converted, so a failure never leaves a half
dataset that looks whole.
"""
from __future__ import annotations

import math
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from dp_ros.conversions.commands import CommandError, parse_command
from dp_ros.conversions.images import ImageConversionError, message_to_rgb
from dp_ros.conversions.joint_state import JointOrder, JointStateError
from dp_ros.data.bag_reader import HEADER_FIRST_TYPES, BagError, BagMessage, BagReader, header_stamp
from dp_ros.data.dataset_writer import EpisodeWriter, is_dataset
from dp_ros.data.frame_sync import FrameSync, StreamStats
from dp_ros.robot_interface import ACTION_FEATURE, ACTION_SOURCES, STATE_FEATURE, RobotInterface

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
COMMAND_TYPES = ("trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Float64MultiArray", JOINT_STATE_TYPE)
TIME_SOURCES = ("header", "receive")
SPLIT_MODES = ("bag", "marker", "gap")
STALE_POLICIES = ("drop", "fail")


class ConversionError(ValueError):
    """The bags cannot be converted as asked (the message names the bag, topic and what to do)."""


@dataclass
class ConversionOptions:
    """How bags become episodes; every field has a ``dp-ros bag2lerobot`` option."""

    tolerance: float = 0.1
    """Seconds: a frame whose newest message of some feature is older than this is stale."""
    on_stale: str = "drop"
    """``drop`` the stale frame (counted in the statistics) or ``fail`` the conversion."""
    time_source: str = "header"
    """``header`` stamps or ``receive`` (the bag's record times). Messages without a header
    (Float64MultiArray, markers) and commands with a zero stamp always use receive times."""
    split: str = "bag"
    """``bag``: one episode per bag; ``marker``: episodes delimited by messages on ``split_topic``;
    ``gap``: a new episode when the joint states pause longer than ``split_gap``."""
    split_topic: str = ""
    """Marker topic for ``split=marker``: std_msgs/Bool true starts and false ends an episode;
    a message of any other type ends the current episode and starts the next."""
    split_gap: float = 1.0
    """Seconds of silence on the joint-state topic that separate episodes (``split=gap``)."""
    action_source: str = ""
    """``leader``, ``command`` or ``next_state``; empty: the robot interface's action source."""
    action_topic: str = ""
    """Topic of the action (leader JointState or command); empty: from the robot interface."""
    joint_state_topic: str = ""
    """Joint-state topic; empty: the robot interface's."""
    camera_topics: dict[str, str] = field(default_factory=dict)
    """Camera name -> topic, replacing the robot interface's topic (e.g. a /compressed topic)."""
    task: str = "demonstration"
    """Task description stored with every frame."""
    min_frames: int = 1
    """Episodes with fewer frames are skipped (reported)."""
    reorder_window: float = 0.5
    """Seconds to wait for a late message (header stamps arrive out of order) before a frame is decided."""
    max_clock_offset: float = 5.0
    """With header stamps: the most the header-minus-receive offsets of two topics may differ by
    (a camera whose clock is days off is caught here)."""

    def validate(self) -> None:
        problems = []
        if not (self.tolerance > 0 and math.isfinite(self.tolerance)):
            problems.append(f"tolerance must be a positive number of seconds, got {self.tolerance}")
        if self.on_stale not in STALE_POLICIES:
            problems.append(f"on_stale must be one of {STALE_POLICIES}, got {self.on_stale!r}")
        if self.time_source not in TIME_SOURCES:
            problems.append(f"time_source must be one of {TIME_SOURCES}, got {self.time_source!r}")
        if self.split not in SPLIT_MODES:
            problems.append(f"split must be one of {SPLIT_MODES}, got {self.split!r}")
        if self.split == "marker" and not self.split_topic:
            problems.append("split=marker needs a marker topic (--split-topic)")
        if self.split == "gap" and not self.split_gap > 0:
            problems.append(f"split_gap must be positive seconds, got {self.split_gap}")
        if self.action_source and self.action_source not in ACTION_SOURCES:
            problems.append(f"action_source must be one of {ACTION_SOURCES}, got {self.action_source!r}")
        if self.min_frames < 1:
            problems.append(f"min_frames must be at least 1, got {self.min_frames}")
        if not self.task:
            problems.append("task must not be empty")
        if problems:
            raise ConversionError("; ".join(problems))


# --- which topic feeds which feature ------------------------------------------------
@dataclass(frozen=True)
class StreamPlan:
    name: str
    """The stream's name: the LeRobot feature it feeds."""
    topic: str
    accepted_types: tuple[str, ...]
    what: str
    """In words, for error messages."""


@dataclass(frozen=True)
class TopicPlan:
    streams: tuple[StreamPlan, ...]
    action_source: str
    split_topic: str

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
    return TopicPlan(tuple(streams), source, options.split_topic if options.split == "marker" else "")


def check_bag(bag: BagReader, plan: TopicPlan) -> None:
    """Raise BagError naming every mapped topic that is absent, empty or of the wrong type."""
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
    if plan.split_topic and plan.split_topic not in bag.topics:
        problems.append(f"no marker topic {plan.split_topic}")
    if problems:
        listing = ", ".join(f"{name} [{info.msgtype}]" for name, info in sorted(bag.topics.items()))
        raise BagError(f"{bag.path}: " + "; ".join(problems) + f". The bag has: {listing}. Map topics with "
                       "--joint-state-topic, --camera-topic NAME=TOPIC or --action-topic, or fix the robot interface.")


# --- results -------------------------------------------------------------------
@dataclass
class EpisodeResult:
    bag: str
    index_in_bag: int
    start: float
    """Time of the first frame (seconds, in the chosen time source)."""
    frames: int
    dropped: int
    streams: dict[str, StreamStats]
    saved_as: int | None = None
    """Dataset episode index, None when skipped (too short)."""
    silent: list[str] = field(default_factory=list)
    """Streams that had no message at all during the episode (so it has no frames)."""

    def record(self) -> dict[str, Any]:
        return {"source": self.bag, "index_in_bag": self.index_in_bag, "start_time": round(self.start, 6),
                "frames_dropped": self.dropped, "sync": {k: v.as_dict() for k, v in self.streams.items()}}


@dataclass
class ConversionReport:
    output: str
    fps: int
    episodes: list[EpisodeResult] = field(default_factory=list)
    bag_seconds: float = 0.0

    @property
    def saved(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if e.saved_as is not None]

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.saved)

    @property
    def dropped(self) -> int:
        return sum(e.dropped for e in self.episodes)

    def stream_totals(self) -> dict[str, StreamStats]:
        totals: dict[str, StreamStats] = {}
        for episode in self.episodes:
            for name, stats in episode.streams.items():
                totals.setdefault(name, StreamStats()).merge(stats)
        return totals

    def as_dict(self) -> dict[str, Any]:
        return {"output": self.output, "fps": self.fps, "episodes_saved": len(self.saved),
                "episodes_skipped": len(self.episodes) - len(self.saved), "frames": self.frames,
                "frames_dropped": self.dropped, "bag_seconds": round(self.bag_seconds, 3),
                "streams": {k: v.as_dict() for k, v in self.stream_totals().items()},
                "episodes": [{**e.record(), "frames": e.frames, "saved_as": e.saved_as} for e in self.episodes]}

    def summary(self) -> str:
        lines = [f"{len(self.saved)} episodes, {self.frames} frames at {self.fps} fps "
                 f"from {self.bag_seconds:.1f} s of bags -> {self.output}"]
        skipped = [e for e in self.episodes if e.saved_as is None]
        if skipped:
            lines.append(f"skipped {len(skipped)} episodes with too few frames: " + ", ".join(
                f"{Path(e.bag).name}#{e.index_in_bag} ({e.frames} frames"
                + (f"; no messages from {', '.join(e.silent)}" if e.silent else "") + ")" for e in skipped))
        total = self.frames + self.dropped
        lines.append(f"frames dropped as stale or missing: {self.dropped} of {total}"
                     + (f" ({100 * self.dropped / total:.1f} %)" if total else ""))
        lines.append(f"{'stream':34s} {'used':>7s} {'stale':>6s} {'missing':>7s} {'mean age':>9s} {'max age':>8s}")
        for name, stats in self.stream_totals().items():
            mean = "-" if math.isnan(stats.age_mean) else f"{stats.age_mean * 1000:.1f} ms"
            lines.append(f"{name:34s} {stats.used:7d} {stats.stale:6d} {stats.missing:7d} {mean:>9s} "
                         f"{stats.age_max * 1000:6.1f} ms")
        return "\n".join(lines)


@dataclass
class Frame:
    time: float
    values: dict[str, np.ndarray]


@dataclass
class EpisodeEnd:
    result: EpisodeResult


# --- one bag -> episodes of frames ------------------------------------------------------
class BagSynchronizer:
    """Streams one bag and yields :class:`Frame` and :class:`EpisodeEnd` events in time order."""

    def __init__(self, bag: BagReader, plan: TopicPlan, robot: RobotInterface, options: ConversionOptions):
        self.bag = bag
        self.plan = plan
        self.robot = robot
        self.options = options
        self.period = 1.0 / robot.fps
        self.order = JointOrder(robot.joint_names)
        keep = options.reorder_window + options.tolerance + self.period + 0.25
        self.sync = FrameSync(options.tolerance, keep=keep)
        self._roles: dict[str, list[StreamPlan]] = {}
        for stream in plan.streams:
            self.sync.add_stream(stream.name)
            self._roles.setdefault(stream.topic, []).append(stream)
        if plan.action_source == "next_state":
            self.sync.add_view(ACTION_FEATURE, STATE_FEATURE, lead=self.period)
        self._buffer_lead = {name: 0.0 for name in self.sync.buffers}
        if plan.action_source == "next_state":
            self._buffer_lead[STATE_FEATURE] = self.period
        self._cameras = {cam.feature: cam for cam in robot.cameras}
        self._decoded: dict[str, tuple[float, np.ndarray]] = {}
        self._clock_offsets: dict[str, float] = {}
        self._episode_count = 0
        self.active = False

    # -- time stamps ------------------------------------------------------------------
    def _stamp(self, message: BagMessage, is_command: bool) -> float:
        receive = message.receive_ns / 1e9
        if self.options.time_source == "receive" or message.msgtype not in HEADER_FIRST_TYPES:
            return receive
        try:
            stamp = header_stamp(message.raw)
        except (struct.error, IndexError):
            raise BagError(f"{self.bag.path}: a message on {message.topic} at {receive:.3f} s is too short to "
                           "hold a header; the bag is corrupt") from None
        if stamp == 0.0:
            if is_command:
                return receive
            raise ConversionError(f"{self.bag.path}: messages on {message.topic} have no header stamp (0); "
                                  "convert with --time-source receive")
        offset = receive - stamp
        self._clock_offsets.setdefault(message.topic, offset)
        reference_topic, reference = next(iter(self._clock_offsets.items()))
        if abs(offset - reference) > self.options.max_clock_offset:
            raise ConversionError(
                f"{self.bag.path}: header stamps on {message.topic} are {offset - reference:+.1f} s away from those on "
                f"{reference_topic} (relative to the bag's receive times): their clocks disagree. "
                "Convert with --time-source receive, or fix the clocks")
        return stamp

    # -- episodes -----------------------------------------------------------------------
    def _begin(self, start: float) -> None:
        self.active = True
        self.start = start
        self.t0: float | None = None
        self.k = 0
        self.frames = 0
        self.dropped = 0
        self.watermark = start
        self.sync.reset_stats()
        self._first: dict[str, float | None] = {}
        for name, buffer in self.sync.buffers.items():
            sample = buffer.at_or_before(start) if math.isfinite(start) else None
            fresh = sample is not None and start - sample.stamp <= self.options.tolerance
            self._first[name] = start if fresh else None

    def _end(self, end: float) -> Iterator[Frame | EpisodeEnd]:
        yield from self._frames(final_end=end)
        result = EpisodeResult(self.bag.path.as_posix(), self._episode_count,
                               self.t0 if self.t0 is not None else self.start, self.frames, self.dropped,
                               self.sync.reset_stats(), silent=[n for n, v in self._first.items() if v is None])
        self._episode_count += 1
        self.active = False
        yield EpisodeEnd(result)

    def _on_sample(self, name: str, stamp: float) -> None:
        self.watermark = max(self.watermark, stamp)
        if self._first[name] is None and stamp >= self.start - self.options.tolerance:
            self._first[name] = max(stamp, self.start)
        if self.t0 is None and all(v is not None for v in self._first.values()):
            self.t0 = max(self._first.values())

    def _ready(self, t: float) -> bool:
        for name, lead in self._buffer_lead.items():
            if not (self.sync.has_passed(name, t + lead) or self.watermark > t + lead + self.options.reorder_window):
                return False
        return True

    def _frames(self, final_end: float | None = None) -> Iterator[Frame]:
        while self.t0 is not None:
            t = self.t0 + self.k * self.period
            if final_end is not None:
                if t > final_end - self.sync.max_lead + 1e-9:
                    return
            elif not self._ready(t):
                return
            self.k += 1
            pick = self.sync.pick(t)
            if not pick.ok:
                self.dropped += 1
                if self.options.on_stale == "fail":
                    raise ConversionError(
                        f"{self.bag.path}: frame at {t:.3f} s of episode {self._episode_count}: {pick.reason()} "
                        f"(tolerance {self.options.tolerance * 1000:.0f} ms). Use --on-stale drop to skip such "
                        "frames, or a larger --tolerance")
                continue
            self.frames += 1
            yield Frame(t, {name: self._decode(name, sample.stamp, sample.value) for name, sample in pick.samples.items()})

    # -- decoding -------------------------------------------------------------------
    def _decode(self, name: str, stamp: float, message: BagMessage) -> np.ndarray:
        cached = self._decoded.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        msg = self.bag.deserialize(message)
        try:
            if name in self._cameras:
                cam = self._cameras[name]
                value = message_to_rgb(msg, cam.width, cam.height)
            elif message.msgtype == JOINT_STATE_TYPE:
                value = self.order.positions(msg).astype(np.float32)
            else:
                value = parse_command(msg, self.order).positions[0].astype(np.float32)
        except (ImageConversionError, JointStateError, CommandError) as exc:
            raise ConversionError(f"{self.bag.path}: topic {message.topic}, message at "
                                  f"{message.receive_ns / 1e9:.3f} s: {exc}") from None
        self._decoded[name] = (stamp, value)
        return value

    # -- markers ----------------------------------------------------------------------
    def _on_marker(self, msg: Any, stamp: float) -> Iterator[Frame | EpisodeEnd]:
        data = getattr(msg, "data", None)
        if isinstance(data, (bool, np.bool_)):
            if self.active:
                yield from self._end(stamp)
            if data:
                self._begin(stamp)
            return
        if self.active:
            yield from self._end(stamp)
        self._begin(stamp)

    # -- the stream ---------------------------------------------------------------------
    def events(self, progress: Callable[[float], None] | None = None) -> Iterator[Frame | EpisodeEnd]:
        if self.options.split != "marker":
            self._begin(-math.inf)
        last_state: float | None = None
        position = self.bag.start_ns
        for message in self.bag.messages(self.plan.topics):
            if progress is not None and message.receive_ns - position > 50_000_000:
                progress((message.receive_ns - position) / 1e9)
                position = message.receive_ns
            if message.topic == self.plan.split_topic:
                marker = self.bag.deserialize(message)
                yield from self._on_marker(marker, self._stamp(message, is_command=True))
                if message.topic not in self._roles:
                    continue
            for stream in self._roles[message.topic]:
                stamp = self._stamp(message, is_command=stream.accepted_types == COMMAND_TYPES)
                if stream.name == STATE_FEATURE and self.options.split == "gap":
                    if last_state is not None and stamp - last_state > self.options.split_gap and self.active:
                        yield from self._end(last_state)
                        self._begin(stamp)
                    last_state = stamp if last_state is None else max(last_state, stamp)
                self.sync.add(stream.name, stamp, message)
                if self.active:
                    self._on_sample(stream.name, stamp)
            if self.active:
                yield from self._frames()
        if progress is not None:
            progress(max(0.0, (self.bag.end_ns - position) / 1e9))
        if self.active:
            yield from self._end(self.watermark)


# --- many bags -> one dataset ---------------------------------------------------------
def _staging_path(output: Path) -> Path:
    return output.parent / f".{output.name}.incomplete-{os.getpid()}"


def convert_bags(bags: list[str | Path], output: str | Path, robot: RobotInterface,
                 options: ConversionOptions | None = None, overwrite: bool = False, progress: bool = True,
                 repo_id: str = "local/dp_ros", image_writer_threads: int = 2) -> ConversionReport:
    """Convert ``bags`` (in order) into one LeRobot dataset at ``output``; returns the statistics."""
    options = options or ConversionOptions()
    options.validate()
    if not bags:
        raise ConversionError("no bags given")
    output = Path(output).expanduser().absolute()
    if output.exists() and not overwrite:
        raise ConversionError(f"{output} exists; choose a new output folder or pass --overwrite")
    if output.exists() and not (is_dataset(output) or (output.is_dir() and not any(output.iterdir()))):
        raise ConversionError(f"{output} exists and is not a LeRobot dataset; refusing to overwrite it")
    plan = plan_topics(robot, options)

    seconds = 0.0
    for path in bags:  # check every bag before writing anything
        with BagReader(path) as bag:
            check_bag(bag, plan)
            seconds += bag.duration

    report = ConversionReport(output=str(output), fps=robot.fps, bag_seconds=seconds)
    staging = _staging_path(output)
    shutil.rmtree(staging, ignore_errors=True)
    writer = None
    try:
        writer = EpisodeWriter(staging, robot, repo_id=repo_id, image_writer_threads=image_writer_threads)
        bar = _progress_bar(seconds, progress)
        for number, path in enumerate(bags, 1):
            bar.set_description(f"bag {number}/{len(bags)} {Path(path).name}")
            with BagReader(path) as bag:
                for event in BagSynchronizer(bag, plan, robot, options).events(progress=bar.update):
                    if isinstance(event, Frame):
                        writer.add_frame(event.values, options.task)
                        continue
                    result = event.result
                    if result.frames >= options.min_frames:
                        result.saved_as = writer.save_episode(result.record()).index
                    else:
                        writer.discard_episode()
                    report.episodes.append(result)
        bar.close()
        if not report.saved:
            raise ConversionError("no episode had enough synchronised frames; nothing was written.\n" + report.summary())
        writer.close()
        writer = None
        _move_into_place(staging, output)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _move_into_place(staging: Path, output: Path) -> None:
    if output.exists():
        old = output.parent / f".{output.name}.replaced-{os.getpid()}"
        os.replace(output, old)
        os.replace(staging, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, output)


class _NoBar:
    def update(self, _: float) -> None:
        pass

    def set_description(self, _: str) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total_seconds: float, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=round(total_seconds, 1), unit="s", unit_scale=False, dynamic_ncols=True,
                bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of bag [{elapsed}<{remaining}]")
