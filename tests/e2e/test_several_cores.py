"""Several cores on one plant (MES_CORE_PARTITION=edges): two real `mes core` processes share four edges; one
is killed -9 while production runs; the other takes its edges over, and what is recorded is the ground truth
exactly — nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
import yaml

from app.plantrun import MesProcess, PlantRun
from core.ingest.partition import LEASE_NAMESPACE
from kernel.embedded.broker import free_port
from kernel.plant import parse_plant
from tests.e2e.conftest import TEST_PLANT, run
from tests.e2e.test_spine import assert_exact

pytestmark = pytest.mark.slow

EDGES = {"opc16": "edge-a", "mod16": "edge-b", "opc32": "edge-c", "mod32": "edge-d"}
PARTITIONED = {"MES_CORE_PARTITION": "edges"}


def four_edge_plant(directory):
    document = yaml.safe_load(TEST_PLANT.read_text())
    document["endpoints"] = {"opcua": f"opc.tcp://127.0.0.1:{free_port()}/open-mes/", "modbus_port": free_port()}
    for area in document["areas"]:
        for line in area["lines"]:
            for machine in line["machines"]:
                machine["edge_id"] = EDGES[machine["id"]]
    path = directory / "plant.yaml"
    path.write_text(yaml.safe_dump(document))
    return parse_plant(document), path


def leases(database_url: str) -> dict[int, int]:
    """Per lease session (backend pid): how many edges it holds."""
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute(
            """SELECT pid, count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::int = %s AND granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY pid""",
            (LEASE_NAMESPACE,)).fetchall())


def test_a_killed_core_hands_its_edges_to_the_other_and_the_counts_stay_exact(database_url, broker, tmp_path):
    plant, plant_file = four_edge_plant(tmp_path)
    first = MesProcess.core(database_url, broker.url, plant_file, tmp_path / "core-1.log", env=PARTITIONED)
    second = MesProcess.core(database_url, broker.url, plant_file, tmp_path / "core-2.log", env=PARTITIONED)

    async def scenario():
        async with PlantRun(plant, database_url, broker.url, tmp_path, core=first) as plant_run:
            try:
                plant_run.start_production()
                second.start()
                await plant_run.wait_for(lambda: sorted(leases(database_url).values()) == [2, 2], 60,
                                         "two cores with two edges each")
                second.raise_if_failed()
                await asyncio.sleep(3)  # both ingesting while production runs
                first.kill()
                killed_at = time.monotonic()
                await plant_run.wait_for(lambda: list(leases(database_url).values()) == [4], 60,
                                         "the surviving core with every edge")
                print(f"\nhand-over: the surviving core held every edge {time.monotonic() - killed_at:.1f} s after the kill")
                await asyncio.sleep(3)
                second.raise_if_failed()
                await plant_run.drain()
                second.raise_if_failed()
                return plant_run.comparison()
            finally:
                second.stop()

    assert_exact(run(scenario()))
