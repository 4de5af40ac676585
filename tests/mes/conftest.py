"""The API on a fresh migrated database with the demo plant's machines, for the HTTP tests here."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.service import prepare_database
from mes.api.app import create_app
from mes.plant import DEMO_PLANT, load_plant
from tests.mes.ingested import Ingested


@pytest.fixture
def api(database_url) -> TestClient:
    prepare_database(database_url, load_plant(DEMO_PLANT))
    with TestClient(create_app(database_url)) as client:
        yield client


@pytest.fixture
def db(api, database_url) -> Ingested:
    """Writes what the ingest would (as edge-1) into the API's database."""
    ingested = Ingested(database_url)
    yield ingested
    ingested.conn.close()
