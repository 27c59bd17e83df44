"""Unit tests of the shared causal time alignment (dp_ros.core.time_alignment) and of the
tolerance rule built on it (dp_ros.data.frame_sync): a sample never takes a later message,
and a pick older than the tolerance is stale, never used."""
from __future__ import annotations

import math
import random
import threading
from types import SimpleNamespace

import pytest

from dp_ros.core.time_alignment import (
    TimestampedBuffer,
    align_causal,
    frame_times,
    history_times,
    stamp_to_seconds,
    within_tolerance,
)
from dp_ros.data.frame_sync import FrameSync


def brute_force_latest(stamps, t):
    candidates = [s for s in stamps if s <= t]
    return max(candidates) if candidates else None


def test_buffer_returns_the_latest_sample_at_or_before_never_a_later_one():
    buffer = TimestampedBuffer(keep=100.0)
    for stamp in (1.0, 2.0, 3.0):
        buffer.add(stamp, f"m{stamp}")
    assert buffer.at_or_before(0.999) is None
    assert buffer.at_or_before(1.0).value == "m1.0"  # equal stamps count as "at"
    assert buffer.at_or_before(2.5).value == "m2.0"
    assert buffer.at_or_before(2.9999999).stamp == 2.0
    assert buffer.at_or_before(1e9).value == "m3.0"
    assert buffer.latest().stamp == 3.0


def test_buffer_orders_late_arrivals_replaces_duplicates_rejects_nonfinite_and_forgets_old():
    buffer = TimestampedBuffer(keep=2.0)
    buffer.add(5.0, "a")
    buffer.add(4.0, "late")
    assert buffer.out_of_order == 1
    assert buffer.at_or_before(4.5).value == "late"
    buffer.add(5.0, "b")
    assert len(buffer) == 2 and buffer.at_or_before(5.0).value == "b"
    assert buffer.add(math.nan, "x") is False and buffer.add(math.inf, "y") is False
    assert buffer.rejected == 2 and len(buffer) == 2
    buffer.add(7.5, "c")  # 4.0 and 5.0 are more than 2 s behind the newest
    assert buffer.at_or_before(5.0) is None and buffer.at_or_before(8.0).value == "c"
    bounded = TimestampedBuffer(keep=1e9, max_samples=3)
    for i in range(10):
        bounded.add(float(i), i)
    assert len(bounded) == 3 and bounded.at_or_before(6.5) is None
    with pytest.raises(ValueError):
        TimestampedBuffer(keep=0)


def test_buffer_is_consistent_while_one_thread_adds_and_another_reads():
    buffer = TimestampedBuffer(keep=1e6)
    errors = []

    def writer():
        for i in range(20000):
            buffer.add(i * 0.001, i)

    def reader():
        for _ in range(20000):
            sample = buffer.latest()
            if sample is not None:
                picked = buffer.at_or_before(sample.stamp)
                if picked is None or picked.stamp > sample.stamp or picked.value != round(picked.stamp / 0.001):
                    errors.append(picked)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(buffer) == buffer.max_samples


def test_align_causal_matches_brute_force_on_random_stamps():
    rng = random.Random(4)
    for _ in range(50):
        stamps = sorted(rng.uniform(0, 10) for _ in range(rng.randint(0, 40)))
        targets = [rng.uniform(-1, 11) for _ in range(30)] + stamps[:5]
        for pick in align_causal(targets, stamps):
            expected = brute_force_latest(stamps, pick.target)
            if expected is None:
                assert pick.index is None and pick.stamp is None and pick.age == math.inf
            else:
                assert pick.stamp == expected == stamps[pick.index]
                assert pick.stamp <= pick.target and pick.age >= 0


def test_tolerance_rule_of_align_causal():
    picks = align_causal([1.0, 1.05, 1.2, 0.5], [0.9, 1.0])
    assert [p.index for p in picks] == [1, 1, 1, None]
    assert within_tolerance(picks, 0.1) == [True, True, False, False]
    assert within_tolerance(picks, 0.2) == [True, True, True, False]


def test_frame_and_history_times():
    assert frame_times(0.0, 0.3, 10) == pytest.approx([0.0, 0.1, 0.2, 0.3])  # the end is included
    assert len(frame_times(2.0, 2.0999, 10)) == 1 and frame_times(1.0, 0.5, 10) == []
    with pytest.raises(ValueError):
        frame_times(0, 1, 0)
    assert history_times(1.0, 3, 0.1) == pytest.approx([0.8, 0.9, 1.0])
    with pytest.raises(ValueError):
        history_times(1.0, 0, 0.1)


def test_stamp_to_seconds_reads_rclpy_and_rosbags_times():
    from builtin_interfaces.msg import Time
    from rosbags.typesys import Stores, get_typestore

    assert stamp_to_seconds(Time(sec=12, nanosec=500_000_000)) == 12.5
    RosbagsTime = get_typestore(Stores.ROS2_JAZZY).types["builtin_interfaces/msg/Time"]
    assert stamp_to_seconds(RosbagsTime(sec=3, nanosec=250_000_000)) == 3.25
    assert stamp_to_seconds(SimpleNamespace(sec=7)) == 7.0


def test_frame_sync_stale_missing_and_lead_views():
    sync = FrameSync(tolerance=0.1)
    sync.add_stream("state")
    sync.add_stream("camera")
    sync.add_view("next", "state", lead=0.1)
    for i in range(10):
        sync.add("state", i / 50, i)  # 0.0 .. 0.18
    sync.add("camera", 0.05, "c0")

    early = sync.pick(0.01)
    assert not early.ok and early.missing == ["camera"]

    ok = sync.pick(0.06)
    assert ok.ok and ok.samples["state"].value == 3 and ok.samples["camera"].value == "c0"
    assert ok.samples["next"].value == 8  # latest at or before 0.16, never later

    stale = sync.pick(0.16)  # camera 110 ms old; next-state target 0.26 is 80 ms after the last state
    assert set(stale.stale) == {"camera"} and stale.stale["camera"] == pytest.approx(0.11)
    assert stale.causes() == {"camera": pytest.approx(0.11)}
    assert early.causes() == {"camera": None}
    late = sync.pick(0.30)
    assert set(late.stale) == {"state", "camera", "next"}

    stats = sync.reset_stats()
    assert (stats["camera"].missing, stats["camera"].stale, stats["camera"].used) == (1, 2, 1)
    assert stats["state"].used == 3 and stats["state"].age_max == pytest.approx(0.01)
    assert sync.stats["camera"].used == 0
    with pytest.raises(ValueError):
        FrameSync(tolerance=0)
