"""Purchasing: suppliers, purchase orders with approvals, goods receipts, returns to suppliers."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
