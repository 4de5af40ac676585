"""State intervals from state changes and contacts: worked cases, then properties over random histories."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.rules.states import (
    Category,
    Contact,
    StateChange,
    StateInterval,
    StopKind,
    classify_stop,
    clip,
    derive_intervals,
    running_seconds,
)

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=60)
RUNNING, IDLE, FAULT, BLOCKED, STARVED, SETUP, PLANNED_STOP = range(1, 8)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def change(seconds, state, fault=0):
    return StateChange(at(seconds), state, fault)


def heard(*seconds):
    return [Contact(at(s), True) for s in seconds]


def every(step, start, stop):
    """A heartbeat every `step` seconds in [start, stop)."""
    return heard(*range(start, stop, step))


def derive(changes, contacts=(), until=600, timeout=TIMEOUT, **options):
    return derive_intervals("M1", changes, contacts, at(until), timeout, **options)


def table(intervals):
    """(start s, end s, state, fault) per interval, seconds after T0."""
    return [(int((i.start - T0).total_seconds()), int((i.end - T0).total_seconds()), i.state, i.fault_code) for i in intervals]


def test_changes_become_contiguous_intervals_with_their_category():
    intervals = derive([change(0, RUNNING), change(100, FAULT, 12), change(200, RUNNING), change(300, PLANNED_STOP)],
                       every(10, 0, 600))
    assert table(intervals) == [(0, 100, "running", 0), (100, 200, "fault", 12), (200, 300, "running", 0),
                                (300, 600, "planned_stop", 0)]
    assert [i.category for i in intervals] == [Category.RUNNING, Category.STOPPED, Category.RUNNING, Category.PLANNED]
    assert [i.stop for i in intervals] == [None, StopKind.MICROSTOP, None, None]


def test_every_stopped_state_is_a_stop():
    intervals = derive([change(0, IDLE), change(200, BLOCKED), change(400, STARVED), change(600, SETUP)],
                       every(10, 0, 800), until=800)
    assert [(i.state, i.category, i.stop) for i in intervals] == [
        ("idle", Category.STOPPED, StopKind.IDLE),
        ("blocked", Category.STOPPED, StopKind.BLOCKED),
        ("starved", Category.STOPPED, StopKind.STARVED),
        ("setup", Category.STOPPED, StopKind.SETUP),
    ]


def test_a_restated_state_does_not_split_the_interval():
    assert table(derive([change(0, RUNNING), change(50, RUNNING), change(90, RUNNING)], every(10, 0, 600))) == [
        (0, 600, "running", 0)]


def test_a_new_fault_code_during_a_fault_is_a_new_stop():
    intervals = derive([change(0, FAULT, 12), change(200, FAULT, 13)], every(10, 0, 400), until=400)
    assert table(intervals) == [(0, 200, "fault", 12), (200, 400, "fault", 13)]
    assert [i.stop for i in intervals] == [StopKind.BREAKDOWN, StopKind.BREAKDOWN]


def test_the_last_will_makes_the_machine_offline_until_it_is_heard_again():
    # Running, heartbeats every 10 s up to 290; the Last Will at 300; the next message at 420.
    contacts = every(10, 0, 300) + [Contact(at(300), False)] + every(10, 420, 600)
    intervals = derive([change(0, RUNNING)], contacts)
    assert table(intervals) == [(0, 300, "running", 0), (300, 420, "offline", None), (420, 600, "running", 0)]
    assert intervals[1].category is Category.OFFLINE and intervals[1].stop is None


def test_silence_longer_than_the_timeout_is_offline_from_the_timeout_on():
    # Last heard at 100, next at 400: the last state stands until 100 + 60, then offline until 400.
    intervals = derive([change(0, FAULT, 7)], every(10, 0, 101) + every(10, 400, 600))
    assert table(intervals) == [(0, 160, "fault", 7), (160, 400, "offline", None), (400, 600, "fault", 7)]


def test_silence_of_exactly_the_timeout_is_not_offline():
    assert table(derive([change(0, RUNNING)], heard(0, 60, 120, 180), until=240)) == [(0, 240, "running", 0)]


def test_silence_running_into_until_is_offline():
    assert table(derive([change(0, RUNNING)], heard(0, 30), until=600)) == [(0, 90, "running", 0), (90, 600, "offline", None)]


def test_after_coming_back_the_machine_is_in_the_last_state_it_reported():
    # It went to fault just before the broker lost it; after coming back, fault until it reports running.
    contacts = every(10, 0, 200) + [Contact(at(200), False)] + every(10, 300, 400)
    intervals = derive([change(0, RUNNING), change(190, FAULT, 4), change(310, RUNNING)], contacts, until=400)
    assert table(intervals) == [(0, 190, "running", 0), (190, 200, "fault", 4), (200, 300, "offline", None),
                                (300, 310, "fault", 4), (310, 400, "running", 0)]


def test_a_state_reported_from_inside_the_offline_time_ends_it():
    # Historical data from the edge's queue: the stop at 250 is known, so offline only from 200 to 250.
    contacts = every(10, 0, 200) + [Contact(at(200), False)] + every(10, 300, 400)
    intervals = derive([change(0, RUNNING), change(250, SETUP)], contacts, until=400)
    assert table(intervals) == [(0, 200, "running", 0), (200, 250, "offline", None), (250, 400, "setup", 0)]


def test_contact_at_the_instant_of_the_last_will_does_not_end_it():
    contacts = heard(0, 30, 60) + [Contact(at(60), False)] + heard(90)
    assert table(derive([change(0, RUNNING)], contacts, until=120)) == [
        (0, 60, "running", 0), (60, 90, "offline", None), (90, 120, "running", 0)]


@pytest.mark.parametrize("order", [0, 1])
def test_the_state_and_fault_rows_of_one_sample_resolve_to_both_new_codes(order):
    # At 100 the core stored (fault, old fault code 0) and (fault, 12), in either order.
    rows = [change(100, FAULT, 0), change(100, FAULT, 12)]
    intervals = derive([change(0, RUNNING), *rows[order:], *rows[:order]], every(10, 0, 300), until=300)
    assert table(intervals) == [(0, 100, "running", 0), (100, 300, "fault", 12)]


def test_rows_of_one_instant_that_cannot_be_told_apart_give_an_unknown_code():
    # Two different new fault codes at one instant: the fault code is unknown until the next report.
    intervals = derive([change(0, FAULT, 3), change(100, FAULT, 5), change(100, FAULT, 6), change(200, FAULT, 6)],
                       every(10, 0, 300), until=300)
    assert table(intervals) == [(0, 100, "fault", 3), (100, 200, "fault", None), (200, 300, "fault", 6)]


def test_before_the_first_state_and_with_an_unknown_code_the_state_is_unknown():
    intervals = derive([change(100, 42), change(200, RUNNING)], every(10, 0, 300), until=300)
    assert table(intervals) == [(0, 100, "unknown", None), (100, 200, "unknown", 0), (200, 300, "running", 0)]
    assert {i.category for i in intervals[:2]} == {Category.OFFLINE}


def test_a_missing_state_code_is_unknown():
    assert table(derive([StateChange(at(0), None, 5)], every(10, 0, 100), until=100)) == [(0, 100, "unknown", 5)]


def test_events_at_or_after_until_are_ignored_and_nothing_known_gives_no_intervals():
    assert table(derive([change(0, RUNNING), change(100, FAULT)], heard(0, 50, 100), until=100)) == [(0, 100, "running", 0)]
    assert derive([change(100, RUNNING)], heard(100), until=100) == []


def test_a_stop_shorter_than_two_minutes_is_a_microstop_and_two_minutes_is_a_breakdown():
    intervals = derive([change(0, FAULT, 1), change(119, FAULT, 2), change(239, RUNNING)], every(10, 0, 300), until=300)
    assert [i.stop for i in intervals] == [StopKind.MICROSTOP, StopKind.BREAKDOWN, None]


def test_any_short_unplanned_stop_is_a_microstop_but_a_short_setup_is_setup():
    intervals = derive([change(0, STARVED), change(30, SETUP), change(60, RUNNING)], every(10, 0, 300), until=300)
    assert [i.stop for i in intervals] == [StopKind.MICROSTOP, StopKind.SETUP, None]


def test_the_microstop_threshold_is_configurable():
    intervals = derive([change(0, FAULT, 1), change(119, RUNNING)], every(10, 0, 300), until=300,
                       microstop_threshold=timedelta(seconds=60))
    assert intervals[0].stop is StopKind.BREAKDOWN
    assert classify_stop(intervals[0], timedelta(minutes=5)) is StopKind.MICROSTOP
    assert classify_stop(intervals[1]) is None


def test_clip_cuts_to_the_window_and_keeps_where_and_what_each_stop_was():
    intervals = derive([change(0, RUNNING), change(100, FAULT, 9), change(400, RUNNING)], every(10, 0, 600))
    clipped = clip(intervals, at(200), at(450))
    assert table(clipped) == [(200, 400, "fault", 9), (400, 450, "running", 0)]
    assert (clipped[0].began, clipped[0].stop) == (at(100), StopKind.BREAKDOWN)
    assert clipped[1].began == clipped[1].start == at(400)
    assert clip(intervals, at(600), at(700)) == []


def test_run_time_counts_the_running_seconds_inside_the_windows_once():
    # Running 0–300 s, a fault 300–360 s, running again 360–600 s. Dispatched by the API 0–200 s and
    # reported by the PLC 100–400 s (one window 0–400 s), and again 500–700 s: 300 + 40 + 100 = 440 s.
    intervals = derive([change(0, RUNNING), change(300, FAULT, 7), change(360, RUNNING)], every(10, 0, 600))
    windows = [(at(0), at(200)), (at(100), at(400)), (at(500), at(700))]
    assert running_seconds(intervals, windows) == 440
    assert running_seconds(intervals, [(at(0), at(10) + timedelta(microseconds=250_001))]) == Decimal("10.250001")
    assert running_seconds(intervals, []) == 0 and running_seconds([], windows) == 0


def test_naive_times_and_a_non_positive_timeout_are_refused():
    with pytest.raises(ValueError, match="time zone"):
        derive_intervals("M1", [StateChange(datetime(2026, 11, 24, 6), 1, 0)], [], at(100), TIMEOUT)
    with pytest.raises(ValueError, match="time zone"):
        derive_intervals("M1", [], [], datetime(2026, 11, 24, 6), TIMEOUT)
    with pytest.raises(ValueError, match="positive"):
        derive([change(0, RUNNING)], timeout=timedelta(0))
    with pytest.raises(ValueError, match="began <= start <= end"):
        StateInterval("M1", at(10), at(5), "running", 0, Category.RUNNING, None, at(10))


# --- properties -------------------------------------------------------------------------------

HORIZON = 900  # seconds


@st.composite
def history(draw):
    """Random state changes (several may share an instant), contacts and Last Wills before and after `until`."""
    changes = draw(st.lists(st.builds(change, st.integers(0, HORIZON), st.integers(0, 9) | st.none(),
                                      st.integers(0, 3) | st.none()), max_size=25))
    contacts = draw(st.lists(st.builds(lambda s, online: Contact(at(s), online), st.integers(0, HORIZON),
                                       st.booleans() | st.just(True)), max_size=40))
    until = draw(st.integers(1, HORIZON))
    timeout = timedelta(seconds=draw(st.integers(1, 300)))
    return changes, contacts, until, timeout


@given(history())
@settings(max_examples=200)
def test_intervals_are_contiguous_and_cover_the_span_exactly(case):
    changes, contacts, until, timeout = case
    intervals = derive(changes, contacts, until, timeout)
    events = [c.ts for c in changes + contacts if c.ts < at(until)]
    if not events:
        assert intervals == []
        return
    assert intervals[0].start == min(events) and intervals[-1].end == at(until)
    assert all(a.end == b.start for a, b in zip(intervals, intervals[1:], strict=False))
    assert all(i.start < i.end and i.began == i.start for i in intervals)
    assert sum((i.duration for i in intervals), timedelta(0)) == at(until) - min(events)
    assert all((a.state, a.fault_code) != (b.state, b.fault_code) for a, b in zip(intervals, intervals[1:], strict=False))
    assert all(i.stop == classify_stop(i) for i in intervals)


@given(history(), st.randoms())
@settings(max_examples=200)
def test_the_order_of_the_observations_does_not_matter(case, random):
    changes, contacts, until, timeout = case
    shuffled_changes, shuffled_contacts = changes[:], contacts[:]
    random.shuffle(shuffled_changes)
    random.shuffle(shuffled_contacts)
    assert derive(shuffled_changes, shuffled_contacts, until, timeout) == derive(changes, contacts, until, timeout)


@given(history())
@settings(max_examples=200)
def test_without_a_last_will_the_machine_is_online_for_the_timeout_after_each_message(case):
    changes, contacts, until, timeout = case
    contacts = [c for c in contacts if c.online]
    evidence = [c.ts for c in changes + contacts if c.ts < at(until)]
    for interval in derive(changes, contacts, until, timeout):
        if interval.state == "offline":
            assert not any(ts <= interval.start < ts + timeout or interval.start <= ts < interval.end for ts in evidence)


@given(history(), st.lists(st.integers(0, HORIZON), max_size=5))
@settings(max_examples=200)
def test_clipping_to_a_partition_of_the_span_conserves_every_interval(case, cuts):
    changes, contacts, until, timeout = case
    intervals = derive(changes, contacts, until, timeout)
    if not intervals:
        return
    bounds = sorted({intervals[0].start, intervals[-1].end} | {at(c) for c in cuts if intervals[0].start < at(c) < at(until)})
    pieces = [piece for start, end in zip(bounds, bounds[1:], strict=False) for piece in clip(intervals, start, end)]
    assert sum((p.duration for p in pieces), timedelta(0)) == sum((i.duration for i in intervals), timedelta(0))
    by_origin = {}
    for piece in pieces:
        by_origin.setdefault(piece.began, []).append(piece)
    for interval in intervals:
        parts = by_origin[interval.start]
        assert (parts[0].start, parts[-1].end) == (interval.start, interval.end)
        assert {(p.state, p.fault_code, p.stop) for p in parts} == {(interval.state, interval.fault_code, interval.stop)}


@given(history(), st.lists(st.tuples(st.integers(0, HORIZON), st.integers(0, HORIZON)), max_size=5))
@settings(max_examples=200)
def test_run_time_is_the_running_seconds_that_fall_in_some_window(case, bounds):
    changes, contacts, until, timeout = case
    intervals = derive(changes, contacts, until, timeout)
    windows = [(at(start), at(end)) for start, end in bounds]
    # every instant here is a whole second: count the seconds [s, s + 1) running inside a window
    expected = sum(1 for s in range(HORIZON)
                   if any(start <= s < end for start, end in bounds)
                   and any(i.category is Category.RUNNING and i.start <= at(s) < i.end for i in intervals))
    assert running_seconds(intervals, windows) == expected
