"""Downtime and OEE through the HTTP API on a real PostgreSQL.

The rows the ingest writes (machine_states, ingested_messages, edge_status_events,
production_attributions) are inserted directly; everything else goes through the API. The first test
is the worked example of docs/oee.md one week earlier (the API derives nothing after now), computed by
hand there and again below.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from kernel.db.models import make_engine
from mes.rules.states import Category, Contact, StateChange, StateInterval, clip, derive_intervals
from mes.services.downtime import Derivation, derive
from tests.support.http import ok, refused
from tests.support.ingested import Ingested
from tests.support.auth import by

BERLIN = ZoneInfo("Europe/Berlin")
RUNNING, IDLE, FAULT, PLANNED_STOP = 1, 2, 3, 7
EARLY_SHIFT = {"name": "early", "weekdays": [0, 1, 2, 3, 4], "start": "06:00", "end": "14:00",
               "breaks": [{"start": "10:00", "end": "10:30"}]}
RATIOS = Context(prec=28, rounding=ROUND_HALF_EVEN)


def local(hour, minute=0, second=0):
    """Tuesday 17 November 2026 in Berlin (UTC+1)."""
    return datetime(2026, 11, 17, hour, minute, second, tzinfo=BERLIN)


def ratio(fraction: Fraction) -> Decimal:
    return RATIOS.divide(Decimal(fraction.numerator), Decimal(fraction.denominator))


def worked_example(api, db: Ingested) -> None:
    """press-01's early shift of docs/oee.md: a 45 min breakdown, three 1 min jams, idle in the break,
    a 20 min planned stop, 10 min offline after the edge's Last Will; 700 units of WO-1 at 30 s ideal."""
    db.state("press-01", local(5, 50), RUNNING)
    # a fault arrives as the ingest stores one sample: a row per signal at the same instant
    db.state("press-01", local(7), FAULT, 0)
    db.state("press-01", local(7), FAULT, 12)
    db.state("press-01", local(7, 45), RUNNING, 12)
    db.state("press-01", local(7, 45), RUNNING, 0)
    for jam in (local(8), local(8, 30), local(9)):
        db.state("press-01", jam, FAULT, 31)
        db.state("press-01", jam + timedelta(minutes=1), RUNNING, 0)
    db.state("press-01", local(10), IDLE)
    db.state("press-01", local(10, 30), RUNNING)
    db.state("press-01", local(11), PLANNED_STOP)
    db.state("press-01", local(11, 20), RUNNING)
    db.heard("press-01", local(5, 50), local(12), timedelta(seconds=30))
    db.edge_status(local(12), online=False)  # the Last Will
    db.heard("press-01", local(12, 10), local(14, 30), timedelta(seconds=30))

    ok(api.put("/calendar", json={"timezone": "Europe/Berlin", "shifts": [EARLY_SHIFT]}))
    ok(api.post("/items", json={"item_id": "bracket", "name": "Bracket", "kind": "make", "uom": "pcs"}), 201)
    ok(api.post("/work-orders", json={"work_order_id": "WO-1", "item_id": "bracket", "quantity": 1000}), 201)
    db.conn.execute("INSERT INTO machine_items VALUES ('press-01', 'bracket', 30)")
    db.conn.execute("INSERT INTO dispatches (machine_id, work_order_id, source, start_ts, end_ts) VALUES "
                    "('press-01', 'WO-1', 'api', %s, %s)", (local(5), local(15)))
    db.made("press-01", local(9, 30), 300, 5, 5000, "WO-1")
    db.made("press-01", local(13, 59), 380, 15, 7345, "WO-1")
    db.made("press-01", local(14, 0), 99, 0, 99, "WO-1")  # after the period: not counted


