"""Placing a sample in time: worked cases, then properties over any clock."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.rules.placement import DEFAULT_MAX_AHEAD, Placed, place

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_a_true_timestamp_stays():
    assert place(T0, T0 + SECOND, T0 - SECOND) == Placed(T0, None)


def test_a_timestamp_slightly_ahead_of_the_core_stays():
    assert place(T0 + DEFAULT_MAX_AHEAD, T0, None) == Placed(T0 + DEFAULT_MAX_AHEAD, None)


def test_a_timestamp_too_far_ahead_goes_to_the_receipt_flagged_with_its_lead():
    stamped = datetime(2099, 1, 1, tzinfo=UTC)
    assert place(stamped, T0, T0 - SECOND) == Placed(T0, stamped - T0)


def test_a_timestamp_before_the_signals_previous_one_goes_to_that_one():
    assert place(T0 - 30 * SECOND, T0 + SECOND, T0) == Placed(T0, None)


def test_the_allowed_lead_is_a_parameter():
    assert place(T0 + 2 * SECOND, T0, None, max_ahead=SECOND) == Placed(T0, 2 * SECOND)


instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(st.lists(st.tuples(instants, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2))), min_size=1))
def test_a_signals_time_never_goes_back_nor_ahead_of_the_core_beyond_the_skew(stamps):
    """Samples received in read order at a core clock that only moves forward."""
    previous, received = None, T0
    for ts, wait in stamps:
        received += wait
        placed = place(ts, received, previous)
        assert previous is None or placed.ts >= previous
        assert placed.ts <= max(received + DEFAULT_MAX_AHEAD, previous or received)
        assert (placed.ahead is not None) == (ts - received > DEFAULT_MAX_AHEAD)
        previous = placed.ts
