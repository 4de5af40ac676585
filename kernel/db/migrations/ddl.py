"""Helpers the migrations share: run SQL (marking statements for offline use) and ask what the
server offers."""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

from kernel.db.migrations import STATEMENT_MARKER


def run(sql: str) -> None:
    if context.is_offline_mode():
        op.execute(f"{STATEMENT_MARKER}\n{sql.strip()}")
    else:
        op.execute(text(sql))


def use_timescale() -> bool:
    forced = context.config.attributes.get("timescale")
    if forced is not None:
        return forced
    available = op.get_bind().execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    return available is not None


def autocommit_block():
    """Continuous aggregates cannot be created inside a transaction."""
    return context.get_context().autocommit_block()
