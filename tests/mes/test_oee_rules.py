"""OEE by ISO 22400-2: the worked example of docs/oee.md end to end, edge cases, then properties."""

from datetime import UTC, datetime, time, timedelta
from decimal import Context, Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.rules.states import Contact, StateChange, StopKind, derive_intervals
from mes.rules.oee import Oee, OeeTotals, combine, measure, tally
from mes.rules.shifts import Break, ShiftCalendar, ShiftPattern, Window, planned_production_windows

BERLIN = ZoneInfo("Europe/Berlin")
RUNNING, IDLE, FAULT, BLOCKED, STARVED, SETUP, PLANNED_STOP = range(1, 8)
MINUTE = timedelta(minutes=1)
HEARTBEAT = timedelta(seconds=30)
OFFLINE_AFTER = timedelta(seconds=60)


def local(hour, minute=0):
    """Tuesday 24 November 2026 in Berlin (UTC+1)."""
    return datetime(2026, 11, 24, hour, minute, tzinfo=BERLIN)


def heartbeats(start, end):
    """The edge's heartbeat every 30 s in [start, end)."""
    beats, ts = [], start
    while ts < end:
        beats.append(Contact(ts, True))
        ts += HEARTBEAT
    return beats


# --- the worked example of docs/oee.md ---------------------------------------------------------

EARLY = ShiftPattern("early", frozenset(range(5)), time(6), time(14), (Break(time(10), time(10, 30)),))
CALENDAR = ShiftCalendar(BERLIN, (EARLY,))


def worked_example_intervals():
    """The scripted press-01 shift: each state change as the core stores it, heartbeats, one Last Will."""
    changes = [
        StateChange(local(5, 50), RUNNING, 0),  # running since before the shift
        StateChange(local(7, 0), FAULT, 12), StateChange(local(7, 45), RUNNING, 0),  # 45 min breakdown
        StateChange(local(8, 0), FAULT, 31), StateChange(local(8, 1), RUNNING, 0),  # three 1 min jams
        StateChange(local(8, 30), FAULT, 31), StateChange(local(8, 31), RUNNING, 0),
        StateChange(local(9, 0), FAULT, 31), StateChange(local(9, 1), RUNNING, 0),
        StateChange(local(10, 0), IDLE, 0), StateChange(local(10, 30), RUNNING, 0),  # idle in the break
        StateChange(local(11, 0), PLANNED_STOP, 0), StateChange(local(11, 20), RUNNING, 0),  # 20 min cleaning
    ]
    # The edge drops off at 12:00 (the broker publishes its Last Will) and is back at 12:10.
    contacts = [*heartbeats(local(5, 50), local(12)), Contact(local(12), False), *heartbeats(local(12, 10), local(14))]
    return derive_intervals("press-01", changes, contacts, local(14), OFFLINE_AFTER)


def test_the_worked_example_of_the_documentation():
    windows = planned_production_windows(CALENDAR, local(0), local(23, 59))
    assert windows == [Window(local(6), local(10)), Window(local(10, 30), local(14))]
    totals = tally(worked_example_intervals(), windows, [(Decimal(30), 700)], good=680, energy_wh=12_345)
    assert totals == OeeTotals(
        planned_production_time=timedelta(minutes=450),  # 8 h − 30 min break
        planned_downtime=timedelta(minutes=20),
        unknown_time=timedelta(minutes=10),
        run_time=timedelta(minutes=372),  # 450 − 20 − 10 − 45 − 3
        stopped_time=timedelta(minutes=48),  # 45 + 3 × 1
        breakdown_time=timedelta(minutes=45),
        microstop_time=timedelta(minutes=3),
        failures=1,
        microstops=3,
        ideal_seconds=Decimal(21_000),  # 700 × 30 s = 350 min
        total=700,
        good=680,
        energy_wh=Decimal(12_345),
    )
    assert totals.planned_busy_time == timedelta(minutes=420)
    assert measure(totals) == Oee(
        availability=Decimal("0.8857142857142857142857142857"),  # 372 / 420 = 31/35
        performance=Decimal("0.9408602150537634408602150538"),  # 350 / 372 = 175/186
        quality=Decimal("0.9714285714285714285714285714"),  # 680 / 700 = 34/35
        oee=Decimal("0.8095238095238095238095238095"),  # 31/35 × 175/186 × 34/35 = 17/21
        mtbf=timedelta(minutes=372),  # 372 min of running / 1 failure
        mttr=timedelta(minutes=45),  # 45 min of breakdown / 1 failure
        energy_per_good_unit=Decimal("18.15441176470588235294117647"),  # 12,345 Wh / 680
    )


