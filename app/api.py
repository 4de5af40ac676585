"""The HTTP API (FastAPI; OpenAPI at /docs and /openapi.json): every domain's routers, mounted here.

Errors are 4xx with a message a person can act on, mapped here and nowhere else: each refusal
(kernel/rules/refusals.py) has one status: NotFound 404, Conflict 409 (a lifecycle step out of order, a
duplicate id, more than there is), Invalid 422 (a request malformed beyond what its schema says, as
FastAPI's own 422 for the schema). A write the database refuses (a constraint) is a 409 that names the
constraint, never the driver's text. Nothing is written by a request that fails.

Every route needs credentials (401 without) and a role allowed to call it (403 otherwise), checked first,
before anything of the request is read: the table and the public routes are in app/permissions.py. Then no
NUL character and no over-long string anywhere in the request (app/hygiene.py, 422); bodies larger than
MES_API_MAX_BODY_BYTES are 413. A value the database cannot hold (a number out of its column's range) is
a 422, never a 500. Every 4xx has one model, `Error` in the OpenAPI: `detail`, a message, or for a
malformed request FastAPI's list of what is wrong where; every operation declares the statuses it answers.
"""

import re
from datetime import timedelta

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from core.api import review
from app import accounts
from app.health import ApiMetrics, RequestTimer
from app.health import router as health_router
from app.hygiene import JsonTooLarge, refuse_malformed_text
from app.permissions import PUBLIC, authorize

from dashboards.api import board, planner
from inventory.api import costing as inventory_costing
from inventory.api import masterdata as inventory_masterdata
from inventory.api import purchasing, reports, sales, stock, transfers
from kernel.auth import Authenticator, OidcConfig
from kernel.db.models import make_engine
from kernel.rules.refusals import Conflict, Invalid, NotFound, Refused
from mes.api import alerts, downtime, notifications, workorders
from mes.api import costing as work_order_costing
from mes.api import masterdata as production_masterdata
from kernel.settings import Settings
from mes.rules.webhooks import networks
from mes.services.costing import running_cost
from planning.api import kpis as planning_kpis
from planning.api import plans
from planning.services.plans import promise_sales_lines

# workorders last: its `/work-orders/{id}/{action}` would otherwise catch the other routers' order paths
ROUTERS = (health_router, inventory_masterdata.router, production_masterdata.router, stock.router, purchasing.router, sales.router,
           transfers.router, inventory_costing.router, work_order_costing.router, reports.router, alerts.router,
           downtime.router, notifications.router, board.router, planner.router, review.router, plans.router, planning_kpis.router, accounts.router,
           workorders.router)


STATUS = {NotFound: 404, Conflict: 409, Invalid: 422}


def _status_of(kind: type[Refused]) -> int:
    return next((status for refusal, status in STATUS.items() if issubclass(kind, refusal)), 409)


def constraint_refusal(error: IntegrityError) -> str:
    """What a person reads when the database refused a write: which rule of the schema, not the driver's words."""
    diagnostics = getattr(error.orig, "diag", None)
    constraint = getattr(diagnostics, "constraint_name", None)
    table = getattr(diagnostics, "table_name", None)
    where = f" ({constraint} on {table})" if constraint and table else ""
    return f"refused: the request conflicts with what is stored{where}"


def oidc_config(settings: Settings) -> OidcConfig | None:
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_jwks_url:
        raise ValueError("MES_OIDC_ISSUER is set without MES_OIDC_JWKS_URL: where are the identity provider's keys?")
    return OidcConfig(settings.oidc_issuer, settings.oidc_jwks_url, settings.oidc_audience, settings.oidc_roles_claim,
                      settings.oidc_name_claim)


def operations() -> list[tuple[str, str]]:
    """Every (method, path template) the routers serve, in the order they are mounted."""
    return [("GET", "/health"), ("GET", "/ready")] + [
        (method, _CONVERTER.sub(r"{\1}", route.path)) for router in ROUTERS for route in router.routes
        for method in sorted(route.methods - {"HEAD"})]