def welder_idles_and_jams(db: Ingested) -> None:
    """welder-01 (line-2) stands idle for 5 min in the early shift and has a 1 min microstop with no reason."""
    db.state("welder-01", local(6), RUNNING)
    db.state("welder-01", local(9), IDLE)
    db.state("welder-01", local(9, 5), RUNNING)
    db.state("welder-01", local(13), FAULT, 99)
    db.state("welder-01", local(13, 1), RUNNING)
    db.heard("welder-01", local(6), local(14, 30), timedelta(seconds=30))


SHIFT = {"start": local(6).isoformat(), "end": local(14).isoformat(), "offline_after_s": 60}


def test_state_intervals_of_the_worked_example(api, db):
    worked_example(api, db)
    intervals = ok(api.get("/machines/press-01/states", params=SHIFT))
    assert [(i["start"], i["end"], i["state"], i["stop"], i["fault_code"]) for i in intervals] == [
        (start.astimezone(UTC).isoformat().replace("+00:00", "Z"), end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
         state, stop, fault)
        for start, end, state, stop, fault in [
            (local(6), local(7), "running", None, 0),
            (local(7), local(7, 45), "fault", "breakdown", 12),
            (local(7, 45), local(8), "running", None, 0),
            (local(8), local(8, 1), "fault", "microstop", 31),
            (local(8, 1), local(8, 30), "running", None, 0),
            (local(8, 30), local(8, 31), "fault", "microstop", 31),
            (local(8, 31), local(9), "running", None, 0),
            (local(9), local(9, 1), "fault", "microstop", 31),
            (local(9, 1), local(10), "running", None, 0),
            (local(10), local(10, 30), "idle", "idle", 0),
            (local(10, 30), local(11), "running", None, 0),
            (local(11), local(11, 20), "planned_stop", None, 0),
            (local(11, 20), local(12), "running", None, 0),
            (local(12), local(12, 10), "offline", None, None),
            (local(12, 10), local(14), "running", None, 0),
        ]]
    first = intervals[0]
    assert first["began"] == local(5, 50).astimezone(UTC).isoformat().replace("+00:00", "Z"), "the period cut it; it began earlier"
    assert first["duration_s"] == "3600.000000" and first["category"] == "running"
    assert intervals[13]["category"] == "offline", "communication loss is neither running nor stopped"


def test_oee_of_the_worked_example_by_machine_shift_work_order_and_line(api, db):
    worked_example(api, db)
    minute = 60
    run, busy, breakdown = 372 * minute, 420 * minute, 45 * minute
    availability, performance, quality = Fraction(run, busy), Fraction(700 * 30, run), Fraction(680, 700)
    expected = {
        "planned_production_time_s": Decimal(450 * minute), "planned_downtime_s": Decimal(20 * minute),
        "unknown_time_s": Decimal(10 * minute), "planned_busy_time_s": Decimal(busy), "run_time_s": Decimal(run),
        "stopped_time_s": Decimal(48 * minute), "breakdown_time_s": Decimal(breakdown), "microstop_time_s": Decimal(3 * minute),
        "failures": 1, "microstops": 3, "ideal_time_s": Decimal(21000), "total": 700, "good": 680, "energy_wh": Decimal(12345),
        "availability": ratio(availability), "performance": ratio(performance), "quality": ratio(quality),
        "oee": ratio(availability * performance * quality), "mtbf_s": Decimal(run), "mttr_s": Decimal(breakdown),
        "energy_per_good_unit_wh": ratio(Fraction(12345, 680)),
    }
    assert expected["oee"] == Decimal("0.8095238095238095238095238095")  # 17/21, as docs/oee.md says

    def check(group: dict, **changed) -> None:
        for name, value in {**expected, **changed}.items():
            assert (Decimal(group[name]) if isinstance(value, Decimal) else group[name]) == value, name

    (machine,) = ok(api.get("/oee", params={**SHIFT, "by": "machine", "machine_id": "press-01"}))
    assert machine["key"] == "press-01"
    check(machine)
    (shift,) = ok(api.get("/oee", params={**SHIFT, "by": "shift", "machine_id": "press-01"}))
    assert shift["key"] == "2026-11-17 early"
    check(shift)
    (order,) = ok(api.get("/oee", params={**SHIFT, "by": "work_order"}))
    assert order["key"] == "WO-1"
    check(order)
    # press-02 of the same line reported nothing: its planned time is all unknown, the ratios stay
    line = {g["key"]: g for g in ok(api.get("/oee", params={**SHIFT, "by": "line"}))}
    assert set(line) == {"line-1", "line-2"}
    check(line["line-1"], planned_production_time_s=Decimal(900 * minute), unknown_time_s=Decimal(460 * minute))
    assert line["line-2"]["availability"] is None and line["line-2"]["oee"] is None


