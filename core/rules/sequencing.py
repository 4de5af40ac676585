"""Which MQTT messages to ingest: each `(edge_id, epoch, seq)` exactly once, in order per edge.

An edge numbers its messages: `epoch` grows at each edge start, `seq` within an epoch. The core keeps
a cursor per edge, the highest (epoch, seq) it has ingested. A message above the cursor is new, if it is
where the edge can plausibly be: one far beyond (a seq more than `max_seq_gap` ahead, an epoch more than
`max_epoch_gap` ahead, a new epoch not starting near seq 1) is rejected, not adopted as the cursor,
since adopting it would turn every later real message into a regression (and 2^63−1 leaves no room
above it). One at or below the cursor is either a redelivery of a message already ingested (the broker
resends what the core had not acknowledged when it stopped) — a duplicate, acknowledged and skipped —
a reuse of an ingested position with other content (a publisher that restarted its numbering without a
new epoch) — rejected as a conflicting duplicate — or a message that claims an old place in the sequence
without having been ingested: rejected, since accepting it would put stale values after newer ones.
Every rejection says what a publisher must do to be heard again.

A message may name the one it follows in the edge's publication (`follows`). When that one is beyond
the cursor, the core does not have it (a broker that lost its state, a message lost on the way): the
message is held — neither ingested nor dead-lettered — and the edge, which keeps every message until the
core's acknowledgment passes it, is asked to publish again from the cursor on. Units are then counted in
the order they were made, and nothing is lost in the gap.

A message the core refuses for its machine (unknown to it, of another edge) is judged in its place all
the same: where it would have been ingested, it is of record there as a dead letter (`dead_lettered`), and a
message that follows it is not held. It never moves the cursor: a forged one must not turn the edge's
real messages into regressions.

Without a cursor (an edge never heard, or a database started afresh beside running edges) every
position is plausible.

Keys are not kept forever (the retention job, core.services.retention): a redelivery reaches the core within
the window the broker and the edge's queue keep a message unacknowledged, long before the keys' retention runs
out. Before it drops keys the job raises the edge's watermark (`pruned`) to the furthest position it drops, and
keeps every key beyond the edge's cursor (`prunable`), so the watermark never passes the cursor. A position at or
below the watermark without a key is then known: ingested long ago or never countable (at or below the cursor,
nothing is accepted anyway), so it is a duplicate, acknowledged and skipped; only a content conflict can no
longer be told there. A dead letter taken in again at such a position is refused: whether its position was
ingested can no longer be told, and taking it could count it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

# The edge never leaves more messages unpublished than its queue holds (MES_EDGE_QUEUE_MAX rows).
DEFAULT_MAX_SEQ_GAP = 1_000_000
# An edge adds one per start; a publisher numbering its epochs by Unix seconds adds ~3·10^7 a year.
DEFAULT_MAX_EPOCH_GAP = 100_000_000

NEW_EPOCH_ADVICE = "a publisher that restarts its numbering must start a new epoch (epoch + 1, seq from 1)"


class Verdict(str, Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    HOLD = "hold"  # follows a message not ingested yet: the edge publishes again from the cursor
    REJECT = "reject"


@dataclass(frozen=True, slots=True, order=True)
class EdgeCursor:
    epoch: int
    seq: int


class Plausible(NamedTuple):
    """How far ahead of its cursor an edge's next message may be."""

    max_seq_gap: int = DEFAULT_MAX_SEQ_GAP
    max_epoch_gap: int = DEFAULT_MAX_EPOCH_GAP


class Ingested(NamedTuple):
    """A position ingested before, with the digest of its content (None: not recorded, before 0008)."""

    digest: bytes | None


