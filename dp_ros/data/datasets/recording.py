"""A live recording session, ROS-free: episodes, frames at the dataset fps, writing in the background.

The recorder node feeds it joint states, camera frames and actions with their
time stamps; a timer calls :meth:`RecordingSession.tick`. Frames are taken on a
fixed grid (episode start + k / fps), each from the latest data at or before its
grid time (the same causal rule as the policy node and the bag converter), so a
late timer does not change what a frame holds.

Time is never compressed: a frame with a stale or missing input is never filled
in, and the frames after it are never renumbered to close the hole. With
``on_stale: split`` (the default) the recording is cut there: the frames so far
are saved as one episode and the next usable frame starts another, each with
true timestamps (parts shorter than ``min_frames`` are not saved); with
``on_stale: discard`` the whole recording is discarded. Frames go to a worker
thread that owns the :class:`~dp_ros.data.datasets.dataset_writer.EpisodeWriter`, so
saving episode N never holds up the callbacks that record episode N+1.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dp_ros.data.datasets.dataset_writer import DatasetWriterError, EpisodeWriter, disk_bytes
from dp_ros.core.log_throttle import LogThrottle
from dp_ros.data.frame_sync import FrameSync, Gap, describe_causes
from dp_ros.node_params.recorder import RECORDER
from dp_ros.robot_interface import ACTION_FEATURE, ACTION_SOURCES, STATE_FEATURE, RobotInterface

IDLE, RECORDING, SAVING, FAULT = "idle", "recording", "saving", "fault"
STALE_POLICIES = ("split", "discard")
STATE_CODES = {IDLE: 0, RECORDING: 1, SAVING: 2, FAULT: 3}
WARNING_INTERVAL = 2.0

Log = Callable[[str, str], None]
"""log(level, message) with level "info", "warn" or "error"."""


@dataclass
class RecorderSettings:
    """What the recorder node's parameters set; their defaults are the node's declaration's (node_params.recorder)."""

    dataset_root: Path
    """Folder of the LeRobot dataset; an existing dataset there is continued."""
    task: str = RECORDER["task"].default
    """Task description stored with every frame."""
    action_source: str = RECORDER["action_source"].default
    """``leader``, ``command`` or ``next_state``; empty: the robot interface's."""
    max_input_age: float = RECORDER["max_input_age"].default
    """Seconds: a frame whose newest joint state, camera frame or action is older is unusable."""
    on_stale: str = RECORDER["on_stale"].default
    """An unusable frame after the first frame: ``split`` saves the frames so far as an episode and starts the
    next episode at the next usable frame; ``discard`` discards the recording (to be recorded again)."""
    min_frames: int = RECORDER["min_frames"].default
    """An episode (or a part of a split recording) with fewer frames is not saved."""
    max_episode_seconds: float = RECORDER["max_episode_seconds"].default
    """An episode stops and is saved after this long; 0 = no limit."""
    repo_id: str = RECORDER["repo_id"].default
    """LeRobot repo_id of a new dataset (only a label for a local dataset)."""


@dataclass(frozen=True)
class RecorderStatus:
    state: str
    message: str
    dataset_root: str
    episode_index: int
    episodes_saved: int
    frames_in_episode: int
    frames_dropped: int
    """Unusable frames in this recording (none of them is in the dataset)."""
    splits: int
    """Times this recording was split at unusable frames (each part is its own episode)."""
    disk_bytes: int


def _print_log(level: str, message: str) -> None:
    print(f"[{level}] {message}", flush=True)