def test_stop_reasons_from_fault_codes_overridden_by_supervisors(api, db, database_url):
    worked_example(api, db)
    for code, description in (("electrical", "Electrical fault"), ("jam", "Material jam"), ("material", "Bad material")):
        ok(api.post("/downtime-reasons", json={"code": code, "description": description}), 201)
    ok(api.post("/downtime-reasons", json={"code": "old", "description": "Retired", "active": False}), 201)
    refused(api.post("/downtime-reasons", json={"code": "jam", "description": "again"}), 409, "already exists")
    assert [r["code"] for r in ok(api.get("/downtime-reasons"))] == ["electrical", "jam", "material", "old"]

    ok(api.put("/fault-reasons", json={"fault_code": 12, "reason_code": "material"}))  # every machine …
    ok(api.put("/fault-reasons", json={"fault_code": 12, "reason_code": "electrical"}))  # … replaced
    ok(api.put("/fault-reasons", json={"fault_code": 31, "reason_code": "electrical"}))
    ok(api.put("/fault-reasons", json={"machine_id": "press-01", "fault_code": 31, "reason_code": "jam"}))  # press-01's own
    refused(api.put("/fault-reasons", json={"machine_id": "nope", "fault_code": 31, "reason_code": "jam"}), 404, "nope")
    refused(api.put("/fault-reasons", json={"fault_code": 31, "reason_code": "unheard"}), 404, "unheard")
    refused(api.put("/fault-reasons", json={"fault_code": 31, "reason_code": "old"}), 409, "no longer in use")
    assert ok(api.get("/fault-reasons")) == [
        {"machine_id": None, "fault_code": 12, "reason_code": "electrical"},
        {"machine_id": None, "fault_code": 31, "reason_code": "electrical"},
        {"machine_id": "press-01", "fault_code": 31, "reason_code": "jam"}]

    def stops():
        return {i["start"]: (i["reason_code"], i["reason_source"], i["comment"])
                for i in ok(api.get("/machines/press-01/states", params=SHIFT)) if i["category"] != "running"}

    breakdown = local(7).astimezone(UTC).isoformat().replace("+00:00", "Z")
    jam = local(8).astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert stops()[breakdown] == ("electrical", "fault_code", None)
    assert stops()[jam] == ("jam", "fault_code", None), "the machine's own mapping comes first"

    path = f"/machines/press-01/stops/{local(7).isoformat()}/annotations"
    ok(by(api, "ana").post(path, json={"reason_code": "material", "actor": "ana"}), 201)
    ok(by(api, "bo").post(path, json={"comment": "coil from lot 42 was out of spec", "actor": "bo"}), 201)
    assert stops()[breakdown] == ("material", "annotation", "coil from lot 42 was out of spec"), \
        "a comment alone keeps the reason given before"
    assert [(a["actor"], a["reason_code"]) for a in ok(api.get(path))] == [("ana", "material"), ("bo", None)]
    ok(api.post(f"/machines/press-01/stops/{local(11).isoformat()}/annotations",
                json={"comment": "weekly cleaning", "actor": "ana"}), 201)  # planned stops take comments too

    before = db.count("downtime_annotations")
    refused(api.post(f"/machines/press-01/stops/{local(7, 10).isoformat()}/annotations",
                     json={"reason_code": "jam", "actor": "ana"}), 404, "no stop of machine 'press-01' starts at", "fault since")
    refused(api.post(f"/machines/press-01/stops/{local(6, 30).isoformat()}/annotations",
                     json={"reason_code": "jam", "actor": "ana"}), 404, "running since")
    refused(api.post(f"/machines/press-01/stops/{local(12).isoformat()}/annotations",
                     json={"reason_code": "jam", "actor": "ana"}, params={"offline_after_s": 60}), 404, "offline since")
    refused(api.post(f"/machines/ghost/stops/{local(7).isoformat()}/annotations",
                     json={"reason_code": "jam", "actor": "ana"}), 404, "ghost")
    refused(by(api, "ana").post(path, json={"reason_code": "unheard", "actor": "ana"}), 404, "unheard")
    refused(by(api, "ana").post(path, json={"reason_code": "old", "actor": "ana"}), 409, "no longer in use")
    refused(by(api, "ana").post(path, json={"actor": "ana"}), 422, "reason_code, a comment or both")
    refused(by(api, "ana").post("/machines/press-01/stops/2026-11-17T06:00:00/annotations", json={"comment": "x", "actor": "ana"}),
            422, "must carry a time zone")
    assert db.count("downtime_annotations") == before, "a refused annotation writes nothing"


