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
from typing import NamedTuple

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