_CONVERTER = re.compile(r"\{(\w+):\w+\}")  # `{name:path}` in a route is `{name}` in the OpenAPI


ERRORS = {"401": "no credentials, or credentials not accepted", "403": "the caller's roles may not make this call",
          "404": "something the request names does not exist", "409": "the request conflicts with what is stored",
          "422": "the request is malformed or refused by a rule"}
BODY_ERRORS = {"400": "the request body is not JSON", "413": "the request body is larger than MES_API_MAX_BODY_BYTES"}
_VALIDATION_ERROR = {"title": "ValidationError", "type": "object", "required": ["loc", "msg", "type"], "properties": {
    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}, "msg": {"type": "string"},
    "type": {"type": "string"}}}


def _documented_security(app: FastAPI) -> dict:
    """The OpenAPI document with the ways to authenticate, required by every operation but the public ones."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "an API key (mes_…) or an access token of the configured identity provider"},
            "basic": {"type": "http", "scheme": "basic", "description": "a local user's id and password"}}
        schemas = schema["components"].setdefault("schemas", {})
        schemas["Error"] = {"title": "Error", "type": "object", "required": ["detail"], "properties": {"detail": {
            "title": "Detail", "description": "what is wrong; for a malformed request, what is wrong where",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}]}}}
        schemas.setdefault("ValidationError", _VALIDATION_ERROR)
        for path, operations_of_path in schema.get("paths", {}).items():
            for method, operation in operations_of_path.items():
                if (method.upper(), path) in PUBLIC:
                    continue
                operation["security"] = [{"bearer": []}, {"basic": []}]
                statuses = {**ERRORS, **(BODY_ERRORS if "requestBody" in operation else {})}
                for status, description in statuses.items():
                    operation["responses"][status] = {"description": description, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(database_url: str, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="Open MES", version="0.1.0", dependencies=[Depends(authorize), Depends(refuse_malformed_text)],
                  description="Master data, work orders and stock of the Open MES. Errors: 401 no or unknown credentials, "
                              "403 a role not allowed, 404 unknown, 409 conflict, 413 body too large, 422 malformed.")
    app.state.sessions = sessionmaker(make_engine(database_url), expire_on_commit=False)
    app.state.authenticator = Authenticator(app.state.sessions, oidc_config(settings))
    app.state.production_cost = running_cost  # what inventory values finished-goods receipts at
    app.state.promise_sales_lines = promise_sales_lines  # what an entered sales order's lines are promised
    app.state.webhook_allow_private = networks(settings.webhook_allow_private)
    app.state.max_period = timedelta(days=settings.api_max_period_days)
    app.openapi = lambda: _documented_security(app)
    app.add_middleware(JsonTooLarge, max_body_bytes=settings.api_max_body_bytes)
    app.state.metrics = ApiMetrics()
    app.add_middleware(RequestTimer, metrics=app.state.metrics)  # outermost: a refused body is timed too

    @app.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> JSONResponse:
        return JSONResponse(status_code=_status_of(type(error)), content={"detail": str(error)})

    @app.exception_handler(IntegrityError)
    async def constrained(_: Request, error: IntegrityError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": constraint_refusal(error)})

    @app.exception_handler(DataError)
    async def out_of_range(_: Request, error: DataError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": "refused: a value is out of the range that can be stored"})

    @app.get("/health")
    def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"description": "the database does not answer"}})
    def ready() -> JSONResponse:
        """Readiness: the database answers."""
        try:
            with app.state.sessions() as db:
                db.execute(text("SELECT 1"))
        except OperationalError:
            return JSONResponse(status_code=503, content={"detail": "the database does not answer"})
        return JSONResponse({"status": "ready"})

    for router in ROUTERS:
        app.include_router(router)
    return app
