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

    # A PLC reset that begins and ends while no edge runs is invisible to any reader (a counter back at
    # its old value or above shows no drop): the counters stay still and then at zero for a hold each, and
    # the killed edge must be reading again before both are over. Its 2 s away plus a start-up that takes
    # seconds on a loaded machine outlast the default 3 s holds, so they are longer here.
    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during, core=core, edge_process=edge,
                         simulator_options={"reset_hold_s": 8}))
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


def test_an_edge_queue_at_its_bound_through_an_outage_that_spans_plc_resets_compacts_and_stays_exact(
        plant, database_url, broker, tmp_path):
    async def during(plant_run):
        await asyncio.sleep(3)
        broker.stop()
        # a queue of 20 rows holds a few flushes: it compacts again and again while resets and rollovers go on
        await plant_run.wait_for(lambda: plant_run.edge.metrics.compacted_total >= 100, 60, "the edge queue to compact")
        await asyncio.sleep(4)
        broker.start()
        await asyncio.sleep(3)

    assert_exact(produce(plant, database_url, broker.url, tmp_path, during, edge_options={"queue_max": 20}))
    resets = query(database_url, "SELECT count(*) FROM counter_events WHERE kind IN ('reset', 'rollover')")
    assert resets[0][0] > 0


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
def test_a_broker_that_loses_its_state_while_the_core_is_down_loses_nothing(plant, database_url, broker, tmp_path):
    """What the broker acknowledged and held for the stopped core is gone with its state; the edge, which
    keeps every message until the core confirms it, publishes it again when the core asks."""
    core = MesProcess.core(database_url, broker.url, write_plant(plant, tmp_path), tmp_path / "core.log")

    async def during(plant_run):
        await asyncio.sleep(3)
        core.kill()
        await asyncio.sleep(4)  # PLC resets and rollovers meanwhile: the lost messages' units are needed
        broker.stop()
        for persisted in broker.data_dir.glob("*.db"):
            persisted.unlink()
        broker.start()
        core.start()
        await plant_run.wait_for(lambda: plant_run.edge.metrics.resends > 0, 30, "the core to ask the edge to resend")
        await asyncio.sleep(3)

    assert_exact(produce(plant, database_url, broker.url, tmp_path, during, core=core))


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
        # an accepted message from another edge for its own machine first (a first value: counts nothing), then the bad ones
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


def test_forged_positions_a_reused_one_and_a_10_mb_message_under_the_real_edges_id_change_no_count(
        plant, database_url, mqtt_url, tmp_path):
    """Under the real edge's id, while it runs: seq 2^63−1, epoch 2^63−1, one of its ingested positions with
    other content, and a 10 MB payload. Each is a dead letter with its reason; the edge's traffic goes on."""
    machine = plant.machine("opc16")
    topic = data_topic(*machine.path)
    top = 2**63 - 1
    target = parse_mqtt_url(mqtt_url)
    publisher = new_client(target, "test-forger", persistent=False)

    def forged(epoch: int, seq: int, value: int) -> bytes:
        return json.dumps({"v": 1, "edge_id": plant.edge_id, "epoch": epoch, "seq": seq, "machine": "opc16",
                           "samples": [{"ts": datetime.now(UTC).isoformat(), "signal": "good", "value": value}]}).encode()

    async def during(plant_run):
        await plant_run.wait_for(lambda: query(database_url, "SELECT 1 FROM edge_cursors"), 30, "the edge's first messages")
        await asyncio.sleep(2)
        ((epoch, seq),) = query(database_url, "SELECT epoch, seq FROM ingested_messages WHERE machine_id = 'opc16' "
                                              "ORDER BY seq DESC LIMIT 1")
        for payload in (forged(epoch, top, 60_000), forged(top, 1, 60_000), forged(epoch, seq, 60_000),
                        b'{"v": 1, "samples": [' + b" " * (10 * 1024 * 1024) + b"]}"):
            await asyncio.to_thread(publisher.publish(topic, payload, qos=1).wait_for_publish, 30)
        await plant_run.wait_for(lambda: len(query(database_url, "SELECT 1 FROM dead_letters")) >= 4, 30,
                                 "every forged message dead-lettered")
        await asyncio.sleep(3)  # the real edge's traffic after them

    connect(publisher, target)
    try:
        assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during))
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    reasons = [reason.split(":")[0] for (reason,) in query(database_url, "SELECT reason FROM dead_letters ORDER BY id")]
    assert sorted(reasons) == ["conflicting duplicate", "epoch too far ahead", "payload too large", "seq too far ahead"]
    ((size, stored),) = query(database_url, "SELECT size, length(payload) FROM dead_letters WHERE reason LIKE 'payload too large%%'")
    assert size > 10 * 1024 * 1024 and stored == 64 * 1024


def test_plc_clocks_stepped_back_forward_and_years_ahead_change_no_count(plant, database_url, mqtt_url, tmp_path):
    """The OPC UA PLCs' clocks (their SourceTimestamps) step back 30 s, then forward an hour, then to
    73 years ahead for a moment, then back to true time: every unit counts, none is quarantined."""
    from datetime import timedelta

    async def during(plant_run):
        clock = plant_run.simulated.opcua
        await asyncio.sleep(3)
        clock.clock_offset = timedelta(seconds=-30)
        await asyncio.sleep(3)
        clock.clock_offset = timedelta(hours=1)
        await asyncio.sleep(3)
        clock.clock_offset = timedelta(days=73 * 365)
        await asyncio.sleep(1)
        clock.clock_offset = timedelta(0)
        await asyncio.sleep(3)

    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during))
    assert query(database_url, "SELECT count(*) FROM counter_events WHERE quarantined > 0") == [(0,)]
    (ahead,) = query(database_url, "SELECT max(clock_ahead_s) FROM ingested_messages")
    assert ahead[0] > 3600, "the timestamps years ahead were placed at their receipt and flagged"
