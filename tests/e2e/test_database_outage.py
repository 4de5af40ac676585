"""Acceptance: the database down for 60 s with 100,000 messages waiting; a real `mes core` process keeps
its memory under the bound docs/mqtt.md states, and every message is ingested exactly once afterwards.

The outage is a real one: the test's own PostgreSQL server is stopped (`pg_ctl stop`, fast: every
connection cut) and started again on the same data directory. The broker is the embedded Mosquitto, whose
configuration keeps an offline or slow client's queue without a count or byte limit.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from app.plantrun import MesProcess
from core.queries import recorded_totals
from kernel.embedded.postgres import EmbeddedPostgres
from kernel.mqtt import connect, new_client
from tests.core.test_ingest_plan import TOPIC
from tests.core.test_ingest_service import PLANT_YAML
from tests.e2e.conftest import plant_on_free_ports, write_plant
from tests.support.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MESSAGES = 100_000
OUTAGE_S = 60
# The bound docs/mqtt.md states for the core process's resident memory (Limits). Measured here (Dec 2026):
# 95–108 MiB before the outage, a peak of 120–125 MiB during it and 123–127 MiB in all (three runs), with the
# defaults (5,000 deliveries held); before the core held a bounded queue it grew 92 → 220 MB with the count.
RSS_BOUND_MIB = 192


class RssSampler(threading.Thread):
    """The process's resident set size (VmRSS of /proc/<pid>/status), sampled until stopped."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.samples: list[int] = []  # KiB
        self._done = threading.Event()

    def run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._done.is_set():
            try:
                line = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                return
            self.samples.append(int(line.split()[1]))
            self._done.wait(self.every_s)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)

    @property
    def peak_mib(self) -> float:
        return max(self.samples) / 1024


def message(seq: int, base: datetime) -> bytes:
    # one good unit a message, read every 25 ms: cumulative value = seq
    ts = (base + timedelta(milliseconds=25 * seq)).isoformat()
    return (f'{{"v": 1, "edge_id": "e1", "epoch": 1, "seq": {seq}, "machine": "m1", '
            f'"samples": [{{"ts": "{ts}", "signal": "good", "value": {seq}}}]}}').encode()


def count(database_url: str, sql: str) -> int:
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except psycopg.Error:  # not migrated yet, or the server away
        return -1


def test_the_database_down_for_60_s_with_100_000_messages_waiting_keeps_the_cores_memory_bounded_and_loses_none(
        broker, tmp_path):
    data_root = Path(tempfile.mkdtemp(prefix="mes-test-outage-pg-"))
    server = EmbeddedPostgres(data_root / "data")
    core: MesProcess | None = None
    sampler: RssSampler | None = None
    publisher = new_client(broker.target, "test-outage-publisher", persistent=False)
    try:
        server_url = server.start()
        database_url = server.create_database("outage")
        (tmp_path / "p.yaml").write_text(PLANT_YAML)
        plant_file = write_plant(plant_on_free_ports(tmp_path / "p.yaml"), tmp_path, source=tmp_path / "p.yaml")
        core = MesProcess.core(database_url, broker.url, plant_file, tmp_path / "core.log")
        core.start()
        base = datetime.now(UTC) - timedelta(hours=2)
        connect(publisher, broker.target)
        wait_until(publisher.is_connected, 20, "the publisher connected")

        def first_ingested() -> bool:
            # published again until the core has subscribed (a redelivery is skipped by its key)
            publisher.publish(TOPIC, message(1, base), qos=1).wait_for_publish(10)
            return count(database_url, "SELECT count(*) FROM ingested_messages") == 1

        wait_until(first_ingested, 90, "the core's first message ingested: its session and subscription exist")
        sampler = RssSampler(core.process.pid)
        sampler.start()

        wait_until(lambda: sampler.samples, 10, "a first memory sample")
        before_mib = sampler.samples[0] / 1024
        server.stop()  # the outage: every connection of the core is cut, none can be made
        down_at = time.monotonic()
        for seq in range(2, MESSAGES + 2):
            info = publisher.publish(TOPIC, message(seq, base), qos=1)
            if seq % 1_000 == 0:
                info.wait_for_publish(60)  # keeps the publisher's own queue short; the broker has them all
        info.wait_for_publish(60)
        published_in_s = time.monotonic() - down_at
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        during_outage_mib = sampler.peak_mib
        core.raise_if_failed()

        server = EmbeddedPostgres(data_root / "data")
        assert server.start() == server_url, "the same socket: the core's URL still names it"
        wait_until(lambda: count(database_url, "SELECT count(*) FROM ingested_messages") == MESSAGES + 1, 600,
                   "every waiting message ingested once the database is back")
        sampler.stop()
        core.raise_if_failed()
        with psycopg.connect(database_url) as conn:
            assert recorded_totals(conn)["m1"]["good"] == MESSAGES, "1 → 100,001: every unit once"
            assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
        print(f"\npublished {MESSAGES} in {published_in_s:.0f} s; core RSS {before_mib:.0f} MiB before the outage, "
              f"peak {during_outage_mib:.0f} MiB during it, {sampler.peak_mib:.0f} MiB in all "
              f"({len(sampler.samples)} samples)")
        assert sampler.peak_mib < RSS_BOUND_MIB, f"peak RSS {sampler.peak_mib:.0f} MiB"
        assert "the broker keeps what does not fit" in (tmp_path / "core.log").read_text(), \
            "the core held only its bounded queue; the broker kept the rest"
    finally:
        if sampler is not None:
            sampler.stop()
        publisher.disconnect()
        publisher.loop_stop()
        if core is not None:
            core.stop()
        server.stop()
        shutil.rmtree(data_root, ignore_errors=True)
