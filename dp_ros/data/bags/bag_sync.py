"""One bag -> episodes of frames at the dataset fps, with the causal pick rule, streaming.

Frames are taken at the robot's fps from the start of each source episode (the
bag, a marked span, or a span between pauses); each feature gets the latest
message at or before the frame time (the action with the ``next_state``
source: the latest joint state at or before the *next* frame time). A frame
whose newest message of some feature is older than the tolerance, or missing,
is unusable. Frames are never renumbered across an unusable one: a run of
consecutive usable frames is one episode (*part*), so a dataset's timestamps
are true time since its episode's start. With ``on_stale=fail`` the first
unusable frame stops the conversion instead.

Messages are decoded only for the frames that use them
(:mod:`dp_ros.data.bags.sample_decoding`); memory stays bounded whatever the bag length.
"""
from __future__ import annotations

import heapq
import math
import struct
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from dp_ros.conversions.joint_state import JointOrder
from dp_ros.data.bags.bag_reader import BagError, BagMessage, BagReader, header_stamp
from dp_ros.data.bags.conversion_options import ConversionError, ConversionOptions
from dp_ros.data.bags.conversion_report import EpisodeResult
from dp_ros.data.bags.image_decoding import ImageDecodePool
from dp_ros.data.bags.sample_decoding import SampleDecoder
from dp_ros.data.frame_sync import SAME_TIME, FramePick, FrameSync, Gap, describe_causes
from dp_ros.data.bags.topic_plan import StreamPlan, TopicPlan
from dp_ros.robot_interface import ACTION_FEATURE, STATE_FEATURE, RobotInterface


@dataclass
class Frame:
    time: float
    values: dict[str, np.ndarray]


@dataclass
class EpisodeEnd:
    """The frames since the previous EpisodeEnd form ``result`` (write it, or discard it when too short)."""

    result: EpisodeResult


