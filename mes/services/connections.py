"""Each machine's connection as `/machines` and the boards show it (`mes.rules.connections`), read from
what its edge last reported (`machine_connections`) and the edge's status (`edge_status`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from mes.rules.connections import EdgeNow, ReportedConnection, ShownConnection, shown_connection


def machine_connections(session: Session, machine_id: str | None = None) -> dict[str, ShownConnection]:
    """Per machine (or for `machine_id` only), its connection now; a machine no edge has reported the
    connection of has none."""
    rows = session.execute(text(
        """SELECT c.machine_id, c.status, c.detail, c.since, c.unusable, c.edge_id, c.epoch, c.received_at,
                  e.online, e.epoch AS edge_epoch, e.changed_at
           FROM machine_connections c LEFT JOIN edge_status e USING (edge_id)
           WHERE CAST(:machine AS text) IS NULL OR c.machine_id = :machine"""), {"machine": machine_id})
    return {row.machine_id: shown_connection(
                ReportedConnection(row.status, row.detail, row.since, row.unusable, row.edge_id, row.epoch, row.received_at),
                EdgeNow(row.online, row.edge_epoch, row.changed_at) if row.online is not None else None)
            for row in rows}
