"""The spine end to end: real OPC UA and Modbus servers, a real edge agent, a real broker, the core
and PostgreSQL. Every test ends with recorded good / scrap / Wh equal to the simulator's ground truth."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import psycopg
import pytest

from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import data_topic
from app.plantrun import MesProcess, PlantRun
from tests.e2e.conftest import run, write_plant

pytestmark = pytest.mark.slow


def assert_exact(comparison: dict) -> None:
    mismatches = {m: e for m, e in comparison.items() if e["recorded"] != e["ground_truth"]}
    assert not mismatches, json.dumps(mismatches, indent=1)
    assert all(e["ground_truth"]["good"] > 0 for e in comparison.values()), "a machine produced nothing"


def produce(plant, database_url, mqtt_url, state_dir, during, **plant_run_options) -> dict:
    """Start the plant, produce while `during(plant_run)` runs, drain, and compare with ground truth."""

    async def scenario():
        async with PlantRun(plant, database_url, mqtt_url, state_dir, **plant_run_options) as plant_run:
            plant_run.start_production()
            await during(plant_run)
            await plant_run.drain()
            return plant_run.comparison()

    return run(scenario())


def query(url: str, sql: str, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_counts_are_exact_across_rollovers_and_resets_on_both_widths_and_protocols(plant, database_url, mqtt_url, tmp_path):
    async def during(plant_run):
        await asyncio.sleep(12)

    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during))
    rollovers = dict(query(database_url, "SELECT machine_id, count(*) FROM counter_events WHERE kind = 'rollover' GROUP BY 1"))
    assert set(rollovers) == {"opc16", "mod16", "opc32", "mod32"}
    resets = {m for (m,) in query(database_url, "SELECT DISTINCT machine_id FROM counter_events WHERE kind = 'reset'")}
    assert resets, "the failing machines should have had PLC resets"
    assert query(database_url, "SELECT count(*) FROM counter_events WHERE quarantined > 0") == [(0,)]


def test_core_killed_mid_stream_and_restarted_still_exact(plant, database_url, mqtt_url, tmp_path):
    core = MesProcess.core(database_url, mqtt_url, write_plant(plant, tmp_path), tmp_path / "core.log")

    async def during(plant_run):
        await asyncio.sleep(4)
        core.kill()
        await asyncio.sleep(3)  # production and publishing go on while the core is dead
        core.start()
        await asyncio.sleep(4)
        core.kill()
        core.start()
        await asyncio.sleep(2)

    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during, core=core))


def test_edge_and_core_as_separate_processes_like_a_plant_runs_them(plant, database_url, mqtt_url, tmp_path):
    plant_file = write_plant(plant, tmp_path)
    core = MesProcess.core(database_url, mqtt_url, plant_file, tmp_path / "core.log")
    edge = MesProcess.edge(mqtt_url, plant_file, tmp_path / "edge", tmp_path / "edge.log")

    async def during(plant_run):
        await asyncio.sleep(4)
        edge.kill()  # an edge PC losing power: its disk queue and epoch survive
        await asyncio.sleep(2)
        edge.start()
        await asyncio.sleep(4)

    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during, core=core, edge_process=edge))
    epochs = {epoch for (epoch,) in query(database_url, "SELECT DISTINCT epoch FROM ingested_messages")}
    assert epochs == {1, 2}, "the restarted edge publishes under a new epoch"


def test_broker_outage_is_buffered_on_the_edge_and_replayed_exactly(plant, database_url, broker, tmp_path):
    async def during(plant_run):
        await asyncio.sleep(3)
        broker.stop()
        await plant_run.wait_for(lambda: plant_run.edge.metrics.queue_depth >= 10, 30, "messages queued on the edge's disk")
        await asyncio.sleep(3)
        broker.start()
        await asyncio.sleep(3)

    assert_exact(produce(plant, database_url, broker.url, tmp_path, during))
    assert query(database_url, "SELECT count(*) > 0 FROM ingested_messages WHERE historical") == [(True,)]


@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)
def test_pip_only_fallback_broker_is_exact_too(plant, database_url, broker, tmp_path):
    async def during(plant_run):
        await asyncio.sleep(6)

    assert_exact(produce(plant, database_url, broker.url, tmp_path, during))


def test_bad_payloads_go_to_dead_letters_with_reasons_while_good_traffic_continues(plant, database_url, mqtt_url, tmp_path):
    machine = plant.machine("opc16")
    topic = data_topic(*machine.path)
    now = datetime.now(UTC).isoformat()
    old = datetime(2001, 1, 1, tzinfo=UTC).isoformat()

    # another edge's machine, registered as another plant file would: the sequence checks need an edge whose
    # messages the core accepts; any edge's messages for opc16 but the plant's are refused
    other = data_topic(machine.site, machine.area, machine.line, "other-01")

    def message(**changes):
        body = {"v": 1, "edge_id": "rogue-edge", "epoch": 1, "seq": 10, "machine": "other-01",
                "samples": [{"ts": old, "signal": "good", "value": 0}]}
        return json.dumps({**body, **changes}).encode()

    bad = {
        "malformed": (topic, b'{"v": 1, "edge_id": '),
        "wrong type": (topic, message(seq=11, samples=[{"ts": now, "signal": "good", "value": "12"}])),
        "negative": (topic, message(seq=12, samples=[{"ts": now, "signal": "scrap", "value": -1}])),
        "unknown signal": (topic, message(seq=13, samples=[{"ts": now, "signal": "speed", "value": 1}])),
        "unknown machine": (data_topic(machine.site, machine.area, machine.line, "ghost-01"), message(machine="ghost-01")),
        "topic mismatch": (topic, message(machine="mod16")),
        "seq regression": (other, message(seq=5)),
        "edge not assigned": (topic, message(seq=14, machine="opc16", samples=[{"ts": now, "signal": "good", "value": 10**6}])),
    }
    target = parse_mqtt_url(mqtt_url)
    publisher = new_client(target, "test-rogue-publisher", persistent=False)

    async def publish(bad_topic, payload):
        await asyncio.to_thread(publisher.publish(bad_topic, payload, qos=1).wait_for_publish, 10)

    async def during(plant_run):
        with psycopg.connect(database_url) as conn:
            conn.execute("""INSERT INTO machines (machine_id, site, area, line, protocol, ideal_cycle_s, edge_id)
                            SELECT 'other-01', site, area, line, protocol, ideal_cycle_s, 'rogue-edge' FROM machines
                            WHERE machine_id = 'opc16'""")
            conn.execute("""INSERT INTO machine_counters (machine_id, counter, width_bits, max_rate_per_s)
                            SELECT 'other-01', counter, width_bits, max_rate_per_s FROM machine_counters
                            WHERE machine_id = 'opc16'""")
        await asyncio.sleep(2)
        # an accepted message from another edge first (old timestamp: counts nothing), then the bad ones
        await publish(other, message())
        await asyncio.sleep(1)
        for bad_topic, payload in bad.values():
            await publish(bad_topic, payload)
        await plant_run.wait_for(lambda: len(query(database_url, "SELECT 1 FROM dead_letters")) >= len(bad), 30,
                                 "every bad message dead-lettered")
        await asyncio.sleep(2)

    connect(publisher, target)
    try:
        assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during))
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    reasons = [reason for (reason,) in query(database_url, "SELECT reason FROM dead_letters ORDER BY id")]
    assert len(reasons) == len(bad)
    for expected in ("not JSON", "samples.0.value", "unknown machine 'ghost-01'", "does not match topic machine",
                     "seq regression", "samples.0.signal", "edge not assigned: machine 'opc16'"):
        assert any(expected in reason for reason in reasons), (expected, reasons)
    payloads = {bytes(p) for (p,) in query(database_url, "SELECT payload FROM dead_letters")}
    assert {payload for _, payload in bad.values()} == payloads, "the raw payload is kept as received"
