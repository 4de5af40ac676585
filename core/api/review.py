"""Review: dead letters and quarantined counter steps — list, filter, page, decide."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from core.services import review
from kernel.auth import Caller
from kernel.http import Db, Id, In, Reason
from mes.services.review_waiting import waiting as review_waiting

router = APIRouter(tags=["review"])

Page = Annotated[int, Query(gt=0, le=1_000)]
BeforeId = Annotated[int | None, Query(gt=0, le=2**63 - 1, description="page on: the last id of the page before")]


class QuarantinedStepOut(BaseModel):
    id: int
    machine_id: str
    counter: str
    ts: datetime
    kind: str
    previous_value: int | None
    value: int
    quarantined: int
    reason: str
    edge_id: str
    epoch: int
    seq: int
    review: Literal["pending", "accepted", "rejected"]
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_reason: str | None


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str
    size: int | None
    sha256: str | None
    edge_id: str | None
    machine_id: str | None
    review: Literal["pending", "reingested", "dismissed"]
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_reason: str | None
    payload: str
    payload_cut: bool


class DecisionIn(In):
    reason: Reason


class WaitingOut(BaseModel):
    dead_letters: int
    oldest_dead_letter: datetime | None
    quarantined_steps: int
    oldest_quarantined_step: datetime | None
    quarantined_units: dict[str, int]


@router.get("/review/quarantine", response_model=list[QuarantinedStepOut])
def list_quarantined(db: Db, review_status: Annotated[Literal["pending", "accepted", "rejected"] | None, Query(alias="review")] = "pending",
                     machine_id: Id | None = None, counter: Literal["good", "scrap", "energy_wh"] | None = None,
                     kind: Literal["jump", "out_of_range"] | None = None, since: datetime | None = None,
                     until: datetime | None = None, before_id: BeforeId = None, limit: Page = review.PAGE):
    """Counter steps the ingest quarantined (a climb faster than the machine can make, a reading beyond the
    counter's width), newest first, pending review unless `review` says otherwise."""
    return review.quarantined_steps(db, review=review_status, machine_id=machine_id, counter=counter, kind=kind,
                                    since=since, until=until, before_id=before_id, limit=limit)


@router.post("/review/quarantine/{step_id}/accept", response_model=QuarantinedStepOut)
def accept(step_id: int, body: DecisionIn, db: Db, caller: Caller):
    """Count a quarantined jump: its units are attributed, backflushed and costed once, like any others.
    The decision records the caller."""
    return review.decide_step(db, step_id, accept=True, by=caller.name, reason=body.reason)


@router.post("/review/quarantine/{step_id}/reject", response_model=QuarantinedStepOut)
def reject(step_id: int, body: DecisionIn, db: Db, caller: Caller):
    """Decide that a quarantined step counts nothing."""
    return review.decide_step(db, step_id, accept=False, by=caller.name, reason=body.reason)


@router.get("/review/dead-letters", response_model=list[DeadLetterOut])
def list_dead_letters(db: Db, review_status: Annotated[Literal["pending", "reingested", "dismissed"] | None, Query(alias="review")] = "pending",
                      reason: Annotated[str | None, Query(max_length=200)] = None, edge_id: Id | None = None,
                      machine_id: Id | None = None, since: datetime | None = None, until: datetime | None = None,
                      before_id: BeforeId = None, limit: Page = review.PAGE):
    """Messages the ingest could not use, with why (`reason` filters by a part of it), newest first."""
    return review.dead_letters(db, review=review_status, reason=reason, edge_id=edge_id, machine_id=machine_id,
                               since=since, until=until, before_id=before_id, limit=limit)


@router.post("/review/dead-letters/{letter_id}/dismiss", response_model=DeadLetterOut)
def dismiss(letter_id: int, body: DecisionIn, db: Db, caller: Caller):
    """Set a dead letter aside for good, with why."""
    return review.dismiss_dead_letter(db, letter_id, by=caller.name, reason=body.reason)


class ReingestIn(In):
    machine_id: Id
    reason: Reason


class RefusedLetter(BaseModel):
    id: int
    reason: str


class ReingestOut(BaseModel):
    reingested: list[int]
    refused: list[RefusedLetter]


@router.post("/review/dead-letters/{letter_id}/reingest", response_model=DeadLetterOut)
def reingest(letter_id: int, body: DecisionIn, db: Db, caller: Caller):
    """Take a dead letter in again once the plant file knows its machine: counted, attributed, backflushed and
    costed once, through the ingest's own plan. 409 with why when it cannot be without counting units twice
    (its machine's count moved past it, its position was ingested since, its payload was cut), or when the
    plant file still refuses it."""
    return review.reingest_dead_letter(db, letter_id, by=caller.name, reason=body.reason)


@router.post("/review/dead-letters/reingest", response_model=ReingestOut)
def reingest_machine(body: ReingestIn, db: Db, caller: Caller):
    """Take every pending dead letter of a machine in again, in (epoch, seq) order, in one unit of work: the way
    a machine the plant file did not know gets every unit between its dead letters counted once. Those that
    cannot be stay pending, each with why."""
    outcome = review.reingest(db, machine_id=body.machine_id, by=caller.name, reason=body.reason)
    return ReingestOut(reingested=outcome["reingested"],
                       refused=[RefusedLetter(id=letter, reason=why) for letter, why in sorted(outcome["refused"].items())])


@router.get("/review/waiting", response_model=WaitingOut)
def waiting(db: Db):
    """How much waits for review and since when (the board shows it; an alert fires when it waits too long)."""
    return review_waiting(db)
