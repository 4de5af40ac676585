"""Whole plant, real processes: a machine the core's plant file gave to another edge for a while, its
messages dead letters meanwhile, re-ingested once the plant file is fixed: recorded = ground truth exactly."""

from __future__ import annotations

import asyncio

import yaml
from sqlalchemy.orm import Session

from app.plantrun import MesProcess
from core.service import prepare_database
from core.services import review
from kernel.db.models import make_engine
from tests.e2e.conftest import write_plant
from tests.e2e.test_spine import assert_exact, produce, query

MOVED = "mod32"  # PLC resets and failures while its messages are dead letters


def test_a_machine_assigned_to_another_edge_for_a_while_counts_exactly_once_its_dead_letters_are_reingested(
        plant, database_url, mqtt_url, tmp_path):
    plant_file = write_plant(plant, tmp_path)
    fixed = plant_file.read_text()
    wrong = yaml.safe_load(fixed)
    for area in wrong["areas"]:
        for line in area["lines"]:
            for machine in line["machines"]:
                if machine["id"] == MOVED:
                    machine["edge_id"] = "edge-elsewhere"
    core = MesProcess.core(database_url, mqtt_url, plant_file, tmp_path / "core.log")
    outcome: dict = {}

    async def during(plant_run):
        await asyncio.sleep(3)
        core.stop()
        plant_file.write_text(yaml.safe_dump(wrong))  # a plant file that gives the machine to another edge
        core.start()
        await plant_run.wait_for(lambda: query(database_url, "SELECT count(*) FROM dead_letters")[0][0] >= 20, 30,
                                 "the machine's messages dead-lettered")
        await asyncio.sleep(3)  # the edge's other machines go on meanwhile: a dead letter holds nothing up
        core.stop()  # the fix: the core stopped, the plant file right again, the dead letters taken in, the core started
        plant_file.write_text(fixed)
        await asyncio.to_thread(prepare_database, database_url, plant)
        engine = make_engine(database_url)
        try:
            with Session(engine) as session:
                outcome.update(await asyncio.to_thread(review.reingest, session, machine_id=MOVED, by="ada",
                                                       reason="mod32 hangs on edge-t"))
        finally:
            engine.dispose()
        core.start()
        await asyncio.sleep(3)

    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during, core=core))
    reasons = [reason for (reason,) in query(database_url, "SELECT DISTINCT reason FROM dead_letters WHERE machine_id = %s",
                                             MOVED)]
    assert reasons == [f"edge not assigned: machine '{MOVED}' belongs to edge 'edge-elsewhere', not 'edge-t'"], reasons
    assert len(outcome["reingested"]) >= 20
    assert all("same message as" in why for why in outcome["refused"].values()), outcome["refused"]
    assert query(database_url, "SELECT count(*) FROM dead_letters WHERE review = 'pending' AND machine_id = %s",
                 MOVED)[0][0] == len(outcome["refused"])
    # the edge's status, which announced the machine meanwhile, is a dead letter of its own (nothing to count)
    assert query(database_url, "SELECT count(*) FROM dead_letters WHERE machine_id IS NULL AND reason LIKE %s",
                 "edge not assigned: edge 'edge-t' announces%")[0][0] >= 1
