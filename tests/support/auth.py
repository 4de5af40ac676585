"""Credentials for tests: API keys of given roles, written the way `mes keys create` writes them."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from kernel import auth
from kernel.db.models import make_engine


def issue_key(database_url: str, *roles: str, name: str | None = None) -> str:
    """A new API key's bearer token."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            return auth.create_key(db, name or f"test-{'-'.join(roles)}", list(roles), "tests")[1]
    finally:
        engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def as_admin(client: TestClient, database_url: str) -> TestClient:
    """The client, sending an admin key with every request."""
    client.headers.update(bearer(issue_key(database_url, "admin", name="test-admin")))
    return client


def by(client: TestClient, name: str, *roles: str) -> TestClient:
    """A client of the same API signed in as the local user `name` (created at first use, admin unless roles
    are given): what audit rows and four-eyes checks see as that person."""
    people = client.app.state.__dict__.setdefault("test_people", {})
    if name not in people:
        password = f"{name}-password-for-tests"
        with client.app.state.sessions() as db:
            auth.create_user(db, name, password, list(roles) or ["admin"])
        people[name] = TestClient(client.app, headers={"Authorization": basic(name, password)})
    return people[name]
