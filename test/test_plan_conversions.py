"""The plan's messages on hand-built data: pinned spans as the guide pins them, true stamps, round trips."""
from __future__ import annotations

import numpy as np
import pytest

from dp_ros.conversions.plan import (Intervention, chunk_message, intervention_kinds, intervention_message,
                                     parse_chunk, parse_plan, plan_message)
from dp_ros.core.chunk_guidance import ChunkGuide
from dp_ros.core.plan_events import ChunkRecord, PinnedSpan, pinned_span

JOINTS = ["a", "b"]


def test_the_pinned_span_is_what_the_guide_pins():
    # the plan covers steps -1 .. 5 after the observation; the chunk is expected 2.5 steps after it
    plan_steps = np.arange(-1.0, 6.0)
    span = pinned_span(plan_steps, 2.5, n_actions=10, period=0.1)
    assert (span.start, span.count) == (0, 3) and span.expected_delay == pytest.approx(0.25)
    # the same actions get weight 1 from the guide itself (horizon index = step + n_obs_steps - 1)
    guide = ChunkGuide(steps=plan_steps, actions=np.zeros((7, 2)), delay=2.5)
    _, weights = guide.on_horizon(horizon=11, n_obs_steps=2)
    assert np.flatnonzero(weights[1:] == 1.0).tolist() == list(range(span.start, span.start + span.count))
    # a plan that starts after the observation pins from its first covered action; no plan pins nothing
    assert (pinned_span(np.arange(1.0, 4.0), 3.0, 10, 0.1).start, pinned_span(np.arange(1.0, 4.0), 3.0, 10, 0.1).count) == (1, 2)
    assert pinned_span(np.empty(0), 3.0, 10, 0.1).count == 0


def test_the_plan_carries_true_stamps_and_an_empty_plan_is_an_empty_trajectory():
    times = 1700000000.25 + 0.1 * np.arange(4)
    actions = np.arange(8.0).reshape(4, 2)
    msg = plan_message(JOINTS, times, actions, now=1700000000.3)
    # float seconds since the epoch resolve about 0.2 us
    assert msg.header.stamp.sec == 1700000000 and abs(msg.header.stamp.nanosec - 250_000_000) < 1000
    parsed_times, parsed = parse_plan(msg)
    np.testing.assert_allclose(parsed_times, times, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(parsed, actions)
    empty = plan_message(JOINTS, [], None, now=12.5)
    assert not empty.points and parse_plan(empty)[1].shape == (0, 2)


def test_a_chunk_survives_its_message():
    actions = np.random.default_rng(0).normal(size=(6, 2))
    record = ChunkRecord(index=4, observation_time=100.0, merged_at=100.23, compute_time=0.2, period=0.1,
                         actions=actions, dropped_late=3, pinned=PinnedSpan(0, 4, 0.35), transition="guided",
                         plan_times=np.empty(0), plan_actions=np.empty((0, 2)))
    chunk = parse_chunk(chunk_message(record, JOINTS))
    assert (chunk.index, chunk.dropped_late, chunk.pinned_start, chunk.pinned_count) == (4, 3, 0, 4)
    np.testing.assert_allclose(chunk.times, 100.0 + 0.1 * np.arange(6), atol=1e-9)
    np.testing.assert_array_equal(chunk.actions, actions)
    assert chunk.delay == pytest.approx(0.23) and chunk.merged_at == pytest.approx(100.23)
    assert chunk.executable == slice(3, 6) and chunk.pinned == slice(0, 4)


def test_an_intervention_names_its_kinds_and_largest_change():
    planned = np.array([[0.0, 0.0], [0.5, 0.1]])
    commanded = np.array([[0.0, 0.0], [0.2, 0.1]])
    msg = intervention_message(Intervention(5.0, ("velocity",), np.array([0.1, 0.2]), planned, commanded), JOINTS)
    assert intervention_kinds(msg) == ("velocity",) and msg.largest_change == pytest.approx(0.3)
    stop = intervention_message(Intervention(5.0, ("stop",), np.array([0.1]), np.empty((0, 2)), commanded[:1]), JOINTS)
    assert stop.stop_command and stop.largest_change == 0.0 and not stop.planned
