"""OIDC bearer tokens: a key set the test makes, served over a real local HTTP server as the identity
provider's JWKS; tokens signed with it are accepted with their roles, any other is 401."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from app.api import create_app
from core.service import prepare_database
from kernel.auth import Authenticator, OidcConfig
from kernel.plant import DEMO_PLANT, load_plant
from kernel.settings import Settings
from tests.support.auth import bearer

ISSUER = "https://idp.plant.example/realms/mes"
AUDIENCE = "open-mes"


class IdentityProvider:
    """Publishes the public half of its keys at /jwks, as a real provider does; signs tokens with them."""

    def __init__(self) -> None:
        self.keys = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"keys": [
                    {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig", "alg": "RS256"}
                    for kid, key in provider.keys.items()]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.jwks_url = f"http://127.0.0.1:{self.server.server_port}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, kid: str = "k1", key=None, **claims) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-123", "preferred_username": "anna", "iat": now,
                   "exp": now + 300, **claims}
        return jwt.encode({k: v for k, v in payload.items() if v is not None}, key or self.keys[kid], algorithm="RS256",
                          headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.close()


@pytest.fixture
def oidc_api(database_url, idp) -> Iterator[TestClient]:
    prepare_database(database_url, load_plant(DEMO_PLANT))
    settings = Settings(oidc_issuer=ISSUER, oidc_jwks_url=idp.jwks_url, oidc_audience=AUDIENCE,
                        oidc_roles_claim="realm_access.roles")
    with TestClient(create_app(database_url, settings)) as client:
        yield client


def test_a_token_of_the_identity_provider_is_accepted_with_its_roles(oidc_api, idp):
    viewer = bearer(idp.token(realm_access={"roles": ["viewer", "offline_access"]}))
    assert oidc_api.get("/items", headers=viewer).status_code == 200
    item = {"item_id": "steel", "name": "steel", "kind": "buy", "uom": "kg"}
    assert oidc_api.post("/items", json=item, headers=viewer).status_code == 403
    planner = bearer(idp.token(realm_access={"roles": ["planner"]}))
    assert oidc_api.post("/items", json=item, headers=planner).status_code == 201


def test_the_audit_trail_records_the_providers_user_name(oidc_api, idp):
    supervisor = bearer(idp.token(realm_access={"roles": ["supervisor", "inventory"]}, preferred_username="bob"))
    for location in ("wh", "wh-2"):
        assert oidc_api.post("/locations", json={"location_id": location, "name": location, "kind": "warehouse"},
                             headers=supervisor).status_code == 201
    assert oidc_api.post("/items", json={"item_id": "steel", "name": "steel", "kind": "buy", "uom": "kg"},
                         headers=bearer(idp.token(realm_access={"roles": ["planner"]}))).status_code == 201
    transfer = oidc_api.post("/transfers", headers=supervisor, json={
        "transfer_id": "T-1", "from_location": "wh", "to_location": "wh-2", "lines": {"steel": "1"}})
    assert transfer.status_code == 201 and transfer.json()["requested_by"] == "bob", transfer.text


def test_a_key_rotated_at_the_provider_is_fetched_when_a_token_names_it(oidc_api, idp):
    oidc_api.app.state.authenticator = Authenticator(
        oidc_api.app.state.sessions, OidcConfig(ISSUER, idp.jwks_url, AUDIENCE, "realm_access.roles", refresh_cooldown_s=0))
    assert oidc_api.get("/items", headers=bearer(idp.token(realm_access={"roles": ["viewer"]}))).status_code == 200
    idp.keys["k2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rotated = oidc_api.get("/items", headers=bearer(idp.token("k2", realm_access={"roles": ["viewer"]})))
    assert rotated.status_code == 200, rotated.text


@pytest.mark.parametrize("claims, why", [
    ({"iss": "https://evil.example/"}, "issuer"),
    ({"aud": "another-app"}, "audience"),
    ({"exp": 1_000_000_000}, "expired"),
    ({"sub": None}, "sub"),
])
def test_a_token_with_a_wrong_claim_is_401(oidc_api, idp, claims, why):
    response = oidc_api.get("/items", headers=bearer(idp.token(realm_access={"roles": ["admin"]}, **claims)))
    assert response.status_code == 401 and why in response.json()["detail"].lower(), response.text


def test_a_token_signed_by_another_key_or_naming_an_unknown_key_is_401(oidc_api, idp):
    forged = idp.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048), realm_access={"roles": ["admin"]})
    assert oidc_api.get("/items", headers=bearer(forged)).status_code == 401
    unknown = idp.token("k9", key=idp.keys["k1"], realm_access={"roles": ["admin"]})
    assert oidc_api.get("/items", headers=bearer(unknown)).status_code == 401
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60,
                           "realm_access": {"roles": ["admin"]}}, None, algorithm="none", headers={"kid": "k1"})
    assert oidc_api.get("/items", headers=bearer(unsigned)).status_code == 401


def test_a_token_without_any_role_of_the_mes_is_403(oidc_api, idp):
    assert oidc_api.get("/items", headers=bearer(idp.token(realm_access={"roles": ["offline_access"]}))).status_code == 403


def test_without_a_configured_provider_tokens_are_refused(api, idp):
    response = api.get("/items", headers=bearer(idp.token()))
    assert response.status_code == 401 and "MES_OIDC_ISSUER" in response.json()["detail"]
