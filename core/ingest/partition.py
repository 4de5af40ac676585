"""Edge leases: several cores on one plant, each edge ingested by one core at a time (MES_CORE_PARTITION=edges).

A core holds one PostgreSQL session for its leases (autocommit, its `application_name` says what it is):
on it, a session advisory lock per edge it owns. The session's backend pid names the core, so the live
cores are the lease sessions PostgreSQL sees, and a core that dies — kill -9, power, network — loses its
session and with it every lease: the others see its edges free on their next round (core.rules.partition).

Two more guarantees make a hand-over exact:
- every batch's transaction first takes a transaction advisory lock per edge in it (`guard`), and a core
  that claims an edge reloads the ingest state under the same locks: it reads the edge's state only after
  the last transaction of the previous owner has committed or rolled back, even one still in flight when
  that owner's lease session ended;
- the same statement checks that the batch's edges are still leased by this core's session (a fence): a
  core whose lease session dropped while it was in the middle of a batch does not write it.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import text
from sqlalchemy.engine import Connection

from kernel.db.advisory import lock_key
from kernel.db.models import make_engine

LEASE_NAMESPACE = 0x4D455332  # "MES2": an edge's lease, on its owner's lease session
GUARD_NAMESPACE = 0x4D455333  # "MES3": an edge's batch in hand, on the transaction that writes it
APPLICATION_NAME = "mes core leases"


class LeaseLost(RuntimeError):
    """A batch's edge is no longer leased by this core: its batch must not be written."""


def edge_key(edge_id: str) -> int:
    return lock_key(f"edge {edge_id}")


class EdgeLeases:
    def __init__(self, database_url: str) -> None:
        self._engine = make_engine(database_url)
        self._connection: Connection | None = None
        self.me = ""  # the lease session's backend pid, once open

    def open(self) -> None:
        """A new lease session (none held on it yet)."""
        self.close()
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": APPLICATION_NAME})
        self.me = str(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        self._connection = connection

    def close(self) -> None:
        """Ends the session: every lease on it goes."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()

    def picture(self, edges: Collection[str]) -> tuple[set[str], dict[str, str]]:
        """The live cores of this database, and the owner of each of `edges` that has one."""
        connection = self._session()
        cores = {str(pid) for (pid,) in connection.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"),
            {"name": APPLICATION_NAME})}
        by_key = {edge_key(edge): edge for edge in edges}
        owners = {by_key[key]: str(pid) for key, pid in connection.execute(text(
            """SELECT l.objid::int, l.pid FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.classid::int = :namespace AND l.objsubid = 2 AND l.granted
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""),
            {"namespace": LEASE_NAMESPACE}) if key in by_key}
        return cores | {self.me}, owners

    def claim(self, edge_id: str) -> bool:
        return bool(self._session().execute(text("SELECT pg_try_advisory_lock(:namespace, :key)"),
                                            {"namespace": LEASE_NAMESPACE, "key": edge_key(edge_id)}).scalar_one())

    def release(self, edge_id: str) -> None:
        self._session().execute(text("SELECT pg_advisory_unlock(:namespace, :key)"),
                                {"namespace": LEASE_NAMESPACE, "key": edge_key(edge_id)})

    def guard(self, connection: Connection, edges: Collection[str]) -> None:
        """In the caller's transaction: wait for any other transaction on `edges` to end, then LeaseLost unless
        this core still leases every one of them."""
        keys = sorted({edge_key(edge) for edge in edges})  # one order for every core: no deadlock
        if not keys:
            return
        bound = {"guard": GUARD_NAMESPACE, "lease": LEASE_NAMESPACE, "me": int(self.me or 0), "keys": keys}
        connection.execute(text(
            "SELECT pg_advisory_xact_lock(:guard, key) FROM unnest(CAST(:keys AS int[])) AS key"), bound).all()
        leased = connection.execute(text(
            """SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid::int = :lease
                 AND l.objsubid = 2 AND l.granted AND l.pid = :me AND l.objid::int = ANY(CAST(:keys AS int[]))"""),
            bound).scalar_one()
        if leased != len(keys):
            raise LeaseLost(f"edges {sorted(edges)} are not all leased by this core any more")

    def _session(self) -> Connection:
        if self._connection is None:
            self.open()
        assert self._connection is not None
        return self._connection
