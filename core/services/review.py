"""Review: what the ingest set aside for people — dead letters and quarantined counter steps.

Listing filters and pages both (by id, newest first). Deciding a quarantined step (core.rules.review) is
one unit of work: the step is locked, checked undecided, and on acceptance its units are planned by the
ingest's own planner (`plan_counted`) — a production interval, its attribution to the work order whose
dispatch window holds the step's instant, the backflush of what was attributed, the auto-complete of an
order it brings to its quantity, a rollup mark — under an origin of their own (`review`, step id, 1), so
they count once and never collide with a message's. Costing follows from the attribution and the stock
moves like any other unit. A dead letter is dismissed with a reason, or taken in again once the plant
file is fixed, through the ingest's plan, when core.rules.review `reingestable` says its units cannot
count twice. Every decision records who, when and why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.ingest import store
from core.ingest.plan import Incoming, IngestLimits, IngestState, parse_batch, plan_batch, plan_counted
from core.rules.review import (
    ACCEPTED,
    DISMISSED,
    PENDING,
    REINGESTED,
    REJECTED,
    REVIEW_ORIGIN,
    Counted,
    DeadLetter,
    Position,
    QuarantinedStep,
    accepted_units,
    decidable,
    reingestable,
)
from kernel.rules.refusals import Conflict, NotFound
from mes.rules.attribution import CountStep

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
    now = now or datetime.now(UTC)
    if accept:
        _count(session, step, now)
    session.execute(text(
        """UPDATE counter_events SET review = :review, reviewed_by = :by, reviewed_at = :now, review_reason = :reason
           WHERE id = :id"""),
        {"id": step_id, "review": ACCEPTED if accept else REJECTED, "by": by, "now": now, "reason": reason})
    session.commit()
    return quarantined_steps(session, review=None, before_id=step_id + 1, limit=1)[0]


def _count(session: Session, step: QuarantinedStep, now: datetime) -> None:
    """The step's units, planned and written as a message's are (core.ingest.plan.plan_counted)."""
    units = CountStep(*accepted_units(step))
    connection = session.connection()
    context = store.load_context_for(connection, {units.machine_id}, units.ts, set(), set())
    store.write_plan(connection, plan_counted((REVIEW_ORIGIN, step.id, 1), units, context, IngestState(), now))


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
    _decided(session, [letter_id], DISMISSED, by, reason, now or datetime.now(UTC))
    session.commit()
    return dead_letters(session, review=None, before_id=letter_id + 1, limit=1)[0]


def _decided(session: Session, letter_ids: list[int], review: str, by: str, reason: str, now: datetime) -> None:
    session.execute(text(
        """UPDATE dead_letters SET review = :review, reviewed_by = :by, reviewed_at = :now, review_reason = :reason
           WHERE id = ANY(:ids)"""), {"ids": letter_ids, "review": review, "by": by, "now": now, "reason": reason})


def reingest_dead_letter(session: Session, letter_id: int, *, by: str, reason: str, now: datetime | None = None,
                         limits: IngestLimits = IngestLimits()) -> dict:
    """Take one dead letter in again (core.rules.review `reingestable`); Conflict says why not."""
    outcome = reingest(session, ids=[letter_id], by=by, reason=reason, now=now, limits=limits)
    if letter_id in outcome["refused"]:
        raise Conflict(outcome["refused"][letter_id])
    return dead_letters(session, review=None, before_id=letter_id + 1, limit=1)[0]


def reingest(session: Session, *, ids: list[int] | None = None, machine_id: str | None = None, by: str, reason: str,
             now: datetime | None = None, limits: IngestLimits = IngestLimits()) -> dict:
    """Take dead letters in again — those of `ids`, or every pending one of `machine_id` — once the plant file
    knows their machine: in one unit of work, through the ingest's own plan (`plan_batch(reingest=True)`:
    keyed by (edge, epoch, seq), counted from the machine's last counted value, attributed, backflushed,
    auto-completed, costed from what that writes), in (epoch, seq) order, each letter marked re-ingested with
    who, when and why. Those the rule refuses stay pending, with why in the answer."""
    now = now or datetime.now(UTC)
    connection = session.connection()
    rows = session.execute(text(
        """SELECT id, received_at, topic, payload, size, review, machine_id FROM dead_letters
           WHERE id = ANY(:ids) OR (machine_id = :machine AND review = 'pending') ORDER BY id FOR UPDATE"""),
        {"ids": ids or [], "machine": machine_id}).all()
    if ids and len(rows) < len(ids):
        missing = sorted(set(ids) - {row.id for row in rows})
        raise NotFound(f"no dead letter {', '.join(map(str, missing))}")
    registry = store.load_registry(connection)
    letters: list[DeadLetter] = []
    received: dict[int, Incoming] = {}
    for row in rows:
        payload = bytes(row.payload)
        received[row.id] = Incoming(row.topic, payload, row.received_at)
        parsed = parse_batch([received[row.id]], registry, limits)
        message = parsed.data[0].message if parsed.data else None
        refusal = next(iter(parsed.refusals()), "an edge status, not a data message" if message is None else None)
        letters.append(DeadLetter(row.id, row.review, row.received_at, row.size is not None and row.size > len(payload),
                                  refusal, message.machine if message else row.machine_id,
                                  Position(message.edge_id, message.epoch, message.seq) if message else None))
    machines = {letter.machine_id for letter in letters if letter.machine_id and letter.refusal is None}
    state = store.with_machines_locked(connection, IngestState(), machines)
    positions = {letter.position for letter in letters if letter.position is not None}
    ingested = {Position(*key) for key in store.find_ingested(connection, {tuple(p) for p in positions})}
    pruned = store.find_pruned(connection, {position.edge_id for position in positions})
    decision = reingestable(letters, ingested, _counted(session, machines, state), pruned)
    if decision.taken:
        parsed = parse_batch([received[letter.id] for letter in decision.taken], registry, limits)
        context = store.load_context_for(connection, parsed.machines(), parsed.earliest_sample(), parsed.reported_orders(),
                                         {tuple(letter.position) for letter in decision.taken if letter.position})
        plan = plan_batch(parsed, state, registry, context=context, now=now, limits=limits, reingest=True)
        store.write_plan(connection, plan)
        store.raise_ahead(connection, plan.messages)
        _decided(session, [letter.id for letter in decision.taken], REINGESTED, by, reason, now)
    session.commit()
    return {"reingested": [letter.id for letter in decision.taken], "refused": decision.refused}


def _counted(session: Session, machines: set[str], state: IngestState) -> dict[str, list[Counted]]:
    """Per machine ever counted, its newest counted message on each edge."""
    heard = sorted(machine for machine in machines if machine in state.live)
    counted: dict[str, list[Counted]] = {}
    for row in session.execute(text(
            """SELECT DISTINCT ON (machine_id, edge_id) machine_id, edge_id, epoch, seq, received_at FROM ingested_messages
               WHERE machine_id = ANY(:machines) ORDER BY machine_id, edge_id, epoch DESC, seq DESC"""),
            {"machines": heard}) if heard else ():
        counted.setdefault(row.machine_id, []).append(Counted(row.edge_id, row.epoch, row.seq, row.received_at))
    return counted
