"""End to end: tiny PLC servers -> EdgeAgent -> real Mosquitto -> a paho subscriber."""

import asyncio
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from edge_harness import TinyModbusServer, TinyOpcUaServer, eventually, free_port, make_plant

from edge.agent import EdgeAgent, select_machines
from edge.queue import QUEUE_FILE

pytestmark = pytest.mark.broker


class Plc:
    """The two machines of make_plant: `press` on OPC UA, `welder` on Modbus (device 2, little-endian)."""

    def __init__(self) -> None:
        self.opcua = TinyOpcUaServer(free_port(), ["press"])
        self.modbus = TinyModbusServer(free_port(), [2])

    async def start(self) -> None:
        await self.opcua.start()
        await self.modbus.start()

    async def stop(self) -> None:
        await self.opcua.stop()
        await self.modbus.stop()

    def plant(self):
        return make_plant(self.opcua.port, self.modbus.port)

    async def count_up(self, first: int, last: int) -> None:
        for value in range(first, last + 1):
            await self.opcua.set("press", "good", value)
            await self.modbus.set_uint32(2, 0, value, "little")
            await asyncio.sleep(0.02)


def last_value(messages: list[dict[str, Any]], machine: str, signal: str) -> int | None:
    values = [s["value"] for m in messages if m["machine"] == machine for s in m["samples"] if s["signal"] == signal]
    return values[-1] if values else None


def counters_reached(subscriber, value: int):
    def check() -> bool:
        messages = subscriber.messages()
        return last_value(messages, "press", "good") == value and last_value(messages, "welder", "good") == value
    return check


def assert_no_gap_and_in_order(messages: list[dict[str, Any]]) -> None:
    """Every seq of the epoch arrived; ignoring redeliveries (at-least-once), in increasing order."""
    first_seen: list[int] = []
    for message in messages:
        if message["seq"] not in first_seen:
            first_seen.append(message["seq"])
    assert first_seen == list(range(1, len(first_seen) + 1))


def queued_messages(state_dir) -> list[dict[str, Any]]:
    """What waits in the agent's disk queue, read directly from SQLite."""
    with sqlite3.connect(f"file:{state_dir / QUEUE_FILE}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT machine, samples FROM outbox ORDER BY id").fetchall()
    return [{"machine": machine, "samples": json.loads(samples)} for machine, samples in rows]


