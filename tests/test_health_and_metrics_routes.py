"""Liveness, readiness and the API's metrics: public, and readiness says why it is not ready."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from app.api import create_app
from kernel.db.migrations import head_revision, sqlalchemy_url


def test_live_ready_and_metrics_answer_without_credentials(api, api_as):
    anonymous = api_as()
    assert anonymous.get("/health/live").json() == {"status": "ok"}
    assert anonymous.get("/health/ready").json() == {"status": "ready", "revision": head_revision()}
    api.get("/items")
    api.get("/items/no-such-item")
    exposition = anonymous.get("/metrics")
    assert exposition.status_code == 200 and exposition.headers["content-type"].startswith("text/plain")
    counts = {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
              for family in text_string_to_metric_families(exposition.text) for s in family.samples
              if s.name == "mes_api_request_seconds_count"}
    # by route template, never the path a caller sent
    assert counts[("GET", "/items", "200")] == 1 and counts[("GET", "/items/{item_id}", "404")] == 1
    assert not any("no-such-item" in route for _, route, _ in counts)


def test_not_ready_while_the_schema_is_behind_and_while_the_database_is_away(api, database_url):
    engine = create_engine(sqlalchemy_url(database_url))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    behind = api.get("/health/ready")
    assert behind.status_code == 503 and "mes db upgrade" in behind.json()["detail"]

    with TestClient(create_app("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")) as away:
        answer = away.get("/health/ready")
        assert answer.status_code == 503 and answer.json() == {"detail": "the database does not answer"}
        assert away.get("/health/live").status_code == 200
