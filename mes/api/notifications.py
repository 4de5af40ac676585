"""Alert rules and notification targets: rules per plant, line or machine; webhooks; deliveries."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from kernel.rules.refusals import as_invalid
from kernel.http import Db, In
from mes.rules.alerts import AlertRule
from mes.services import alert_engine, alerts, notifications

router = APIRouter()

PathId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class RuleIn(In):
    kind: str = Field(description="machine_down, offline, scrap_rate, low_rate, or an inventory kind (stock_shortage …)")
    severity: str = Field(description="info, warning or critical")
    scope: str = Field(default="plant", description='"plant", "line=<line id>" or "machine=<machine id>"')
    minutes: Decimal | None = Field(default=None, description="time limit (down, offline) or trailing window (scrap, rate)")
    percent: Decimal | None = Field(default=None, description="scrap_rate: limit in %; low_rate: % of ideal speed")
    min_units: int | None = Field(default=None, description="scrap_rate: units the window must hold before judging (20)")
    down_states: list[str] | None = Field(default=None, description="machine_down: states that count (idle, fault, blocked, starved)")
    enabled: bool = True


class RuleOut(BaseModel):
    rule_id: str
    kind: str
    severity: str
    scope: str
    minutes: Decimal | None
    percent: Decimal | None
    min_units: int | None
    down_states: list[str] | None
    enabled: bool


class WebhookIn(In):
    url: str = Field(description="http(s) URL the notifications are POSTed to")
    active: bool = True


class WebhookOut(BaseModel):
    webhook_id: str
    url: str
    active: bool
    created_at: datetime


class DeliveryOut(BaseModel):
    id: int
    key: str = Field(description="<alert id>:<event>, also the payload's key and the Idempotency-Key header")
    alert_event_id: int
    alert_id: int
    event: str
    kind: str
    subject: str
    target: str = Field(description="'mqtt' or 'webhook:<id>'")
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None


def _rule_out(rule: AlertRule) -> RuleOut:
    return RuleOut(rule_id=rule.rule_id, kind=rule.kind.value, severity=rule.severity.value, scope=str(rule.scope),
                   minutes=rule.minutes, percent=rule.percent, min_units=rule.min_units,
                   down_states=None if rule.down_states is None else sorted(rule.down_states), enabled=rule.enabled)


@router.get("/alert-rules", response_model=list[RuleOut])
def list_rules(db: Db):
    return [_rule_out(rule) for rule in alerts.load_rules(db)]


@router.put("/alert-rules/{rule_id}", response_model=RuleOut)
def put_rule(rule_id: PathId, body: RuleIn, db: Db):
    """Create or replace a rule. The most specific rule of a kind wins for a machine (machine, else line,
    else plant); a disabled one still wins, which exempts that machine or line. 422: the rule is malformed;
    409: its scope already has a rule of that kind; 404: the scope names an unknown machine or line."""
    with as_invalid():
        rule = AlertRule(rule_id, body.kind, body.severity, body.scope, body.minutes, body.percent, body.min_units,
                         None if body.down_states is None else frozenset(body.down_states), body.enabled)
    return _rule_out(alert_engine.put_rule(db, rule))


@router.delete("/alert-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: str, db: Db):
    """Its open alerts clear at the engine's next round."""
    alert_engine.delete_rule(db, rule_id)
    return Response(status_code=204)


@router.post("/alert-rules/defaults", response_model=list[RuleOut])
def install_default_rules(db: Db):
    """Add the default plant-wide machine rules (machine-down 10 min, offline 5 min, scrap-rate 5 % over 60 min,
    low-rate 80 % over 30 min) for each kind that has no plant-wide rule yet; returns those added."""
    return [_rule_out(rule) for rule in alert_engine.install_default_rules(db)]


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(db: Db):
    return notifications.list_webhooks(db)


@router.put("/webhooks/{webhook_id}", response_model=WebhookOut)
def put_webhook(webhook_id: PathId, body: WebhookIn, db: Db, request: Request):
    """Create or replace a webhook. Every alert event recorded while it is active is POSTed to it, in order,
    retried until it answers 2xx; the body's `key` (also the Idempotency-Key header) names the transition.
    Public hosts only: an address in a loopback, link-local or private range is refused here (422) and a
    host name resolving to one at send time, unless MES_WEBHOOK_ALLOW_PRIVATE allows its range."""
    allowed = request.app.state.webhook_allow_private
    with as_invalid():
        notifications.checked_url(body.url, allowed)
    return notifications.put_webhook(db, webhook_id, body.url, body.active, allowed)


@router.delete("/webhooks/{webhook_id}", response_model=WebhookOut)
def deactivate_webhook(webhook_id: str, db: Db):
    """Deactivates: nothing more is sent to it; its delivery history stays."""
    return notifications.deactivate_webhook(db, webhook_id)


@router.get("/notifications", response_model=list[DeliveryOut])
def list_notifications(db: Db, status: Literal["pending", "delivered"] | None = None, target: str | None = None,
                       limit: Annotated[int, Query(gt=0, le=10_000)] = 500):
    """The outbox, newest first: one row per alert event and target, with its attempts and last error."""
    return notifications.list_deliveries(db, status=status, target=target, limit=limit)
