"""The counter delta rule: worked cases, then properties over random production histories."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.rules.counters import STEP_FLOOR, CounterPoint, StepKind, counter_step

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
RATE = Decimal(40)  # units per second the machine can credibly make


def at(seconds: float) -> datetime:
    return T0 + timedelta(milliseconds=round(seconds * 1000))


def step(last, value, seconds, width=16, elapsed=None):
    return counter_step(last, CounterPoint(value, at(seconds)), width, RATE, elapsed)


def test_first_value_is_a_baseline_and_counts_nothing():
    result = step(None, 65_400, 0)
    assert (result.kind, result.delta, result.point) == (StepKind.BASELINE, 0, CounterPoint(65_400, at(0)))


def test_normal_climb_counts_the_difference():
    result = step(CounterPoint(100, at(0)), 140, 1)
    assert (result.kind, result.delta) == (StepKind.NORMAL, 40)


def test_16_bit_rollover():
    result = step(CounterPoint(65_530, at(0)), 4, 1)
    assert (result.kind, result.delta) == (StepKind.ROLLOVER, 10)


def test_32_bit_rollover():
    result = step(CounterPoint(2**32 - 3, at(0)), 7, 1, width=32)
    assert (result.kind, result.delta) == (StepKind.ROLLOVER, 10)


def test_drop_from_low_value_is_a_plc_reset_counting_from_zero():
    result = step(CounterPoint(1_000, at(0)), 5, 2)
    assert (result.kind, result.delta) == (StepKind.RESET, 5)


def test_reset_after_a_long_stop_is_not_mistaken_for_a_rollover():
    # Two days idle: the rate alone would allow a wrap, half the range does not.
    result = step(CounterPoint(1_000, at(0)), 5, 2 * 86_400)
    assert (result.kind, result.delta) == (StepKind.RESET, 5)


def test_duplicate_sample_counts_nothing():
    last = CounterPoint(500, at(3))
    result = step(last, 500, 3)
    assert (result.kind, result.delta, result.point) == (StepKind.DUPLICATE, 0, last)


def test_a_sample_stamped_before_the_last_one_still_counts_its_climb():
    # read after it, stamped before it: the PLC's clock stepped back; read order decides, not the clock
    result = step(CounterPoint(500, at(3)), 520, 2, elapsed=timedelta(seconds=1))
    assert (result.kind, result.delta) == (StepKind.NORMAL, 20)


def test_the_elapsed_time_given_decides_what_is_plausible_not_the_timestamps():
    # two samples placed at one instant (a clock that stepped back) an hour of production apart
    result = step(CounterPoint(500, at(3)), 10_500, 3, elapsed=timedelta(hours=1))
    assert (result.kind, result.delta) == (StepKind.NORMAL, 10_000)
    assert step(CounterPoint(500, at(3)), 10_500, 3).kind is StepKind.JUMP, "without it: the timestamps' difference"


def test_implausible_jump_is_quarantined_and_the_baseline_moves_on():
    result = step(CounterPoint(100, at(0)), 10_100, 1)
    assert (result.kind, result.delta, result.quarantined) == (StepKind.JUMP, 0, 10_000)
    assert result.point == CounterPoint(10_100, at(1))


def test_reset_to_an_implausibly_high_value_is_quarantined():
    result = step(CounterPoint(20_000, at(0)), 5_000, 1)
    assert (result.kind, result.delta, result.quarantined) == (StepKind.JUMP, 0, 5_000)


def test_value_wider_than_the_counter_is_quarantined_without_moving_the_baseline():
    last = CounterPoint(100, at(0))
    result = step(last, 70_000, 1)
    assert (result.kind, result.quarantined, result.point) == (StepKind.OUT_OF_RANGE, 70_000, last)


def test_same_timestamp_allows_a_small_step():
    result = step(CounterPoint(100, at(1)), 100 + STEP_FLOOR, 1)
    assert (result.kind, result.delta) == (StepKind.NORMAL, STEP_FLOOR)


# --- properties -------------------------------------------------------------------------------

widths = st.sampled_from([16, 32])


@st.composite
def production_history(draw, allow_resets=True):
    """A counter's life sampled once a second: (true units made, counter samples in time order).

    Between samples the machine makes at most what it can (RATE per second). Resets happen only
    after a sample saw the final value, while the counter sat in its lower half, and are followed by
    a sample below that value: the conditions under which any reader can tell a reset from a
    rollover or from no change at all (see the rule's docstring).
    """
    width = draw(widths)
    modulus = 1 << width
    start = draw(st.one_of(st.integers(0, modulus - 1), st.integers(modulus - 200, modulus - 1)))
    value = start
    samples = [CounterPoint(value, at(0))]
    produced = 0
    for second in range(1, draw(st.integers(1, 60)) + 1):
        if allow_resets and 0 < value < modulus // 2 and draw(st.integers(0, 9)) == 0:
            # visible only if the next sample is below the last one
            units = draw(st.integers(0, min(int(RATE), value - 1)))
            value = 0
        else:
            units = draw(st.integers(0, int(RATE)))
        value = (value + units) % modulus
        produced += units
        samples.append(CounterPoint(value, at(second)))
    return width, samples, produced


def total(samples, width):
    point, counted = None, 0
    for sample in samples:
        result = counter_step(point, sample, width, RATE)
        assert result.quarantined == 0, result
        counted += result.delta
        point = result.point
    return counted


@given(production_history())
@settings(max_examples=400)
def test_sum_of_deltas_equals_units_produced_across_rollovers_and_resets(history):
    width, samples, produced = history
    assert total(samples, width) == produced


@given(production_history(allow_resets=False), st.data())
@settings(max_examples=300)
def test_repeated_samples_change_nothing(history, data):
    width, samples, produced = history
    delivered = []
    for sample in samples:
        delivered.append(sample)
        if data.draw(st.integers(0, 4)) == 0:
            delivered.append(sample)
    assert total(delivered, width) == produced


@given(production_history(), st.data())
@settings(max_examples=300)
def test_a_clock_that_steps_either_way_changes_no_count(history, data):
    """The samples in read order, each stamped by a clock stepped by up to a year either way, as the
    ingest passes them: the placed instants never go back and the elapsed time is the real one."""
    width, samples, produced = history
    point, counted, placed = None, 0, None
    for index, sample in enumerate(samples):
        stamped = sample.ts + timedelta(seconds=data.draw(st.integers(-366 * 86_400, 366 * 86_400)))
        placed = stamped if placed is None else max(placed, stamped)
        elapsed = sample.ts - samples[index - 1].ts if index else None
        result = counter_step(point, CounterPoint(sample.value, placed), width, RATE, elapsed)
        assert result.quarantined == 0, result
        counted += result.delta
        point = result.point
    assert counted == produced


@given(widths, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 10_000_000))
def test_a_step_never_counts_more_than_it_could_and_never_negative(width, previous, value, elapsed_ms):
    modulus = 1 << width
    last = CounterPoint(previous % modulus, at(0))
    result = counter_step(last, CounterPoint(value % modulus, at(elapsed_ms / 1000)), width, RATE)
    assert result.delta >= 0 and result.quarantined >= 0
    assert result.delta <= max(modulus // 2, STEP_FLOOR + RATE * elapsed_ms)
