"""`mes core`: migrate, register the plant's machines, consume until stopped."""

from __future__ import annotations

import threading

from core.db.migrations import upgrade
from core.ingest import store
from core.ingest.consumer import CoreConsumer
from mes.plant import Plant


def prepare_database(database_url: str, plant: Plant) -> None:
    upgrade(database_url)
    with store.connect(database_url) as conn:
        store.register_machines(conn, plant)


def start_core(database_url: str, mqtt_url: str, plant: Plant, **options) -> tuple[CoreConsumer, threading.Thread]:
    """The core consuming in a background thread (used by `mes demo` and the tests)."""
    prepare_database(database_url, plant)
    consumer = CoreConsumer(database_url, mqtt_url, **options)
    thread = threading.Thread(target=consumer.run, name="mes-core", daemon=True)
    thread.start()
    return consumer, thread
