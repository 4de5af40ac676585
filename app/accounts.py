"""Users and API keys over the API (admin only, app/permissions.py); the same as `mes users` / `mes keys`."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import datetime, timezone

from fastapi import APIRouter
from pydantic import Field

from kernel import auth
from kernel.auth import Caller, Role
from kernel.http import Db, In, Out

router = APIRouter(tags=["accounts"])

UserId = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


class UserIn(In):
    user_id: str = UserId
    password: str = Field(min_length=12, max_length=1024)
    roles: list[Role] = Field(min_length=1)


class PasswordIn(In):
    password: str = Field(min_length=12, max_length=1024)


class UserOut(Out):
    user_id: str
    roles: list[Role]
    created_at: datetime
    disabled_at: datetime | None


class KeyIn(In):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")
    roles: list[Role] = Field(min_length=1)


class KeyOut(Out):
    key_id: str
    name: str
    roles: list[Role]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    token: str = Field(description="the bearer token, shown this once: `Authorization: Bearer <token>`")


@router.get("/users", response_model=list[UserOut])
def list_users(db: Db):
    return auth.list_users(db)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, db: Db):
    return auth.create_user(db, body.user_id, body.password, [role.value for role in body.roles])


@router.post("/users/{user_id}/password", response_model=UserOut)
def set_password(user_id: str, body: PasswordIn, db: Db):
    return auth.set_password(db, user_id, body.password)


@router.post("/users/{user_id}/disable", response_model=UserOut)
def disable_user(user_id: str, db: Db):
    return auth.disable_user(db, user_id, datetime.now(timezone.utc))


@router.get("/api-keys", response_model=list[KeyOut])
def list_keys(db: Db, include_revoked: bool = False):
    return auth.list_keys(db, include_revoked)


@router.post("/api-keys", response_model=NewKeyOut, status_code=201)
def create_key(body: KeyIn, db: Db, principal: Caller):
    key, token = auth.create_key(db, body.name, [role.value for role in body.roles], principal.name)
    return NewKeyOut(**KeyOut.model_validate(key).model_dump(), token=token)


@router.post("/api-keys/{key_id}/revoke", response_model=KeyOut)
def revoke_key(key_id: str, db: Db):
    return auth.revoke_key(db, key_id, datetime.now(timezone.utc))
