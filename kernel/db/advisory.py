"""A PostgreSQL session advisory lock held for a process's life: one holder per name and database.

Held on a connection of its own (autocommit, so never idle in a transaction); it is released when the
holder ends or its connection drops, a kill -9 included, so a crashed holder never blocks its successor.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.engine import Connection

from kernel.db.models import make_engine

# The first of the lock's two keys: advisory locks of this project, apart from any other application's.
NAMESPACE = 0x4D455331  # "MES1"


class LockHeld(RuntimeError):
    """Another session holds the lock."""


def lock_key(name: str) -> int:
    """The second key of the lock called `name` (a signed 32-bit int, as pg_locks.objid reads back with ::int)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


class AdvisoryLock:
    def __init__(self, database_url: str, name: str, *, shared: bool = False) -> None:
        """`shared`: any number of shared holders at once, but never beside an exclusive one."""
        self.database_url, self.name = database_url, name
        self._keys = {"namespace": NAMESPACE, "key": lock_key(name)}
        self._kind = "_shared" if shared else ""
        self._engine = None
        self._connection: Connection | None = None

    def acquire(self) -> None:
        """Take the lock, or LockHeld saying who holds it."""
        self._engine = make_engine(self.database_url)
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if connection.execute(text(f"SELECT pg_try_advisory_lock{self._kind}(:namespace, :key)"), self._keys).scalar_one():
            self._connection = connection
            return
        holder = connection.execute(text(
            """SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.classid::int = :namespace AND l.objid::int = :key
                 AND l.objsubid = 2 AND l.granted"""), self._keys).first()
        connection.close()
        self._engine.dispose()
        by = (f"PostgreSQL backend {holder.pid}, client {holder.client_addr or 'on the local socket'}, connected "
              f"{holder.backend_start:%Y-%m-%d %H:%M:%S %Z}") if holder else "another session"
        raise LockHeld(f"lock {self.name!r} is held by {by}")

    def release(self) -> None:
        if self._connection is not None:
            self._connection.execute(text(f"SELECT pg_advisory_unlock{self._kind}(:namespace, :key)"), self._keys)
            self._connection.close()
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
