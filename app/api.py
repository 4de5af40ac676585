"""The HTTP API (FastAPI; OpenAPI at /docs and /openapi.json), one router per area.

Errors are 4xx with a message a person can act on: 404 for something that does not exist, 409 for
a request that contradicts what is stored (a lifecycle step out of order, a duplicate id), 422 for
a malformed request. Nothing is written by a request that fails.
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from dashboards.api import board
from inventory.api import costing as inventory_costing
from inventory.api import masterdata as inventory_masterdata
from inventory.api import purchasing, reports, sales, stock, transfers
from kernel.db.models import make_engine
from kernel.rules.lifecycle import InvalidTransition
from kernel.rules.refusals import Conflict, NotFound
from mes.api import alerts, downtime, notifications, workorders
from mes.api import costing as work_order_costing
from mes.api import masterdata as production_masterdata
from mes.services.costing import running_cost

# workorders last: its `/work-orders/{id}/{action}` would otherwise catch the other routers' order paths
ROUTERS = (inventory_masterdata.router, production_masterdata.router, stock.router, purchasing.router, sales.router,
           transfers.router, inventory_costing.router, work_order_costing.router, reports.router, alerts.router,
           downtime.router, notifications.router, board.router, workorders.router)


def create_app(database_url: str) -> FastAPI:
    app = FastAPI(title="Open MES", version="0.1.0",
                  description="Master data, work orders and stock of the Open MES. Errors: 404 unknown, 409 conflict, 422 malformed.")
    app.state.sessions = sessionmaker(make_engine(database_url), expire_on_commit=False)
    app.state.production_cost = running_cost  # what inventory values finished-goods receipts at

    @app.exception_handler(NotFound)
    async def not_found(_: Request, error: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    @app.exception_handler(Conflict)
    @app.exception_handler(InvalidTransition)
    async def conflict(_: Request, error: ValueError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(error)})

    @app.exception_handler(IntegrityError)
    async def refused(_: Request, error: IntegrityError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": f"refused by the database: {error.orig}".strip()})

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
