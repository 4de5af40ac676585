"""What waits for review (dead letters, quarantined counter steps) and the alert when it waits too long.

The ingest sets these aside (core.services.review decides them); production supervision watches them:
the board shows how much waits, and the `review_waiting` alert holds while the oldest has waited longer
than `MES_REVIEW_ALERT_AFTER_S` (default an hour) under an enabled review_waiting rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kernel.db.models import make_engine
from kernel.logs import get_logger
from mes.rules.alerts import AlertKind, RuleBook, Transition, passthrough, reconcile, review_overdue
from mes.services.alerts import load_rules, log_transitions, open_alerts, store

log = get_logger(__name__)


def waiting(session: Session) -> dict:
    """How much waits for review, and since when."""
    letters, oldest_letter = session.execute(text(
        "SELECT count(*), min(received_at) FROM dead_letters WHERE review = 'pending'")).one()
    steps = session.execute(text(
        """SELECT count(*) AS steps, min(ts) AS oldest,
                  coalesce(sum(quarantined) FILTER (WHERE counter = 'good' AND kind = 'jump'), 0) AS good,
                  coalesce(sum(quarantined) FILTER (WHERE counter = 'scrap' AND kind = 'jump'), 0) AS scrap,
                  coalesce(sum(quarantined) FILTER (WHERE counter = 'energy_wh' AND kind = 'jump'), 0) AS energy_wh
           FROM counter_events WHERE review = 'pending' AND quarantined > 0""")).one()
    return {"dead_letters": letters, "oldest_dead_letter": oldest_letter, "quarantined_steps": steps.steps,
            "oldest_quarantined_step": steps.oldest,
            "quarantined_units": {"good": steps.good, "scrap": steps.scrap, "energy_wh": steps.energy_wh}}


def evaluate_review(session: Session, allowed: timedelta, now: datetime | None = None) -> list[Transition]:
    """One round of the review_waiting alert; returns the transitions stored (committed)."""
    now = now or datetime.now(UTC)
    found = waiting(session)
    fact = review_overdue(found["dead_letters"], found["oldest_dead_letter"], found["quarantined_steps"],
                          found["oldest_quarantined_step"], now, allowed)
    current = open_alerts(session)
    conditions = passthrough(RuleBook(load_rules(session)), AlertKind.REVIEW_WAITING, [fact] if fact else [], current)
    stored = store(session, reconcile(current, conditions, now))
    session.commit()
    return stored


class ReviewAlerts:
    """The core's job for the review_waiting alert, in a database connection of its own."""

    def __init__(self, database_url: str, allowed_s: int):
        self.engine = make_engine(database_url)
        self.allowed = timedelta(seconds=allowed_s)

    def round(self) -> None:
        try:
            with Session(self.engine) as session:
                log_transitions(evaluate_review(session, self.allowed))
        except SQLAlchemyError as error:
            log.warning("review alert round failed; tried again next round", error=str(error))

    def close(self) -> None:
        self.engine.dispose()
