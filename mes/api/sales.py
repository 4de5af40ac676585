"""Sales: customers, sales orders, shipments, customer returns."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
