"""Alerts: list, filter, acknowledge; the inventory conditions they are raised on."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kernel.auth import Caller
from kernel.http import Db, In, NamedInBody
from mes.services import alerts

router = APIRouter()


class AlertOut(BaseModel):
    alert_id: int
    kind: str
    subject: str
    rule_id: str | None
    severity: str
    status: Literal["active", "acknowledged", "cleared"]
    raised_at: datetime
    detail: str
    value: Decimal | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    cleared_at: datetime | None


class AcknowledgeIn(In):
    who: NamedInBody = None
    note: str = Field(default="", max_length=2000)


class AlertEventOut(BaseModel):
    event: str
    at: datetime
    by: str | None
    note: str | None


class TransitionOut(BaseModel):
    event: str
    alert: AlertOut


def _out(alert) -> AlertOut:
    return AlertOut(alert_id=alert.alert_id, kind=alert.kind.value, subject=alert.subject, rule_id=alert.rule_id,
                    severity=alert.severity.value, status=alert.status.value, raised_at=alert.raised_at, detail=alert.detail,
                    value=alert.value, acknowledged_by=alert.acknowledged_by, acknowledged_at=alert.acknowledged_at,
                    cleared_at=alert.cleared_at)


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(db: Db, status: Literal["open", "active", "acknowledged", "cleared"] | None = None,
                kind: str | None = None, subject: str | None = None, limit: Annotated[int, Query(gt=0, le=10_000)] = 500):
    """Newest first. status=open: active and acknowledged."""
    return [_out(alert) for alert in alerts.list_alerts(db, status=status, kind=kind, subject=subject, limit=limit)]


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(alert_id: int, db: Db, caller: Caller, body: AcknowledgeIn | None = None):
    """Record who saw the alert (the caller) and when; it still clears by itself when its condition ends."""
    return _out(alerts.acknowledge_alert(db, alert_id, caller.name, (body or AcknowledgeIn()).note))


@router.get("/alerts/{alert_id}/events", response_model=list[AlertEventOut])
def events(alert_id: int, db: Db):
    """The alert's audit trail: raised, acknowledged, cleared, with who and why."""
    return alerts.alert_events(db, alert_id)


@router.post("/alerts/evaluate-inventory", response_model=list[TransitionOut])
def evaluate_inventory(db: Db):
    """Evaluate the inventory alerts now (safety stock, slow-moving, overdue sales orders, expiring and
    expired lots, backflush shortages); returns what was raised or cleared."""
    return [TransitionOut(event=t.event.value, alert=_out(t.alert)) for t in alerts.evaluate_inventory(db)]