def judge_message(cursor: EdgeCursor | None, position: EdgeCursor, earlier: Ingested | None,
                  digest: bytes | None = None, plausible: Plausible = Plausible(),
                  follows: EdgeCursor | None = None, dead_lettered: EdgeCursor | None = None,
                  follows_ingested: bool = False, pruned: EdgeCursor | None = None) -> tuple[Verdict, str]:
    """`earlier`: the position's ingestion before, if any (a re-ingested dead letter may lie beyond the
    cursor); `digest`: this message's content digest; `follows`: the message it follows in the edge's
    publication, when it says, and `follows_ingested` whether that one was ingested; `dead_lettered`: the
    furthest position beyond the cursor of record as a dead letter refused for its machine; `pruned`: the edge's
    key watermark, at or below which keys may have been dropped."""
    if earlier is None and pruned is not None and position <= pruned:
        return Verdict.DUPLICATE, ""
    if earlier is not None:
        if earlier.digest is None or digest is None or earlier.digest == digest:
            return Verdict.DUPLICATE, ""
        return Verdict.REJECT, (f"conflicting duplicate: epoch {position.epoch} seq {position.seq} was ingested with "
                                f"other content, which stands; {NEW_EPOCH_ADVICE}")
    if cursor is None:
        return Verdict.ACCEPT, ""
    if position > cursor:
        verdict, reason = _ahead(cursor, position, plausible)
        if (verdict is Verdict.ACCEPT and follows is not None and follows > max(cursor, dead_lettered or cursor)
                and not follows_ingested):
            return Verdict.HOLD, (f"follows epoch {follows.epoch} seq {follows.seq}, not ingested (the last is seq "
                                  f"{cursor.seq} of epoch {cursor.epoch}): the edge publishes again from there")
        return verdict, reason
    if position.epoch < cursor.epoch:
        return Verdict.REJECT, f"epoch regression: epoch {position.epoch} after epoch {cursor.epoch} was ingested"
    return Verdict.REJECT, (f"seq regression: seq {position.seq} after seq {cursor.seq} of epoch {cursor.epoch} "
                            f"was ingested; {NEW_EPOCH_ADVICE}")


def judge_reingested(earlier: Ingested | None, digest: bytes | None,
                     pruned: EdgeCursor | None = None, position: EdgeCursor | None = None) -> tuple[Verdict, str]:
    """A dead letter taken in again after review (core.rules.review decided it may be): its position was
    of record as a dead letter, never ingested, so the cursor does not judge it and it does not move the
    cursor; the key alone keeps it from counting twice, so at or below the key watermark `pruned` it is refused."""
    if earlier is None and pruned is not None and position is not None and position <= pruned:
        return Verdict.REJECT, (f"its position (epoch {position.epoch} seq {position.seq}) is older than the kept message "
                                "keys (MES_RETENTION_MESSAGES_DAYS): whether it was ingested can no longer be told")
    if earlier is None:
        return Verdict.ACCEPT, ""
    if earlier.digest is None or digest is None or earlier.digest == digest:
        return Verdict.DUPLICATE, ""
    return Verdict.REJECT, "conflicting duplicate: its position was ingested with other content, which stands"


def _ahead(cursor: EdgeCursor, position: EdgeCursor, plausible: Plausible) -> tuple[Verdict, str]:
    if position.epoch - cursor.epoch > plausible.max_epoch_gap:
        return Verdict.REJECT, (f"epoch too far ahead: epoch {position.epoch} is more than {plausible.max_epoch_gap} "
                                f"after epoch {cursor.epoch}, the last ingested; the next epoch is {cursor.epoch + 1}")
    base = cursor.seq if position.epoch == cursor.epoch else 0
    if position.seq - base > plausible.max_seq_gap:
        where = f"seq {cursor.seq} of epoch {cursor.epoch}, the last ingested" if base else f"the start of epoch {position.epoch}"
        return Verdict.REJECT, (f"seq too far ahead: seq {position.seq} is more than {plausible.max_seq_gap} after "
                                f"{where}; {NEW_EPOCH_ADVICE}")
    return Verdict.ACCEPT, ""


def may_have_key(position: EdgeCursor, cursor: EdgeCursor | None, ahead: EdgeCursor | None) -> bool:
    """Whether a position can have been ingested: the ingest moves the edge's cursor to every position it takes
    (the cursor only rises), a dead letter taken in again raises the edge's `ahead` instead; beyond both, no key."""
    return (cursor is not None and position <= cursor) or (ahead is not None and position <= ahead)


def prunable(key: EdgeCursor, cursor: EdgeCursor | None) -> bool:
    """Whether the retention job may drop this key of the edge whose cursor is `cursor`: at or below it only (a
    dead letter taken in again beyond the cursor keeps its key until the cursor passes it)."""
    return cursor is not None and key <= cursor


def raised_watermark(pruned: EdgeCursor | None, dropped: EdgeCursor | None) -> EdgeCursor | None:
    """The edge's key watermark after the job drops keys up to `dropped` (the furthest of them): it only rises."""
    if dropped is None:
        return pruned
    return dropped if pruned is None else max(pruned, dropped)
