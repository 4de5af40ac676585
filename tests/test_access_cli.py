"""`mes keys` and `mes users` against a real database: what they print, and that the API then takes the key."""

from __future__ import annotations

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.api import create_app
from app.cli import app
from tests.support.auth import basic, bearer


def test_keys_are_created_listed_and_revoked_and_users_created_from_the_command_line(database_url, monkeypatch):
    monkeypatch.setenv("MES_DATABASE_URL", database_url)
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "hall-tv", "--role", "viewer"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("mes_")
    key_id = token.split("_")[1]
    listed = runner.invoke(app, ["keys", "list"])
    assert key_id in listed.stdout and "hall-tv" in listed.stdout and "viewer" in listed.stdout and token not in listed.stdout
    refused = runner.invoke(app, ["keys", "create", "x", "--role", "boss"])
    assert refused.exit_code != 0 and "boss" in refused.output

    made = runner.invoke(app, ["users", "create", "anna", "--role", "supervisor", "--password-stdin"],
                         input="a long password\n")
    assert made.exit_code == 0 and "anna" in made.stdout, made.output
    short = runner.invoke(app, ["users", "create", "bob", "--role", "operator", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "12 characters" in short.output
    assert "anna\tsupervisor\tactive" in runner.invoke(app, ["users", "list"]).stdout

    with TestClient(create_app(database_url)) as api:
        assert api.get("/items", headers=bearer(token)).status_code == 200
        assert api.post("/items", json={}, headers=bearer(token)).status_code == 403
        assert api.get("/items", headers={"Authorization": basic("anna", "a long password")}).status_code == 200
        assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
        assert api.get("/items", headers=bearer(token)).status_code == 401
        assert runner.invoke(app, ["users", "disable", "anna"]).exit_code == 0
        assert api.get("/items", headers={"Authorization": basic("anna", "a long password")}).status_code == 401
    assert "revoked" in runner.invoke(app, ["keys", "list", "--all"]).stdout
