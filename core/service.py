"""Preparing the database for the core: migrate, then register the plant's machines."""

from __future__ import annotations

from kernel.db.migrations import upgrade
from core.ingest import store
from kernel.plant import Plant


def prepare_database(database_url: str, plant: Plant) -> None:
    upgrade(database_url)
    with store.connect(database_url) as conn:
        store.register_machines(conn, plant)

