"""The core's metrics, scraped over HTTP from a real core on a real broker and PostgreSQL: they move with
what the core does."""

from __future__ import annotations

from app.plantrun import ThreadCore
from kernel.mqtt import connect, new_client
from tests.core.test_ingest_plan import TOPIC, incoming
from tests.core.test_ingest_service import prepared
from tests.support.metrics import metrics_url, scrape_text, value
from tests.support.processes import wait_until

MESSAGES = 12


def test_the_ingest_counters_follow_the_messages_and_a_dead_letter_shows_as_waiting_for_review(database_url, broker, tmp_path):
    prepared(database_url, tmp_path)
    core = ThreadCore(database_url, broker.url, client_id="test-core-metrics", metrics_port=0)
    core.start()
    publisher = new_client(broker.target, "test-metrics-publisher", persistent=False)
    connect(publisher, broker.target)
    try:
        url = metrics_url(core.process.metrics_server)
        wait_until(lambda: core.process.consumer.connected and publisher.is_connected(), 20, "both clients connected")
        before = scrape_text(url)
        assert value(before, "mes_ingest_messages_total") == 0
        assert value(before, "mes_core_mqtt_connected") == 1
        for seq in range(1, MESSAGES + 1):
            message = incoming(seq, [(seq, "good", seq)])
            publisher.publish(message.topic, message.payload, qos=1)
        wait_until(lambda: value(scrape_text(url), "mes_ingest_messages_total") == MESSAGES, 30, "every message counted")

        publisher.publish(TOPIC, b"{not json", qos=1)
        wait_until(lambda: value(scrape_text(url), "mes_ingest_dead_letters_total") == 1, 30, "the dead letter counted")
        after = scrape_text(url)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        core.stop()
    core.raise_if_failed()
    assert value(after, "mes_ingest_messages_total") == MESSAGES
    assert value(after, "mes_ingest_samples_total") == MESSAGES
    assert value(after, "mes_review_pending_dead_letters") == 1
    assert value(after, "mes_review_pending_steps") == 0
    # every delivery went through one committed batch: the histograms saw each batch once
    batches = value(after, "mes_ingest_batches_total")
    assert value(after, "mes_ingest_batch_messages_sum") == MESSAGES + 1
    assert value(after, "mes_ingest_batch_messages_count") == batches
    assert value(after, "mes_ingest_commit_seconds_count") == batches == value(after, "mes_ingest_lag_seconds_count")
    assert value(after, "mes_ingest_pending_messages") == 0
    assert value(after, "mes_core_mqtt_reconnects_total") == 0
    assert value(after, "mes_job_round_seconds_count", job="mes-alerts") >= 1
