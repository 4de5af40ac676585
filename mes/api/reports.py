"""Inventory KPIs and reports, as JSON or as CSV / Excel downloads."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
