"""Downtime and OEE with the real plant: simulator → OPC UA → edge → broker → core → PostgreSQL → API.

opc32 (OPC UA, no natural failures) is scripted. Its state changes reach the core with the
SourceTimestamp the simulator published them with, and the simulator keeps those instants
(`published_states`), so every state duration and the OEE are known exactly by hand.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from kernel.signals import MachineState
from app.plantrun import PlantRun
from tests.e2e.conftest import run
from tests.e2e.test_spine import query
from tests.support.auth import as_admin

pytestmark = pytest.mark.slow

MACHINE = "opc32"
IDEAL_CYCLE_S = Fraction(1, 10)  # opc32's ideal_cycle_s in tests/e2e/plant.yaml
FAULT_CODE = 4711
RATIOS = Context(prec=28, rounding=ROUND_HALF_EVEN)


def get(database_url: str, path: str, **params) -> list[dict]:
    with TestClient(create_app(database_url)) as api:
        as_admin(api, database_url)
        response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def seconds(duration) -> Fraction:
    return Fraction(duration.days * 86_400_000_000 + duration.seconds * 1_000_000 + duration.microseconds, 1_000_000)


def decimal(value: Fraction) -> Decimal:
    return RATIOS.divide(Decimal(value.numerator), Decimal(value.denominator))


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def test_a_scripted_scenario_gives_exactly_its_downtime_durations_and_oee(plant, database_url, mqtt_url, tmp_path):
    async def scenario():
        async with PlantRun(plant, database_url, mqtt_url, tmp_path) as plant_run:
            simulated, machine = plant_run.simulated, plant_run.simulated.model(MACHINE)
            plant_run.start_production()
            await asyncio.sleep(2)
            machine.force_fault(FAULT_CODE, 3)  # a 3 s breakdown (threshold 2 s below), repaired by itself
            await asyncio.sleep(5)
            machine.set_state(MachineState.IDLE)  # a microstop
            await asyncio.sleep(1)
            machine.set_state(MachineState.RUNNING)
            await asyncio.sleep(2)
            machine.set_state(MachineState.PLANNED_STOP)
            await asyncio.sleep(2)
            machine.set_state(MachineState.RUNNING)
            await asyncio.sleep(2)
            simulated.stop_production()  # counters freeze and are published before the period ends
            await asyncio.sleep(0.5)
            machine.set_state(MachineState.IDLE)  # the end of the period
            await plant_run.wait_for(lambda: simulated.published_states(MACHINE)[-1].state == MachineState.IDLE, 10,
                                     "the final idle published")
            end = simulated.published_states(MACHINE)[-1].ts
            await plant_run.drain()
            await plant_run.wait_for(lambda: query(database_url, "SELECT 1 FROM machine_states WHERE machine_id = %s AND ts = %s",
                                                   MACHINE, end) != [], 30, "the final idle stored")
            return simulated.published_states(MACHINE), simulated.ground_truth()[MACHINE]

    published, truth = run(scenario())
    # idle at start-up, then: running, fault, running, idle, running, planned stop, running, idle (the end)
    states = [(p.state, p.fault) for p in published]
    assert states[-9:] == [(2, 0), (1, 0), (3, FAULT_CODE), (1, 0), (2, 0), (1, 0), (7, 0), (1, 0), (2, 0)], states
    changes = published[-8:]
    start, end = changes[0].ts, changes[-1].ts
    period = {"start": start.isoformat(), "end": end.isoformat(), "microstop_threshold_s": 2}

    intervals = get(database_url, f"/machines/{MACHINE}/states", **period)
    expected = [(a.ts, b.ts, MachineState.NAMES[a.state], a.fault) for a, b in zip(changes, changes[1:], strict=False)]
    assert [(parse(i["start"]), parse(i["end"]), i["state"], i["fault_code"]) for i in intervals] == expected
    assert [Decimal(i["duration_s"]) for i in intervals] == [decimal(seconds(b - a)) for a, b, _, _ in expected], \
        "each duration is exactly the difference of the published timestamps"
    durations = [b - a for a, b, _, _ in expected]
    run_time = durations[0] + durations[2] + durations[4] + durations[6]
    breakdown, microstop, planned = durations[1], durations[3], durations[5]
    assert [i["stop"] for i in intervals] == [None, "breakdown", None, "microstop", None, None, None]

    (oee,) = get(database_url, "/oee", machine_id=MACHINE, **period)
    total, good, energy = truth["good"] + truth["scrap"], truth["good"], truth["energy_wh"]
    run_s, busy_s = seconds(run_time), seconds(run_time + breakdown + microstop)
    availability, performance, quality = run_s / busy_s, IDEAL_CYCLE_S * total / run_s, Fraction(good, total)
    assert {name: Decimal(oee[name]) for name in (
        "planned_production_time_s", "planned_downtime_s", "unknown_time_s", "run_time_s", "stopped_time_s",
        "breakdown_time_s", "microstop_time_s", "ideal_time_s", "energy_wh", "availability", "performance", "quality", "oee",
        "mtbf_s", "mttr_s", "energy_per_good_unit_wh")} == {
        "planned_production_time_s": decimal(seconds(end - start)), "planned_downtime_s": decimal(seconds(planned)),
        "unknown_time_s": 0, "run_time_s": decimal(run_s), "stopped_time_s": decimal(seconds(breakdown + microstop)),
        "breakdown_time_s": decimal(seconds(breakdown)), "microstop_time_s": decimal(seconds(microstop)),
        "ideal_time_s": decimal(IDEAL_CYCLE_S * total), "energy_wh": energy, "availability": decimal(availability),
        "performance": decimal(performance), "quality": decimal(quality), "oee": decimal(availability * performance * quality),
        "mtbf_s": decimal(run_s), "mttr_s": decimal(seconds(breakdown)), "energy_per_good_unit_wh": decimal(Fraction(energy, good)),
    }
    assert (oee["failures"], oee["microstops"], oee["total"], oee["good"]) == (1, 1, total, good)
    assert good > 0 and truth["scrap"] > 0, "the scenario made good units and scrap"


def evidence(database_url: str, since: datetime, intervals: list[dict], **derived) -> str:
    """What the derivation read, for a failure message: the machine's messages and the edges' status."""
    messages = query(database_url, """SELECT edge_id, first_ts, last_ts, received_at, historical FROM ingested_messages
                                      WHERE machine_id = %s AND last_ts > %s ORDER BY last_ts""",
                     MACHINE, since - timedelta(seconds=5))
    status = query(database_url, "SELECT edge_id, received_at, online FROM edge_status_events ORDER BY received_at")
    return "\n".join(["offline from losing the edge", *(f"{k} = {v}" for k, v in derived.items()),
                      "messages (edge, first_ts, last_ts, received_at, historical):", *map(str, messages),
                      "edge status (edge, received_at, online):", *map(str, status), "intervals:", *map(str, intervals)])


def test_stopping_the_edge_is_offline_not_down_and_restarting_it_ends_the_offline_interval(plant, database_url, mqtt_url, tmp_path):
    offline_after_s = 2

    def heard_after(ts: datetime) -> bool:
        return query(database_url, "SELECT 1 FROM ingested_messages WHERE machine_id = %s AND received_at > %s",
                     MACHINE, ts) != []

    async def scenario():
        async with PlantRun(plant, database_url, mqtt_url, tmp_path) as plant_run:
            plant_run.start_production()
            await asyncio.sleep(2)
            start = datetime.now(UTC)
            await asyncio.sleep(1)
            await plant_run.stop_edge()
            await asyncio.sleep(2 * offline_after_s)  # the machine goes on running; nobody hears it
            restarted = datetime.now(UTC)
            await plant_run.start_edge()
            await plant_run.wait_for(lambda: heard_after(restarted), 30, "opc32 heard again")
            await asyncio.sleep(1)
            return start, restarted, datetime.now(UTC)

    start, restarted, end = run(scenario())
    period = {"start": start.isoformat(), "end": end.isoformat(), "offline_after_s": offline_after_s}
    intervals = get(database_url, f"/machines/{MACHINE}/states", **period)
    states = [(i["state"], i["category"]) for i in intervals]
    # Coverage comes from the samples' own time: values the restarted edge reads carry the instant the PLC
    # wrote them (OPC UA SourceTimestamp), which may fall inside the gap and show the machine heard then.
    assert states[0] == states[-1] == ("running", "running") and ("offline", "offline") in states, intervals
    assert {state for state, _ in states} == {"running", "offline"}, intervals
    offline = [i for i in intervals if i["state"] == "offline"]
    ((went_offline,),) = query(database_url, """SELECT received_at FROM edge_status_events
                                                WHERE NOT online AND received_at > %s AND received_at < %s""", start, restarted)
    ((back,),) = query(database_url, """SELECT least((SELECT min(received_at) FROM edge_status_events WHERE online AND received_at > %s),
                                                     (SELECT min(received_at) FROM ingested_messages
                                                      WHERE machine_id = %s AND received_at > %s))""",
                       went_offline, MACHINE, went_offline)
    # The machine was heard at every instant its messages' samples were placed at, whenever they arrived: a
    # value the restarted edge reads carries the instant the PLC wrote it, which may precede the offline status.
    ((last_heard,),) = query(database_url, """SELECT max(instant.ts) FROM ingested_messages
                                              CROSS JOIN LATERAL (VALUES (first_ts), (last_ts)) AS instant(ts)
                                              WHERE machine_id = %s AND instant.ts < %s""", MACHINE, went_offline)
    assert went_offline < restarted < back
    # the edge's offline status, unless the silence after its last sample outlasted the timeout before it arrived
    lost = min(went_offline, last_heard + timedelta(seconds=offline_after_s))
    assert parse(offline[0]["start"]) == lost, evidence(database_url, start, intervals, lost=lost, last_heard=last_heard)
    assert parse(offline[-1]["end"]) <= back, "until it is heard again, at the latest when its messages arrive"
    assert parse(intervals[-1]["end"]) == end

    (oee,) = get(database_url, "/oee", machine_id=MACHINE, **period)
    assert Decimal(oee["stopped_time_s"]) == 0 and oee["failures"] == 0, "offline is not downtime"
    assert Decimal(oee["unknown_time_s"]) == sum(Decimal(i["duration_s"]) for i in offline)
