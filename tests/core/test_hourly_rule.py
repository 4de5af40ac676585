"""production_hourly's arithmetic: intervals summed per machine and UTC hour of their end."""

from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from core.rules.hourly import ProductionHour, hour_of, hourly_totals

NINE = datetime(2026, 12, 4, 9, tzinfo=UTC)


class Interval(NamedTuple):
    machine_id: str
    end_ts: datetime
    good: int
    scrap: int
    energy_wh: int


def test_intervals_go_to_the_utc_hour_of_their_end():
    """09:59:59 and 10:00:00 are different hours; 11:30 in UTC+2 is 09:30 UTC; two machines stay apart."""
    paris = timezone(timedelta(hours=2))
    rows = hourly_totals([Interval("m1", NINE + timedelta(minutes=59, seconds=59), 3, 1, 10),
                          Interval("m1", NINE + timedelta(hours=1), 4, 0, 12),
                          Interval("m1", datetime(2026, 12, 4, 11, 30, tzinfo=paris), 5, 2, 7),
                          Interval("m2", NINE, 1, 0, 1)])
    assert rows == [ProductionHour(NINE, "m1", 8, 3, 17, 2), ProductionHour(NINE, "m2", 1, 0, 1, 1),
                    ProductionHour(NINE + timedelta(hours=1), "m1", 4, 0, 12, 1)]
    assert hour_of(NINE + timedelta(minutes=59, seconds=59, microseconds=999_999)) == NINE


intervals = st.lists(st.builds(Interval, st.sampled_from(["m1", "m2", "m3"]),
                               st.integers(0, 10 * 86_400).map(lambda s: NINE + timedelta(seconds=s, microseconds=s % 7)),
                               st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40)), max_size=60)


@given(intervals, st.integers(0, 60))
def test_the_hours_sum_to_the_intervals_however_the_writes_split_them(rows, split):
    """Added batch by batch (as the ingest adds them) the hours equal the intervals summed, per machine."""
    stored: dict[tuple[datetime, str], list[int]] = {}
    for batch in (rows[:split], rows[split:]):
        for hour in hourly_totals(batch):
            sums = stored.setdefault((hour.bucket, hour.machine_id), [0, 0, 0, 0])
            for index, value in enumerate(hour[2:]):
                sums[index] += value
    for machine in ("m1", "m2", "m3"):
        mine = [row for row in rows if row.machine_id == machine]
        summed = [sum(sums[index] for (_, name), sums in stored.items() if name == machine) for index in range(4)]
        assert summed == [sum(r.good for r in mine), sum(r.scrap for r in mine), sum(r.energy_wh for r in mine), len(mine)]
    for bucket, _ in stored:
        assert bucket.minute == bucket.second == bucket.microsecond == 0 and bucket.tzinfo == UTC
