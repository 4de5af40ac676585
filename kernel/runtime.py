"""Where the database and the broker come from: MES_DATABASE_URL / MES_MQTT_URL when set, else the
embedded ones (PostgreSQL from a wheel; Mosquitto when installed, else amqtt in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from kernel.embedded.broker import EmbeddedBroker
from kernel.embedded.postgres import EmbeddedPostgres, database_url
from kernel.logs import get_logger
from kernel.settings import Settings

log = get_logger("kernel.runtime")


def recreate_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server_url, name)


def ensure_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server_url, name)


@contextmanager
def database(settings: Settings, name: str = "mes", *, fresh: bool = False) -> Iterator[str]:
    """A database URL. External: used as given. Embedded: database `name` on the embedded server,
    recreated empty when `fresh`."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.data_dir / "postgres")
    server_url = server.start()
    log.info("embedded PostgreSQL started", data_dir=str(server.data_dir))
    try:
        yield (recreate_database if fresh else ensure_database)(server_url, name)
    finally:
        server.stop()


@contextmanager
def broker(settings: Settings) -> Iterator[str]:
    if settings.mqtt_url:
        yield settings.mqtt_url
        return
    embedded = EmbeddedBroker(settings.data_dir / "broker")
    url = embedded.start()
    log.info("embedded MQTT broker started", kind=embedded.kind, url=url)
    try:
        yield url
    finally:
        embedded.stop()