def test_pareto_by_reason_machine_line_and_shift_with_microstops_apart(api, db):
    worked_example(api, db)
    ok(api.post("/downtime-reasons", json={"code": "electrical", "description": "Electrical fault"}), 201)
    ok(api.post("/downtime-reasons", json={"code": "jam", "description": "Material jam"}), 201)
    ok(api.put("/fault-reasons", json={"fault_code": 12, "reason_code": "electrical"}))
    ok(api.put("/fault-reasons", json={"fault_code": 31, "reason_code": "jam"}))
    welder_idles_and_jams(db)

    def pareto(by):
        return [(r["key"], r["stops"], Decimal(r["seconds"]), r["share"] and Decimal(r["share"]), r["microstops"],
                 Decimal(r["microstop_seconds"])) for r in ok(api.get("/downtime/pareto", params={**SHIFT, "by": by}))]

    # breakdown 45 min = 2700 s of 3000 s; the idle in press-01's break is outside planned production time
    assert pareto("reason") == [("electrical", 1, 2700, Decimal("0.9"), 0, 0), (None, 1, 300, Decimal("0.1"), 1, 60),
                                ("jam", 0, 0, 0, 3, 180)]
    assert pareto("machine") == [("press-01", 1, 2700, Decimal("0.9"), 3, 180), ("welder-01", 1, 300, Decimal("0.1"), 1, 60)]
    assert pareto("line") == [("line-1", 1, 2700, Decimal("0.9"), 3, 180), ("line-2", 1, 300, Decimal("0.1"), 1, 60)]
    assert pareto("shift") == [("early", 2, 3000, 1, 4, 240)]
    only = ok(api.get("/downtime/pareto", params={**SHIFT, "by": "machine", "line_id": "line-2"}))
    assert [r["key"] for r in only] == ["welder-01"]
    refused(api.get("/downtime/pareto", params={**SHIFT, "by": "colour"}), 422)
    refused(api.get("/downtime/pareto", params={**SHIFT, "line_id": "line-9"}), 404, "line-9")


