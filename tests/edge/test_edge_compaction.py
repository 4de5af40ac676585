"""Compaction: worked cases, then the property that matters: the core counts the same."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.rules.counters import CounterPoint, counter_step
from edge.compaction import chunks, compact

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def sample(second: int, signal: str, value):
    return {"ts": (T0 + timedelta(seconds=second)).isoformat(), "signal": signal, "value": value}


def test_intermediate_values_go_the_first_the_last_and_the_one_before_each_drop_stay():
    samples = [sample(0, "good", 10), sample(1, "good", 11), sample(2, "state", 3), sample(3, "good", 12),
               sample(4, "good", 2), sample(5, "good", 3), sample(6, "good", 9), sample(7, "order", "WO-1")]
    assert compact(samples) == [samples[0], samples[2], samples[3], samples[4], samples[6], samples[7]]


def test_chunks_cut_in_order():
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]] and chunks([], 3) == []


def counted(samples, width=16, rate=Decimal(40)):
    point, total = None, 0
    for s in samples:
        if s["signal"] != "good":
            continue
        step = counter_step(point, CounterPoint(s["value"], datetime.fromisoformat(s["ts"])), width, rate)
        assert step.quarantined == 0
        total += step.delta
        point = step.point
    return total


@given(st.lists(st.tuples(st.integers(0, 40), st.booleans(), st.booleans()), min_size=1, max_size=200))
@settings(max_examples=300)
def test_the_core_counts_the_same_units_over_the_compacted_samples(steps):
    """A 16-bit counter making up to its rate each second, reset now and then (in its lower half, seen),
    with state samples between: compacted, it counts the same and keeps every state sample."""
    value, samples = 0, [sample(0, "good", 0)]
    for second, (units, reset, state) in enumerate(steps, start=1):
        if reset and 0 < value < 2**15:
            value = 0
            units = min(units, 0)
        value = (value + units) % 2**16
        samples.append(sample(second, "good", value))
        if state:
            samples.append(sample(second, "state", second % 7))
    kept = compact(samples)
    assert counted(kept) == counted(samples)
    assert [s for s in kept if s["signal"] == "state"] == [s for s in samples if s["signal"] == "state"]
    assert kept[-1] == samples[-1] or kept[-1]["signal"] == "state"
