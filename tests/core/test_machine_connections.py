"""Each machine's connection as its edge reports it, from a real EdgeStatus through a real broker into
PostgreSQL: stored in the ingest's transaction, never replaced by an older report, shown unreachable
while its edge is offline."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy.orm import Session

from core.ingest.consumer import CoreConsumer
from kernel.db.models import make_engine
from kernel.mqtt import connect, new_client
from kernel.payload import EdgeStatus, MachineConnection, status_topic
from mes.services.connections import machine_connections
from tests.core.test_ingest_service import prepared
from tests.support.processes import wait_until

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WRONG_REGISTER = "holding 60-61 (scrap): exception 2"


def status(epoch: int, ts: datetime | None, online: bool = True, **connection) -> bytes:
    connections = {"m1": MachineConnection(**connection)} if connection else {}
    return EdgeStatus(edge_id="e1", online=online, epoch=epoch, ts=ts, machines=["m1"] if online else [],
                      connections=connections).model_dump_json().encode()


def stored(database_url: str):
    with psycopg.connect(database_url) as conn:
        return conn.execute("""SELECT status, detail, since, unusable, edge_id, epoch, reported_at
                               FROM machine_connections WHERE machine_id = 'm1'""").fetchone()


def statuses_ingested(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM edge_status_events").fetchone()[0]


def shown(database_url: str):
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return machine_connections(session)["m1"]
    finally:
        engine.dispose()


def test_the_ingest_stores_each_machines_connection_from_the_edge_status_and_keeps_the_newest(database_url, broker, tmp_path):
    prepared(database_url, tmp_path)
    consumer = CoreConsumer(database_url, broker.url, client_id="test-core-connections")
    worker = threading.Thread(target=consumer.run, daemon=True)
    worker.start()
    edge = new_client(broker.target, "test-edge-e1", persistent=False)
    connect(edge, broker.target)

    def publish(payload: bytes, then_ingested: int) -> None:
        edge.publish(status_topic("e1"), payload, qos=1, retain=True)
        wait_until(lambda: statuses_ingested(database_url) >= then_ingested, 20, f"status {then_ingested} ingested")

    try:
        wait_until(lambda: consumer.connected() and edge.is_connected(), 20, "both clients connected")
        publish(status(2, T0, status="bad_config", detail=WRONG_REGISTER, since=T0 - timedelta(seconds=3),
                       unusable={"bad_config": 4}), 1)
        assert stored(database_url) == ("bad_config", WRONG_REGISTER, T0 - timedelta(seconds=3), {"bad_config": 4}, "e1", 2, T0)
        connection = shown(database_url)
        assert (connection.status, connection.detail, connection.edge_online) == ("bad_config", WRONG_REGISTER, True)

        publish(status(2, T0 - timedelta(seconds=1), status="ok"), 2)  # stamped before the one stored: late
        assert stored(database_url)[:2] == ("bad_config", WRONG_REGISTER), "an older report never replaces a newer one"
        publish(status(1, T0 + timedelta(seconds=5), status="ok"), 3)  # the edge's previous run
        assert stored(database_url)[:2] == ("bad_config", WRONG_REGISTER)

        publish(status(2, None, online=False), 4)  # the edge's Last Will: no connections of its own
        assert stored(database_url)[:2] == ("bad_config", WRONG_REGISTER), "what the edge said stays on record"
        connection = shown(database_url)
        assert (connection.status, connection.reported_status, connection.edge_online) == ("unreachable", "bad_config", False)
        assert connection.detail == f"edge e1 offline; it last reported bad_config: {WRONG_REGISTER}"

        publish(status(3, T0 - timedelta(hours=1), status="ok", since=T0), 5)  # restarted, its clock set back
        assert stored(database_url)[:2] == ("ok", "") and shown(database_url).status == "ok", "a newer run's report"
        publish(status(2, None, online=False), 6)  # the previous run's Last Will, late
        assert shown(database_url).status == "ok", "an offline status of an earlier run hides nothing"
    finally:
        edge.disconnect()
        edge.loop_stop()
        consumer.stop()
        worker.join(timeout=20)
