"""Alert rules and notification targets: rules per plant, line or machine; webhooks; deliveries."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from fastapi import APIRouter

router = APIRouter()
