"""Credentials for tests: API keys of given roles, written the way `mes keys create` writes them."""

from __future__ import annotations

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


def as_admin(client: TestClient, database_url: str) -> TestClient:
    """The client, sending an admin key with every request."""
    client.headers.update(bearer(issue_key(database_url, "admin", name="test-admin")))
    return client
