"""Schema migrations (Alembic). `mes db upgrade` and the services call `upgrade(url)`.

TimescaleDB is used when the server offers the extension, plain PostgreSQL otherwise; the choice
can be forced with `timescale=True/False` (the offline SQL for the Timescale DDL test does).
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

HERE = Path(__file__).resolve().parent
STATEMENT_MARKER = "-- statement"


def sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _config(url: str, timescale: bool | None, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    config.attributes["timescale"] = timescale
    return config


def upgrade(url: str, timescale: bool | None = None, revision: str = "head") -> None:
    """The schema brought to `revision` (a migration's test stops short of it, writes rows, then goes on)."""
    command.upgrade(_config(url, timescale), revision)


def offline_sql(timescale: bool) -> str:
    """The whole schema as SQL text, statements separated by STATEMENT_MARKER lines."""
    buffer = io.StringIO()
    command.upgrade(_config("postgresql+psycopg://offline/offline", timescale, buffer), "head", sql=True)
    return buffer.getvalue()


@functools.cache
def head_revision() -> str | None:
    """The revision `upgrade` migrates to."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None before the first migration)."""
    return MigrationContext.configure(connection).get_current_revision()
