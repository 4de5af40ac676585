"""Which edge may report a machine: the one the plant file assigns it to, and no other.

The broker's ACL already keeps an edge off other edges' topics (kernel/mqtt_access.py); this rule
holds on the core's side too, for a broker configured without them: data or status naming a machine
of another edge is refused (dead letter `edge not assigned`), so nothing it says is counted and no
machine's downtime follows a foreign status. A machine with no assignment on record (registered
before assignments existed, and not since) may be reported by any edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

EDGE_NOT_ASSIGNED = "edge not assigned"


def data_refusal(assigned_edge: str | None, reporting_edge: str, machine: str) -> str | None:
    """Why a data message of `reporting_edge` for `machine` is refused, or None when it may report it."""
    if assigned_edge is None or assigned_edge == reporting_edge:
        return None
    return f"{EDGE_NOT_ASSIGNED}: machine {machine!r} belongs to edge {assigned_edge!r}, not {reporting_edge!r}"


def status_refusal(assigned_edges: Mapping[str, str | None], reporting_edge: str, machines: Iterable[str]) -> str | None:
    """Why an edge status listing `machines` is refused: it names a machine another edge is assigned."""
    foreign = sorted({machine for machine in machines
                      if assigned_edges.get(machine) not in (None, reporting_edge)})
    if not foreign:
        return None
    return f"{EDGE_NOT_ASSIGNED}: edge {reporting_edge!r} announces machines of other edges: {', '.join(foreign)}"