T0 = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_offline_from_silence_and_from_a_last_will_is_neither_running_nor_stopped(api, db):
    db.state("welder-01", at(0), RUNNING)
    db.heard("welder-01", at(0), at(61), timedelta(seconds=10))  # then 140 s of silence
    db.heard("welder-01", at(200), at(700), timedelta(seconds=10))
    db.edge_status(at(302), online=False)  # Last Will; the edge is back at once: its next message is at 310
    db.edge_status(at(100), online=False, edge="edge-2")  # another edge's Last Will says nothing about welder-01
    period = {"start": at(0).isoformat(), "end": at(600).isoformat()}

    def states(**params):
        return [((i["start"], i["end"]), i["state"], i["category"])
                for i in ok(api.get("/machines/welder-01/states", params={**period, **params}))]

    def span(a, b):
        return (at(a).isoformat().replace("+00:00", "Z"), at(b).isoformat().replace("+00:00", "Z"))

    # offline_after_s defaults to the setting (30 s): offline from the last message + 30 s
    assert states() == [(span(0, 90), "running", "running"), (span(90, 200), "offline", "offline"),
                        (span(200, 302), "running", "running"), (span(302, 310), "offline", "offline"),
                        (span(310, 600), "running", "running")]
    assert states(offline_after_s=150) == [(span(0, 302), "running", "running"), (span(302, 310), "offline", "offline"),
                                           (span(310, 600), "running", "running")]

    db.made("welder-01", at(300), 900, 10, 70)
    ok(api.post("/calendar/non-production", json={"start": at(500).isoformat(), "end": at(700).isoformat(),
                                                   "reason": "maintenance"}), 201)
    (group,) = ok(api.get("/oee", params={**period, "machine_id": "welder-01"}))
    # no shift defined: the whole period is planned, less the non-production from 500 s on
    assert (group["planned_production_time_s"], group["unknown_time_s"], group["run_time_s"]) == \
        ("500.000000", "118.000000", "382.000000")
    assert Decimal(group["availability"]) == 1 and group["failures"] == 0
    assert Decimal(group["performance"]) == ratio(Fraction(910 * 5, 382 * 10)), "welder-01's ideal cycle is 0.5 s"
    assert Decimal(group["quality"]) == ratio(Fraction(900, 910))
    (whole,) = ok(api.get("/oee", params={**period, "by": "shift", "machine_id": "welder-01"}))
    assert whole["key"] is None and whole["run_time_s"] == "382.000000", "no shift defined: one group, the whole period"


def test_a_machine_never_heard_is_unknown_all_along(api, db):
    period = {"start": at(0).isoformat(), "end": at(600).isoformat()}
    assert ok(api.get("/machines/packer-01/states", params=period)) == []
    (group,) = ok(api.get("/oee", params={**period, "machine_id": "packer-01"}))
    assert group["unknown_time_s"] == group["planned_production_time_s"] == "600.000000"
    assert group["availability"] is None and group["oee"] is None


