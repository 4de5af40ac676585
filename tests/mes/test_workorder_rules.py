"""Work order lifecycle and live progress: worked cases, then properties."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mes.rules.workorders import (
    InvalidTransition,
    WorkOrderAction,
    WorkOrderStatus,
    most_good_allowed,
    progress,
    should_auto_complete,
    transition,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
S = WorkOrderStatus

# The lifecycle as the issue states it, written out once more so the table in the rule is checked.
ALLOWED = {
    ("planned", "release"): "released",
    ("released", "start"): "running",
    ("running", "pause"): "paused",
    ("running", "complete"): "completed",
    ("paused", "resume"): "running",
    ("paused", "complete"): "completed",
    ("completed", "close"): "closed",
}


def test_a_work_order_goes_through_its_whole_life():
    status = S.PLANNED
    for action in ("release", "start", "pause", "resume", "complete", "close"):
        status = transition(status, action)
    assert status is S.CLOSED


@pytest.mark.parametrize("status", list(WorkOrderStatus))
@pytest.mark.parametrize("action", list(WorkOrderAction))
def test_from_any_status_only_the_listed_actions_are_allowed(status, action):
    expected = ALLOWED.get((status.value, action.value))
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"cannot {action.value} a work order that is {status.value}"):
            transition(status, action)
    else:
        assert transition(status, action) is WorkOrderStatus(expected)


def test_the_refusal_says_what_is_allowed_instead():
    with pytest.raises(InvalidTransition, match=r"cannot start a work order that is paused \(allowed: resume, complete\)"):
        transition(S.PAUSED, "start")
    with pytest.raises(InvalidTransition, match=r"cannot close a work order that is closed \(allowed: none, it is final\)"):
        transition(S.CLOSED, "close")


def test_an_unknown_action_is_an_invalid_transition():
    with pytest.raises(InvalidTransition, match="unknown work order action 'stop'"):
        transition(S.RUNNING, "stop")


def test_progress_worked_example():
    # 400 good of 1,000; 100 scrap; 120 good in the last 10 minutes = 720 an hour; 600 to go = 50 minutes.
    result = progress(1000, 400, 100, 120, Decimal(600), NOW, Decimal("0.05"))
    assert result.yield_fraction == Decimal("0.8")
    assert result.percent_complete == Decimal(40)
    assert result.rate_per_hour == Decimal(720)
    assert result.projected_finish == NOW + timedelta(minutes=50)
    assert (result.most_good_allowed, result.over_tolerance) == (1050, False)


def test_nothing_made_yet_has_no_yield_and_no_projection():
    result = progress(500, 0, 0, 0, Decimal(0), NOW, Decimal(0))
    assert (result.yield_fraction, result.percent_complete, result.rate_per_hour, result.projected_finish) == \
        (None, Decimal(0), None, None)


def test_a_stopped_machine_has_a_zero_rate_and_no_projection():
    result = progress(500, 100, 0, 0, Decimal(300), NOW, Decimal(0))
    assert (result.rate_per_hour, result.projected_finish) == (Decimal(0), None)


def test_the_projection_rounds_up_to_the_microsecond():
    # 1 unit to go at 3 units per second: a third of a second, never shown as earlier.
    result = progress(10, 9, 0, 3, Decimal(1), NOW, Decimal(0))
    assert result.projected_finish == NOW + timedelta(microseconds=333_334)


def test_a_projection_beyond_the_calendar_is_none():
    result = progress(10**15, 0, 0, 1, Decimal(10**9), NOW, Decimal(0))
    assert result.projected_finish is None


def test_over_production_within_and_beyond_the_tolerance():
    within = progress(100, 105, 0, 0, Decimal(0), NOW, Decimal("0.05"))
    beyond = progress(100, 106, 0, 0, Decimal(0), NOW, Decimal("0.05"))
    assert (within.percent_complete, within.over_tolerance, within.projected_finish) == (Decimal(105), False, None)
    assert (beyond.percent_complete, beyond.over_tolerance) == (Decimal(106), True)


def test_the_tolerance_limit_rounds_down_to_whole_units():
    assert most_good_allowed(30, Decimal("0.05")) == 31  # 31.5 units: the half unit cannot be made


def test_yield_is_divided_at_28_digits_not_quantized():
    assert progress(3, 1, 2, 0, Decimal(0), NOW, Decimal(0)).yield_fraction == Decimal("0." + "3" * 28)


@pytest.mark.parametrize("arguments", [
    (0, 0, 0, 0, Decimal(0), NOW, Decimal(0)),
    (10, -1, 0, 0, Decimal(0), NOW, Decimal(0)),
    (10, 0, 0, 0, Decimal(-1), NOW, Decimal(0)),
    (10, 0, 0, 0, Decimal(0), NOW, Decimal("-0.1")),
])
def test_impossible_inputs_are_refused(arguments):
    with pytest.raises(ValueError):
        progress(*arguments)


def test_auto_complete_only_when_asked_and_the_quantity_is_reached():
    assert should_auto_complete(100, 100, auto_complete=True)
    assert not should_auto_complete(100, 99, auto_complete=True)
    assert not should_auto_complete(100, 150, auto_complete=False)


# --- properties -------------------------------------------------------------------------------

quantities = st.integers(1, 10**9)
counts = st.integers(0, 10**9)
windows = st.decimals(min_value=0, max_value=86_400, places=3)
tolerances = st.decimals(min_value=0, max_value=1, places=4)


@given(quantities, counts, counts, counts, windows, tolerances)
def test_percent_complete_never_falls_as_good_units_rise(quantity, good, more, scrap, window, tolerance):
    before = progress(quantity, good, scrap, 0, window, NOW, tolerance)
    after = progress(quantity, good + more, scrap, 0, window, NOW, tolerance)
    assert after.percent_complete >= before.percent_complete
    assert after.over_tolerance >= before.over_tolerance


@given(quantities, counts, counts, tolerances)
def test_yield_is_a_fraction_of_what_was_made(quantity, good, scrap, tolerance):
    result = progress(quantity, good, scrap, 0, Decimal(0), NOW, tolerance)
    assert result.yield_fraction is None if good + scrap == 0 else 0 <= result.yield_fraction <= 1


@given(quantities, counts, st.integers(0, 10**6), windows)
def test_unfinished_work_finishes_after_now_and_finished_work_has_no_projection(quantity, good, window_good, window):
    finish = progress(quantity, good, 0, window_good, window, NOW, Decimal(0)).projected_finish
    if good >= quantity or window_good == 0 or window == 0:
        assert finish is None
    else:
        seconds = (quantity - good) * window / window_good
        if seconds < 10**9:  # within the calendar
            assert NOW < finish <= NOW + timedelta(seconds=int(seconds) + 1)


@given(quantities, counts, tolerances)
def test_over_tolerance_means_more_good_units_than_quantity_plus_tolerance(quantity, good, tolerance):
    result = progress(quantity, good, 0, 0, Decimal(0), NOW, tolerance)
    assert result.over_tolerance == (good > quantity * (1 + tolerance))
    assert quantity <= result.most_good_allowed <= quantity * (1 + tolerance) < result.most_good_allowed + 1


@given(st.lists(st.sampled_from(list(WorkOrderAction)), max_size=30))
def test_closed_is_final_and_every_walk_follows_the_table(actions):
    status = S.PLANNED
    for action in actions:
        if (status.value, action.value) in ALLOWED:
            status = transition(status, action)
        else:
            with pytest.raises(InvalidTransition):
                transition(status, action)
    if status is S.CLOSED:
        for action in WorkOrderAction:
            with pytest.raises(InvalidTransition):
                transition(status, action)


def test_scrap_gets_reasons_without_ever_changing_how_much_was_scrapped():
    from mes.rules.workorders import UNCLASSIFIED, classify_scrap, scrap_by_reason

    classified = classify_scrap(10, {}, "burr", 4)
    classified = classify_scrap(10, classified, "crack", 5)
    assert scrap_by_reason(10, classified) == {"burr": 4, "crack": 5, UNCLASSIFIED: 1}
    classified = classify_scrap(10, classified, "burr", -4)  # re-classify: take them back...
    classified = classify_scrap(10, classified, "crack", 4)  # ...and give them another reason
    assert scrap_by_reason(10, classified) == {"crack": 9, UNCLASSIFIED: 1}
    with pytest.raises(ValueError, match="only 1 scrapped units are unclassified"):
        classify_scrap(10, classified, "burr", 2)
    with pytest.raises(ValueError, match="cannot take back 1"):
        classify_scrap(10, classified, "burr", -1)
    with pytest.raises(ValueError, match="what remains"):
        classify_scrap(10, classified, UNCLASSIFIED, 1)
    with pytest.raises(ValueError, match="other than 0"):
        classify_scrap(10, classified, "crack", 0)


@given(st.integers(0, 50), st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(-20, 20)), max_size=30))
def test_classifications_never_exceed_the_counted_scrap_nor_go_below_zero(total, requests):
    from mes.rules.workorders import UNCLASSIFIED, classify_scrap, scrap_by_reason

    classified: dict[str, int] = {}
    for reason, quantity in requests:
        try:
            classified = classify_scrap(total, classified, reason, quantity)
        except ValueError:
            continue
        breakdown = scrap_by_reason(total, classified)
        assert sum(breakdown.values()) == total
        assert all(units >= 0 for units in breakdown.values()) and breakdown[UNCLASSIFIED] >= 0
