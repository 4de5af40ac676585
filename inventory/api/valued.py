"""A request's session with every queued stock move valued first, for the routers that read values.

Valuing a production receipt needs its work order's running cost, which production (mes) knows: the
application puts that function in `app.state.production_cost` (app/api.py), so inventory imports no
production code.
"""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from inventory.services import valuation
from kernel.http import Db


def _valued(request: Request, db: Db) -> Session:
    valuation.value_queued(db, request.app.state.production_cost)
    return db


ValuedDb = Annotated[Session, Depends(_valued)]