def test_shift_calendar_with_breaks_and_planned_non_production(api, db, database_url):
    night = {"name": "night", "weekdays": [6, 0, 1, 2, 3], "start": "22:00", "end": "06:00"}
    late = {"name": "late", "weekdays": [0, 1, 2, 3, 4], "start": "14:00", "end": "22:00", "breaks": [{"start": "18:00", "end": "18:30"}]}
    stored = ok(api.put("/calendar", json={"timezone": "Europe/Berlin", "shifts": [night, EARLY_SHIFT, late]}))
    assert stored["timezone"] == "Europe/Berlin"
    assert [s["name"] for s in stored["shifts"]] == ["early", "late", "night"]
    assert stored["shifts"][0]["breaks"] == [{"start": "10:00:00", "end": "10:30:00"}]
    maintenance = ok(api.post("/calendar/non-production", json={
        "start": "2026-11-16T12:00:00+01:00", "end": "2026-11-16T16:00:00+01:00", "reason": "maintenance"}), 201)

    monday = {"start": "2026-11-16T00:00:00+01:00", "end": "2026-11-17T00:00:00+01:00"}
    found = ok(api.get("/calendar/shifts", params=monday))
    assert [(s["name"], s["day"], s["start"], s["end"], s["planned_production_s"]) for s in found] == [
        ("night", "2026-11-15", "2026-11-15T21:00:00Z", "2026-11-16T05:00:00Z", "28800.000000"),
        ("early", "2026-11-16", "2026-11-16T05:00:00Z", "2026-11-16T13:00:00Z", "19800.000000"),  # 7.5 h − 2 h maintenance
        ("late", "2026-11-16", "2026-11-16T13:00:00Z", "2026-11-16T21:00:00Z", "19800.000000"),  # 7.5 h − 2 h
        ("night", "2026-11-16", "2026-11-16T21:00:00Z", "2026-11-17T05:00:00Z", "28800.000000"),
    ]
    assert found[1]["breaks"] == [{"start": "2026-11-16T09:00:00Z", "end": "2026-11-16T09:30:00Z"}]

    overlapping = {**late, "name": "overtime", "start": "13:00", "end": "15:00", "breaks": []}
    for body, words in [
        ({"timezone": "Europe/Berlin", "shifts": [EARLY_SHIFT, overlapping]}, ("overlap", "early", "overtime")),
        ({"timezone": "Mars/Olympus", "shifts": [EARLY_SHIFT]}, ("Mars/Olympus", "not a time zone")),
        ({"timezone": "UTC", "shifts": [{**EARLY_SHIFT, "breaks": [{"start": "15:00", "end": "15:30"}]}]}, ("must lie inside",)),
        ({"timezone": "UTC", "shifts": [{**EARLY_SHIFT, "weekdays": [7]}]}, ("weekdays",)),
        ({"timezone": "UTC", "shifts": [EARLY_SHIFT, {**late, "name": "early"}]}, ("unique", "early")),
    ]:
        refused(api.put("/calendar", json=body), 422, *words)
    assert ok(api.get("/calendar")) == {**stored, "non_production": [maintenance]}, "a refused calendar changes nothing"

    refused(api.post("/calendar/non-production", json={"start": "2026-11-16T16:00:00+01:00", "end": "2026-11-16T12:00:00+01:00"}),
            422, "ends before it starts")
    refused(api.post("/calendar/non-production", json={"start": "2026-11-16T12:00:00", "end": "2026-11-16T16:00:00+01:00"}),
            422, "time zone")
    api.delete(f"/calendar/non-production/{maintenance['id']}").raise_for_status()
    refused(api.delete(f"/calendar/non-production/{maintenance['id']}"), 404, "does not exist")
    assert ok(api.get("/calendar/shifts", params=monday))[1]["planned_production_s"] == "27000.000000"
    ok(api.put("/calendar", json={"timezone": "UTC", "shifts": []}))
    assert ok(api.get("/calendar/shifts", params=monday)) == []


def test_periods_and_filters_are_checked(api):
    refused(api.get("/machines/press-01/states", params={"start": "2026-11-16T08:00:00", "end": "2026-11-16T09:00:00Z"}),
            422, "start must carry a time zone")
    refused(api.get("/oee", params={"start": "2026-11-16T09:00:00Z", "end": "2026-11-16T08:00:00Z"}), 422, "must end after it starts")
    refused(api.get("/machines/ghost/states", params={"start": "2026-11-16T08:00:00Z", "end": "2026-11-16T09:00:00Z"}), 404, "ghost")
    refused(api.get("/oee", params={"start": "2026-11-16T08:00:00Z", "end": "2026-11-16T09:00:00Z", "machine_id": "ghost"}),
            404, "ghost")
    refused(api.get("/oee", params={"start": "2026-11-16T08:00:00Z", "end": "2026-11-16T09:00:00Z", "by": "colour"}), 422)
    refused(api.get("/oee", params={"start": "2026-11-16T08:00:00Z", "end": "2026-11-16T09:00:00Z",
                                    "microstop_threshold_s": "0.0000001"}), 422, "whole number of microseconds")
    refused(api.get("/oee", params={"start": "2026-11-16T08:00:00Z", "end": "2026-11-16T09:00:00Z", "offline_after_s": 0}), 422)


