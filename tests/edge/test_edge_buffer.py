from datetime import datetime, timedelta, timezone

from edge.buffer import SampleBuffer, samples_json
from edge.sources.base import Reading

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def reading(signal: str, value: int, seconds: float, machine: str = "m1") -> Reading:
    return Reading(machine_id=machine, signal=signal, value=value, ts=T0 + timedelta(seconds=seconds))


def test_only_changes_are_reported():
    buffer = SampleBuffer()
    assert buffer.observe(reading("good", 1, 0))
    assert not buffer.observe(reading("good", 1, 1))
    assert buffer.observe(reading("good", 2, 2))
    assert [(s.value, s.ts) for s in buffer.drain()["m1"]] == [(1, T0), (2, T0 + timedelta(seconds=2))]
    assert buffer.drain() == {}


def test_samples_are_sorted_by_time_across_signals_and_split_by_machine():
    buffer = SampleBuffer()
    buffer.observe(reading("good", 1, 2))
    buffer.observe(reading("state", 1, 1))
    buffer.observe(reading("good", 2, 3))
    buffer.observe(reading("good", 5, 0, machine="m2"))
    drained = buffer.drain()
    assert [(s.signal, s.value) for s in drained["m1"]] == [("state", 1), ("good", 1), ("good", 2)]
    assert [(s.signal, s.value) for s in drained["m2"]] == [("good", 5)]


def test_a_signals_samples_keep_their_read_order_when_the_clock_steps_back():
    buffer = SampleBuffer()
    buffer.observe(reading("good", 1, 10))
    buffer.observe(reading("state", 1, 11))
    buffer.observe(reading("good", 2, -20))  # the PLC's clock stepped back 30 s
    buffer.observe(reading("good", 3, -19))
    drained = buffer.drain()["m1"]
    assert [s.value for s in drained if s.signal == "good"] == [1, 2, 3], "the order the core counts them in"


def test_snapshot_restates_every_signal_with_its_last_confirmed_time():
    buffer = SampleBuffer()
    buffer.observe(reading("good", 4, 0))
    buffer.observe(reading("fault", 0, 0))
    buffer.drain()
    buffer.observe(reading("good", 4, 5))  # unchanged, but confirmed later
    buffer.observe(reading("fault", 9, 6))  # changed: already pending, the snapshot adds nothing for it
    buffer.snapshot()
    samples = buffer.drain()["m1"]
    assert [(s.signal, s.value, s.ts) for s in samples] == [
        ("good", 4, T0 + timedelta(seconds=5)),
        ("fault", 9, T0 + timedelta(seconds=6)),
    ]


def test_samples_json_matches_the_payload_contract():
    buffer = SampleBuffer()
    buffer.observe(reading("good", 3, 0))
    assert samples_json(buffer.drain()["m1"]) == '[{"ts":"2026-01-01T00:00:00Z","signal":"good","value":3}]'
