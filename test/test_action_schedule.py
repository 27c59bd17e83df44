"""Time-stamped chunks: late actions dropped, smooth merging, interpolation (no ROS)."""
import numpy as np
import pytest

from dp_ros.core.action_schedule import ActionSchedule as Schedule
from dp_ros.node_params.policy import POLICY


def ActionSchedule(period, **settings):
    """A schedule with the policy node's defaults, except blend with no deviation limit unless ``settings`` say."""
    names = ("transition", "blend_steps", "ensemble_decay", "late_margin", "blend_max_deviation")
    values = {name: POLICY[name].default for name in names}
    values.update(transition="blend", blend_max_deviation=float("inf"))
    values.update(settings)
    return Schedule(period, **values)


def chunk(values, joints=2):
    return np.repeat(np.asarray(values, dtype=float)[:, None], joints, axis=1)


def test_actions_are_stamped_from_the_observation_time_and_late_ones_dropped():
    schedule = ActionSchedule(period=0.1)
    # observation at t=1.0, chunk arrives at t=1.25: actions for 1.0, 1.1, 1.2 are in the past
    result = schedule.add_chunk(1.0, chunk([0, 1, 2, 3, 4, 5]), now=1.25)
    assert result.dropped_late == 3 and result.kept == 3
    times, actions = schedule.upcoming(1.25)
    np.testing.assert_allclose(times, [1.3, 1.4, 1.5])
    np.testing.assert_allclose(actions[:, 0], [3, 4, 5])


def test_late_margin_counts_imminent_actions_as_late():
    schedule = ActionSchedule(period=0.1, late_margin=0.06)
    assert schedule.add_chunk(1.0, chunk([0, 1, 2, 3]), now=1.05).dropped_late == 2


def test_a_chunk_entirely_in_the_past_is_dropped():
    schedule = ActionSchedule(period=0.1)
    result = schedule.add_chunk(0.0, chunk([1, 2]), now=5.0)
    assert result == type(result)(0, 2)
    assert schedule.at(5.0) is None


def test_interpolates_between_planned_actions_and_runs_out():
    schedule = ActionSchedule(period=0.1)
    schedule.add_chunk(0.0, chunk([0.0, 1.0, 2.0]), now=0.0)
    np.testing.assert_allclose(schedule.at(0.05), [0.5, 0.5])
    np.testing.assert_allclose(schedule.at(0.2), [2.0, 2.0])
    assert schedule.at(0.2001) is None
    assert schedule.remaining(0.05) == 2
    assert schedule.remaining(0.3) == 0


def test_blend_moves_gradually_from_old_plan_to_new():
    schedule = ActionSchedule(period=0.1, transition="blend", blend_steps=3)
    schedule.add_chunk(0.0, chunk([0.0] * 8), now=0.0)
    schedule.add_chunk(0.3, chunk([1.0] * 8), now=0.35)  # first new action at 0.4
    values = [schedule.at(t)[0] for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]
    assert values[0] == pytest.approx(0.0)  # the old plan before the new chunk
    np.testing.assert_allclose(values[1:4], [0.25, 0.5, 0.75])
    np.testing.assert_allclose(values[4:], [1.0, 1.0])
    assert np.all(np.diff(values) <= 0.25 + 1e-9), "no jump larger than one blend increment"


def test_replace_switches_at_once():
    schedule = ActionSchedule(period=0.1, transition="replace")
    schedule.add_chunk(0.0, chunk([0.0] * 8), now=0.0)
    schedule.add_chunk(0.3, chunk([1.0] * 8), now=0.35)
    assert schedule.at(0.4)[0] == pytest.approx(1.0)


def test_ensemble_averages_overlapping_predictions_favouring_older_ones():
    schedule = ActionSchedule(period=0.1, transition="ensemble", ensemble_decay=0.5)
    schedule.add_chunk(0.0, chunk([0.0] * 8), now=0.0)
    schedule.add_chunk(0.2, chunk([1.0] * 8), now=0.25)
    w_new = np.exp(-0.5)
    expected = w_new / (1 + w_new)
    assert schedule.at(0.4)[0] == pytest.approx(expected)
    # beyond the old plan only the new prediction exists
    assert schedule.at(0.9)[0] == pytest.approx(1.0)


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="transition"):
        ActionSchedule(0.1, transition="teleport")
    with pytest.raises(ValueError):
        ActionSchedule(0.1).add_chunk(0.0, np.zeros(3), now=0.0)


def test_blend_does_not_average_chunks_that_chose_another_solution():
    schedule = ActionSchedule(period=0.1, transition="blend", blend_steps=3, blend_max_deviation=0.2)
    schedule.add_chunk(0.0, chunk([0.0] * 8), now=0.0)  # going one way
    schedule.add_chunk(0.3, chunk([1.0] * 8), now=0.35)  # the other way: far from the plan
    assert schedule.divergent_chunks == 1
    assert schedule.at(0.4)[0] == pytest.approx(1.0), "the new solution is taken whole, not averaged"
    schedule.add_chunk(0.5, chunk([1.1] * 8), now=0.55)  # close to the plan: blended
    assert schedule.divergent_chunks == 1
    assert 1.0 < schedule.at(0.6)[0] < 1.1


def test_guided_takes_over_at_the_first_on_time_action_without_blending():
    schedule = ActionSchedule(period=0.1, transition="guided", blend_steps=3)
    schedule.add_chunk(0.0, chunk([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]), now=0.0)
    times, actions = schedule.plan()
    np.testing.assert_allclose(actions[:, 0], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    # a chunk that continued the plan (its late prefix equal to it) and then turns
    schedule.add_chunk(0.3, chunk([0.3, 0.4, 0.5, 0.55, 0.5]), now=0.45)
    np.testing.assert_allclose([schedule.at(t)[0] for t in (0.4, 0.5, 0.6, 0.7)], [0.4, 0.5, 0.55, 0.5])
    times, actions = schedule.plan()
    assert times[0] == pytest.approx(0.4), "the plan keeps the last action before now to interpolate from"