class BagSynchronizer:
    """Streams one bag and yields :class:`Frame` and :class:`EpisodeEnd` events in time order."""

    def __init__(self, bag: BagReader, plan: TopicPlan, robot: RobotInterface, options: ConversionOptions,
                 pool: ImageDecodePool | None = None):
        self.bag = bag
        self.plan = plan = plan.for_bag(bag)
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
        # markers (no header) and commands (maybe a zero stamp) may take their receive time
        self._is_command = {topic: any(s.is_command for s in streams) for topic, streams in self._roles.items()}
        if plan.split_topic:
            self._is_command[plan.split_topic] = True
        self.decode = SampleDecoder(bag, {cam.feature: cam for cam in robot.cameras}, self.order, pool)
        self._stamp_first = {topic: bag.decoder(topic).stamp_first for topic in plan.topics}
        self._clock_offsets: dict[str, float] = {}
        self._episode_count = 0
        self.active = False
        self.watermark = -math.inf

    # -- time stamps ------------------------------------------------------------------
    def _stamp(self, message: BagMessage, is_command: bool) -> float:
        receive = message.receive_ns / 1e9
        if self.options.time_source == "receive" or not self._stamp_first[message.topic]:
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

    # -- source episodes and their parts ----------------------------------------------------
    def _begin(self, start: float) -> None:
        self.active = True
        self.start = start
        self.t0: float | None = None
        self.k = 0
        self.sync.reset_stats()
        self._part = 0
        self._part_start = 0.0
        self._part_frames = 0
        self._gap: Gap | None = None
        self._gap_before: Gap | None = None
        self._closed: EpisodeResult | None = None
        self._first: dict[str, float | None] = {}
        for name, buffer in self.sync.buffers.items():
            sample = buffer.at_or_before(start) if math.isfinite(start) else None
            fresh = sample is not None and start - sample.stamp <= self.options.tolerance
            self._first[name] = start if fresh else None

    def _close_part(self) -> EpisodeResult:
        result = EpisodeResult(self.bag.path.as_posix(), self._episode_count, self._part, self._part_start,
                               self._part_frames, self.sync.reset_stats(), gap_before=self._gap_before)
        self._part += 1
        self._part_frames = 0
        self._gap_before = None
        return result

    def _end(self, end: float) -> Iterator[Frame | EpisodeEnd]:
        yield from self._frames(final_end=end)
        if self._closed is not None:  # the episode ended in a gap: it is trimmed from the last part
            result, self._closed = self._closed, None
        else:
            result = self._close_part()
        result.gap_after = self._gap
        if result.frames == 0:
            result.start = self.t0 if self.t0 is not None else self.start
            result.silent = [n for n, v in self._first.items() if v is None]
        yield EpisodeEnd(result)
        self._episode_count += 1
        self.active = False

    def _on_sample(self, name: str, stamp: float) -> None:
        if self._first[name] is None and stamp >= self.start - self.options.tolerance:
            self._first[name] = max(stamp, self.start)
        if self.t0 is None and all(v is not None for v in self._first.values()):
            self.t0 = max(self._first.values())

    def _ready(self, t: float) -> bool:
        """Whether frame ``t`` can be decided: messages come in stamp order, so once one stamped after
        ``t`` (plus the next-state lead) has been taken in, none can still change the frame."""
        return self.watermark > t + self.sync.max_lead + SAME_TIME

    def _frames(self, final_end: float | None = None) -> Iterator[Frame | EpisodeEnd]:
        while self.t0 is not None:
            t = self.t0 + self.k * self.period
            if final_end is not None:
                if t > final_end - self.sync.max_lead + 1e-9:
                    return
            elif not self._ready(t):
                return
            self.k += 1
            pick = self.sync.pick(t, count=False)
            if not pick.ok:
                self._unusable(pick)
                continue
            if self._closed is not None:  # a gap inside the episode ended: the part before it is complete
                result, self._closed = self._closed, None
                yield EpisodeEnd(result)
            if self._part_frames == 0:
                self._part_start, self._gap_before, self._gap = t, self._gap, None
            self.sync.count(pick)
            self._part_frames += 1
            yield Frame(t, {name: self.decode(name, sample.stamp, sample.value) for name, sample in pick.samples.items()})

    def _unusable(self, pick: FramePick) -> None:
        if self.options.on_stale == "fail":
            raise ConversionError(
                f"{self.bag.path}: frame at {pick.time:.3f} s of episode {self._episode_count} is unusable: "
                f"{describe_causes(pick.causes())} "
                f"(tolerance {self.options.tolerance * 1000:.0f} ms). Use --on-stale split to split episodes at "
                "such gaps, or a larger --tolerance")
        if self._part_frames:
            self._closed = self._close_part()
        if self._gap is None:
            self._gap = Gap(pick.time, 0, pick.causes())
        self._gap.frames += 1
        self.sync.count(pick)

    # -- markers ----------------------------------------------------------------------
    def _on_marker(self, msg: Any, stamp: float) -> Iterator[Frame | EpisodeEnd]:
        data = getattr(msg, "data", None)
        if self.active:
            yield from self._end(stamp)
        if not isinstance(data, (bool, np.bool_)) or data:
            self._begin(stamp)

    # -- the stream ---------------------------------------------------------------------
    def events(self, progress: Callable[[float], None] | None = None) -> Iterator[Frame | EpisodeEnd]:
        """Frames and episode ends, in time order.

        Messages come in receive order; they are put back in stamp order (header stamps arrive out of order)
        by holding each one until a message stamped ``reorder_window`` later has arrived.
        """
        if self.plan.split != "marker":
            self._begin(-math.inf)
        self._last_state: float | None = None
        held: list[tuple[float, int, BagMessage]] = []
        newest = -math.inf
        position = self.bag.start_ns
        for count, message in enumerate(self.bag.messages(self.plan.topics)):
            if progress is not None and message.receive_ns - position > 50_000_000:
                progress((message.receive_ns - position) / 1e9)
                position = message.receive_ns
            stamp = self._stamp(message, is_command=self._is_command[message.topic])
            heapq.heappush(held, (stamp, count, message))
            newest = max(newest, stamp)
            while held and held[0][0] <= newest - self.options.reorder_window:
                yield from self._process(*heapq.heappop(held))
        while held:
            yield from self._process(*heapq.heappop(held))
        if progress is not None:
            progress(max(0.0, (self.bag.end_ns - position) / 1e9))
        if self.active:
            yield from self._end(self.watermark)

    def _process(self, stamp: float, _: int, message: BagMessage) -> Iterator[Frame | EpisodeEnd]:
        """One message, in stamp order."""
        if message.topic == self.plan.split_topic:
            yield from self._on_marker(self.bag.deserialize(message), stamp)
        for stream in self._roles.get(message.topic, ()):
            if stream.name == STATE_FEATURE and self.plan.split == "gap":
                if self._last_state is not None and stamp - self._last_state > self.options.split_gap and self.active:
                    yield from self._end(self._last_state)
                    self._begin(stamp)
                self._last_state = stamp
            value = self.decode.every_message(stream.name, message) if self.options.decode_every_message else message
            self.sync.add(stream.name, stamp, value)
            if self.active:
                self._on_sample(stream.name, stamp)
        self.watermark = max(self.watermark, stamp)
        if self.active:
            yield from self._frames()
