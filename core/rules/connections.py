"""Which report of a machine's connection is the newer one, so that the core never replaces what an
edge said with something it said before (a redelivered or late retained status). Pure.

An edge numbers its runs (`epoch`, growing at every start) and stamps each status with its clock (`ts`):
of two reports by the same edge, the later epoch is newer, and within an epoch the later stamp. The
core's receipt decides only where the edge's own order says nothing: a report without epoch or stamp
(an edge from before they existed), or another edge's (a machine moved to another edge in the plant
file), which the later received replaces.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Report(NamedTuple):
    edge_id: str
    epoch: int | None  # the edge's run that reported it
    reported_at: datetime | None  # the status's stamp, the edge's clock
    received_at: datetime  # the core's receipt


def supersedes(new: Report, old: Report | None) -> bool:
    """True when `new` replaces `old` (None: nothing known yet); a report equal in order replaces it too
    (the same status again: its counts may have grown)."""
    if old is None:
        return True
    if new.edge_id == old.edge_id:
        if new.epoch is not None and old.epoch is not None and new.epoch != old.epoch:
            return new.epoch > old.epoch
        if new.reported_at is not None and old.reported_at is not None:
            return new.reported_at >= old.reported_at
    return new.received_at >= old.received_at
