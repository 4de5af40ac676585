"""Read-side queries of the ingest's tables, shared by the demo, the tests and the benchmark."""

from __future__ import annotations

import psycopg

COUNTERS = ("good", "scrap", "energy_wh")


def recorded_totals(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """Production recorded per machine: the sum of every committed interval (0 for silent machines)."""
    rows = conn.execute(
        """SELECT m.machine_id, coalesce(sum(p.good), 0), coalesce(sum(p.scrap), 0), coalesce(sum(p.energy_wh), 0)
           FROM machines m LEFT JOIN production_intervals p USING (machine_id)
           GROUP BY m.machine_id ORDER BY m.machine_id"""
    ).fetchall()
    return {machine: dict(zip(COUNTERS, map(int, totals), strict=True)) for machine, *totals in rows}


def counter_values(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """The last raw counter value the core accepted, per machine and counter."""
    values: dict[str, dict[str, int]] = {}
    for machine, counter, value in conn.execute("SELECT machine_id, counter, value FROM counter_state"):
        values.setdefault(machine, {})[counter] = value
    return values


def live_states(conn: psycopg.Connection) -> dict[str, tuple[int | None, int | None]]:
    return {m: (s, f) for m, s, f in conn.execute("SELECT machine_id, state_code, fault_code FROM machine_live")}


def dead_letter_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]


def pending_quarantine(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM counter_events WHERE review = 'pending'").fetchone()[0]
