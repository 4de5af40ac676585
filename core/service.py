"""Preparing the database for the core: migrate, then register the plant's machines."""

from __future__ import annotations

from core.ingest import store
from kernel.db.migrations import upgrade
from kernel.db.models import make_engine
from kernel.plant import Plant


def prepare_database(database_url: str, plant: Plant) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            store.register_machines(connection, plant)
    finally:
        engine.dispose()