def contacts_of(db: Ingested) -> tuple[list[Contact], list[datetime]]:
    """Every instant the stored messages were heard at (no thinning), and the edge's offline events."""
    heard = [Contact(ts, True) for row in db.conn.execute("SELECT first_ts, last_ts FROM ingested_messages") for ts in row]
    lost = [ts for (ts,) in db.conn.execute("SELECT received_at FROM edge_status_events WHERE NOT online")]
    return heard + [Contact(ts, False) for ts in lost], lost


def derived(database_url: str, offline_after: timedelta, until: datetime) -> list[StateInterval]:
    with Session(make_engine(database_url)) as session:
        return derive(session, "welder-01", at(0), until, Derivation(offline_after, now=until))


def test_a_message_spanning_two_buckets_does_not_hide_the_messages_after_it(db, database_url):
    """The flake of tests/e2e/test_downtime.py: the machine heard every 0.2 s until its edge stopped. Grouping
    whole messages by the bucket of their last_ts kept only min(first_ts) and max(last_ts) of a bucket: the
    first message of 18..20 s began at 17.917 s, its last ended at 19.95 s, and nothing was read in between:
    a silence of 2.03 s that never was, offline from 19.917 s, before the edge's offline status."""
    ms = lambda n: timedelta(milliseconds=n)  # noqa: E731
    db.state("welder-01", at(0), RUNNING)
    for tenth in range(0, 176, 2):
        db.message("welder-01", at(0) + ms(100 * tenth), at(0) + ms(100 * tenth + 50), at(0) + ms(100 * tenth + 80))
    db.message("welder-01", at(18) - ms(83), at(18) + ms(100), at(18) + ms(150))
    for tenth in range(182, 200, 2):
        db.message("welder-01", at(0) + ms(100 * tenth), at(0) + ms(100 * tenth + 50), at(0) + ms(100 * tenth + 80))
    db.message("welder-01", at(20) - ms(100), at(20) - ms(50), at(20))
    db.edge_status(at(20) + ms(164), online=False)
    for second in range(23, 31):
        db.message("welder-01", at(second), at(second), at(second) + ms(20))
    intervals = derived(database_url, timedelta(seconds=2), at(31))
    assert [(i.start, i.end) for i in intervals if i.category is Category.OFFLINE] == [(at(20) + ms(164), at(23))], \
        "offline from the edge's offline status to the machine's next message, and only then"


offsets = st.integers(0, 20_000).map(lambda ms: at(0) + timedelta(milliseconds=ms))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(offsets, st.integers(0, 3_000), st.integers(0, 10_000)), min_size=1, max_size=12),
       st.lists(offsets, max_size=2))
def test_no_offline_period_starts_before_the_last_contact_and_the_timeout_but_at_an_edge_offline_status(
        db, database_url, messages, lost_at):
    """Thinning the messages in SQL derives exactly what all their instants would."""
    offline_after, until = timedelta(seconds=2), at(30)
    db.conn.execute("DELETE FROM ingested_messages")
    db.conn.execute("DELETE FROM edge_status_events")
    db.conn.execute("DELETE FROM machine_states")
    db.state("welder-01", at(0), RUNNING)
    for first, span_ms, delay_ms in messages:
        last = first + timedelta(milliseconds=span_ms)
        db.message("welder-01", first, last, last + timedelta(milliseconds=delay_ms))
    for ts in lost_at:
        db.edge_status(ts, online=False)
    contacts, lost = contacts_of(db)
    intervals = derived(database_url, offline_after, until)
    changes = [StateChange(at(0), RUNNING, 0)]
    assert intervals == clip(derive_intervals("welder-01", changes, contacts, until, offline_after), at(0), until)
    heard = sorted({at(0)} | {c.ts for c in contacts if c.online})
    for interval in intervals:
        if interval.category is Category.OFFLINE and interval.start not in lost:
            assert max(ts for ts in heard if ts <= interval.start) + offline_after <= interval.start, intervals
