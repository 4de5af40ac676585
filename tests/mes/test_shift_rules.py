"""The shift calendar: worked weeks (breaks, night shifts, clock changes, holidays), then properties."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.rules.shifts import (
    Break,
    NonProduction,
    ShiftCalendar,
    ShiftInstance,
    ShiftPattern,
    Window,
    planned_production_time,
    planned_production_windows,
    shift_at,
    shift_instances,
    union,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = frozenset(range(5))
EARLY = ShiftPattern("early", WEEKDAYS, time(6), time(14), (Break(time(10), time(10, 30)),))
LATE = ShiftPattern("late", WEEKDAYS, time(14), time(22), (Break(time(18), time(18, 30)),))
NIGHT = ShiftPattern("night", frozenset(range(7)), time(22), time(6), (Break(time(2), time(2, 30)),))
THREE_SHIFTS = ShiftCalendar(BERLIN, (EARLY, LATE, NIGHT))


def local(day, hour, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN)


def utc(month, day, hour, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def hours(h):
    return timedelta(hours=h)


def test_a_day_shift_with_a_break_in_winter_time():
    # Tuesday 24 November 2026, Berlin is UTC+1: 06:00–14:00 local is 05:00–13:00 UTC.
    calendar = ShiftCalendar(BERLIN, (EARLY,))
    assert shift_instances(calendar, local(24, 0), local(25, 0)) == [
        ShiftInstance("early", date(2026, 11, 24), utc(11, 24, 5), utc(11, 24, 13), (Window(utc(11, 24, 9), utc(11, 24, 9, 30)),))]
    assert planned_production_windows(calendar, local(24, 0), local(25, 0)) == [
        Window(utc(11, 24, 5), utc(11, 24, 9)), Window(utc(11, 24, 9, 30), utc(11, 24, 13))]
    assert planned_production_time(calendar, local(24, 0), local(25, 0)) == timedelta(hours=7, minutes=30)


def test_no_shift_on_the_weekend():
    calendar = ShiftCalendar(BERLIN, (EARLY,))
    assert shift_instances(calendar, local(28, 0), local(30, 0)) == []  # Saturday and Sunday
    # A week: five shifts of 7.5 h.
    assert planned_production_time(calendar, local(23, 0), local(30, 0)) == hours(37.5)


def test_the_period_cuts_the_planned_time_but_not_the_shifts():
    calendar = ShiftCalendar(BERLIN, (EARLY,))
    assert [s.start for s in shift_instances(calendar, local(24, 9), local(24, 11))] == [utc(11, 24, 5)]
    # 09:00–10:00 before the break, 10:30–11:00 after.
    assert planned_production_time(calendar, local(24, 9), local(24, 11)) == hours(1.5)


def test_a_night_shift_crosses_midnight_and_belongs_to_the_day_it_starts():
    calendar = ShiftCalendar(BERLIN, (NIGHT,))
    # Asking from 03:00 on the 25th finds the shift that started at 22:00 on the 24th.
    found = shift_instances(calendar, local(25, 3), local(25, 4))
    assert found == [ShiftInstance("night", date(2026, 11, 24), utc(11, 24, 21), utc(11, 25, 5),
                                   (Window(utc(11, 25, 1), utc(11, 25, 1, 30)),))]
    assert planned_production_time(calendar, local(24, 22), local(25, 6)) == hours(7.5)


def test_three_shifts_cover_the_weekday_and_shift_at_answers_each_instant():
    assert [(s.name, s.day.day) for s in shift_instances(THREE_SHIFTS, local(24, 0), local(25, 0))] == [
        ("night", 23), ("early", 24), ("late", 24), ("night", 24)]
    assert shift_at(THREE_SHIFTS, local(24, 10, 15)).name == "early"  # in the break: still the early shift
    assert shift_at(THREE_SHIFTS, local(24, 14)).name == "late"  # a shift ends just before its end instant
    assert shift_at(THREE_SHIFTS, local(25, 5, 59)).day == date(2026, 11, 24)
    assert shift_at(ShiftCalendar(BERLIN, (EARLY,)), local(24, 14)) is None


def test_a_night_shift_lasts_seven_hours_when_clocks_go_forward_and_nine_when_they_go_back():
    calendar = ShiftCalendar(BERLIN, (ShiftPattern("night", frozenset(range(7)), time(22), time(6)),))
    spring = shift_at(calendar, datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN))
    assert (spring.start, spring.end) == (utc(3, 28, 21), utc(3, 29, 4))
    autumn = shift_at(calendar, datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN))
    assert (autumn.start, autumn.end) == (utc(10, 24, 20), utc(10, 25, 5))
    assert planned_production_time(calendar, utc(3, 28, 12), utc(3, 29, 12)) == hours(7)
    assert planned_production_time(calendar, utc(10, 24, 12), utc(10, 25, 12)) == hours(9)


def test_a_break_in_the_hour_clocks_skip_is_empty_and_a_repeated_hour_is_taken_the_first_time():
    pattern = ShiftPattern("night", frozenset(range(7)), time(22), time(6), (Break(time(2, 15), time(2, 45)),))
    calendar = ShiftCalendar(BERLIN, (pattern,))
    spring = shift_at(calendar, datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN))
    # 02:15–02:45 does not exist on 29 March: read with the winter offset it is 01:15–01:45 UTC.
    assert spring.breaks == (Window(utc(3, 29, 1, 15), utc(3, 29, 1, 45)),)
    autumn = shift_at(calendar, datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN))
    # 02:15 happens twice on 25 October: the first time, still in summer time (UTC+2).
    assert autumn.breaks == (Window(utc(10, 25, 0, 15), utc(10, 25, 0, 45)),)


def test_a_24_hour_shift():
    calendar = ShiftCalendar(BERLIN, (ShiftPattern("day", frozenset(range(7)), time(6), time(6)),))
    assert planned_production_time(calendar, local(24, 6), local(26, 6)) == hours(48)


def test_holidays_and_maintenance_are_not_planned_production():
    maintenance = NonProduction(local(24, 12), local(24, 16), "press overhaul")
    holiday = NonProduction(local(25, 0), local(26, 0), "holiday")
    overlapping = NonProduction(local(25, 8), local(25, 9), "also booked")
    calendar = ShiftCalendar(BERLIN, (EARLY, LATE), (maintenance, holiday, overlapping))
    # 24th: 06:00–22:00 (16 h) minus the two breaks (15 h) minus 12:00–16:00 (4 h) = 11 h. 25th: nothing.
    assert planned_production_time(calendar, local(24, 0), local(26, 0)) == hours(11)
    # The holiday keeps its shifts, without planned time.
    assert [s.name for s in shift_instances(calendar, local(25, 0), local(26, 0))] == ["early", "late"]


def test_overlapping_shifts_are_refused():
    calendar = ShiftCalendar(BERLIN, (EARLY, ShiftPattern("cleaning", frozenset({1}), time(13), time(15))))
    assert [s.name for s in shift_instances(calendar, local(23, 0), local(24, 0))] == ["early"]  # Monday: no cleaning
    with pytest.raises(ValueError, match="'early' of 2026-11-24 and 'cleaning' of 2026-11-24 overlap"):
        planned_production_time(calendar, local(24, 0), local(25, 0))


@pytest.mark.parametrize("breaks, message", [
    ((Break(time(5), time(6, 30)),), "must lie inside"),
    ((Break(time(13, 30), time(14, 30)),), "must lie inside"),
    ((Break(time(9), time(10)), Break(time(9, 30), time(11))), "overlap"),
    ((Break(time(9), time(9)),), "starts and ends"),
])
def test_breaks_must_fit_in_their_shift(breaks, message):
    with pytest.raises(ValueError, match=message):
        ShiftPattern("early", WEEKDAYS, time(6), time(14), breaks)


def test_a_night_shift_break_after_midnight_fits():
    assert NIGHT.break_offsets() == [(hours(4), timedelta(minutes=30))]


def test_bad_patterns_and_periods_are_refused():
    with pytest.raises(ValueError, match="weekdays"):
        ShiftPattern("early", frozenset({7}), time(6), time(14))
    with pytest.raises(ValueError, match="weekdays"):
        ShiftPattern("early", frozenset(), time(6), time(14))
    with pytest.raises(ValueError, match="name"):
        ShiftPattern("", WEEKDAYS, time(6), time(14))
    with pytest.raises(ValueError, match="wall-clock"):
        ShiftPattern("early", WEEKDAYS, time(6, tzinfo=UTC), time(14))
    with pytest.raises(TypeError, match="tzinfo"):
        ShiftCalendar("Europe/Berlin", (EARLY,))
    with pytest.raises(ValueError, match="time zone"):
        NonProduction(datetime(2026, 12, 24), local(26, 0))
    with pytest.raises(ValueError, match="ends before it starts"):
        NonProduction(local(26, 0), local(25, 0), "holiday")
    with pytest.raises(ValueError, match="time zone"):
        shift_instances(THREE_SHIFTS, datetime(2026, 11, 24), local(25, 0))
    with pytest.raises(ValueError, match="before it starts"):
        planned_production_time(THREE_SHIFTS, local(25, 0), local(24, 0))


# --- properties -------------------------------------------------------------------------------

CALENDAR = ShiftCalendar(BERLIN, (EARLY, LATE, NIGHT), (
    NonProduction(datetime(2026, 3, 28, 20, tzinfo=BERLIN), datetime(2026, 3, 29, 1, tzinfo=BERLIN), "maintenance"),
    NonProduction(datetime(2026, 10, 26, 0, tzinfo=BERLIN), datetime(2026, 10, 27, 0, tzinfo=BERLIN), "holiday"),
))


def instants(count):
    """`count` sorted instants to the minute in the eight days around one of the clock changes of 2026."""
    return st.sampled_from([utc(3, 25, 0), utc(10, 21, 0)]).flatmap(lambda origin: st.lists(
        st.integers(0, 8 * 24 * 60).map(lambda minutes: origin + timedelta(minutes=minutes)), min_size=count,
        max_size=count).map(sorted))


@given(instants(3))
@settings(max_examples=150)
def test_planned_time_adds_up_over_consecutive_periods(abc):
    a, b, c = abc
    assert planned_production_time(CALENDAR, a, c) == planned_production_time(CALENDAR, a, b) + planned_production_time(CALENDAR, b, c)


@given(instants(2))
@settings(max_examples=150)
def test_windows_are_disjoint_inside_the_period_and_outside_breaks_and_non_production(period):
    start, end = period
    windows = planned_production_windows(CALENDAR, start, end)
    assert all(w.start < w.end for w in windows)
    assert all(earlier.end <= later.start for earlier, later in zip(windows, windows[1:], strict=False))
    assert all(start <= w.start and w.end <= end for w in windows)
    holes = [hole for shift in shift_instances(CALENDAR, start, end) for hole in shift.breaks]
    holes += [Window(period.start, period.end) for period in CALENDAR.non_production]
    assert not any(w.start < hole.end and hole.start < w.end for w in windows for hole in holes)
    for w in windows:
        assert shift_at(CALENDAR, w.start) == shift_at(CALENDAR, w.end - timedelta(microseconds=1))


@given(instants(1))
@settings(max_examples=150)
def test_shift_at_is_the_shift_containing_the_instant(instant):
    ts = instant[0]
    containing = [s for s in shift_instances(CALENDAR, ts - timedelta(days=1), ts + timedelta(days=1)) if s.start <= ts < s.end]
    assert shift_at(CALENDAR, ts) == (containing[0] if containing else None)
    weekday = ts.astimezone(BERLIN).weekday()
    assert shift_at(CALENDAR, ts) is not None or weekday >= 5  # on weekdays the three shifts leave no gap


def test_the_union_of_windows_merges_those_that_overlap_or_touch_and_drops_empty_ones():
    t = datetime(2026, 11, 24, tzinfo=UTC)
    hour = timedelta(hours=1)
    windows = [(t + 3 * hour, t + 4 * hour), (t, t + hour), (t + hour, t + 2 * hour), (t + 5 * hour, t + 5 * hour),
               (t + 30 * timedelta(minutes=1), t + 90 * timedelta(minutes=1))]
    assert union(windows) == [Window(t, t + 2 * hour), Window(t + 3 * hour, t + 4 * hour)]
    assert union([]) == []


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=8))
def test_the_union_covers_every_minute_of_the_windows_once_in_disjoint_windows(bounds):
    t = datetime(2026, 11, 24, tzinfo=UTC)
    minute = timedelta(minutes=1)
    merged = union([(t + start * minute, t + end * minute) for start, end in bounds])
    assert all(window.start < window.end for window in merged)
    assert all(earlier.end < later.start for earlier, later in zip(merged, merged[1:], strict=False))
    covered = {m for start, end in bounds for m in range(start, end)}
    assert {m for window in merged for m in range((window.start - t) // minute, (window.end - t) // minute)} == covered
