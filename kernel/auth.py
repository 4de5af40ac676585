"""Who calls the API and what they may be: roles, principals, local users, API keys, OIDC bearer tokens.

Three ways in, one `Principal` out (docs/security.md):
- an API key (`Authorization: Bearer mes_<key id>_<secret>`): integrations and kiosks. Only the SHA-256 of
  the secret is stored; the secret is 256 random bits, so a fast hash is as safe as a slow one and keeps
  a board polling every 2 s cheap.
- a local user (`Authorization: Basic …`): the password checked against its argon2 hash.
- a JWT from the plant's identity provider (`Authorization: Bearer <jwt>`): signature checked against the
  provider's JWKS, issuer, expiry and (when configured) audience; its roles from a claim.

What each role may do is not decided here but in one table of the application (app/permissions.py); the
routers take the principal (`Caller`) only to write it into their audit rows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from sqlalchemy import ARRAY, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from kernel.db.models import Base
from kernel.rules.refusals import Conflict, Invalid, NotFound


class Role(StrEnum):
    viewer = "viewer"  # reads only: the board on a kiosk, a reporting integration
    operator = "operator"
    supervisor = "supervisor"
    planner = "planner"
    inventory = "inventory"
    admin = "admin"  # everything, users and keys included


@dataclass(frozen=True)
class Principal:
    name: str  # what audit rows record: the user id, `key:<name>` or the identity provider's user name
    roles: frozenset[Role]
    via: str  # password, key or oidc


class User(Base):
    __tablename__ = "users"
    user_id: Mapped[str] = mapped_column(primary_key=True)
    password_hash: Mapped[str]
    roles: Mapped[list[str]] = mapped_column(ARRAY(String))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    disabled_at: Mapped[datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"
    key_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    secret_sha256: Mapped[str]
    roles: Mapped[list[str]] = mapped_column(ARRAY(String))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str]
    revoked_at: Mapped[datetime | None]


KEY_PREFIX = "mes_"
_passwords = PasswordHasher()


def _roles(names: list[str] | tuple[str, ...]) -> list[str]:
    if not names:
        raise Invalid("give at least one role")
    unknown = sorted(set(names) - set(Role))
    if unknown:
        raise Invalid(f"unknown role {', '.join(unknown)}; the roles are {', '.join(Role)}")
    return sorted(set(names), key=list(Role).index)


def _secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# users and keys: each function is one unit of work (it commits once)

MIN_PASSWORD_LENGTH = 12
USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")  # as the users table checks it


def _password_hash(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _passwords.hash(password)


def create_user(db: Session, user_id: str, password: str, roles: list[str]) -> User:
    if not USER_ID.fullmatch(user_id):
        raise Invalid(f"a user id is 1 to 128 letters, digits and _.@- (starting with a letter or digit), not {user_id!r}")
    if db.get(User, user_id) is not None:
        raise Conflict(f"user {user_id} exists")
    user = User(user_id=user_id, password_hash=_password_hash(password), roles=_roles(roles))
    db.add(user)
    db.commit()
    return user


def set_password(db: Session, user_id: str, password: str) -> User:
    user = _user(db, user_id)
    user.password_hash = _password_hash(password)
    db.commit()
    return user


def disable_user(db: Session, user_id: str, now: datetime) -> User:
    user = _user(db, user_id)
    user.disabled_at = user.disabled_at or now
    db.commit()
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.user_id)))


def _user(db: Session, user_id: str) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def create_key(db: Session, name: str, roles: list[str], created_by: str) -> tuple[ApiKey, str]:
    """The new key and its token, `mes_<key id>_<secret>`: shown once, never stored."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(key_id=key_id, name=name, secret_sha256=_secret_digest(secret), roles=_roles(roles), created_by=created_by)
    db.add(key)
    db.commit()
    return key, f"{KEY_PREFIX}{key_id}_{secret}"


def revoke_key(db: Session, key_id: str, now: datetime) -> ApiKey:
    key = db.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    key.revoked_at = key.revoked_at or now
    db.commit()
    return key