class RecordingSession:
    """Episodes driven by start/stop/discard; thread-safe (callbacks, timer and services may run in parallel)."""

    def __init__(self, robot: RobotInterface, settings: RecorderSettings, log: Log = _print_log):
        self.robot = robot
        self.settings = settings
        self._log = log
        self.action_source = settings.action_source or robot.action.source
        if self.action_source not in ACTION_SOURCES:
            raise ValueError(f"action_source must be one of {ACTION_SOURCES}, got {self.action_source!r}")
        if not settings.max_input_age > 0:
            raise ValueError(f"max_input_age must be positive seconds, got {settings.max_input_age}")
        if settings.on_stale not in STALE_POLICIES:
            raise ValueError(f"on_stale must be one of {STALE_POLICIES}, got {settings.on_stale!r}")
        if settings.min_frames < 1:
            raise ValueError(f"min_frames must be at least 1, got {settings.min_frames}")
        if settings.max_episode_seconds < 0:
            raise ValueError(f"max_episode_seconds must be >= 0, got {settings.max_episode_seconds}")
        if not settings.task:
            raise ValueError("task must not be empty")
        self.period = 1.0 / robot.fps
        self.sync = FrameSync(settings.max_input_age, keep=max(5.0, 4 * settings.max_input_age))
        self.sync.add_stream(STATE_FEATURE)
        for cam in robot.cameras:
            self.sync.add_stream(cam.feature)
        if self.action_source != "next_state":
            self.sync.add_stream(ACTION_FEATURE)

        self.writer = EpisodeWriter(settings.dataset_root, robot, repo_id=settings.repo_id)
        self._lock = threading.RLock()
        self._recording = False
        self._fault = ""
        self._message = (f"continuing the dataset at {self.writer.root} ({self.writer.episodes_saved} episodes)"
                         if self.writer.resumed else f"new dataset at {self.writer.root}")
        if self.writer.recovered_episode:
            self._message += "; an episode whose save had been interrupted was rolled back"
        self._episodes_saved = self.writer.episodes_saved
        self._saves_pending = 0
        self._disk_bytes = disk_bytes(self.writer.root)
        self._frames = 0
        self._in_part = False
        self._parts = 0
        self._dropped = 0
        self._pending: tuple[float, dict[str, np.ndarray]] | None = None
        self._warnings = LogThrottle(WARNING_INTERVAL)
        self._jobs: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="dataset-writer", daemon=True)
        self._worker.start()

    def log(self, level: str, message: str) -> None:
        try:
            self._log(level, message)
        except Exception:  # noqa: BLE001 - a failing logger must not stop recording or saving
            pass

    # --- inputs (any thread) ------------------------------------------------------------
    def add_state(self, stamp: float, positions: np.ndarray) -> None:
        self.sync.add(STATE_FEATURE, stamp, np.asarray(positions, dtype=np.float32))

    def add_image(self, camera: str, stamp: float, rgb: np.ndarray) -> None:
        self.sync.add(self.robot.camera(camera).feature, stamp, rgb)

    def add_action(self, stamp: float, positions: np.ndarray) -> None:
        if self.action_source != "next_state":
            self.sync.add(ACTION_FEATURE, stamp, np.asarray(positions, dtype=np.float32))

    # --- episodes -------------------------------------------------------------------------
    @property
    def episode_index(self) -> int:
        return self._episodes_saved + self._saves_pending

    def start_episode(self, now: float) -> tuple[bool, str]:
        with self._lock:
            if self._fault:
                return False, f"cannot record: {self._fault}"
            if self._recording:
                return False, (f"already recording episode {self.episode_index}; call stop_episode or "
                               "discard_episode first")
            self._recording = True
            self._t0 = now
            self._k = 0
            self._frames = 0
            self._in_part = False
            self._parts = 0
            self._saved_parts = 0
            self._dropped = 0
            self._part_start = now
            self._gap: Gap | None = None
            self._gap_before: Gap | None = None
            self._pending = None
            self._task = self.settings.task
            self.sync.reset_stats()
            silent = [name for name, buffer in self.sync.buffers.items() if buffer.latest() is None]
            message = f"recording episode {self.episode_index} at {self.robot.fps} fps, task {self._task!r}"
            if silent:
                message += (f"; no messages yet for {', '.join(silent)}: recording starts when they arrive "
                            "(check the topics in the robot interface)")
            self._message = message
            self.log("warn" if silent else "info", message)
            return True, message

    def stop_episode(self, reason: str = "") -> tuple[bool, str]:
        with self._lock:
            if not self._recording:
                return False, "not recording; call start_episode first"
            self._recording = False
            self._pending = None
            closed = self._close_part()
            if not self._saved_parts:
                why = (f"its usable frames were fewer than min_frames ({self.settings.min_frames})" if self._parts
                       else "it has no usable frames")
                message = (f"episode {self.episode_index}: nothing saved, {why} ({self._dropped} unusable"
                           + (f": {describe_causes(self._gap.causes)}" if self._gap else "") + ")")
                level = "warn"
            else:
                message = f"{closed or 'the recording'} queued for saving to {self.writer.root}"
                if self._parts > 1:
                    message += (f"; it was split {self._parts - 1} times at unusable frames ({self._dropped} "
                                f"frames; last: {describe_causes(self._gap_before_last.causes)}), "
                                f"{self._saved_parts} parts kept as episodes")
                message += f" ({reason})" if reason else ""
                level = "info"
            self._message = message
            self.log(level, message)
            return bool(self._saved_parts), message

    def discard_episode(self, why: str = "") -> tuple[bool, str]:
        with self._lock:
            if not self._recording:
                return False, "not recording; nothing to discard"
            self._recording = False
            self._pending = None
            self._jobs.put(("discard", None))
            message = f"episode {self.episode_index} discarded ({self._frames} frames)" + (f": {why}" if why else "")
            if self._saved_parts:
                message += f"; the {self._saved_parts} episodes saved before it was split are kept"
            self._message = message
            self.log("warn" if why else "info", message)
            return True, message

    def _close_part(self) -> str:
        """End the current part: queue it for saving (enough frames) or discard it; returns what was saved."""
        if not self._in_part:
            return ""
        self._in_part = False
        frames = self._frames
        gap_before, self._gap_before = self._gap_before, None
        if frames < self.settings.min_frames:
            self._jobs.put(("discard", None))
            self.log("warn", f"{frames} frames from {self._part_start:.3f} s not saved: fewer than min_frames "
                             f"({self.settings.min_frames})")
            return ""
        period = 1.0 / self.robot.fps
        record = {"task": self._task, "part": self._parts - 1, "start_time": round(self._part_start, 6),
                  **({"gap_before": gap_before.as_dict(period)} if gap_before else {}),
                  "sync": {k: v.as_dict() for k, v in self.sync.reset_stats().items()}}
        index = self.episode_index
        self._saves_pending += 1
        self._saved_parts += 1
        self._jobs.put(("save", (index, record)))
        return f"episode {index} ({frames} frames)"

    # --- sampling -------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Take every grid frame whose time has come (call it at least at the dataset fps)."""
        with self._lock:
            if not self._recording:
                return
            limit = int(round(self.settings.max_episode_seconds * self.robot.fps))
            while self._recording and self._t0 + self._k * self.period <= now:
                t = self._t0 + self._k * self.period
                self._k += 1
                self._sample(t)
                if limit and self._k >= limit:
                    self.stop_episode(reason=f"reached max_episode_seconds = {self.settings.max_episode_seconds} s")

    def _sample(self, t: float) -> None:
        pick = self.sync.pick(t)
        values = {name: sample.value for name, sample in pick.samples.items()}
        if self.action_source != "next_state":
            self._emit(t, values) if pick.ok else self._unusable(t, pick.causes())
            return
        if self._pending is not None:
            (pending_time, pending), self._pending = self._pending, None
            if STATE_FEATURE in values:
                self._emit(pending_time, {**pending, ACTION_FEATURE: values[STATE_FEATURE]})
            else:  # the frame has no next state for its action
                self._unusable(pending_time, {STATE_FEATURE: pick.causes().get(STATE_FEATURE)})
        if pick.ok:
            self._pending = (t, values)
        else:
            self._unusable(t, pick.causes())

    def _emit(self, t: float, values: dict[str, np.ndarray]) -> None:
        if not self._in_part:  # the first frame of a part
            self._in_part, self._frames, self._parts = True, 0, self._parts + 1
            self._part_start, self._gap_before, self._gap = t, self._gap, None
            if self._parts > 1:
                self._gap_before_last = self._gap_before
        self._frames += 1
        self._jobs.put(("frame", (values, self._task)))

    def _unusable(self, t: float, causes: dict[str, float | None]) -> None:
        self._dropped += 1
        if self._gap is None:
            self._gap = Gap(t, 0, causes)
        self._gap.frames += 1
        if self._in_part and self.settings.on_stale == "discard":
            self.discard_episode(why=f"the frame at {t:.3f} s is unusable ({describe_causes(causes)}; "
                                     f"max_input_age {self.settings.max_input_age * 1000:.0f} ms) and on_stale "
                                     "is discard")
            return
        split = self._in_part
        saved = self._close_part()
        if self._warnings.ready(frozenset(causes)) or split:
            what = f"split after {saved or 'a part too short to keep'}" if split else "waiting for usable inputs"
            self.log("warn", f"frame at {t:.3f} s unusable ({describe_causes(causes)}; max_input_age "
                             f"{self.settings.max_input_age * 1000:.0f} ms): {what}; {self._dropped} unusable "
                             "frames in this recording")

    # --- the writer thread ----------------------------------------------------------------------
    def _work(self) -> None:
        broken = False
        while True:
            kind, payload = self._jobs.get()
            try:
                if kind == "frame":
                    if not broken:
                        values, task = payload
                        self.writer.add_frame(values, task)
                elif kind == "discard":
                    self.writer.discard_episode()
                    broken = False
                elif kind == "save":
                    index, record = payload
                    self._save(index, record, broken)
                    broken = False
                elif kind == "close":
                    self.writer.close()
                    return
            except Exception as exc:  # noqa: BLE001 - the worker must survive to report and keep saved episodes
                broken = True
                self._report_error(kind, exc)
            finally:
                self._jobs.task_done()

    def _save(self, index: int, record: dict[str, Any], broken: bool) -> None:
        try:
            if broken:
                self.writer.discard_episode()
                raise DatasetWriterError(f"episode {index} was not saved: writing its frames failed earlier")
            saved = self.writer.save_episode(record)
            message = f"episode {saved.index} saved ({saved.frames} frames) in {self.writer.root}"
            level = "info"
        except DatasetWriterError as exc:
            message, level = str(exc), "error"
        with self._lock:
            self._saves_pending -= 1
            self._episodes_saved = self.writer.episodes_saved
            self._disk_bytes = disk_bytes(self.writer.root)
            if not self._recording:
                self._message = message
        self.log(level, message)

    def _report_error(self, kind: str, exc: Exception) -> None:
        message = f"writing the dataset failed ({kind}): {type(exc).__name__}: {exc}"
        with self._lock:
            self._message = message
            if kind == "close":
                self._fault = message
        self.log("error", message)

    # --- status and shutdown ------------------------------------------------------------
    def status(self) -> RecorderStatus:
        with self._lock:
            if self._fault:
                state = FAULT
            elif self._recording:
                state = RECORDING
            elif self._saves_pending:
                state = SAVING
            else:
                state = IDLE
            if not self._worker.is_alive() and not self._fault:
                state = FAULT
            return RecorderStatus(state=state, message=self._message, dataset_root=str(self.writer.root),
                                  episode_index=self.episode_index, episodes_saved=self._episodes_saved,
                                  frames_in_episode=self._frames, frames_dropped=self._dropped,
                                  splits=max(0, self._parts - 1), disk_bytes=self._disk_bytes)

    def wait_until_written(self, timeout: float | None = None) -> bool:
        """Wait until every queued frame and save is done; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 120.0) -> None:
        """Discard an episode being recorded, finish pending saves and release the dataset."""
        with self._lock:
            if self._recording:
                self.log("warn", f"episode {self.episode_index} was being recorded at shutdown and is discarded "
                                 "(call stop_episode before shutting down to keep it)")
                self.discard_episode()
        if self._worker.is_alive():
            self._jobs.put(("close", None))
            self._worker.join(timeout)
