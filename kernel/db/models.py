"""The ORM's base and engine, and the one table every domain shares: the plant's machines, registered
from the plant file by the core (`core.service.prepare_database`). Each domain declares the models of
its own tables on this `Base` (mes/models.py, inventory/models.py); the ingest hot path uses none of
them (it writes with COPY)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import Numeric, String, create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from kernel.db.migrations import sqlalchemy_url


class Base(DeclarativeBase):
    type_annotation_map = {Decimal: Numeric(asdecimal=True), str: String}


class Machine(Base):
    __tablename__ = "machines"
    machine_id: Mapped[str] = mapped_column(primary_key=True)
    site: Mapped[str]
    area: Mapped[str]
    line: Mapped[str]
    protocol: Mapped[str]
    ideal_cycle_s: Mapped[Decimal]
    # its work centre (inventory's table): the schema holds that foreign key; the kernel names no domain
    work_centre_id: Mapped[str | None]
    edge_id: Mapped[str | None]  # the edge the plant file assigns it to (migration 0020)


def make_engine(database_url: str, *, pre_ping: bool = True) -> Engine:
    """An engine for `database_url`. `pre_ping` tests each pooled connection before handing it out (a
    round trip); a caller that retries on a lost connection anyway (the ingest) does without. Errors never
    carry the statement's parameters (they may be anything a request or a PLC sent)."""
    return create_engine(sqlalchemy_url(database_url), pool_pre_ping=pre_ping, hide_parameters=True)


@contextmanager
def session_on(database_url: str, **options: object) -> Iterator[Session]:
    """One Session on an engine of its own, disposed afterwards: for a command or a one-off job that
    needs the database once. `options`: those of `Session` (e.g. expire_on_commit=False)."""
    engine = make_engine(database_url)
    try:
        with Session(engine, **options) as session:
            yield session
    finally:
        engine.dispose()