def parse_ts(sample: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(sample["ts"].replace("Z", "+00:00"))


def test_select_machines_rejects_unknown_ids():
    plant = make_plant(1, 2)
    assert [m.id for m in select_machines(plant, {"welder"})] == ["welder"]
    with pytest.raises(ValueError, match="nope"):
        select_machines(plant, {"nope"})


def test_agent_delivers_everything_through_a_broker_outage(broker, subscriber, tmp_path):
    async def scenario() -> EdgeAgent:
        plc = Plc()
        await plc.start()
        agent = EdgeAgent(plc.plant(), broker.url, tmp_path / "state", flush_ms=50, heartbeat_s=1)
        running = asyncio.create_task(agent.run())
        try:
            await eventually(lambda: agent.metrics.connected, 20, "the agent to reach the broker")
            await plc.count_up(1, 40)
            await eventually(counters_reached(subscriber, 40), 20, "live values")

            broker.stop()
            await eventually(lambda: not agent.metrics.connected, 10, "the agent to notice the outage")
            outage_start = datetime.now(timezone.utc)
            await plc.count_up(41, 120)
            outage_end = datetime.now(timezone.utc)
            assert agent.metrics.queue_depth > 0
            broker.start()

            await eventually(counters_reached(subscriber, 120), 30, "the values from the outage")
            await plc.count_up(121, 130)
            await eventually(counters_reached(subscriber, 130), 20, "live values after the outage")
            await eventually(lambda: agent.metrics.queue_depth == 0, 10, "the queue to empty")
        finally:
            agent.stop()
            await running
            await plc.stop()
        data = subscriber.messages()
        assert {m["epoch"] for m in data} == {1}
        assert_no_gap_and_in_order(data)

        during_outage = [
            m for m in data
            if any(outage_start < parse_ts(s) < outage_end - timedelta(milliseconds=200) for s in m["samples"])
        ]
        assert during_outage and all(m["historical"] for m in during_outage)
        assert not data[0]["historical"] and not data[-1]["historical"]
        assert agent.metrics.dropped_total == 0
        assert agent.metrics.published_total >= max(m["seq"] for m in data)
        return agent

    agent = asyncio.run(scenario())
    statuses = subscriber.messages("status")
    assert statuses[0]["online"] is True and statuses[0]["epoch"] == agent.metrics.epoch
    assert statuses[-1]["online"] is False  # the clean stop said goodbye


def test_a_full_disk_holds_messages_in_memory_says_so_and_recovers_by_itself(broker, subscriber, tmp_path):
    async def scenario() -> EdgeAgent:
        plc = Plc()
        await plc.start()
        agent = EdgeAgent(plc.plant(), broker.url, tmp_path / "state", flush_ms=50, heartbeat_s=1)
        running = asyncio.create_task(agent.run())
        try:
            await eventually(lambda: agent.metrics.connected, 20, "the agent to reach the broker")
            await plc.count_up(1, 20)
            await eventually(counters_reached(subscriber, 20), 20, "live values")
            broker.stop()  # nothing leaves the queue now: it must grow
            await eventually(lambda: not agent.metrics.connected, 10, "the agent to notice the outage")
            queue_db = agent._queue._db
            pages = (await agent._db(lambda: queue_db.execute("PRAGMA page_count").fetchone()))[0]
            # SQLite's own limit: every write past it fails as a full disk does (SQLITE_FULL)
            await agent._db(queue_db.execute, f"PRAGMA max_page_count = {pages}")
            await plc.count_up(21, 200)
            await eventually(lambda: agent.metrics.disk_full, 20, "the agent to notice the full disk")
            assert agent.metrics.held_in_memory > 0
            broker.start()
            await eventually(lambda: any(s.get("disk_full") for s in subscriber.messages("status")), 20, "a status saying so")
            await agent._db(queue_db.execute, "PRAGMA max_page_count = 1073741823")
            await plc.count_up(201, 210)
            await eventually(counters_reached(subscriber, 210), 30, "everything after the disk has room again")
            assert not agent.metrics.disk_full
        finally:
            agent.stop()
            await running
            await plc.stop()
        assert_no_gap_and_in_order(subscriber.messages())
        return agent

    asyncio.run(scenario())


def test_agent_restart_replays_leftovers_under_the_next_epoch(broker, subscriber, tmp_path):
    broker.stop()  # the first run never reaches the broker: everything stays on disk

    async def scenario() -> None:
        plc = Plc()
        await plc.start()
        state = tmp_path / "state"
        first = EdgeAgent(plc.plant(), broker.url, state, flush_ms=50)
        running = asyncio.create_task(first.run())
        try:
            await plc.count_up(1, 30)
            on_disk = lambda: queued_messages(state)  # noqa: E731
            await eventually(lambda: last_value(on_disk(), "press", "good") == 30
                             and last_value(on_disk(), "welder", "good") == 30, 20, "the last values on disk")
        finally:
            first.stop()
            await running
        leftovers = first.metrics.queue_depth
        assert first.metrics.epoch == 1 and leftovers > 0

        broker.start()
        second = EdgeAgent(plc.plant(), broker.url, state, flush_ms=50)
        running = asyncio.create_task(second.run())
        try:
            await eventually(lambda: len({m["seq"] for m in subscriber.messages() if m["epoch"] == 1}) == leftovers,
                             30, "the leftovers of the first run")
            await plc.count_up(31, 35)
            await eventually(counters_reached(subscriber, 35), 20, "live values of the second run")
        finally:
            second.stop()
            await running
            await plc.stop()
        assert second.metrics.epoch == 2

        data = subscriber.messages()
        old = [m for m in data if m["epoch"] == 1]
        new = [m for m in data if m["epoch"] == 2]
        assert all(m["historical"] for m in old)
        assert_no_gap_and_in_order(old)
        assert_no_gap_and_in_order(new)
        assert data.index(new[0]) > data.index(old[-1])  # the backlog goes out first
        assert last_value(old, "press", "good") == 30 and last_value(old, "welder", "good") == 30

    asyncio.run(scenario())
