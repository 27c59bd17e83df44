"""What ``dp-ros bag2lerobot`` can be asked: how bags become episodes of frames."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from dp_ros.core.choices import StampSource, values
from dp_ros.data.datasets.dataset_to_bag import MARKER_TOPIC
from dp_ros.node_params.recorder import RECORDER
from dp_ros.robot_interface import ACTION_SOURCES

TIME_SOURCES = values(StampSource)
SPLIT_MODES = ("auto", "bag", "marker", "gap")
STALE_POLICIES = ("split", "fail")


class ConversionError(ValueError):
    """The bags cannot be converted as asked (the message names the bag, topic and what to do)."""


@dataclass
class ConversionOptions:
    """How bags become episodes; every field has a ``dp-ros bag2lerobot`` option. The fields the recorder node
    shares (task, action source and topic, min_frames) take its declared defaults: a converted dataset is made
    as a recorded one is."""

    tolerance: float = 0.1
    """Seconds: a frame whose newest message of some feature is older than this is unusable (stale)."""
    on_stale: str = "split"
    """What an unusable frame inside an episode does. ``split``: the episode is cut there, and the frames
    before and after the gap become separate episodes (so a dataset's timestamps are always true time since
    its episode's start); unusable frames at the start or the end of an episode are trimmed. ``fail``: the
    conversion stops at the first unusable frame. Dropping the frame and joining the rest would tell the
    policy that the gap took no time, so it is not offered."""
    time_source: str = StampSource.HEADER.value
    """``header`` stamps or ``receive`` (the bag's record times). Messages without a header
    (Float64MultiArray, markers) and commands with a zero stamp always use receive times."""
    split: str = "auto"
    """``auto``: ``marker`` for a bag that has ``split_topic`` (as ``lerobot2bag`` and the recorder write it),
    else ``bag``; ``bag``: one episode per bag; ``marker``: episodes delimited by messages on ``split_topic``;
    ``gap``: a new episode when the joint states pause longer than ``split_gap``."""
    split_topic: str = MARKER_TOPIC
    """Marker topic for ``split=marker`` (and ``auto``): a message whose ``data`` is a bool (std_msgs/Bool, or a custom type
    whose definition the bag stores) starts the episode when true and ends it when false; a message of any
    other kind ends the current episode and starts the next."""
    split_gap: float = 1.0
    """Seconds of silence on the joint-state topic that separate episodes (``split=gap``)."""
    action_source: str = RECORDER["action_source"].default
    """``leader``, ``command`` or ``next_state``; empty: the robot interface's action source."""
    action_topic: str = RECORDER["action_topic"].default
    """Topic of the action (leader JointState or command); empty: from the robot interface."""
    joint_state_topic: str = ""
    """Joint-state topic; empty: the robot interface's."""
    camera_topics: dict[str, str] = field(default_factory=dict)
    """Camera name -> topic, replacing the robot interface's topic (e.g. a /compressed topic)."""
    task: str = RECORDER["task"].default
    """Task description stored with every frame."""
    min_frames: int = RECORDER["min_frames"].default
    """Episodes (and parts of split episodes) with fewer frames are not written (reported): a Diffusion Policy
    learns little from a fragment shorter than its observation history and action horizon."""
    reorder_window: float = 0.5
    """Seconds to wait for a late message (header stamps arrive out of order) before a frame is decided."""
    decode_every_message: bool = False
    """Decode every message of the needed topics as it arrives, as a naive converter would, instead of only
    those a frame picks: the same dataset, slower (for comparison and profiling)."""
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
