"""The HTTP API (FastAPI; OpenAPI at /docs and /openapi.json): every domain's routers, mounted here.

Errors are 4xx with a message a person can act on, mapped here and nowhere else: each refusal
(kernel/rules/refusals.py) has one status: NotFound 404, Conflict 409 (a lifecycle step out of order, a
duplicate id, more than there is), Invalid 422 (a request malformed beyond what its schema says, as
FastAPI's own 422 for the schema). A write the database refuses (a constraint) is a 409 that names the
constraint, never the driver's text. Nothing is written by a request that fails.
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from core.api import review
from dashboards.api import board
from inventory.api import costing as inventory_costing
from inventory.api import masterdata as inventory_masterdata
from inventory.api import purchasing, reports, sales, stock, transfers
from kernel.db.models import make_engine
from kernel.rules.refusals import Conflict, Invalid, NotFound, Refused
from mes.api import alerts, downtime, notifications, workorders
from mes.api import costing as work_order_costing
from mes.api import masterdata as production_masterdata
from mes.services.costing import running_cost
from planning.api import plans

# workorders last: its `/work-orders/{id}/{action}` would otherwise catch the other routers' order paths
ROUTERS = (inventory_masterdata.router, production_masterdata.router, stock.router, purchasing.router, sales.router,
           transfers.router, inventory_costing.router, work_order_costing.router, reports.router, alerts.router,
           downtime.router, notifications.router, board.router, review.router, plans.router, workorders.router)


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


def create_app(database_url: str) -> FastAPI:
    app = FastAPI(title="Open MES", version="0.1.0",
                  description="Master data, work orders and stock of the Open MES. Errors: 404 unknown, 409 conflict, 422 malformed.")
    app.state.sessions = sessionmaker(make_engine(database_url), expire_on_commit=False)
    app.state.production_cost = running_cost  # what inventory values finished-goods receipts at

    @app.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> JSONResponse:
        return JSONResponse(status_code=_status_of(type(error)), content={"detail": str(error)})

    @app.exception_handler(IntegrityError)
    async def constrained(_: Request, error: IntegrityError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": constraint_refusal(error)})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
