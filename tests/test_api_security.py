"""Every route of the API: 401 without credentials, 403 for a role not allowed, the role table complete and
rendered in docs/security.md. Routes are read from the application itself, so a new one is covered at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.api import operations
from app.permissions import PUBLIC, READS, WRITES, allowed_roles, render_table
from kernel.auth import Role
from tests.support.auth import bearer, by, issue_key

SECURITY_DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"
TABLE = re.compile(r"<!-- role table: python -m app.permissions -->\n(.*?)\n<!-- end of the role table -->", re.S)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def _served(api) -> set[tuple[str, str]]:
    """What the OpenAPI document lists, plus the routes kept out of it (the board's page and assets)."""
    documented = {(method.upper(), path) for path, item in api.get("/openapi.json").json()["paths"].items() for method in item}
    return documented | set(operations())


def test_the_operations_listed_are_those_the_application_serves(api):
    documented = {(method.upper(), path) for path, item in api.get("/openapi.json").json()["paths"].items() for method in item}
    assert documented <= set(operations())


def test_every_route_but_the_public_ones_refuses_a_request_without_credentials(api, api_as):
    anonymous = api_as()
    for method, path in sorted(_served(api)):
        response = anonymous.request(method, _concrete(path))
        if (method, path) in PUBLIC:
            assert response.status_code not in (401, 403), (method, path, response.text)
        else:
            assert response.status_code == 401, (method, path, response.status_code, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/docs").status_code == 200


def test_every_write_has_its_roles_in_the_table_and_a_role_not_named_gets_403(api, api_as):
    writes = {(method, path) for method, path in _served(api) if method != "GET" and (method, path) not in PUBLIC}
    accounts = {(method, path) for method, path in writes if path.startswith(("/users", "/api-keys"))}
    assert writes - accounts <= set(WRITES), f"writes without roles in app/permissions.py: {sorted(writes - accounts - set(WRITES))}"
    assert set(WRITES) <= writes, f"the table names routes that do not exist: {sorted(set(WRITES) - writes)}"
    clients = {role: api_as(role.value) for role in Role}
    for method, path in sorted(writes):
        allowed = allowed_roles(method, path)
        for role, client in clients.items():
            status = client.request(method, _concrete(path)).status_code
            if role in allowed:
                assert status not in (401, 403), (role, method, path, status)
            else:
                assert status == 403, (role, method, path, status)


def test_every_role_reads_but_only_admin_sees_the_accounts(api, api_as):
    viewer = api_as("viewer")
    for method, path in sorted(_served(api)):
        if method != "GET" or (method, path) in PUBLIC or path == "/board/events":
            continue
        status = viewer.get(_concrete(path)).status_code
        assert (status == 403) == path.startswith(("/users", "/api-keys")), (path, status)
        assert allowed_roles(method, path) in (READS, frozenset({Role.admin}))


def test_the_role_table_in_docs_security_is_current():
    found = TABLE.search(SECURITY_DOC.read_text())
    assert found, "docs/security.md lacks the role table's markers"
    assert found.group(1) == render_table(operations()), "run `python -m app.permissions` and paste its output"


def test_a_revoked_or_unknown_key_and_a_wrong_password_are_401(api, api_as, database_url):
    token = issue_key(database_url, "viewer", name="hall-tv")
    assert api.get("/items", headers=bearer(token)).status_code == 200
    key_id = token.split("_")[1]
    assert api.post(f"/api-keys/{key_id}/revoke").json()["revoked_at"] is not None
    refused = api.get("/items", headers=bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert api.get("/items", headers=bearer(token[:-2] + "xx")).status_code == 401
    assert api.get("/items", headers=bearer("mes_000000000000_nothing")).status_code == 401
    assert api.get("/items", headers={"Authorization": "Basic bm9ib2R5Om5vdGhpbmc="}).status_code == 401  # nobody:nothing


def test_keys_and_users_are_managed_over_the_api_by_an_admin(api, api_as):
    created = api.post("/api-keys", json={"name": "erp", "roles": ["planner", "inventory"]})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["token"].startswith("mes_") and key["created_by"] == "key:test-admin"
    assert "token" not in api.get("/api-keys").json()[0]
    erp = api_as()
    erp.headers.update(bearer(key["token"]))
    assert erp.post("/api-keys", json={"name": "mine", "roles": ["admin"]}).status_code == 403  # no escalation
    assert api.post("/users", json={"user_id": "anna", "password": "short", "roles": ["supervisor"]}).status_code == 422
    assert api.post("/users", json={"user_id": "anna", "password": "a long password", "roles": ["boss"]}).status_code == 422
    user = api.post("/users", json={"user_id": "anna", "password": "a long password", "roles": ["supervisor"]})
    assert user.status_code == 201 and "password" not in user.text and "hash" not in user.text
    anna = api_as()
    anna.auth = ("anna", "a long password")
    assert anna.get("/items").status_code == 200
    assert api.post("/users/anna/disable").status_code == 200
    assert anna.get("/items").status_code == 401


def test_audit_rows_record_the_caller_not_the_name_in_the_body(api):
    ok = api.post("/items", json={"item_id": "steel", "name": "steel", "uom": "kg", "kind": "buy"})
    assert ok.status_code == 201, ok.text
    for location in ("wh", "wh-2"):
        assert api.post("/locations", json={"location_id": location, "name": location, "kind": "warehouse"}).status_code == 201
    body = {"transfer_id": "T-1", "from_location": "wh", "to_location": "wh-2", "lines": {"steel": "1"}, "requested_by": "mallory"}
    requested = by(api, "anna", "inventory").post("/transfers", json=body)
    assert requested.status_code == 201 and requested.json()["requested_by"] == "anna", requested.text
    # four eyes: the requester may not approve, whatever name the body gives
    same = by(api, "anna").post("/transfers/T-1/approve", json={"approver": "bob"})
    assert same.status_code == 409 and "anna" in same.text.lower(), same.text
    other = by(api, "bob", "supervisor").post("/transfers/T-1/approve", json={"approver": "anna"})
    assert other.status_code == 200, other.text
    actors = [event["actor"] for event in api.get("/transfers/T-1/events").json()]
    assert actors == ["anna", "bob"]


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer not-a-key", "Basic !!!", "Bearer a.b.c"])
def test_malformed_credentials_are_401_never_500(api, api_as, header):
    anonymous = api_as()
    assert anonymous.get("/items", headers={"Authorization": header}).status_code == 401
