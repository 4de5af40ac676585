"""Install the data source, the folder and the boards in a Grafana through its HTTP API (grafana-client).

Idempotent: each object is looked up by uid and written only when it differs from what is wanted, so a
second run sends no write at all. What "differs" means:
  * data source: the fields sent (name, type, access, url, user, jsonData, isDefault) differ from the
    stored ones, or a password is wanted and none is stored. Grafana never returns a stored password,
    so a changed password alone is not seen; `force_datasource` rewrites it.
  * folder: its title.
  * dashboard: the stored JSON, less the `id` and `version` Grafana adds, differs from the board, or
    it sits in another folder. An update overwrites by uid: the same dashboard, a new version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.grafana.panels import DATASOURCE_NAME, DATASOURCE_TYPE, DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID

Action = Literal["created", "updated", "unchanged"]
_COMPARED_DATASOURCE_FIELDS = ("name", "type", "access", "url", "user", "jsonData", "isDefault")
_ADDED_BY_GRAFANA = ("id", "version")
_NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Literal["datasource", "folder", "dashboard"]
    uid: str
    title: str
    action: Action

    def __str__(self) -> str:
        return f"{self.kind} {self.uid} ({self.title}): {self.action}"


def datasource_for(database_url: str, *, timescaledb: bool = False) -> dict:
    """The PostgreSQL data source Grafana needs to reach the MES database at `database_url`
    (postgresql://user:password@host:port/database?sslmode=…; host and port may also come as query
    parameters, as libpq allows). TLS mode: the URL's sslmode, else `disable`."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = parts.hostname or query.get("host") or "localhost"
    port = parts.port or query.get("port") or 5432
    database = unquote(parts.path.lstrip("/")) or query.get("dbname")
    if not database:
        raise ValueError("the database URL names no database")
    source = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": f"{host}:{port}",
        "user": unquote(parts.username or query.get("user") or ""),
        "isDefault": False,
        "jsonData": {"database": database, "sslmode": query.get("sslmode", "disable"), "postgresVersion": 1500,
                     "timescaledb": timescaledb, "maxOpenConns": 10},
    }
    password = unquote(parts.password) if parts.password else query.get("password")
    if password:
        source["secureJsonData"] = {"password": password}
    return source


def push(api: GrafanaApi, datasource: Mapping, boards: Iterable[Mapping], *, folder_uid: str = FOLDER_UID,
         folder_title: str = FOLDER_TITLE, force_datasource: bool = False,
         extra_datasources: Iterable[Mapping] = ()) -> list[Outcome]:
    """Create or update the data source (and `extra_datasources`: Prometheus's), the folder and each board; what
    was done to each."""
    outcomes = [_push_datasource(api, source, force_datasource) for source in (datasource, *extra_datasources)]
    outcomes.append(_push_folder(api, folder_uid, folder_title))
    outcomes += [_push_dashboard(api, board, folder_uid) for board in boards]
    return outcomes


def _push_datasource(api: GrafanaApi, wanted: Mapping, force: bool) -> Outcome:
    stored = _found(lambda: api.datasource.get_datasource_by_uid(wanted["uid"]))
    if stored is None:
        api.datasource.create_datasource(dict(wanted))
        action = "created"
    elif force or _datasource_differs(stored, wanted):
        api.datasource.update_datasource_by_uid(wanted["uid"], dict(wanted))
        action = "updated"
    else:
        action = "unchanged"
    return Outcome("datasource", wanted["uid"], wanted["name"], action)


def _datasource_differs(stored: Mapping, wanted: Mapping) -> bool:
    if any(stored.get(field) != wanted.get(field) for field in _COMPARED_DATASOURCE_FIELDS):
        return True
    wants_password = "password" in wanted.get("secureJsonData", {})
    return wants_password and not stored.get("secureJsonFields", {}).get("password")


def _push_folder(api: GrafanaApi, uid: str, title: str) -> Outcome:
    stored = _found(lambda: api.folder.get_folder(uid))
    if stored is None:
        api.folder.create_folder(title, uid=uid)
        return Outcome("folder", uid, title, "created")
    if stored.get("title") != title:
        api.folder.update_folder(uid, title=title, version=stored.get("version"), overwrite=True)
        return Outcome("folder", uid, title, "updated")
    return Outcome("folder", uid, title, "unchanged")


def _push_dashboard(api: GrafanaApi, board: Mapping, folder_uid: str) -> Outcome:
    stored = _found(lambda: api.dashboard.get_dashboard(board["uid"]))
    if stored is not None and _same_dashboard(stored, board, folder_uid):
        action = "unchanged"
    else:
        api.dashboard.update_dashboard({"dashboard": dict(board), "folderUid": folder_uid, "overwrite": True,
                                        "message": "open-mes: mes dashboards push"})
        action = "created" if stored is None else "updated"
    return Outcome("dashboard", board["uid"], board["title"], action)


def _same_dashboard(stored: Mapping, board: Mapping, folder_uid: str) -> bool:
    saved = {key: value for key, value in stored["dashboard"].items() if key not in _ADDED_BY_GRAFANA}
    wanted = {key: value for key, value in board.items() if key not in _ADDED_BY_GRAFANA}
    return saved == wanted and stored.get("meta", {}).get("folderUid", "") == folder_uid


def _found(lookup):
    """The object the lookup returns, None when Grafana answers 404."""
    try:
        return lookup()
    except GrafanaClientError as error:
        if error.status_code == _NOT_FOUND:
            return None
        raise
