"""A stand-in for Grafana's HTTP API: only the endpoints `mes dashboards push` calls, no Grafana here.

It checks each request against the shape Grafana's HTTP API documentation gives (required fields and
their types, the `dashboards/db` wrapper, the uid format), answers with Grafana's status codes (401
without credentials, 404 for an unknown uid, 409 for a duplicate data source name, 412 for a
dashboard version mismatch), stores what it is sent and numbers versions as Grafana does (1 on
create, +1 on every save). Every request is recorded, so a test can say which ones were writes.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
DASHBOARD_SAVE_FIELDS = {"dashboard", "folderUid", "folderId", "overwrite", "message"}


class Request(NamedTuple):
    method: str
    path: str
    body: object


class Refusal(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.body = status, {"message": message, **extra}


class FakeGrafana:
    def __init__(self) -> None:
        self.datasources: dict[str, dict] = {}
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}  # uid → {"dashboard": …, "folderUid": …}
        self.requests: list[Request] = []
        self._ids = iter(range(1, 1_000_000))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def writes(self) -> list[Request]:
        return [request for request in self.requests if request.method != "GET"]

    def __enter__(self) -> FakeGrafana:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # -- routing ---------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: object, authorized: bool) -> tuple[int, object]:
        with self._lock:
            self.requests.append(Request(method, path, body))
            if not authorized:
                return 401, {"message": "Unauthorized"}
            try:
                return 200, self._route(method, path, body)
            except Refusal as refusal:
                return refusal.status, refusal.body

    def _route(self, method: str, path: str, body: object) -> object:
        parts = path.split("?")[0].strip("/").split("/")
        match method, parts:
            case "GET", ["api", "health"]:
                return {"commit": "fake", "database": "ok", "version": "11.3.0"}
            case "GET", ["api", "datasources", "uid", uid]:
                return self._datasource_view(self._existing(self.datasources, uid, "Data source not found"))
            case "POST", ["api", "datasources"]:
                return self._create_datasource(_object(body))
            case "PUT", ["api", "datasources", "uid", uid]:
                return self._update_datasource(uid, _object(body))
            case "GET", ["api", "folders", uid]:
                return self._existing(self.folders, uid, "folder not found")
            case "POST", ["api", "folders"]:
                return self._create_folder(_object(body))
            case "PUT", ["api", "folders", uid]:
                return self._update_folder(uid, _object(body))
            case "GET", ["api", "dashboards", "uid", uid]:
                saved = self._existing(self.dashboards, uid, "Dashboard not found")
                return {"dashboard": saved["dashboard"],
                        "meta": {"folderUid": saved["folderUid"], "version": saved["dashboard"]["version"], "slug": uid}}
            case "POST", ["api", "dashboards", "db"]:
                return self._save_dashboard(_object(body))
        raise Refusal(404, f"no such endpoint in this fake: {method} {path}")

    @staticmethod
    def _existing(store: dict, uid: str, missing: str) -> dict:
        if uid not in store:
            raise Refusal(404, missing)
        return store[uid]

    # -- data sources (POST /api/datasources, PUT /api/datasources/uid/:uid) ----------------------------

    def _create_datasource(self, body: dict) -> dict:
        _check_datasource(body)
        uid = body.get("uid") or f"generated-{len(self.datasources) + 1}"
        if uid in self.datasources or any(stored["name"] == body["name"] for stored in self.datasources.values()):
            raise Refusal(409, "data source with the same name already exists")
        self.datasources[uid] = {**_datasource_fields(body), "id": next(self._ids), "uid": uid, "orgId": 1, "version": 1}
        return {"datasource": self._datasource_view(self.datasources[uid]), "id": self.datasources[uid]["id"],
                "message": "Datasource added", "name": body["name"]}

    def _update_datasource(self, uid: str, body: dict) -> dict:
        stored = self._existing(self.datasources, uid, "Data source not found")
        _check_datasource(body)
        if any(other["name"] == body["name"] for key, other in self.datasources.items() if key != uid):
            raise Refusal(409, "data source with the same name already exists")
        secure = stored["secure"] | _datasource_fields(body)["secure"]
        self.datasources[uid] = {**stored, **_datasource_fields(body), "secure": secure, "version": stored["version"] + 1}
        return {"datasource": self._datasource_view(self.datasources[uid]), "id": stored["id"],
                "message": "Datasource updated", "name": body["name"]}

    @staticmethod
    def _datasource_view(stored: dict) -> dict:
        """As GET returns it: secrets never, only which ones are set."""
        view = {key: value for key, value in stored.items() if key != "secure"}
        return {**view, "secureJsonFields": {key: True for key in stored["secure"]}, "readOnly": False}

    # -- folders (POST /api/folders, PUT /api/folders/:uid) --------------------------------------------

    def _create_folder(self, body: dict) -> dict:
        _allowed(body, {"uid", "title", "parentUid", "description"}, "folder")
        title = _text(body, "title")
        uid = body.get("uid") or f"folder-{len(self.folders) + 1}"
        _check_uid(uid)
        if uid in self.folders or any(folder["title"] == title for folder in self.folders.values()):
            raise Refusal(409, "a folder with the same name or uid already exists")
        self.folders[uid] = {"id": next(self._ids), "uid": uid, "title": title, "url": f"/dashboards/f/{uid}/", "version": 1}
        return self.folders[uid]

    def _update_folder(self, uid: str, body: dict) -> dict:
        stored = self._existing(self.folders, uid, "folder not found")
        _allowed(body, {"uid", "title", "version", "overwrite", "description"}, "folder")
        if not body.get("overwrite") and body.get("version") != stored["version"]:
            raise Refusal(412, "the folder has been changed by someone else", status="version-mismatch")
        self.folders[uid] = {**stored, "title": _text(body, "title"), "version": stored["version"] + 1}
        return self.folders[uid]

    # -- dashboards (POST /api/dashboards/db) ----------------------------------------------------------

    def _save_dashboard(self, body: dict) -> dict:
        _allowed(body, DASHBOARD_SAVE_FIELDS, "dashboards/db request (a dashboard goes inside \"dashboard\")")
        dashboard = body.get("dashboard")
        if not isinstance(dashboard, dict):
            raise Refusal(400, "bad request data: \"dashboard\" must be an object")
        title, uid = _text(dashboard, "title"), _text(dashboard, "uid")
        _check_uid(uid)
        for name, kind in (("overwrite", bool), ("folderUid", str), ("message", str)):
            if name in body and not isinstance(body[name], kind):
                raise Refusal(400, f"bad request data: {name} must be a {kind.__name__}")
        if not isinstance(dashboard.get("panels", []), list):
            raise Refusal(400, "bad request data: panels must be a list")
        folder_uid = body.get("folderUid", "")
        if folder_uid and folder_uid not in self.folders:
            raise Refusal(400, "folder not found")
        existing = self.dashboards.get(uid)
        if existing and not body.get("overwrite") and dashboard.get("version") != existing["dashboard"]["version"]:
            raise Refusal(412, "The dashboard has been changed by someone else", status="version-mismatch")
        if any(saved["dashboard"]["title"] == title and saved["folderUid"] == folder_uid
               for other, saved in self.dashboards.items() if other != uid):
            raise Refusal(412, "A dashboard with the same name in the folder already exists", status="name-exists")
        version = existing["dashboard"]["version"] + 1 if existing else 1
        number = existing["dashboard"]["id"] if existing else next(self._ids)
        self.dashboards[uid] = {"dashboard": {**dashboard, "id": number, "uid": uid, "version": version}, "folderUid": folder_uid}
        return {"id": number, "uid": uid, "url": f"/d/{uid}/", "status": "success", "version": version, "slug": uid}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return self._reply(400, {"message": "bad request data: not JSON"})
                authorized = self.headers.get("Authorization", "").startswith(("Bearer ", "Basic "))
                self._reply(*fake.answer(self.command, self.path, body, authorized))

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def _reply(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        return Handler


def _object(body: object) -> dict:
    if not isinstance(body, dict):
        raise Refusal(400, "bad request data: expected a JSON object")
    return body


def _text(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise Refusal(400, f"bad request data: {name} is required")
    return value


def _allowed(body: dict, fields: set[str], what: str) -> None:
    unknown = set(body) - fields
    if unknown:
        raise Refusal(400, f"bad request data: unknown field(s) {sorted(unknown)} in the {what}")


def _check_uid(uid: str) -> None:
    if not UID.match(uid):
        raise Refusal(400, "uid contains illegal characters or is too long")


def _check_datasource(body: dict) -> None:
    for name in ("name", "type", "access"):
        _text(body, name)
    if body["access"] not in ("proxy", "direct"):
        raise Refusal(400, "access must be proxy or direct")
    if "uid" in body:
        _check_uid(body["uid"])
    for name in ("jsonData", "secureJsonData"):
        if name in body and not isinstance(body[name], dict):
            raise Refusal(400, f"bad request data: {name} must be an object")


def _datasource_fields(body: dict) -> dict:
    return {"name": body["name"], "type": body["type"], "access": body["access"], "url": body.get("url", ""),
            "user": body.get("user", ""), "database": body.get("database", ""), "basicAuth": body.get("basicAuth", False),
            "isDefault": body.get("isDefault", False), "jsonData": body.get("jsonData", {}),
            "secure": dict(body.get("secureJsonData", {}))}
