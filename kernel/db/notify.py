"""Waiting for a PostgreSQL notification (LISTEN/NOTIFY): what wakes a job as soon as a transaction that
concerns it commits, instead of polling for it.

A connection of its own, in autocommit (a notification is delivered between transactions). A lost connection
is opened again at the next wait; what was notified meanwhile is lost, so a caller also looks for its work when
a wait times out. While the database cannot be reached, a wait takes its whole timeout and says to look (the
caller's own queries then fail and say why), so a caller waiting in a loop does not spin.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql


class Notifications:
    def __init__(self, database_url: str, channel: str):
        self.database_url, self.channel = database_url, channel
        self._connection: psycopg.Connection | None = None

    def listen(self) -> None:
        """Listen from now on (a wait listens first anyway): what commits after this is notified, what committed
        before is the caller's to look for."""
        try:
            self._connected()
        except psycopg.OperationalError:
            self.close()

    def wait(self, timeout_s: float) -> bool:
        """Whether a notification came within `timeout_s` (every one pending is taken)."""
        try:
            connection = self._connected()
            came = any(True for _ in connection.notifies(timeout=timeout_s, stop_after=1))
            while came and any(True for _ in connection.notifies(timeout=0, stop_after=1)):
                pass
            return came
        except psycopg.OperationalError:
            self.close()
            time.sleep(timeout_s)
            return True

    def _connected(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self.database_url, autocommit=True)
            self._connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
