"""Liveness, readiness and the API's own metrics, without credentials (app/permissions.py PUBLIC says why).

`/health/live`: the process answers. `/health/ready`: the database answers and its schema is at the
revision this code migrates to (503 with the reason otherwise: a load balancer keeps traffic away from
an API whose database is away or not migrated yet). `/metrics`: the Prometheus exposition of the API's
requests, by method, route template and status (`mes_api_request_seconds`, docs/metrics.md): durations
and counts only, no path parameter, no caller, nothing of a request's content.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel.db.migrations import current_revision, head_revision
from kernel.metrics import SECONDS_BUCKETS

router = APIRouter(tags=["health"])

NOT_READY = {"description": "not ready: the database does not answer, or its schema is not migrated",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram("mes_api_request_seconds", "Duration of API requests",
                                         ["method", "route", "status"], registry=self.registry, buckets=SECONDS_BUCKETS)


class RequestTimer:
    """ASGI middleware: each HTTP request's duration, by its route's template (`unmatched` when none)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request_seconds.labels(scope["method"], route, str(status)).observe(time.monotonic() - started)


@router.get("/health/live")
def live() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/health/ready", responses={503: NOT_READY})
def ready(request: Request) -> JSONResponse:
    """Readiness: the database answers and its schema is migrated to this version's revision."""
    try:
        with request.app.state.sessions() as db:
            at = current_revision(db.connection())
    except OperationalError:
        return JSONResponse(status_code=503, content={"detail": "the database does not answer"})
    wanted = head_revision()
    if at != wanted:
        return JSONResponse(status_code=503, content={
            "detail": f"the database schema is at revision {at or 'none'}, this version needs {wanted}: run `mes db upgrade`"})
    return JSONResponse({"status": "ready", "revision": at})


@router.get("/metrics", response_class=Response,
            responses={200: {"description": "the Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(request: Request) -> Response:
    """The API's metrics in the Prometheus text format."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
