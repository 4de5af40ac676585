"""Where the database and the broker come from: MES_DATABASE_URL / MES_MQTT_URL when set, else the
embedded ones (PostgreSQL from a wheel; Mosquitto when installed, else amqtt in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from kernel.embedded.broker import EmbeddedBroker
from kernel.embedded.postgres import EmbeddedPostgres, database_url
from kernel.logs import get_logger
from kernel.mqtt_access import mqtt_client_url
from kernel.plant import Plant
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


@dataclass(frozen=True)
class MqttUrls:
    """What each of the plant's identities connects with (the URLs carry passwords: never log them)."""

    core: str
    edges: dict[str, str]


@contextmanager
def broker(settings: Settings, plant: Plant) -> Iterator[MqttUrls]:
    """The plant's MQTT URLs: MES_MQTT_URL's broker when set, else an embedded one configured for the
    plant (its identities and grants, passwords generated for those without a source)."""
    if settings.mqtt_url:
        yield MqttUrls(mqtt_client_url(settings, plant), {edge.id: mqtt_client_url(settings, plant, edge.id)
                                                          for edge in plant.edge_identities()})
        return
    embedded = EmbeddedBroker(settings.data_dir / "broker", plant=plant)
    embedded.start()
    log.info("embedded MQTT broker started", kind=embedded.kind, address=embedded.target.address)
    try:
        yield MqttUrls(embedded.url_for(plant.mqtt.core.username),
                       {edge.id: embedded.url_for(edge.login) for edge in plant.edge_identities()})
    finally:
        embedded.stop()
