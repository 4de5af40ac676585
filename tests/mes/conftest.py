"""The API on a fresh migrated database with the demo plant's machines, for the HTTP tests here."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.service import prepare_database
from mes.api.app import create_app
from mes.plant import DEMO_PLANT, load_plant


@pytest.fixture
def api(database_url) -> TestClient:
    prepare_database(database_url, load_plant(DEMO_PLANT))
    with TestClient(create_app(database_url)) as client:
        yield client
