"""The ingest service on a real PostgreSQL: commits, restarts, and a batch the database refuses."""

from __future__ import annotations

import psycopg

from core.ingest.service import IngestService
from core.queries import recorded_totals
from core.service import prepare_database
from tests.core.test_ingest_plan import incoming
from tests.e2e.conftest import plant_on_free_ports

PLANT_YAML = """
site: s
edge_id: e1
areas: [{id: a, lines: [{id: l, machines: [{id: m1, protocol: modbus, ideal_cycle_s: 0.025}]}]}]
"""


def prepared(database_url, tmp_path):
    (tmp_path / "p.yaml").write_text(PLANT_YAML)
    prepare_database(database_url, plant_on_free_ports(tmp_path / "p.yaml"))


def batch(first_seq, values):
    return [incoming(first_seq + i, [(first_seq + i, "good", v)]) for i, v in enumerate(values)]


def test_a_restarted_service_skips_what_was_committed_and_goes_on(database_url, tmp_path):
    prepared(database_url, tmp_path)
    first = IngestService(database_url)
    first.ingest(batch(1, [10, 15, 22]))
    first.close()

    second = IngestService(database_url)  # state from the database only
    second.ingest(batch(1, [10, 15, 22]) + batch(4, [30]))
    assert (second.totals.duplicates, second.totals.messages) == (3, 1)
    second.close()
    with psycopg.connect(database_url) as conn:
        assert recorded_totals(conn)["m1"]["good"] == 20
        assert conn.execute("SELECT count(*) FROM ingested_messages").fetchone()[0] == 4


def test_a_reused_position_with_other_content_is_dead_lettered_after_a_restart_too(database_url, tmp_path):
    prepared(database_url, tmp_path)
    first = IngestService(database_url)
    first.ingest(batch(1, [10, 15]))
    first.close()
    second = IngestService(database_url)
    second.ingest(batch(1, [10, 40]) + batch(3, [22]))  # seq 2 says 40 now: a publisher restarted its numbering
    second.close()
    with psycopg.connect(database_url) as conn:
        (reason,) = conn.execute("SELECT reason FROM dead_letters").fetchone()
        assert reason.startswith("conflicting duplicate: epoch 1 seq 2")
        assert recorded_totals(conn)["m1"]["good"] == 12


