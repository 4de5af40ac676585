"""The board's rate over its window: worked cases, then the quotient it is, as a property."""

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from dashboards.rules.board import RATE_WINDOW, recent_rate

NOW = datetime(2026, 11, 17, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_the_rate_is_over_the_window_or_since_the_first_production_when_that_is_shorter():
    assert recent_rate(100, NOW - 60 * MINUTE, NOW) == 400  # 100 in the last 15 min
    assert recent_rate(20, NOW - 5 * MINUTE, NOW) == 240  # started 5 min ago: not 20 per 15 min
    assert recent_rate(0, NOW - 60 * MINUTE, NOW) == 0


def test_there_is_no_rate_before_any_production():
    assert recent_rate(0, None, NOW) is None
    assert recent_rate(3, NOW, NOW) is None and recent_rate(3, NOW + MINUTE, NOW) is None


@given(st.integers(0, 10**9), st.integers(1, 10**11))
def test_the_rate_is_the_quotient_of_good_units_by_the_hours_measured_to_28_digits(good, microseconds_ago):
    first = NOW - timedelta(microseconds=microseconds_ago)
    measured = min(RATE_WINDOW, NOW - first) // timedelta(microseconds=1)
    exact = Fraction(good * 3600 * 10**6, measured)
    rate = Fraction(recent_rate(good, first, NOW))
    assert abs(rate - exact) <= exact / 10**27
