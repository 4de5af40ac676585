"""The metrics of a real core, a real edge and the API, scraped over HTTP while the test plant produces
(simulated PLCs, a broker of the test's own): every metric the board "Open MES · System health" queries
is exposed, and the edge's figures follow what it did."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from app.api import create_app
from app.plantrun import PlantRun, ThreadCore
from dashboards.grafana.panels import panels_of
from dashboards.grafana.system import system_board
from kernel.payload import ConnectionStatus
from tests.e2e.conftest import run
from tests.support.auth import as_admin
from tests.support.metrics import exposed_names, metrics_url, promql_names, scrape_text, value

QUEUE_MAX_BYTES = 8 * 1024 * 1024


def test_every_metric_the_system_board_queries_is_exposed_and_the_edge_reports_what_it_did(plant, database_url, broker,
                                                                                             tmp_path):
    async def scenario() -> tuple[str, str, str]:
        core = ThreadCore(database_url, broker.url, metrics_port=0)
        edge_options = {"metrics_port": 0, "queue_max_bytes": QUEUE_MAX_BYTES}
        async with PlantRun(plant, database_url, broker.url, tmp_path, core=core, edge_options=edge_options) as plant_run:
            core_url = await asyncio.to_thread(metrics_url, core.process.metrics_server)
            edge_url = await asyncio.to_thread(metrics_url, plant_run.edge.metrics_server)
            plant_run.start_production()
            await plant_run.wait_for(lambda: value(scrape_text(edge_url), "mes_edge_confirmed_messages_total") >= 20, 60,
                                     "the core to confirm some of the edge's messages")
            with TestClient(create_app(database_url)) as api:
                as_admin(api, database_url)
                assert api.get("/planning/shortages").status_code == 200
                api_text = api.get("/metrics").text
            await plant_run.drain()
            return (await asyncio.to_thread(scrape_text, core_url), await asyncio.to_thread(scrape_text, edge_url), api_text)

    core_text, edge_text, api_text = run(scenario())
    exposed = exposed_names(core_text) | exposed_names(edge_text) | exposed_names(api_text)
    for _, panel in panels_of(system_board()):
        for target in panel["targets"]:
            missing = promql_names(target["expr"]) - exposed
            assert not missing, f"{panel['title']}: {target['expr']} names metrics nobody exposes: {sorted(missing)}"

    edge_id = plant.edge_id
    assert value(edge_text, "mes_edge_readings_total", edge_id=edge_id) > 0
    published = value(edge_text, "mes_edge_published_messages_total", edge_id=edge_id)
    assert published >= value(edge_text, "mes_edge_confirmed_messages_total", edge_id=edge_id) >= 20
    assert value(edge_text, "mes_edge_mqtt_connected", edge_id=edge_id) == 1
    assert value(edge_text, "mes_edge_queue_max_bytes", edge_id=edge_id) == QUEUE_MAX_BYTES
    assert value(edge_text, "mes_edge_dropped_messages_total", edge_id=edge_id) == 0
    statuses: tuple[ConnectionStatus, ...] = ("ok", "stale", "unreachable", "bad_config")
    for machine in plant.machines:
        shown = {status: value(edge_text, "mes_edge_machine_status", machine=machine.id, status=status) for status in statuses}
        assert sum(shown.values()) == 1, f"{machine.id} shows {shown}"
        assert shown["ok"] == 1, f"{machine.id} is not ok: {shown}"
        assert value(edge_text, "mes_edge_machine_status", machine=machine.id, protocol=machine.protocol, status="ok") == 1
    # the core committed at least what the edge had confirmed, every batch timed once
    assert value(core_text, "mes_ingest_messages_total") >= 20
    assert value(core_text, "mes_ingest_commit_seconds_count") == value(core_text, "mes_ingest_batches_total")
    assert value(core_text, "mes_job_round_seconds_count", job="planning-shortages") >= 1
    assert value(api_text, "mes_api_request_seconds_count", method="GET", route="/planning/shortages", status="200") == 1
