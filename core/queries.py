"""Read-side queries shared by the demo, the tests and the benchmark."""

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


def running_work_orders(conn: psycopg.Connection) -> dict[str, tuple[str, int, int]]:
    """Per machine, the work order it runs now (the PLC's own, else the API's): (number, good so far, quantity)."""
    rows = conn.execute(
        """SELECT DISTINCT ON (d.machine_id) d.machine_id, d.work_order_id, w.quantity,
                  (SELECT coalesce(sum(good), 0) FROM production_attributions a WHERE a.work_order_id = d.work_order_id)
           FROM dispatches d JOIN work_orders w USING (work_order_id) WHERE d.end_ts IS NULL
           ORDER BY d.machine_id, d.source = 'plc' DESC""")
    return {machine: (number, int(good), quantity) for machine, number, quantity, good in rows}


def open_alert_rows(conn: psycopg.Connection, limit: int = 8) -> list[tuple[str, str, str, str, object]]:
    """The newest open alerts: (severity, kind, subject, detail, raised_at)."""
    return conn.execute(
        """SELECT severity, kind, subject, detail, raised_at FROM alerts WHERE status <> 'cleared'
           ORDER BY raised_at DESC LIMIT %s""", (limit,)).fetchall()


def alert_history(conn: psycopg.Connection) -> list[dict]:
    """Every alert in the order raised, with its lifecycle (for the demo's reckoning)."""
    rows = conn.execute(
        """SELECT kind, subject, severity, status, raised_at, acknowledged_by, cleared_at FROM alerts
           ORDER BY raised_at, alert_id""").fetchall()
    return [{"kind": kind, "subject": subject, "severity": severity, "status": status, "raised_at": raised.isoformat(),
             "acknowledged_by": acknowledged_by, "cleared_at": cleared and cleared.isoformat()}
            for kind, subject, severity, status, raised, acknowledged_by, cleared in rows]
