"""A machine configured with a wrong node or register, end to end: the real `mes edge` and `mes core`
processes, the simulated plant's real OPC UA and Modbus servers, the broker and PostgreSQL. `/machines`
shows the machine `bad_config` with the node or register and the status code while every other machine
on the same endpoint, and the machine's own readable signals, count exactly; once the edge stops, no
machine shows `ok`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from app.api import create_app
from app.plantrun import MesProcess, PlantRun
from kernel.plant import Plant
from tests.e2e.conftest import TEST_PLANT, run, write_plant
from tests.support.auth import as_admin

pytestmark = pytest.mark.slow

WRONG_NODE = ("opc16", "scrap")  # an OPC UA node the server does not have
WRONG_REGISTER = ("mod32", "scrap")  # a Modbus register outside the device's map
BAD_REGISTER_ADDRESS = 200


def plant_with_wrong_addresses(plant: Plant, directory: Path) -> Path:
    """The plant file the edge gets: `plant`, but opc16's scrap names a node the server lacks and mod32's
    a register its device does not have (the simulators serve `plant` as it is)."""
    document = yaml.safe_load(TEST_PLANT.read_text())
    document["endpoints"] = plant.endpoints.model_dump(mode="json")
    for machine in (m for area in document["areas"] for line in area["lines"] for m in line["machines"]):
        source = plant.machine(machine["id"]).source.model_dump(mode="json", exclude_none=True)
        if machine["id"] == WRONG_NODE[0]:
            source["nodes"]["scrap"]["node"] = "opc16.scrap-typo"
            machine["source"] = source
        elif machine["id"] == WRONG_REGISTER[0]:
            source["registers"]["scrap"]["address"] = BAD_REGISTER_ADDRESS
            machine["source"] = source
    path = directory / "edge-plant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@contextlib.asynccontextmanager
async def api_on(database_url: str) -> AsyncIterator[TestClient]:
    """The API on the database PlantRun migrated (its calls block the loop a moment; the waits run them in a thread)."""
    with TestClient(create_app(database_url)) as api:
        as_admin(api, database_url)
        yield api


def connections(api: TestClient) -> dict[str, dict | None]:
    response = api.get("/machines")
    assert response.status_code == 200, response.text
    return {machine["machine_id"]: machine["connection"] for machine in response.json()}


def test_a_wrong_node_or_register_shows_bad_config_on_machines_while_the_rest_counts_exactly(plant, database_url, mqtt_url,
                                                                                           tmp_path):
    core = MesProcess.core(database_url, mqtt_url, write_plant(plant, tmp_path), tmp_path / "core.log")
    edge = MesProcess.edge(mqtt_url, plant_with_wrong_addresses(plant, tmp_path), tmp_path / "edge", tmp_path / "edge.log")

    async def scenario() -> tuple[dict, dict]:
        async with PlantRun(plant, database_url, mqtt_url, tmp_path, core=core, edge_process=edge,
                            unread=[WRONG_NODE, WRONG_REGISTER]) as plant_run, api_on(database_url) as api:
            def bad_config_shown() -> bool:
                shown = connections(api)
                return all((shown[m] or {}).get("status") == "bad_config" for m in ("opc16", "mod32"))

            await plant_run.wait_for(bad_config_shown, 60, "the two machines to show bad_config on /machines")
            shown = connections(api)
            assert "opc16.scrap-typo" in shown["opc16"]["detail"] and "BadNodeIdUnknown" in shown["opc16"]["detail"]
            assert f"{BAD_REGISTER_ADDRESS}-{BAD_REGISTER_ADDRESS + 1} (scrap)" in shown["mod32"]["detail"]
            assert "exception 2" in shown["mod32"]["detail"]
            assert all(shown[m]["edge_id"] == plant.edge_id and shown[m]["edge_online"] for m in shown)

            plant_run.start_production()
            await asyncio.sleep(10)
            await plant_run.drain()
            shown = connections(api)
            assert {m: c["status"] for m, c in shown.items()} == {
                "opc16": "bad_config", "mod32": "bad_config", "opc32": "ok", "mod16": "ok"}
            comparison = plant_run.comparison()
            await plant_run.stop_edge()  # SIGTERM: the edge says it goes offline
            await plant_run.wait_for(lambda: all(c["status"] == "unreachable" for c in connections(api).values()), 30,
                                     "every machine unreachable once its edge is offline")
            return comparison, connections(api)

    comparison, after = run(scenario())
    assert after["opc16"]["reported_status"] == "bad_config" and after["opc16"]["edge_online"] is False
    assert after["opc32"]["detail"] == f"edge {plant.edge_id} offline; it last reported ok"

    for machine, entry in comparison.items():
        readable = {c: v for c, v in entry["ground_truth"].items() if (machine, c) not in (WRONG_NODE, WRONG_REGISTER)}
        assert {c: entry["recorded"][c] for c in readable} == readable, (machine, entry)
        assert entry["ground_truth"]["good"] > 0, f"{machine} produced nothing"
    for machine, counter in (WRONG_NODE, WRONG_REGISTER):
        assert comparison[machine]["recorded"][counter] == 0, "nothing recorded of a signal never read"
