"""Each machine's connection status and unusable readings (edge/sources/health.py), on a fake clock."""

import structlog

from edge.sources.health import LOG_EVERY_S, Health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_same_failure_is_counted_every_time_and_logged_at_most_once_a_minute():
    clock = Clock()
    health = Health(["m1", "m2"], "opc.tcp://plc", clock)
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):
            health.unusable("m1", "good", "negative", "-5")
        clock.now += LOG_EVERY_S + 1
        health.unusable("m1", "good", "negative", "-5")
        health.unusable("m1", "scrap", "negative", "-1")  # another signal: its own first line
    unusable = [line for line in logs if line["event"] == "source.reading_unusable"]
    assert [(line["signal"], line["not_logged_since_last"]) for line in unusable] == [("good", 0), ("good", 99), ("scrap", 0)]
    assert health.snapshot()["m1"].unusable == {"negative": 102}
    assert health.snapshot()["m2"].unusable == {}


def test_status_changes_are_logged_once_and_a_quiet_polled_machine_turns_stale():
    clock = Clock()
    health = Health(["m1"], "modbus h:502", clock)
    assert health.status("m1") == "unreachable"  # until the first connect
    before = health.changes
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            health.set("m1", "unreachable", "unit 1 does not answer")
    # (the return to ok is logged at info level, which another test's logging set-up may filter)
    assert [line["status"] for line in logs if line["event"] == "source.machine_status"] == ["unreachable"]
    health.set("m1", "ok")
    assert health.changes == before + 2
    changes = health.changes
    health.value_arrived("m1")
    clock.now += 4
    assert health.snapshot({"m1": 5.0})["m1"].status == "ok"
    clock.now += 2
    stale = health.snapshot({"m1": 5.0})["m1"]
    assert (stale.status, stale.detail) == ("stale", "no value for 6 s")
    assert health.snapshot()["m1"].status == "ok"  # a subscribed machine has no such bound
    assert health.changes == changes


def test_each_reported_failure_counts_once_per_status_and_a_repeat_of_it_not_at_all():
    health = Health(["m1", "m2"], "modbus h:502", Clock())
    health.set("m1", "unreachable", "unit 1 does not answer")  # a reason other than "not connected yet"
    health.set("m1", "unreachable", "unit 1 does not answer")  # the same failure again
    health.set("m1", "ok")
    health.set("m1", "unreachable", "unit 1 does not answer")
    health.set("m1", "bad_config", "holding 100-101: exception 2")
    assert health.faults("m1") == {"unreachable": 2, "bad_config": 1}
    assert health.faults("m2") == {}
