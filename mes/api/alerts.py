"""Alerts: list, filter, acknowledge; the inventory conditions they are raised on."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
