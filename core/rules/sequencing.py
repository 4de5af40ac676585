"""Which MQTT messages to ingest: each `(edge_id, epoch, seq)` exactly once, in order per edge.

An edge numbers its messages: `epoch` grows at each edge start, `seq` within an epoch. The core keeps
a cursor per edge, the highest (epoch, seq) it has ingested. A message above the cursor is new. One at
or below it is either a redelivery of a message already ingested (the broker resends what the core
had not acknowledged when it stopped) — a duplicate, acknowledged and skipped — or a message that
claims an old place in the sequence without having been ingested: rejected to the dead letters, since
accepting it would put stale values after newer ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    REJECT = "reject"


@dataclass(frozen=True, slots=True, order=True)
class EdgeCursor:
    epoch: int
    seq: int


def judge_message(cursor: EdgeCursor | None, position: EdgeCursor, already_ingested: bool) -> tuple[Verdict, str]:
    if cursor is None or position > cursor:
        return Verdict.ACCEPT, ""
    if already_ingested:
        return Verdict.DUPLICATE, ""
    if position.epoch < cursor.epoch:
        return Verdict.REJECT, f"epoch regression: epoch {position.epoch} after epoch {cursor.epoch} was ingested"
    return Verdict.REJECT, f"seq regression: seq {position.seq} after seq {cursor.seq} of epoch {cursor.epoch} was ingested"


def needs_lookup(cursor: EdgeCursor | None, position: EdgeCursor) -> bool:
    """Only positions at or below the cursor can have been ingested before."""
    return cursor is not None and position <= cursor
