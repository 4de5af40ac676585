"""Attributing production to work orders: worked cases, then properties over random dispatch histories."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.rules.attribution import Attribution, CountStep, DispatchWindow, attribute, overlaps

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def window(work_order, start, end, source="api", machine="M1"):
    return DispatchWindow(machine, work_order, at(start), None if end is None else at(end), source)


def step(seconds, good=1, scrap=0, energy_wh=0, machine="M1"):
    return CountStep(machine, at(seconds), good, scrap, energy_wh)


def test_a_switch_inside_a_batch_splits_at_the_switch():
    windows = [window("WO-1", 0, 60), window("WO-2", 60, None)]
    steps = [step(10, 5, 1, 20), step(59, 3, 0, 10), step(60, 4, 2, 15), step(90, 6, 0, 25)]
    assert attribute(steps, windows) == [
        Attribution("M1", "WO-1", 8, 1, 30, at(10), at(59)),
        Attribution("M1", "WO-2", 10, 2, 40, at(60), at(90)),
    ]


def test_counts_with_no_work_order_go_to_the_unassigned_bucket():
    steps = [step(5, 2), step(20, 3), step(40, 7)]
    assert attribute(steps, [window("WO-1", 10, 30)]) == [
        Attribution("M1", None, 9, 0, 0, at(5), at(40)),
        Attribution("M1", "WO-1", 3, 0, 0, at(20), at(20)),
    ]


def test_the_plc_order_wins_over_the_api_dispatch():
    windows = [window("WO-API", 0, None), window("WO-PLC", 30, 60, source="plc")]
    steps = [step(10), step(30), step(59), step(60)]
    assert [(a.work_order, a.good) for a in attribute(steps, windows)] == [("WO-API", 2), ("WO-PLC", 2)]


def test_a_window_ends_just_before_its_end_instant():
    assert attribute([step(60)], [window("WO-1", 0, 60)])[0].work_order is None


def test_windows_of_another_machine_do_not_apply():
    steps = [step(10, machine="M2")]
    assert attribute(steps, [window("WO-1", 0, None)]) == [Attribution("M2", None, 1, 0, 0, at(10), at(10))]


def test_an_empty_window_contains_nothing_and_overlaps_nothing():
    windows = [window("WO-1", 0, None), window("WO-2", 30, 30)]
    assert overlaps(windows) == []
    assert [a.work_order for a in attribute([step(30)], windows)] == ["WO-1"]


def test_overlapping_windows_of_one_source_are_refused_by_name():
    windows = [window("WO-1", 0, 60), window("WO-2", 30, None), window("WO-3", 0, None, source="plc")]
    assert overlaps(windows) == [(windows[0], windows[1])]
    with pytest.raises(ValueError, match="api WO-1 on M1 .* and api WO-2 on M1 .*open"):
        attribute([step(10)], windows)


def test_touching_windows_do_not_overlap():
    assert overlaps([window("WO-1", 0, 60), window("WO-2", 60, 120)]) == []


def test_a_window_cannot_end_before_it_starts():
    with pytest.raises(ValueError, match="ends before it starts"):
        window("WO-1", 60, 30)


def test_an_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source"):
        window("WO-1", 0, None, source="mes")


# --- properties -------------------------------------------------------------------------------

MACHINES = ("M1", "M2")
HORIZON = 600  # seconds


@st.composite
def lane(draw, machine, source):
    """Non-overlapping windows of one machine and source: sorted cut points taken in pairs."""
    cuts = sorted(draw(st.sets(st.integers(0, HORIZON), max_size=8)))
    open_ended = draw(st.booleans()) and len(cuts) % 2 == 1
    if not open_ended and len(cuts) % 2 == 1:
        cuts = cuts[:-1]
    ends = cuts[1::2] + ([None] if open_ended else [])
    orders = st.sampled_from([f"{source.upper()}-{n}" for n in range(1, 4)])
    return [window(draw(orders), start, end, source, machine) for start, end in zip(cuts[::2], ends, strict=True)]


@st.composite
def dispatch_history(draw):
    windows = [w for machine in MACHINES for source in ("plc", "api") for w in draw(lane(machine, source))]
    return draw(st.permutations(windows))


# Each step's good count is a distinct power of two, so any attribution's good count names its steps.
@st.composite
def marked_steps(draw):
    steps = []
    for n in range(draw(st.integers(0, 40))):
        steps.append(CountStep(draw(st.sampled_from(MACHINES)), at(draw(st.integers(-10, HORIZON + 10))), 1 << n,
                               draw(st.integers(0, 5)), draw(st.integers(0, 500))))
    return steps


def steps_in(attribution, steps):
    return [s for n, s in enumerate(steps) if attribution.good >> n & 1]


def expected_work_order(step, windows):
    """The rule, read literally: the PLC window containing the step, else the API one, else none."""
    for source in ("plc", "api"):
        for w in windows:
            if w.machine_id == step.machine_id and w.source == source and w.start <= step.ts \
                    and (w.end is None or step.ts < w.end):
                return w.work_order
    return None


def totals(rows):
    by_machine = {}
    for row in rows:
        good, scrap, energy = by_machine.get(row.machine_id, (0, 0, 0))
        by_machine[row.machine_id] = (good + row.good, scrap + row.scrap, energy + row.energy_wh)
    return by_machine


@given(marked_steps(), dispatch_history())
@settings(max_examples=300)
def test_every_counter_is_conserved_per_machine(steps, windows):
    assert totals(attribute(steps, windows)) == totals(steps)


@given(marked_steps(), dispatch_history())
@settings(max_examples=300)
def test_every_step_is_counted_once_by_the_window_containing_it_plc_first(steps, windows):
    attributions = attribute(steps, windows)
    counted = [s for a in attributions for s in steps_in(a, steps)]
    assert sorted(counted, key=lambda s: s.good) == steps
    for a in attributions:
        mine = steps_in(a, steps)
        assert {(s.machine_id, expected_work_order(s, windows)) for s in mine} == {(a.machine_id, a.work_order)}
        assert (a.first_ts, a.last_ts) == (min(s.ts for s in mine), max(s.ts for s in mine))
    assert len({(a.machine_id, a.work_order) for a in attributions}) == len(attributions)


@given(marked_steps(), st.integers(1, HORIZON), st.sampled_from(["api", "plc"]))
def test_a_switch_at_t_splits_before_and_from_t(steps, switch, source):
    windows = [window("OLD", 0, switch, source, m) for m in MACHINES] + \
              [window("NEW", switch, None, source, m) for m in MACHINES]
    for a in attribute(steps, windows):
        mine = steps_in(a, steps)
        if a.work_order == "OLD":
            assert all(at(0) <= s.ts < at(switch) for s in mine)
        elif a.work_order == "NEW":
            assert all(s.ts >= at(switch) for s in mine)
        else:
            assert all(s.ts < at(0) for s in mine)


@given(marked_steps(), dispatch_history())
def test_an_api_dispatch_never_takes_a_step_from_a_plc_window(steps, windows):
    plc_only = [w for w in windows if w.source == "plc"]
    everywhere = [window("API-ALL", -10, None, "api", m) for m in MACHINES]
    before = {s for a in attribute(steps, plc_only) if a.work_order is not None for s in steps_in(a, steps)}
    for a in attribute(steps, plc_only + everywhere):
        if a.work_order == "API-ALL":
            assert not before & set(steps_in(a, steps))


def merged(*batches):
    """Attributions of consecutive batches summed per machine and work order, as a store would."""
    result: dict[tuple, Attribution] = {}
    for batch in batches:
        for a in batch:
            key = (a.machine_id, a.work_order)
            b = result.get(key)
            result[key] = a if b is None else Attribution(
                *key, a.good + b.good, a.scrap + b.scrap, a.energy_wh + b.energy_wh,
                min(a.first_ts, b.first_ts), max(a.last_ts, b.last_ts))
    return list(result.values())


@given(marked_steps(), dispatch_history(), st.data())
@settings(max_examples=300)
def test_attributing_in_two_batches_equals_attributing_at_once(steps, windows, data):
    cut = data.draw(st.integers(0, len(steps)))
    whole = attribute(steps, windows)
    assert merged(attribute(steps[:cut], windows), attribute(steps[cut:], windows)) == whole
    assert merged(whole) == whole
