"""The core's MQTT consumer on a real broker and PostgreSQL: what it holds while the database stalls."""

from __future__ import annotations

import threading

import psycopg

from core.ingest.consumer import CoreConsumer
from core.queries import recorded_totals
from kernel.mqtt import connect, new_client
from tests.core.test_ingest_plan import incoming
from tests.core.test_ingest_service import prepared
from tests.support.processes import wait_until


def test_a_stalled_database_leaves_messages_on_the_broker_and_loses_none(database_url, broker, tmp_path):
    prepared(database_url, tmp_path)
    consumer = CoreConsumer(database_url, broker.url, client_id="test-core-backpressure", batch_max_messages=5,
                            max_pending=20)
    worker = threading.Thread(target=consumer.run, daemon=True)
    worker.start()
    publisher = new_client(broker.target, "test-publisher", persistent=False)
    connect(publisher, broker.target)
    try:
        wait_until(lambda: consumer.connected() and publisher.is_connected(), 20, "both clients connected")
        with psycopg.connect(database_url) as stall:
            stall.execute("LOCK TABLE ingested_messages IN ACCESS EXCLUSIVE MODE")  # held until the commit below
            for seq in range(1, 301):
                message = incoming(seq, [(seq, "good", seq)])
                publisher.publish(message.topic, message.payload, qos=1)
            wait_until(lambda: consumer.waited_for_room > 0, 20, "the consumer to leave messages on the broker")
        wait_until(lambda: consumer.service.totals.messages == 300, 60, "every message ingested after the stall")
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        consumer.stop()
        worker.join(timeout=20)
    assert consumer.most_pending <= 20
    with psycopg.connect(database_url) as conn:
        assert recorded_totals(conn)["m1"]["good"] == 299
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
