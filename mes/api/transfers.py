"""Transfers between locations (request → approve → ship → receive → post) and stocktakes."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