def test_oee_is_rounded_once_from_the_exact_product_not_from_the_rounded_ratios():
    oee = measure(tally(worked_example_intervals(), planned_production_windows(CALENDAR, local(0), local(23)),
                        [(30, 700)], 680, 12_345))
    assert oee.oee == Context(prec=28).divide(Decimal(17), Decimal(21))
    wide = Context(prec=100)
    product_of_rounded = wide.multiply(wide.multiply(oee.availability, oee.performance), oee.quality)
    assert str(product_of_rounded).startswith("0.80952380952380952380952380951839")


# --- worked edge cases ---------------------------------------------------------------------------

def intervals_from(*steps, until):
    """Intervals of machine M1 from (local hour, minute, state, fault) steps, heard every 30 s."""
    changes = [StateChange(local(hour, minute), state, fault) for hour, minute, state, fault in steps]
    start = changes[0].ts
    return derive_intervals("M1", changes, heartbeats(start, until), until, OFFLINE_AFTER)


def test_a_group_is_computed_from_summed_times_and_counts_not_averaged_ratios():
    # A runs its whole hour; B runs 1.5 h of 3 h. Averaged availabilities would say 0.75.
    a = tally(intervals_from((6, 0, RUNNING, 0), until=local(7)), [Window(local(6), local(7))], [(60, 60)], 60, 0)
    b = tally(intervals_from((6, 0, RUNNING, 0), (7, 30, IDLE, 0), until=local(9)), [Window(local(6), local(9))],
              [(60, 90)], 45, 0)
    line = measure(combine([a, b]))
    assert (measure(a).availability, measure(b).availability) == (Decimal(1), Decimal("0.5"))
    assert line.availability == Decimal("0.625")  # (1 h + 1.5 h) / (1 h + 3 h)
    assert line.performance == Decimal(1)  # (60 + 90) min ideal / 2.5 h run
    assert line.quality == Decimal("0.7")  # 105 / 150, where averaging would give 0.75
    assert line.oee == Decimal("0.4375")  # 0.625 × 1 × 0.7


def test_a_breakdown_across_two_shifts_counts_once_where_it_began():
    intervals = intervals_from((6, 0, RUNNING, 0), (13, 30, FAULT, 8), (14, 30, RUNNING, 0), until=local(22))
    early = tally(intervals, [Window(local(6), local(14))], [], 0, 0)
    late = tally(intervals, [Window(local(14), local(22))], [], 0, 0)
    assert (early.failures, early.breakdown_time) == (1, timedelta(minutes=30))
    assert (late.failures, late.breakdown_time) == (0, timedelta(minutes=30))
    day = combine([early, late])
    assert (measure(day).mttr, measure(day).mtbf) == (timedelta(hours=1), timedelta(hours=15))
    assert measure(late).mttr is None


def test_a_breakdown_that_began_in_the_break_adds_downtime_but_no_failure():
    intervals = intervals_from((9, 0, RUNNING, 0), (10, 15, FAULT, 8), (10, 45, RUNNING, 0), until=local(12))
    totals = tally(intervals, [Window(local(9), local(10)), Window(local(10, 30), local(12))], [], 0, 0)
    assert (totals.failures, totals.breakdown_time, totals.stopped_time) == (0, timedelta(minutes=15), timedelta(minutes=15))


