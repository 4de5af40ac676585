"""The edge's metrics, scraped over HTTP from a real agent reading tiny PLC servers through a real broker:
they follow what the agent does: readings, a PLC that goes away, a broker that comes back."""

import asyncio

import pytest
from edge_harness import eventually
from test_edge_agent import Plc

from edge.agent import EdgeAgent
from tests.support.metrics import metrics_url, scrape_text, value

pytestmark = pytest.mark.broker

EDGE = {"edge_id": "edge-t"}  # make_plant's


def test_readings_a_lost_plc_and_a_reconnect_show_in_the_edge_metrics(broker, tmp_path):
    async def scenario() -> tuple[str, str, str]:
        plc = Plc()
        await plc.start()
        agent = EdgeAgent(plc.plant(), broker.url, tmp_path / "state", flush_ms=50, heartbeat_s=1, metrics_port=0)
        running = asyncio.create_task(agent.run())
        modbus_stopped = False
        try:
            url = await asyncio.to_thread(metrics_url, agent.metrics_server)

            async def scraped(name: str, **labels: str) -> float:
                return value(await asyncio.to_thread(scrape_text, url), name, **labels)

            await eventually(lambda: agent.metrics.connected, 20, "the agent to reach the broker")
            await plc.count_up(1, 20)
            await eventually(lambda: agent.metrics.published_total >= 5, 20, "messages published")
            reading = await asyncio.to_thread(scrape_text, url)

            await plc.modbus.stop()
            modbus_stopped = True
            for _ in range(150):
                if await scraped("mes_edge_machine_status", machine="welder", status="unreachable") == 1:
                    break
                await asyncio.sleep(0.2)
            unreachable = await asyncio.to_thread(scrape_text, url)

            broker.stop()
            await eventually(lambda: not agent.metrics.connected, 10, "the agent to notice the outage")
            broker.start()
            await eventually(lambda: agent.metrics.connected, 30, "the agent to reconnect")
            reconnected = await asyncio.to_thread(scrape_text, url)
        finally:
            agent.stop()
            await running
            await (plc.opcua.stop() if modbus_stopped else plc.stop())
        return reading, unreachable, reconnected

    reading, unreachable, reconnected = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert value(reading, "mes_edge_readings_total", **EDGE) > 0
    assert value(reading, "mes_edge_published_messages_total", **EDGE) >= 5
    assert value(reading, "mes_edge_queue_messages", **EDGE) > 0  # no core confirms them: they stay queued
    assert value(reading, "mes_edge_queue_bytes", **EDGE) > 0
    for machine, protocol in (("press", "opcua"), ("welder", "modbus")):
        assert value(reading, "mes_edge_machine_status", machine=machine, protocol=protocol, status="ok") == 1
    assert value(reading, "mes_edge_mqtt_reconnects_total", **EDGE) == 0

    assert value(unreachable, "mes_edge_machine_status", machine="welder", status="unreachable") == 1
    assert value(unreachable, "mes_edge_machine_faults_total", machine="welder", protocol="modbus", status="unreachable") >= 1
    assert value(unreachable, "mes_edge_machine_status", machine="press", status="ok") == 1
    assert value(reconnected, "mes_edge_mqtt_reconnects_total", **EDGE) == 1
    assert value(reconnected, "mes_edge_mqtt_connected", **EDGE) == 1
