"""`mes users …` and `mes keys …`: who may call the API (docs/security.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from kernel.auth import Role

ROLE_HELP = (f"a role, repeat for several: {', '.join(Role)}. What each may do: docs/security.md "
             "(viewer reads only, admin may do everything)")

users_app = typer.Typer(no_args_is_help=True, help=(
    "Local users of the API: people who sign in with a password (HTTP Basic), each with roles.\n\n"
    "Passwords are stored as argon2 hashes only. People of an identity provider (MES_OIDC_ISSUER) need no "
    "user here: their roles come from their token. Example: `mes users create anna --role supervisor`."))
keys_app = typer.Typer(no_args_is_help=True, help=(
    "API keys: for integrations and kiosks (the board). The token is printed once, at creation; only a hash "
    "is stored, so a lost key is revoked and replaced, not recovered.\n\n"
    "Rotate a key: `mes keys create NAME --role ROLE`, put the new token where the old one was, then "
    "`mes keys revoke OLD_KEY_ID`. Example: `mes keys create hall-tv --role viewer`."))

RolesOption = Annotated[list[Role], typer.Option("--role", help=ROLE_HELP)]


@contextmanager
def _db() -> Iterator[Session]:
    from kernel.db.migrations import upgrade
    from kernel.db.models import session_on
    from kernel.runtime import database
    from kernel.settings import Settings

    with database(Settings()) as database_url:
        upgrade(database_url)
        with session_on(database_url, expire_on_commit=False) as session:
            yield session


def _refused(action):
    from kernel.rules.refusals import Refused

    try:
        return action()
    except Refused as refusal:
        typer.echo(f"Error: {refusal}", err=True)
        raise typer.Exit(1) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("password (12 characters at least)", hide_input=True, confirmation_prompt=True)


PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from the first line of stdin "
                                                                     "(scripts) instead of asking")]


@users_app.command("create")
def create_user(user_id: Annotated[str, typer.Argument(help="the name people sign in with and audit rows record")],
                roles: RolesOption, password_stdin: PasswordStdin = False) -> None:
    """Create a user with a password and roles."""
    from kernel import auth

    password = _password(password_stdin)
    with _db() as db:
        user = _refused(lambda: auth.create_user(db, user_id, password, [role.value for role in roles]))
    typer.echo(f"user {user.user_id} created with roles {', '.join(user.roles)}")


@users_app.command("password")
def set_password(user_id: str, password_stdin: PasswordStdin = False) -> None:
    """Give a user a new password."""
    from kernel import auth

    password = _password(password_stdin)
    with _db() as db:
        _refused(lambda: auth.set_password(db, user_id, password))
    typer.echo(f"password of {user_id} changed")


@users_app.command("disable")
def disable_user(user_id: str) -> None:
    """Disable a user: their password no longer signs in; what they did stays in the audit rows."""
    from kernel import auth

    with _db() as db:
        _refused(lambda: auth.disable_user(db, user_id, datetime.now(timezone.utc)))
    typer.echo(f"user {user_id} disabled")


@users_app.command("list")
def list_users() -> None:
    """Every user, with roles and whether disabled."""
    from kernel import auth

    with _db() as db:
        for user in auth.list_users(db):
            state = f"disabled {user.disabled_at:%Y-%m-%d}" if user.disabled_at else "active"
            typer.echo(f"{user.user_id}\t{','.join(user.roles)}\t{state}")


def create_key_token(db: Session, name: str, roles: list[str], created_by: str) -> tuple[str, str]:
    """A new key's id and token (what `mes demo` prints as well)."""
    from kernel import auth

    key, token = _refused(lambda: auth.create_key(db, name, roles, created_by))
    return key.key_id, token


@keys_app.command("create")
def create_key(name: Annotated[str, typer.Argument(help="what the key is for, e.g. hall-tv or erp; audit rows record key:NAME")],
               roles: RolesOption) -> None:
    """Create an API key; prints its token once. Send it as `Authorization: Bearer <token>`."""
    with _db() as db:
        key_id, token = create_key_token(db, name, [role.value for role in roles], "cli")
    typer.echo(f"key {key_id} ({name}) created; its token, shown only now:", err=True)
    typer.echo(token)


@keys_app.command("list")
def list_keys(include_revoked: Annotated[bool, typer.Option("--all", help="revoked keys too")] = False) -> None:
    """The keys (never their tokens): id, name, roles, created, revoked."""
    from kernel import auth

    with _db() as db:
        for key in auth.list_keys(db, include_revoked):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            typer.echo(f"{key.key_id}\t{key.name}\t{','.join(key.roles)}\tcreated {key.created_at:%Y-%m-%d %H:%M}\t{state}")


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="the id `mes keys list` shows (not the token)")]) -> None:
    """Revoke a key: refused from the next request on."""
    from kernel import auth

    with _db() as db:
        _refused(lambda: auth.revoke_key(db, key_id, datetime.now(timezone.utc)))
    typer.echo(f"key {key_id} revoked")