def test_a_message_the_database_refuses_is_dead_lettered_and_the_rest_committed(database_url, tmp_path):
    prepared(database_url, tmp_path)
    with psycopg.connect(database_url, autocommit=True) as conn:
        # a real refusal, as a constraint added by a DBA would give
        conn.execute("""CREATE FUNCTION refuse_seq_2() RETURNS trigger LANGUAGE plpgsql AS $$
                        BEGIN IF NEW.seq = 2 THEN RAISE EXCEPTION 'seq 2 is refused here'; END IF; RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON ingested_messages FOR EACH ROW EXECUTE FUNCTION refuse_seq_2()")
    service = IngestService(database_url)
    service.ingest(batch(1, [10, 15, 22]))
    service.close()
    with psycopg.connect(database_url) as conn:
        (reason,) = conn.execute("SELECT reason FROM dead_letters").fetchone()
        assert "seq 2 is refused here" in reason
        assert [s for (s,) in conn.execute("SELECT seq FROM ingested_messages ORDER BY seq")] == [1, 3]
        assert recorded_totals(conn)["m1"]["good"] == 12  # 10 -> 22: the refused message's value is covered by the next


def test_an_auto_complete_order_completes_when_its_good_units_reach_the_quantity(database_url, tmp_path):
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from inventory.models import Item
    from mes.models import WorkOrder
    from kernel.db.models import make_engine
    from inventory.services import masterdata
    from mes.services import workorders
    from tests.core.test_ingest_plan import T0

    prepared(database_url, tmp_path)
    engine = make_engine(database_url)
    with Session(engine) as session:
        masterdata.create(session, Item, "cap", "item", item_id="cap", name="Cap", kind="make", uom="pcs")
        workorders.create_work_order(session, "WO-5", "cap", 5, auto_complete=True)
        workorders.act(session, "WO-5", "release")
        workorders.act(session, "WO-5", "start", machine_id="m1", now=T0 - timedelta(minutes=1))
    service = IngestService(database_url)
    service.ingest(batch(1, [10, 13]))  # baseline, then 3 good
    with Session(engine) as session:
        assert session.get(WorkOrder, "WO-5").status == "running"
    service.ingest(batch(3, [16]))  # 6 good: quantity reached
    service.close()
    with Session(engine) as session:
        assert session.get(WorkOrder, "WO-5").status == "completed"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT actor FROM work_order_events WHERE action = 'complete'").fetchall() == [("auto-complete",)]
        assert conn.execute("SELECT count(*) FROM dispatches WHERE end_ts IS NULL").fetchone() == (0,)
    engine.dispose()


def test_a_blocking_location_holds_the_order_until_stock_arrives_and_the_hold_is_released(database_url, tmp_path):
    from datetime import timedelta
    from decimal import Decimal

    import pytest
    from sqlalchemy.orm import Session

    from mes.models import WorkOrder
    from kernel.db.models import make_engine
    from kernel.rules.refusals import Conflict
    from inventory.services import stock
    from mes.services import workorders
    from tests.core.test_ingest_plan import T0
    from tests.support.cap_line import cap_order_running

    prepared(database_url, tmp_path)
    engine = make_engine(database_url)
    with Session(engine) as session:
        cap_order_running(session, "WO-7", 100, machine_id="m1", started_at=T0 - timedelta(minutes=1),
                          resin_kg=Decimal(2), negative_stock="block")
    service = IngestService(database_url)
    service.ingest(batch(1, [0, 10]))  # 10 caps need 5 kg; 2 kg on hand
    service.close()

    def consumed():
        with psycopg.connect(database_url) as conn:
            return conn.execute("SELECT lot, sum(quantity) FROM stock_moves WHERE reason = 'backflush' GROUP BY 1 ORDER BY 1").fetchall()

    with Session(engine) as session:
        assert session.get(WorkOrder, "WO-7").held_reason == "short of resin at l-side"
        assert consumed() == [("R1", Decimal(2))]
        with pytest.raises(Conflict, match="still short: 3.0 resin at l-side"):
            workorders.release_hold(session, "WO-7")
        stock.receive(session, "resin", "R2", "l-side", Decimal(10), source_ref="GR-2")
        assert workorders.release_hold(session, "WO-7", actor="supervisor").held_reason is None
        assert consumed() == [("R1", Decimal(2)), ("R2", Decimal(3))], "exactly the 3 kg held back, against the same interval"
        with pytest.raises(Conflict, match="not held"):
            workorders.release_hold(session, "WO-7")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM backflush_exceptions WHERE NOT resolved").fetchone() == (0,)
        refs = conn.execute("SELECT DISTINCT source_ref FROM stock_moves WHERE reason = 'backflush'").fetchall()
        assert len(refs) == 1
    engine.dispose()


HOURLY_FROM_INTERVALS = """SELECT mes_bucket(INTERVAL '1 hour', end_ts), machine_id, sum(good), sum(scrap), sum(energy_wh), count(*)
                           FROM production_intervals GROUP BY 1, 2 ORDER BY 1, 2"""


def test_production_hourly_equals_the_intervals_summed_after_every_commit_late_data_included(database_url, tmp_path):
    """Batches that span hours, then a message whose samples are days older than the others (a backlog): the
    table the boards read is the intervals summed per hour after each commit, with no refresh in between."""
    prepared(database_url, tmp_path)
    service = IngestService(database_url)
    hour = 3600
    batches = [[incoming(1, [(0, "good", 100), (0, "scrap", 5), (0, "energy_wh", 1000)], received=1),
                incoming(2, [(hour - 1, "good", 130), (hour - 1, "scrap", 6), (hour - 1, "energy_wh", 1300)], received=hour),
                incoming(3, [(hour, "good", 131)], received=hour + 1)],
               [incoming(4, [(2 * hour + 5, "good", 170), (2 * hour + 9, "scrap", 9)], received=2 * hour + 10)],
               [incoming(5, [(2 * hour + 10, "good", 171)], received=2 * hour + 10 + 5 * 86_400)]]
    with psycopg.connect(database_url) as conn:
        for messages in batches:
            service.ingest(messages)
            assert conn.execute("SELECT * FROM production_hourly ORDER BY 1, 2").fetchall() == \
                conn.execute(HOURLY_FROM_INTERVALS).fetchall()
        assert [row[2:5] for row in conn.execute("SELECT * FROM production_hourly ORDER BY 1").fetchall()] == [
            (30, 1, 300), (1, 0, 0), (40, 3, 0)]
    service.close()
