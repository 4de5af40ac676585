"""What a machine's connection shows (`/machines`, the boards), from what its edge last reported
(`machine_connections`, written by the ingest) and the edge's own status (`edge_status`). Pure.

While the edge is online, the machine shows what the edge reported: `ok`, `unreachable`, `bad_config`
(the detail names the node or register and the status code) or `stale`. When the edge is offline (its
Last Will, or the offline status of a stopping edge, for the run that made the report or a later one),
nobody reads the machine: it shows `unreachable`, since the edge went offline, with a detail that says
so and what the edge reported last; never `ok`. An offline status of an earlier run, arriving late, does
not hide what a newer run reported.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

OK, UNREACHABLE = "ok", "unreachable"


class ReportedConnection(NamedTuple):
    status: str
    detail: str
    since: datetime | None
    unusable: dict[str, int]
    edge_id: str
    epoch: int | None
    received_at: datetime


class EdgeNow(NamedTuple):
    online: bool
    epoch: int | None
    changed_at: datetime


class ShownConnection(NamedTuple):
    status: str
    detail: str
    since: datetime | None
    unusable: dict[str, int]
    edge_id: str
    edge_online: bool
    reported_status: str  # what the edge reported last (the same as `status` while it is online)
    received_at: datetime


def edge_is_offline(reported: ReportedConnection, edge: EdgeNow | None) -> bool:
    """The edge that made the report is offline now: its latest status says so, for that run or a later one."""
    if edge is None or edge.online:
        return False
    return edge.epoch is None or reported.epoch is None or edge.epoch >= reported.epoch


def shown_connection(reported: ReportedConnection, edge: EdgeNow | None) -> ShownConnection:
    if edge is not None and edge_is_offline(reported, edge):
        last = f"{reported.status}: {reported.detail}" if reported.detail else reported.status
        return ShownConnection(UNREACHABLE, f"edge {reported.edge_id} offline; it last reported {last}", edge.changed_at,
                               reported.unusable, reported.edge_id, False, reported.status, reported.received_at)
    return ShownConnection(reported.status, reported.detail, reported.since, reported.unusable, reported.edge_id, True,
                           reported.status, reported.received_at)
