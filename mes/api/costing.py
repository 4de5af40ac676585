"""Valuation and cost: item values, work-order actual and standard cost, variances, tariffs, labour."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