def test_a_breakdown_cut_into_short_pieces_stays_one_breakdown():
    # A 3 min fault cut by touching windows into two 1.5 min pieces: still a breakdown, not two microstops.
    intervals = intervals_from((9, 0, RUNNING, 0), (9, 58, FAULT, 5), (10, 1, RUNNING, 0), until=local(11))
    cut = local(9, 59) + timedelta(seconds=30)
    totals = tally(intervals, [Window(local(9), cut), Window(cut, local(11))], [], 0, 0)
    assert (totals.failures, totals.breakdown_time, totals.microstops) == (1, timedelta(minutes=3), 0)


def test_time_no_interval_covers_is_unknown():
    # The machine's first state arrives at 06:30: the first half hour of the window is unknown.
    intervals = intervals_from((6, 30, RUNNING, 0), until=local(8))
    totals = tally(intervals, [Window(local(6), local(8))], [], 0, 0)
    assert (totals.unknown_time, totals.run_time, totals.planned_busy_time) == (timedelta(minutes=30), timedelta(hours=1.5),
                                                                                 timedelta(hours=1.5))


def test_several_items_sum_their_ideal_time():
    intervals = intervals_from((6, 0, RUNNING, 0), until=local(7))
    totals = tally(intervals, [Window(local(6), local(7))], [(Decimal("1.5"), 1000), (3, 500), (Decimal("0.25"), 2)], 1400, 0)
    assert (totals.ideal_seconds, totals.total) == (Decimal("3000.50"), 1502)
    assert measure(totals).performance == Decimal("0.8334722222222222222222222222")  # 3000.5 s / 3600 s


def test_undefined_ratios_are_none_and_a_zero_factor_makes_oee_zero():
    assert measure(OeeTotals()) == Oee(None, None, None, None, None, None, None)
    # Broken down all shift, nothing made: availability 0, so OEE 0 though performance and quality are undefined.
    down = measure(OeeTotals(stopped_time=timedelta(hours=8)))
    assert (down.availability, down.performance, down.quality, down.oee) == (0, None, None, 0)
    # Ran but made nothing: performance 0, quality undefined, OEE 0.
    idle_run = measure(OeeTotals(run_time=timedelta(hours=1)))
    assert (idle_run.availability, idle_run.performance, idle_run.quality, idle_run.oee) == (1, 0, None, 0)
    assert measure(OeeTotals(run_time=MINUTE, ideal_seconds=Decimal(60), total=1, energy_wh=Decimal(5))).energy_per_good_unit is None


def test_mtbf_and_mttr_round_half_even_to_the_microsecond():
    totals = OeeTotals(run_time=timedelta(microseconds=5), breakdown_time=timedelta(microseconds=7), failures=2)
    assert (measure(totals).mtbf, measure(totals).mttr) == (timedelta(microseconds=2), timedelta(microseconds=4))


def test_a_slow_ideal_cycle_gives_performance_above_one():
    intervals = intervals_from((6, 0, RUNNING, 0), until=local(7))
    assert measure(tally(intervals, [Window(local(6), local(7))], [(40, 100)], 100, 0)).performance == Decimal("1.111111111111111111111111111")


def test_bad_inputs_are_refused():
    intervals = intervals_from((6, 0, RUNNING, 0), until=local(7))
    window = [Window(local(6), local(7))]
    with pytest.raises(TypeError, match="ideal cycle time"):
        tally(intervals, window, [(30.0, 10)], 10, 0)
    with pytest.raises(ValueError, match="positive"):
        tally(intervals, window, [(0, 10)], 10, 0)
    with pytest.raises(TypeError, match="units made"):
        tally(intervals, window, [(30, True)], 1, 0)
    with pytest.raises(ValueError, match="more than the 10 units made"):
        tally(intervals, window, [(30, 10)], 11, 0)
    with pytest.raises(ValueError, match="negative"):
        tally(intervals, window, [(30, 10)], 10, -1)
    with pytest.raises(TypeError, match="energy"):
        tally(intervals, window, [(30, 10)], 10, 1.5)
    with pytest.raises(ValueError, match="overlap"):
        tally(intervals, [Window(local(6), local(7)), Window(local(6, 30), local(8))], [], 0, 0)
    with pytest.raises(ValueError, match="time zone"):
        tally(intervals, [Window(datetime(2026, 11, 24, 6), datetime(2026, 11, 24, 7))], [], 0, 0)
    with pytest.raises(ValueError, match="ends before it starts"):
        tally(intervals, [Window(local(7), local(6))], [], 0, 0)
    other = derive_intervals("M2", [StateChange(local(6), RUNNING, 0)], [], local(7), OFFLINE_AFTER)
    with pytest.raises(ValueError, match="one machine at a time"):
        tally(intervals + other, window, [], 0, 0)
    with pytest.raises(ValueError, match="overlap"):
        tally(intervals + intervals, window, [], 0, 0)