def list_keys(db: Session, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(db.scalars(query))


# authentication

@dataclass(frozen=True)
class OidcConfig:
    """The external identity provider whose access tokens the API accepts."""

    issuer: str
    jwks_url: str
    audience: str | None = None
    roles_claim: str = "roles"  # a dotted path for nested claims, e.g. realm_access.roles (Keycloak)
    name_claim: str = "preferred_username"  # falls back to `sub`
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    # a token naming an unknown key fetches the key set again, at most this often (no flood of the provider)
    refresh_cooldown_s: float = 30.0


class Unauthenticated(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": 'Bearer realm="mes", Basic realm="mes"'})


class Authenticator:
    """Turns an Authorization header into a principal, or refuses with 401."""

    def __init__(self, sessions: sessionmaker, oidc: OidcConfig | None = None) -> None:
        self._sessions = sessions
        self._oidc = oidc
        self._jwks = jwt.PyJWKClient(oidc.jwks_url, cache_keys=True, lifespan=300, timeout=10,
                                     cooldown_duration=oidc.refresh_cooldown_s) if oidc else None

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("credentials needed: an API key or token as `Authorization: Bearer …`, or a user's password")
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "basic":
            return self._password(credentials)
        if scheme.lower() == "bearer" and credentials.startswith(KEY_PREFIX):
            return self._key(credentials)
        if scheme.lower() == "bearer" and credentials.count(".") == 2:
            return self._token(credentials)
        raise Unauthenticated("unsupported credentials: use `Bearer <API key or token>` or `Basic <user:password>`")

    def _password(self, credentials: str) -> Principal:
        try:
            user_id, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("malformed Basic credentials") from None
        with self._sessions() as db:
            user = db.get(User, user_id) if user_id and "\x00" not in user_id else None
            stored_hash, roles, disabled = (user.password_hash, user.roles, user.disabled_at) if user else (None, [], None)
        try:
            # a made-up user costs the same time as a wrong password: no probing for names
            _passwords.verify(stored_hash or _UNKNOWN_USER_HASH, password)
        except (VerificationError, InvalidHashError):
            raise Unauthenticated("wrong user or password") from None
        if user is None or disabled is not None:
            raise Unauthenticated("wrong user or password")
        return Principal(user_id, frozenset(Role(r) for r in roles), "password")

    def _key(self, token: str) -> Principal:
        key_id, _, secret = token.removeprefix(KEY_PREFIX).partition("_")
        with self._sessions() as db:
            key = db.get(ApiKey, key_id) if len(key_id) == 12 and key_id.isalnum() else None
            found = (key.name, key.roles, key.secret_sha256, key.revoked_at) if key else None
        if found is None or not hmac.compare_digest(found[2], _secret_digest(secret)):
            raise Unauthenticated("unknown API key")
        name, roles, _, revoked = found
        if revoked is not None:
            raise Unauthenticated("this API key was revoked")
        return Principal(f"key:{name}", frozenset(Role(r) for r in roles), "key")

    def _token(self, token: str) -> Principal:
        if self._oidc is None or self._jwks is None:
            raise Unauthenticated("bearer tokens are not accepted: no identity provider is configured (MES_OIDC_ISSUER)")
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, signing_key.key, algorithms=list(self._oidc.algorithms), issuer=self._oidc.issuer,
                                audience=self._oidc.audience, options={"require": ["exp", "iss", "sub"],
                                                                       "verify_aud": self._oidc.audience is not None})
        except jwt.PyJWKClientError as error:
            raise Unauthenticated(f"token not accepted: {error}") from None
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"token not accepted: {error}") from None
        name = claims.get(self._oidc.name_claim) or claims["sub"]
        return Principal(str(name), frozenset(Role(r) for r in _claim(claims, self._oidc.roles_claim) if r in set(Role)), "oidc")


def _claim(claims: dict[str, Any], path: str) -> list[str]:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value.split()
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


_UNKNOWN_USER_HASH = _passwords.hash(secrets.token_urlsafe(16))


def caller(request: Request) -> Principal:
    """The request's principal, authenticated once a request (the application's check and a router's audit
    rows ask for it both)."""
    known = getattr(request.state, "principal", None)
    if known is None:
        authenticator: Authenticator = request.app.state.authenticator
        known = request.state.principal = authenticator.authenticate(request.headers.get("authorization"))
    return known


Caller = Annotated[Principal, Depends(caller)]
