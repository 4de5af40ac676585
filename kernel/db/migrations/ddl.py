"""Helpers the migrations share: run SQL (marking statements for offline use) and ask what the
server offers."""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

from kernel.db.migrations import STATEMENT_MARKER
from kernel.logs import get_logger


def run(sql: str) -> None:
    if context.is_offline_mode():
        op.execute(f"{STATEMENT_MARKER}\n{sql.strip()}")
    else:
        op.execute(text(sql))


def use_timescale() -> bool:
    forced = context.config.attributes.get("timescale")
    if forced is not None:
        return forced
    available, preloaded = op.get_bind().execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), "
        "current_setting('shared_preload_libraries')")).one()
    use, warning = timescale_choice(available, preloaded)
    if warning:
        get_logger(__name__).warning(warning)
    return use


def timescale_choice(available: bool, shared_preload_libraries: str) -> tuple[bool, str | None]:
    """TimescaleDB when the server has the extension and loads it at start; an extension that is installed but not
    preloaded cannot be created (`FATAL: extension "timescaledb" must be preloaded`), so the schema is then made
    for plain PostgreSQL, with a warning that says what to set."""
    if not available:
        return False, None
    if "timescaledb" in (library.strip().strip('"') for library in shared_preload_libraries.split(",")):
        return True, None
    return False, ("TimescaleDB is installed on this server but not preloaded: the schema is made for plain PostgreSQL. "
                   "For TimescaleDB set shared_preload_libraries = 'timescaledb' in postgresql.conf, restart the server "
                   "and create the schema in a new database (docs/deploy.md)")


def autocommit_block():
    """Continuous aggregates cannot be created inside a transaction."""
    return context.get_context().autocommit_block()