# --- properties -------------------------------------------------------------------------------

T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
HORIZON = 4 * 3600  # seconds


def at(seconds):
    return T0 + timedelta(seconds=seconds)


@st.composite
def machine_history(draw):
    """A machine's intervals from random changes, heartbeats with gaps, and Last Wills."""
    changes = draw(st.lists(st.builds(lambda s, state, fault: StateChange(at(s), state, fault), st.integers(0, HORIZON),
                                      st.integers(1, 8), st.integers(0, 3)), min_size=1, max_size=30))
    contacts = draw(st.lists(st.builds(lambda s, online: Contact(at(s), online), st.integers(0, HORIZON),
                                       st.booleans()), max_size=60))
    return derive_intervals("M1", changes, contacts, at(HORIZON), timedelta(seconds=draw(st.integers(30, 900))))


@st.composite
def split_windows(draw):
    """Disjoint windows, each given to part A (True) or part B (False)."""
    cuts = sorted(draw(st.sets(st.integers(-600, HORIZON + 600), max_size=12)))
    windows = [Window(at(start), at(end)) for start, end in zip(cuts[::2], cuts[1::2], strict=False)]
    return [(window, draw(st.booleans())) for window in windows]


output = st.lists(st.tuples(st.sampled_from([Decimal("0.5"), Decimal(30), Decimal("7.25"), 12]), st.integers(0, 500)),
                  max_size=3)


@st.composite
def production(draw):
    made = draw(output)
    total = sum(units for _, units in made)
    return made, draw(st.integers(0, total)), draw(st.integers(0, 10_000) | st.decimals(0, 10_000, places=3))


@given(machine_history(), split_windows(), production(), production())
@settings(max_examples=150)
def test_the_totals_of_a_group_are_the_sums_of_its_parts(intervals, windows, part_a, part_b):
    a_windows = [w for w, in_a in windows if in_a]
    b_windows = [w for w, in_a in windows if not in_a]
    a = tally(intervals, a_windows, *part_a)
    b = tally(intervals, b_windows, *part_b)
    whole = tally(intervals, [w for w, _ in windows], part_a[0] + part_b[0], part_a[1] + part_b[1], part_a[2] + part_b[2])
    assert a + b == whole == combine([b, a])
    assert measure(combine([a, b])) == measure(whole)


@given(machine_history(), split_windows(), production())
@settings(max_examples=150)
def test_planned_production_time_is_conserved_and_ratios_stay_in_range(intervals, windows, made):
    totals = tally(intervals, [w for w, _ in windows], *made)
    assert totals.planned_production_time == (totals.run_time + totals.stopped_time + totals.planned_downtime
                                              + totals.unknown_time)
    assert totals.unknown_time >= timedelta(0)
    assert totals.breakdown_time + totals.microstop_time <= totals.stopped_time
    assert totals.failures <= sum(1 for i in intervals if i.stop is StopKind.BREAKDOWN)
    result = measure(totals)
    assert all(ratio is None or 0 <= ratio <= 1 for ratio in (result.availability, result.quality))
    assert result.oee is None or 0 <= result.oee
    if result.performance is not None and result.performance <= 1:
        assert result.oee <= 1
