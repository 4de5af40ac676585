"""Board rollups (`mes.services.rollups`): whole hours add up to what the OEE and pareto APIs say.

Uses the worked example of docs/oee.md (tests/mes/test_downtime_api.py) on a real PostgreSQL.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from core.ingest.plan import Incoming
from core.ingest.service import IngestService
from kernel.db.models import make_engine
from kernel.jobs import Jobs
from kernel.payload import data_topic
from mes.services.downtime import Derivation
from mes.rules.rollups import HOUR, hours_between
from mes.services.rollups import Rollups, refresh
from tests.support.http import ok
from tests.mes.test_downtime_api import RUNNING, SHIFT, local, welder_idles_and_jams, worked_example
from tests.support.auth import by

OEE_SUMS = ("planned_production_s", "planned_downtime_s", "unknown_s", "run_s", "stopped_s", "breakdown_s", "microstop_s",
            "failures", "microstops", "ideal_s", "total", "good", "energy_wh")
API_NAMES = {"planned_production_s": "planned_production_time_s", "unknown_s": "unknown_time_s", "run_s": "run_time_s",
             "stopped_s": "stopped_time_s", "breakdown_s": "breakdown_time_s", "microstop_s": "microstop_time_s",
             "ideal_s": "ideal_time_s"}

moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


@given(moments, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))
def test_the_hours_cover_the_period_once_each(since, length):
    hours = hours_between(since, since + length)
    assert hours[0] <= since < hours[0] + HOUR
    assert hours[-1] <= since + length <= hours[-1] + HOUR
    assert all(later - earlier == HOUR for earlier, later in zip(hours, hours[1:], strict=False))
    assert all(hour.minute == hour.second == hour.microsecond == 0 for hour in hours)


def test_whole_hours_of_rollups_equal_the_oee_and_the_pareto(api, db, database_url):
    worked_example(api, db)
    ok(api.post("/downtime-reasons", json={"code": "electrical", "description": "Electrical fault"}), 201)
    ok(api.post("/downtime-reasons", json={"code": "material", "description": "Bad material"}), 201)
    ok(api.put("/fault-reasons", json={"fault_code": 12, "reason_code": "electrical"}))
    welder_idles_and_jams(db)
    engine = make_engine(database_url)
    derivation = Derivation.of(offline_after=timedelta(seconds=60))

    def rolled_up() -> tuple[dict, dict]:
        with Session(engine) as session:
            assert refresh(session, local(6), local(14), derivation) == 8
            session.commit()
        sums = dict(zip(OEE_SUMS, db.conn.execute(
            f"SELECT {', '.join(f'sum({c})' for c in OEE_SUMS)} FROM oee_hourly WHERE machine_id = 'press-01'").fetchone(),
            strict=True))
        stops = {(reason, kind): (int(count), Decimal(time)) for reason, kind, count, time in db.conn.execute(
            "SELECT reason_code, stop_kind, sum(stops), sum(seconds) FROM downtime_hourly GROUP BY 1, 2")}
        return sums, stops

    sums, stops = rolled_up()
    (machine,) = ok(api.get("/oee", params={**SHIFT, "by": "machine", "machine_id": "press-01"}))
    for column in OEE_SUMS:
        assert Decimal(sums[column]) == Decimal(machine[API_NAMES.get(column, column)]), column
    assert stops == {("electrical", "breakdown"): (1, Decimal(2700)), ("unassigned", "microstop"): (4, Decimal(240)),
                     ("unassigned", "idle"): (1, Decimal(300))}, "as the pareto by reason, microstops apart"
    assert rolled_up() == (sums, stops), "refreshing again changes nothing"

    ok(by(api, "ana").post(f"/machines/press-01/stops/{local(7).isoformat()}/annotations", json={"reason_code": "material", "actor": "ana"}),
       201)
    assert db.conn.execute("SELECT since FROM rollup_marks").fetchone() == (local(7),), "the worker will redo from there"
    assert rolled_up()[1][("material", "breakdown")] == (1, Decimal(2700)), "a reason given later moves the stop's time"
    assert db.count("oee_hourly") == 4 * 8, "a machine never heard has planned time too: all of it unknown"


def test_the_core_keeps_the_recent_hours_rolled_up_from_a_process_of_its_own(api, db, database_url):
    now = datetime.now(UTC)
    db.state("press-01", now - timedelta(minutes=10), RUNNING)
    db.heard("press-01", now - timedelta(minutes=10), now, timedelta(seconds=20))
    worker = Jobs()
    worker.every_in_process("mes-rollups", 0.5, Rollups, database_url, 1, 0.5)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while not db.conn.execute("SELECT sum(run_s) > 0 FROM oee_hourly WHERE machine_id = 'press-01'").fetchone()[0]:
            assert time.monotonic() < deadline, "no rollup within 2 min"
            time.sleep(0.2)
    finally:
        worker.stop()


def data_message(seq: int, ts: datetime, good: int, scrap: int, energy_wh: int) -> Incoming:
    """A message of the demo plant's press-01 as edge-1 publishes it."""
    body = {"v": 1, "edge_id": "edge-1", "epoch": 1, "seq": seq, "machine": "press-01",
            "samples": [{"ts": ts.isoformat(), "signal": signal, "value": value}
                        for signal, value in (("state", RUNNING), ("good", good), ("scrap", scrap), ("energy_wh", energy_wh))]}
    return Incoming(data_topic("acme-works", "stamping", "line-1", "press-01"), json.dumps(body).encode(), datetime.now(UTC))


def test_a_round_reaches_back_as_far_as_an_ingest_batch_wrote(api, db, database_url):
    rollups = Rollups(database_url, hours=1)
    rollups.round()  # caught up: nothing produced yet
    earlier = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=5)
    # messages an edge kept through a broker outage, ingested now: their production is 5 h old
    ingest = IngestService(database_url)
    ingest.ingest([data_message(1, earlier, 100, 10, 1000), data_message(2, earlier + timedelta(minutes=1), 140, 12, 1100)])
    ingest.close()
    rollups.round()
    bucket = earlier.replace(minute=0)
    assert db.conn.execute("SELECT good, total FROM oee_hourly WHERE machine_id = 'press-01' AND bucket = %s",
                           (bucket,)).fetchone() == (40, 42)
    assert db.count("rollup_marks") == 0, "the mark was taken"
    rollups.engine.dispose()
