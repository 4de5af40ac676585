"""Downtime and OEE: state intervals, stop reasons, pareto, the shift calendar, OEE by ISO 22400-2."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
