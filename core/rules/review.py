"""Deciding a quarantined counter step. Pure.

A step is quarantined when the counter climbed more than the machine can make in the time it had
(`jump`) or read beyond the counter's width (`out_of_range`). A person who knows what happened decides:
- accept a jump: its climb counts, once, as the units the machine made at the step's instant (attributed,
  backflushed and costed like any others);
- reject either, with a reason: nothing counts.
An out-of-range reading is a raw value, not a climb: it can only be rejected. A step already decided is
never decided again.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Mapping
from typing import NamedTuple

from core.rules.sequencing import EdgeCursor, Verdict, judge_reingested
from kernel.rules.refusals import Conflict
from kernel.signals import COUNTERS

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
# The origin of the units an accepted step counts: ("review", step id, 1), apart from any message's.
REVIEW_ORIGIN = "review"


class QuarantinedStep(NamedTuple):
    id: int
    machine_id: str
    counter: str
    ts: datetime
    kind: str
    quarantined: int
    review: str


class AcceptedUnits(NamedTuple):
    machine_id: str
    ts: datetime
    good: int
    scrap: int
    energy_wh: int


def decidable(step: QuarantinedStep, accept: bool) -> None:
    """Refuses (Conflict) a decision that cannot be taken."""
    if step.review != PENDING:
        raise Conflict(f"counter step {step.id} was {step.review} already: a decision is taken once")
    if accept and step.kind != "jump":
        raise Conflict(f"counter step {step.id} is {step.kind}: a reading beyond the counter's width is not a "
                       "quantity; reject it")


def accepted_units(step: QuarantinedStep) -> AcceptedUnits:
    """What an accepted jump counts: its climb, on its counter, at its instant."""
    if step.counter not in COUNTERS:
        raise ValueError(f"not a counter: {step.counter!r}")
    units = {counter: step.quarantined if counter == step.counter else 0 for counter in COUNTERS}
    return AcceptedUnits(step.machine_id, step.ts, units["good"], units["scrap"], units["energy_wh"])


# Re-ingesting a dead letter ------------------------------------------------------------------------------
#
# A message dead-lettered because the plant file did not know its machine (or gave it to another edge) can be
# taken in again once the plant file is fixed, through the ingest's own plan, keyed by its (edge, epoch, seq)
# like any message. Counters are cumulative: a message counts the climb from the machine's last counted value
# to its own. So a dead letter may be taken in only while its machine's count has not moved past it — no
# message of the machine counted after it (on its edge: a later position; from another edge: received later).
# Otherwise the later message's delta already holds its units (or the count restarted from a first value
# after it, and its units are out of reach): taking it in would count them twice. Taken in in (epoch, seq)
# order, many at once, a machine's dead letters count every unit between them exactly once, and the ingest
# goes on from the last of them.

REINGESTED, DISMISSED = "reingested", "dismissed"


class Position(NamedTuple):
    edge_id: str
    epoch: int
    seq: int


class DeadLetter(NamedTuple):
    """What the rule must know of a dead letter. `refusal`: why the ingest, with the plant file as it is now,
    still refuses its payload (None: a data message of a known machine, from its edge); `position`: where it
    sits in its edge's sequence, when the payload says."""

    id: int
    review: str
    received_at: datetime
    cut: bool  # only the head of the payload was kept (it was larger than the bound)
    refusal: str | None
    machine_id: str | None
    position: Position | None


class Counted(NamedTuple):
    """The newest message of a machine counted on one edge."""

    edge_id: str
    epoch: int
    seq: int
    received_at: datetime


class Reingest(NamedTuple):
    taken: list[DeadLetter]  # in the order they count
    refused: dict[int, str]  # dead letter id -> why not


def _moved_past(letter: DeadLetter, position: Position, counted: Counted) -> bool:
    if counted.edge_id == position.edge_id:
        return (counted.epoch, counted.seq) > (position.epoch, position.seq)
    return counted.received_at > letter.received_at


def reingestable(letters: list[DeadLetter], ingested: set[Position], counted: dict[str, list[Counted]],
                 pruned: Mapping[str, EdgeCursor] | None = None) -> Reingest:
    """Which of `letters` to take in again, in the order they count, and why not the others. `ingested`:
    those of their positions that were ingested since; `counted`: per machine, its newest counted message
    on each edge; `pruned`: each edge's key watermark (core.rules.sequencing), at or below which whether a
    position was ingested can no longer be told."""
    refused: dict[int, str] = {}
    candidates: list[tuple[DeadLetter, Position]] = []
    for letter in letters:
        why = _why_not(letter, ingested, pruned or {})
        if why is not None or letter.position is None:
            refused[letter.id] = why or f"dead letter {letter.id} names no position in an edge's sequence"
        else:
            candidates.append((letter, letter.position))
    taken: list[DeadLetter] = []
    seen: dict[Position, int] = {}
    edge_of: dict[str, str] = {}
    latest = {machine: list(messages) for machine, messages in counted.items()}
    for letter, position in sorted(candidates, key=lambda pair: (pair[1], pair[0].id)):
        machine = letter.machine_id or ""
        if position in seen:
            refused[letter.id] = (f"dead letter {letter.id} is the same message as dead letter {seen[position]} "
                                  f"(edge {position.edge_id} epoch {position.epoch} seq {position.seq}), taken in with it: dismiss it")
            continue
        if edge_of.setdefault(machine, position.edge_id) != position.edge_id:
            refused[letter.id] = (f"dead letter {letter.id} is from edge {position.edge_id}, others of machine {machine} "
                                  f"from edge {edge_of[machine]}: take one edge's in at a time")
            continue
        later = next((c for c in latest.get(machine, ()) if _moved_past(letter, position, c)), None)
        if later is not None:
            refused[letter.id] = (
                f"dead letter {letter.id}: machine {machine}'s count has moved past it (edge {later.edge_id} epoch "
                f"{later.epoch} seq {later.seq} was counted after it): counters are cumulative, so that message's "
                "delta holds its units, or the count started afresh after it; taking it in would count them twice")
            continue
        seen[position] = letter.id
        taken.append(letter)
        latest.setdefault(machine, []).append(Counted(*position, letter.received_at))
    return Reingest(taken, refused)


def _why_not(letter: DeadLetter, ingested: set[Position], pruned: Mapping[str, EdgeCursor]) -> str | None:
    if letter.review != PENDING:
        return f"dead letter {letter.id} was {letter.review} already: a decision is taken once"
    if letter.cut:
        return (f"dead letter {letter.id} keeps only the head of its payload (it was larger than the bound): it cannot "
                "be taken in again")
    if letter.refusal is not None:
        return f"dead letter {letter.id} is still refused: {letter.refusal}"
    position = letter.position
    if position is not None and position in ingested:
        return (f"dead letter {letter.id}: edge {position.edge_id} epoch {position.epoch} seq {position.seq} was "
                "ingested since: its units are counted; dismiss it")
    if position is not None and position not in ingested:
        verdict, why = judge_reingested(None, None, pruned.get(position.edge_id), EdgeCursor(position.epoch, position.seq))
        if verdict is Verdict.REJECT:
            return f"dead letter {letter.id}: {why}"
    return None
