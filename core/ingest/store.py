"""The ingest's database layer: load the state the rules need, write a batch plan in one transaction.

Append-only rows go in with COPY straight into their tables (their keys were decided by the plan,
against state that lives in this same database); the few rows of current state per batch go through
a COPY into a temporary staging table and one set-based upsert each.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from core.ingest.plan import (
    ATTRIBUTION_COLUMNS,
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    INTERVAL_COLUMNS,
    MESSAGE_COLUMNS,
    SAMPLE_COLUMNS,
    STATE_COLUMNS,
    STATUS_EVENT_COLUMNS,
    BatchPlan,
    IngestState,
    LiveCodes,
    MachineInfo,
    PlcSwitch,
)
from core.rules.counters import CounterPoint
from core.rules.sequencing import EdgeCursor
from inventory.rules.backflush import BackflushPlan
from inventory.services.backflush import plan_backflush, write_backflush
from kernel.db.copy import copy_rows
from kernel.logs import get_logger
from kernel.plant import CounterSpec, Plant
from mes.rules.attribution import DispatchWindow, overlaps
from mes.rules.workorders import LIFECYCLE, WorkOrderAction, WorkOrderStatus, should_auto_complete, transition
from mes.services.rollup_marks import ALWAYS_REDONE, mark_changed


log = get_logger("core.ingest.store")


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=False)


def register_machines(conn: psycopg.Connection, plant: Plant) -> None:
    """Upsert the plant's machines and counter specs (the registry the core validates against)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO machines (machine_id, site, area, line, protocol, ideal_cycle_s)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (machine_id) DO UPDATE SET site = EXCLUDED.site, area = EXCLUDED.area,
                   line = EXCLUDED.line, protocol = EXCLUDED.protocol, ideal_cycle_s = EXCLUDED.ideal_cycle_s""",
            [(m.id, m.site, m.area, m.line, m.protocol, m.ideal_cycle_s) for m in plant.machines],
        )
        cur.executemany(
            """INSERT INTO machine_counters (machine_id, counter, width_bits, max_rate_per_s) VALUES (%s, %s, %s, %s)
               ON CONFLICT (machine_id, counter) DO UPDATE SET width_bits = EXCLUDED.width_bits,
                   max_rate_per_s = EXCLUDED.max_rate_per_s""",
            [(m.id, name, spec.width, spec.max_rate_per_s) for m in plant.machines for name, spec in m.counters.items()],
        )


def load_registry(conn: psycopg.Connection) -> dict[str, MachineInfo]:
    with conn.cursor() as cur:
        cur.execute("SELECT machine_id, counter, width_bits, max_rate_per_s FROM machine_counters")
        counters: dict[str, dict[str, CounterSpec]] = {}
        for machine_id, counter, width, rate in cur:
            counters.setdefault(machine_id, {})[counter] = CounterSpec(width=width, max_rate_per_s=rate)
        cur.execute("SELECT machine_id, site, area, line FROM machines")
        registry = {row[0]: MachineInfo(row[1], row[2], row[3], counters.get(row[0], {})) for row in cur}
    conn.rollback()
    return registry


def load_state(conn: psycopg.Connection) -> IngestState:
    state = IngestState()
    with conn.cursor() as cur:
        cur.execute("SELECT edge_id, epoch, seq FROM edge_cursors")
        state.cursors = {edge: EdgeCursor(epoch, seq) for edge, epoch, seq in cur}
        cur.execute("SELECT machine_id, counter, value, ts FROM counter_state")
        state.counters = {(m, c): CounterPoint(value, ts) for m, c, value, ts in cur}
        cur.execute("""SELECT machine_id, state_code, state_ts, fault_code, fault_ts, last_seen, plc_order, plc_order_ts
                       FROM machine_live""")
        state.live = {row[0]: LiveCodes(*row[1:]) for row in cur}
    conn.rollback()
    return state


def find_ingested(conn: psycopg.Connection, positions: set[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
    if not positions:
        return set()
    edges, epochs, seqs = zip(*positions, strict=True)
    with conn.cursor() as cur:
        cur.execute(
            """SELECT m.edge_id, m.epoch, m.seq FROM ingested_messages m
               JOIN unnest(%s::text[], %s::bigint[], %s::bigint[]) AS p(edge_id, epoch, seq)
                 USING (edge_id, epoch, seq)""",
            (list(edges), list(epochs), list(seqs)),
        )
        found = {tuple(row) for row in cur}
    conn.rollback()
    return found


def load_order_statuses(conn: psycopg.Connection, work_orders: set[str]) -> dict[str, str]:
    """Status of each of these work orders that exists (the PLCs' reported order ids)."""
    if not work_orders:
        return {}
    rows = conn.execute("SELECT work_order_id, status FROM work_orders WHERE work_order_id = ANY(%s)",
                        (sorted(work_orders),)).fetchall()
    conn.rollback()
    return dict(rows)


def load_dispatch_windows(conn: psycopg.Connection, since: datetime | None) -> dict[str, list[DispatchWindow]]:
    """Dispatch windows per machine still open at `since` or later (none when there is nothing to attribute)."""
    if since is None:
        return {}
    rows = conn.execute(
        """SELECT machine_id, work_order_id, start_ts, end_ts, source FROM dispatches
           WHERE end_ts IS NULL OR end_ts > %s ORDER BY machine_id, start_ts, id""", (since,)).fetchall()
    conn.rollback()
    windows: dict[str, list[DispatchWindow]] = {}
    for machine_id, work_order, start, end, source in rows:
        window = DispatchWindow(machine_id, work_order, start, end, source)
        clashes = overlaps([*windows.get(machine_id, ()), window])
        if clashes:
            # The API never writes these; refusing the whole batch would stop ingest for everyone.
            log.error("overlapping dispatch windows; the later one is ignored", windows=[str(w) for w in clashes[0]])
            continue
        windows.setdefault(machine_id, []).append(window)
    return windows


def backflush(conn: psycopg.Connection, attributions: list[tuple]) -> BackflushPlan | None:
    """Stock moves for the batch's counts attributed to work orders; None when there are none.

    Reads outside the batch's transaction (and ends its own read), like load_state."""
    plan = plan_backflush(conn, attributions)
    conn.rollback()
    return plan


COMPLETE = WorkOrderAction("complete")


def complete_reached_work_orders(conn: psycopg.Connection, attributions: list[tuple]) -> list[str]:
    """Complete the auto-complete orders of this batch whose good units reached their quantity."""
    touched = sorted({row[4] for row in attributions if row[4] is not None})
    if not touched:
        return []
    completed = []
    with conn.transaction(), conn.cursor() as cur:
        candidates = cur.execute(
            """SELECT w.work_order_id, w.status, w.quantity, w.auto_complete, made.good, made.last_ts
               FROM work_orders w, LATERAL (SELECT coalesce(sum(a.good), 0) AS good, max(a.last_ts) AS last_ts
                                            FROM production_attributions a WHERE a.work_order_id = w.work_order_id) AS made
               WHERE w.work_order_id = ANY(%s) AND w.auto_complete FOR UPDATE OF w""", (touched,)).fetchall()
        for work_order, status, quantity, auto_complete, good, reached_at in candidates:
            if not should_auto_complete(quantity, int(good), auto_complete) or COMPLETE not in LIFECYCLE[WorkOrderStatus(status)]:
                continue
            after = transition(WorkOrderStatus(status), COMPLETE).value
            cur.execute("UPDATE work_orders SET status = %s WHERE work_order_id = %s", (after, work_order))
            # completed when the counted units reached the quantity: the source time, not the clock here
            cur.execute("""INSERT INTO work_order_events (work_order_id, ts, action, from_status, to_status, actor)
                           VALUES (%s, %s, 'complete', %s, %s, 'auto-complete')""", (work_order, reached_at, status, after))
            cur.execute("""UPDATE dispatches SET end_ts = greatest(start_ts, %s)
                           WHERE work_order_id = %s AND source = 'api' AND end_ts IS NULL""", (reached_at, work_order))
            completed.append(work_order)
    return completed


_STAGING = {
    "counter_state": ("(machine_id text, counter text, value bigint, ts timestamptz)",
                      """INSERT INTO counter_state (machine_id, counter, value, ts) SELECT * FROM staging_counter_state
                         ON CONFLICT (machine_id, counter) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts"""),
    "edge_cursors": ("(edge_id text, epoch bigint, seq bigint)",
                     """INSERT INTO edge_cursors (edge_id, epoch, seq) SELECT * FROM staging_edge_cursors
                        ON CONFLICT (edge_id) DO UPDATE SET epoch = EXCLUDED.epoch, seq = EXCLUDED.seq, updated_at = now()"""),
    "machine_live": ("(machine_id text, state_code integer, state_ts timestamptz, fault_code integer, fault_ts timestamptz, "
                     "last_seen timestamptz, plc_order text, plc_order_ts timestamptz)",
                     """INSERT INTO machine_live SELECT * FROM staging_machine_live
                        ON CONFLICT (machine_id) DO UPDATE SET state_code = EXCLUDED.state_code, state_ts = EXCLUDED.state_ts,
                            fault_code = EXCLUDED.fault_code, fault_ts = EXCLUDED.fault_ts, last_seen = EXCLUDED.last_seen,
                            plc_order = EXCLUDED.plc_order, plc_order_ts = EXCLUDED.plc_order_ts"""),
    "edge_status": ("(edge_id text, online boolean, epoch bigint, machines text[], changed_at timestamptz)",
                    """INSERT INTO edge_status SELECT * FROM staging_edge_status
                       ON CONFLICT (edge_id) DO UPDATE SET online = EXCLUDED.online, epoch = EXCLUDED.epoch,
                           machines = CASE WHEN cardinality(EXCLUDED.machines) > 0 THEN EXCLUDED.machines
                                           ELSE edge_status.machines END,
                           changed_at = EXCLUDED.changed_at"""),
}


def _upsert(cur: psycopg.Cursor, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    definition, upsert = _STAGING[table]
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS staging_{table} {definition} ON COMMIT DELETE ROWS")
    with cur.copy(f"COPY staging_{table} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(upsert)


def write_plan(conn: psycopg.Connection, plan: BatchPlan) -> None:
    state = plan.state
    with conn.transaction(), conn.cursor() as cur:
        copy_rows(cur, "ingested_messages", MESSAGE_COLUMNS, plan.messages)
        copy_rows(cur, "samples", SAMPLE_COLUMNS, plan.samples)
        copy_rows(cur, "production_intervals", INTERVAL_COLUMNS, plan.intervals)
        write_plc_switches(cur, plan.plc_switches)
        copy_rows(cur, "production_attributions", ATTRIBUTION_COLUMNS, plan.attributions)
        if plan.backflush is not None:
            write_backflush(cur, plan.backflush)
        copy_rows(cur, "machine_states", STATE_COLUMNS, plan.states)
        copy_rows(cur, "counter_events", EVENT_COLUMNS, plan.events)
        copy_rows(cur, "dead_letters", DEAD_LETTER_COLUMNS, plan.dead_letters)
        copy_rows(cur, "edge_status_events", STATUS_EVENT_COLUMNS, plan.status_events)
        _upsert(cur, "counter_state", [(m, c, state.counters[m, c].value, state.counters[m, c].ts) for m, c in plan.changed_counters])
        _upsert(cur, "edge_cursors", [(e, state.cursors[e].epoch, state.cursors[e].seq) for e in plan.changed_cursors])
        _upsert(cur, "machine_live", [(m, *_live_row(state.live[m])) for m in plan.changed_live])
        _upsert(cur, "edge_status", [(edge, *row) for edge, row in plan.edge_status.items()])
        if (earliest := plan.earliest_change()) is not None and earliest < datetime.now(UTC) - ALWAYS_REDONE:
            mark_changed(cur.execute, earliest)  # only late data: a row every batch would serialise the cores on it


def _live_row(live: LiveCodes) -> tuple:
    return (live.state_code, live.state_ts, live.fault_code, live.fault_ts, live.last_seen, live.plc_order, live.plc_order_ts)


START, PAUSE, RESUME = WorkOrderAction("start"), WorkOrderAction("pause"), WorkOrderAction("resume")


def write_plc_switches(cur: psycopg.Cursor, switches: list[PlcSwitch]) -> None:
    """Close and open the PLCs' dispatch windows in order, and move the orders' statuses with them:
    the order a PLC starts runs, the order it leaves pauses unless a window still runs it."""
    for switch in switches:
        left = cur.execute("""UPDATE dispatches SET end_ts = %s WHERE machine_id = %s AND source = 'plc' AND end_ts IS NULL
                              RETURNING work_order_id""", (switch.ts, switch.machine_id)).fetchall()
        if switch.reported:
            cur.execute("""INSERT INTO dispatches (machine_id, work_order_id, source, start_ts, reported_order, rejected_reason)
                           VALUES (%s, %s, 'plc', %s, %s, %s)""",
                        (switch.machine_id, switch.work_order_id, switch.ts, switch.reported, switch.rejected_reason))
        for work_order, action in [*((w, PAUSE) for (w,) in left if w is not None),
                                   *([(switch.work_order_id, None)] if switch.work_order_id else [])]:
            _follow_the_plc(cur, work_order, action, switch)


def _follow_the_plc(cur: psycopg.Cursor, work_order: str, action: WorkOrderAction | None, switch: PlcSwitch) -> None:
    """`action` PAUSE for the order the PLC left; None for the order it started (start or resume)."""
    (status, still_running), = cur.execute(
        """SELECT status, EXISTS (SELECT FROM dispatches d WHERE d.work_order_id = w.work_order_id AND d.end_ts IS NULL)
           FROM work_orders w WHERE work_order_id = %s FOR UPDATE""", (work_order,)).fetchall()
    allowed = LIFECYCLE[WorkOrderStatus(status)]
    chosen = next((a for a in ((START, RESUME) if action is None else (action,)) if a in allowed), None)
    if chosen is None or (chosen is PAUSE and still_running):
        return
    after = transition(WorkOrderStatus(status), chosen).value
    cur.execute("UPDATE work_orders SET status = %s WHERE work_order_id = %s", (after, work_order))
    cur.execute("""INSERT INTO work_order_events (work_order_id, ts, action, from_status, to_status, machine_id, actor)
                   VALUES (%s, %s, %s, %s, %s, %s, 'plc')""", (work_order, switch.ts, chosen.value, status, after, switch.machine_id))
