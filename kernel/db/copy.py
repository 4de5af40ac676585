"""COPY: how rows reach PostgreSQL in bulk (the ingest's tables, the stock ledger, the valuation).

The one place that reaches below SQLAlchemy to the psycopg driver: a service passes its Session (or a
SQLAlchemy Connection), and the rows go in the same transaction as everything else it wrote. Rows are
NamedTuples whose fields are the table's columns, so no caller lists columns or indexes a tuple.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


def driver_cursor(connection: Session | Connection | psycopg.Connection | psycopg.Cursor) -> psycopg.Cursor:
    """A psycopg cursor in the transaction of `connection`."""
    if isinstance(connection, psycopg.Cursor):
        return connection
    if isinstance(connection, Session):
        connection = connection.connection()
    if isinstance(connection, Connection):
        connection = connection.connection.driver_connection
    return connection.cursor()


def copy_rows(connection: Session | Connection | psycopg.Connection | psycopg.Cursor, table: str,
              rows: Sequence[NamedTuple], binary: Sequence[str] | None = None) -> None:
    """COPY `rows` into `table`, their fields naming the columns; nothing happens for no rows. `binary`: the
    columns' PostgreSQL types, for a binary COPY (the server parses no text: the ingest's `samples` go in so).

    A refusal comes back as SQLAlchemy's exception for it (OperationalError, IntegrityError, …), as from
    any other statement, so callers handle one family of errors."""
    if not rows:
        return
    statement = f"COPY {table} ({', '.join(type(rows[0])._fields)}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
    try:
        with driver_cursor(connection).copy(statement) as copy:
            if binary:
                copy.set_types(binary)
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        raise DBAPIError.instance(statement, None, error, psycopg.Error,
                                  connection_invalidated=isinstance(error, psycopg.OperationalError)) from error
