"""Review: what the ingest set aside for people — dead letters and quarantined counter steps.

Listing filters and pages both (by id, newest first). Deciding a quarantined step (core.rules.review) is
one unit of work: the step is locked, checked undecided, and on acceptance its units are written as the
ingest writes a message's — a production interval, its attribution to the work order whose dispatch
window holds the step's instant, the backflush of what was attributed, a rollup mark — under an origin of
their own (`review`, step id, 1), so they count once and never collide with a message's. Costing follows
from the attribution and the stock moves like any other unit. A dead letter is dismissed with a reason.
Every decision records who, when and why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.ingest.rows import ProductionInterval
from core.ingest.store import load_dispatch_windows, write_intervals
from core.rules.review import ACCEPTED, PENDING, REJECTED, REVIEW_ORIGIN, QuarantinedStep, accepted_units, decidable
from inventory.services.backflush import backflush_attributed, write_backflush
from kernel.db.copy import copy_rows
from kernel.rules.refusals import Conflict, NotFound
from mes.rules.attribution import AttributionRow, CountStep, attribute
from mes.services.rollup_marks import mark_changed

PAGE = 100

_STEP_COLUMNS = """id, machine_id, counter, ts, kind, previous_value, value, quarantined, reason, edge_id, epoch, seq,
                   review, reviewed_by, reviewed_at, review_reason"""
_LETTER_COLUMNS = """id, received_at, topic, reason, size, encode(sha256, 'hex') AS sha256, edge_id, machine_id,
                     review, reviewed_by, reviewed_at, review_reason, payload"""


def _filters(**given: object) -> tuple[str, dict]:
    clauses = {
        "review": "review = :review", "machine_id": "machine_id = :machine_id", "edge_id": "edge_id = :edge_id",
        "counter": "counter = :counter", "kind": "kind = :kind", "reason": "position(:reason in reason) > 0",
        "before_id": "id < :before_id",
    }
    used = {name: value for name, value in given.items() if value is not None and name in clauses}
    where = [clauses[name] for name in used]
    return " AND ".join(where) or "true", used


def quarantined_steps(session: Session, *, review: str | None = PENDING, machine_id: str | None = None,
                      counter: str | None = None, kind: str | None = None, since: datetime | None = None,
                      until: datetime | None = None, before_id: int | None = None, limit: int = PAGE) -> list[dict]:
    """Counter steps that were quarantined, newest first; page on with `before_id` = the last id seen."""
    where, params = _filters(review=review, machine_id=machine_id, counter=counter, kind=kind, before_id=before_id)
    rows = session.execute(text(
        f"""SELECT {_STEP_COLUMNS} FROM counter_events
            WHERE quarantined > 0 AND {where} AND ts >= coalesce(CAST(:since AS timestamptz), '-infinity') AND ts < coalesce(CAST(:until AS timestamptz), 'infinity')
            ORDER BY id DESC LIMIT :limit"""), {**params, "since": since, "until": until, "limit": limit})
    return [dict(row._mapping) for row in rows]


def decide_step(session: Session, step_id: int, *, accept: bool, by: str, reason: str, now: datetime | None = None) -> dict:
    """Accept (count its units, once) or reject a quarantined step."""
    row = session.execute(text(
        "SELECT id, machine_id, counter, ts, kind, quarantined, review FROM counter_events WHERE id = :id AND quarantined > 0 "
        "FOR UPDATE"), {"id": step_id}).one_or_none()
    if row is None:
        raise NotFound(f"no quarantined counter step {step_id}")
    step = QuarantinedStep(**row._mapping)
    decidable(step, accept)
    if accept:
        _count(session, step)
    session.execute(text(
        """UPDATE counter_events SET review = :review, reviewed_by = :by, reviewed_at = :now, review_reason = :reason
           WHERE id = :id"""),
        {"id": step_id, "review": ACCEPTED if accept else REJECTED, "by": by, "now": now or datetime.now(UTC), "reason": reason})
    session.commit()
    return quarantined_steps(session, review=None, before_id=step_id + 1, limit=1)[0]


def _count(session: Session, step: QuarantinedStep) -> None:
    units = accepted_units(step)
    origin = (REVIEW_ORIGIN, step.id, 1)
    write_intervals(session, [ProductionInterval(units.machine_id, units.ts, units.ts, units.good, units.scrap,
                                                 units.energy_wh, *origin)])
    windows = load_dispatch_windows(session.connection(), units.ts).get(units.machine_id, [])
    attributions = [AttributionRow(*origin, *attribution)
                    for attribution in attribute([CountStep(*units)], windows)]
    copy_rows(session, "production_attributions", attributions)
    backflush = backflush_attributed(session, attributions)
    if backflush is not None:
        write_backflush(session, backflush)
    mark_changed(session.connection().exec_driver_sql, units.ts)


def dead_letters(session: Session, *, review: str | None = PENDING, reason: str | None = None, edge_id: str | None = None,
                 machine_id: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 before_id: int | None = None, limit: int = PAGE) -> list[dict]:
    """Dead letters, newest first, with the head of their payload as text where it is UTF-8."""
    where, params = _filters(review=review, reason=reason, edge_id=edge_id, machine_id=machine_id, before_id=before_id)
    rows = session.execute(text(
        f"""SELECT {_LETTER_COLUMNS} FROM dead_letters
            WHERE {where} AND received_at >= coalesce(CAST(:since AS timestamptz), '-infinity') AND received_at < coalesce(CAST(:until AS timestamptz), 'infinity')
            ORDER BY id DESC LIMIT :limit"""), {**params, "since": since, "until": until, "limit": limit})
    return [_letter(row._mapping) for row in rows]


def _letter(row) -> dict:
    letter = dict(row)
    payload = bytes(letter.pop("payload"))
    letter["payload"] = payload.decode("utf-8", errors="replace")
    letter["payload_cut"] = letter["size"] is not None and letter["size"] > len(payload)
    return letter


def dismiss_dead_letter(session: Session, letter_id: int, *, by: str, reason: str, now: datetime | None = None) -> dict:
    review = session.execute(text("SELECT review FROM dead_letters WHERE id = :id FOR UPDATE"), {"id": letter_id}).scalar()
    if review is None:
        raise NotFound(f"no dead letter {letter_id}")
    if review != PENDING:
        raise Conflict(f"dead letter {letter_id} was {review} already")
    session.execute(text(
        """UPDATE dead_letters SET review = 'dismissed', reviewed_by = :by, reviewed_at = :now, review_reason = :reason
           WHERE id = :id"""), {"id": letter_id, "by": by, "now": now or datetime.now(UTC), "reason": reason})
    session.commit()
    return dead_letters(session, review=None, before_id=letter_id + 1, limit=1)[0]
