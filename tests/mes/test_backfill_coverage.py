"""A period whose data arrives late reads as it would have live: coverage comes from the samples' time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from core.ingest.service import IngestService
from kernel.db.models import make_engine
from kernel.payload import data_topic
from mes.services.downtime import Derivation
from mes.services.oee import oee
from tests.core.test_ingest_plan import at, incoming
from tests.e2e.conftest import plant_on_free_ports

PLANT_YAML = """
site: s
areas: [{id: a, lines: [{id: l, machines: [{id: m1, protocol: modbus, ideal_cycle_s: 0.025, edge_id: e1},
                                           {id: m2, protocol: modbus, ideal_cycle_s: 0.025, edge_id: e2}]}]}]
"""
OUTAGE = (120, 420)  # a 5-minute broker outage: m2's edge kept its messages on disk and replays them after


def test_a_shift_backfilled_after_a_broker_outage_has_the_oee_of_the_same_shift_delivered_live(database_url, tmp_path):
    from core.service import prepare_database

    (tmp_path / "p.yaml").write_text(PLANT_YAML)
    prepare_database(database_url, plant_on_free_ports(tmp_path / "p.yaml"))
    service = IngestService(database_url)
    backlog = []
    for second in range(600):
        samples = [(second, "state", 1 if second % 100 < 90 else 3), (second, "good", 20 * second), (second, "scrap", second // 50)]
        live = incoming(second + 1, samples, edge="e1", machine="m1", topic=data_topic("s", "a", "l", "m1"),
                        received=second + 0.1)
        late = OUTAGE[0] <= second < OUTAGE[1]
        replayed = incoming(second + 1, samples, edge="e2", machine="m2", topic=data_topic("s", "a", "l", "m2"),
                            received=OUTAGE[1] + 0.5 if late else second + 0.1)
        service.ingest([live])
        if late:
            backlog.append(replayed)
            continue
        if backlog:
            service.ingest(backlog)
            backlog = []
        service.ingest([replayed])
    service.close()

    derivation = Derivation.of(offline_after=timedelta(seconds=30), now=at(700))
    with Session(make_engine(database_url)) as session:
        by_machine = {group.key: group for group in oee(session, at(0), at(600), derivation=derivation)}
    live, backfilled = by_machine["m1"], by_machine["m2"]
    assert backfilled.totals.unknown_time == timedelta(0) == live.totals.unknown_time
    assert backfilled.measures == live.measures and backfilled.totals == live.totals
    assert live.measures.performance <= 1
