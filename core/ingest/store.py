"""The ingest's database layer: load what a batch's plan needs, and write the plan's rows as they are.

Loads run inside the batch's write transaction (`load_context`), with the rows another writer could
change locked: the work orders the batch can move (FOR UPDATE) and the lot balances its backflush takes
(inventory.services.backflush). The write (`write_plan`) decides nothing: append-only rows go in with
COPY straight into their tables; the few rows of current state go through a COPY into a temporary
staging table and one set-based upsert each; status and dispatch changes are set-based updates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.ingest.plan import BatchContext, BatchPlan, IngestState, LiveCodes, MachineInfo, ParsedBatch, WorkOrderFacts
from core.ingest.rows import SAMPLE_TYPES, IngestedMessage, MachineConnectionRow, ProductionInterval
from core.rules.hourly import hourly_totals
from core.rules.counters import CounterPoint
from core.rules.sequencing import EdgeCursor, Ingested, may_have_key
from inventory.services.backflush import stock_for, write_backflush
from kernel.db.copy import copy_rows
from kernel.logs import get_logger
from kernel.plant import CounterSpec, Machine, Plant
from mes.rules.attribution import DispatchWindow, overlaps
from mes.services.rollup_marks import mark_changed

log = get_logger("core.ingest.store")


def register_machines(connection: Connection, plant: Plant) -> None:
    """Upsert the plant's machines and counter specs (the registry the core validates against)."""
    connection.execute(text(
        """INSERT INTO machines (machine_id, site, area, line, protocol, ideal_cycle_s, edge_id)
           VALUES (:id, :site, :area, :line, :protocol, :cycle, :edge)
           ON CONFLICT (machine_id) DO UPDATE SET site = EXCLUDED.site, area = EXCLUDED.area,
               line = EXCLUDED.line, protocol = EXCLUDED.protocol, ideal_cycle_s = EXCLUDED.ideal_cycle_s,
               edge_id = EXCLUDED.edge_id"""),
        [{"id": m.id, "site": m.site, "area": m.area, "line": m.line, "protocol": m.protocol, "cycle": m.ideal_cycle_s,
          "edge": m.edge_id} for m in _in_lock_order(plant)])
    connection.execute(text(
        """INSERT INTO machine_counters (machine_id, counter, width_bits, max_rate_per_s) VALUES (:id, :counter, :width, :rate)
           ON CONFLICT (machine_id, counter) DO UPDATE SET width_bits = EXCLUDED.width_bits,
               max_rate_per_s = EXCLUDED.max_rate_per_s"""),
        [{"id": m.id, "counter": name, "width": spec.width, "rate": spec.max_rate_per_s}
         for m in _in_lock_order(plant) for name, spec in m.counters.items()])


def _in_lock_order(plant: Plant) -> list[Machine]:
    """The machines by id: the order the ingest locks their rows in (`with_machines_locked`), so a
    registration beside a running core never deadlocks with it."""
    return sorted(plant.machines, key=lambda machine: machine.id)


def load_registry(connection: Connection) -> dict[str, MachineInfo]:
    counters: dict[str, dict[str, CounterSpec]] = {}
    for machine_id, counter, width, rate in connection.execute(text(
            "SELECT machine_id, counter, width_bits, max_rate_per_s FROM machine_counters")):
        counters.setdefault(machine_id, {})[counter] = CounterSpec(width=width, max_rate_per_s=rate)
    return {machine_id: MachineInfo(site, area, line, counters.get(machine_id, {}), edge_id)
            for machine_id, site, area, line, edge_id in connection.execute(text(
                "SELECT machine_id, site, area, line, edge_id FROM machines"))}


_CONNECTION_COLUMNS = [f"{column}::text" if column == "unusable" else column for column in MachineConnectionRow._fields]


def load_state(connection: Connection) -> IngestState:
    return IngestState(
        cursors={edge: EdgeCursor(epoch, seq) for edge, epoch, seq in connection.execute(text(
            "SELECT edge_id, epoch, seq FROM edge_cursors"))},
        counters={(machine, counter): CounterPoint(value, ts) for machine, counter, value, ts in connection.execute(text(
            "SELECT machine_id, counter, value, ts FROM counter_state"))},
        live={row.machine_id: LiveCodes(row.state_code, row.state_ts, row.fault_code, row.fault_ts, row.last_seen,
                                        row.plc_order, row.plc_order_ts)
              for row in connection.execute(text(
                  """SELECT machine_id, state_code, state_ts, fault_code, fault_ts, last_seen, plc_order, plc_order_ts
                     FROM machine_live"""))},
        connections={row.machine_id: MachineConnectionRow(*row) for row in connection.execute(text(
            f"SELECT {', '.join(_CONNECTION_COLUMNS)} FROM machine_connections"))},
    )


def with_machines_locked(connection: Connection, state: IngestState, machines: set[str]) -> IngestState:
    """`state` with the counter points and live codes of `machines` as the database has them, the machines'
    rows locked until the caller commits. The ingest and a re-ingested dead letter (core.services.review)
    both write these rows; whichever comes second starts from what the first committed, so the core's
    cache never counts from a point another writer has moved on."""
    fresh = state.copy()
    if not machines:
        return fresh
    ordered = sorted(machines)
    connection.execute(text("SELECT 1 FROM machines WHERE machine_id = ANY(:machines) ORDER BY machine_id FOR NO KEY UPDATE"),
                       {"machines": ordered})
    for machine, counter, value, ts in connection.execute(text(
            "SELECT machine_id, counter, value, ts FROM counter_state WHERE machine_id = ANY(:machines)"),
            {"machines": ordered}):
        fresh.counters[machine, counter] = CounterPoint(value, ts)
    for row in connection.execute(text(
            """SELECT machine_id, state_code, state_ts, fault_code, fault_ts, last_seen, plc_order, plc_order_ts
               FROM machine_live WHERE machine_id = ANY(:machines)"""), {"machines": ordered}):
        fresh.live[row.machine_id] = LiveCodes(row.state_code, row.state_ts, row.fault_code, row.fault_ts, row.last_seen,
                                               row.plc_order, row.plc_order_ts)
    return fresh


def load_context(connection: Connection, parsed: ParsedBatch, state: IngestState) -> BatchContext:
    """What `plan_batch` needs for `parsed`, read in the caller's (write) transaction."""
    return load_context_for(connection, parsed.machines(), parsed.earliest_sample(), parsed.reported_orders(),
                            parsed.positions_to_look_up(state.cursors))


def load_context_for(connection: Connection, machines: set[str], since: datetime | None, reported_orders: set[str],
                     positions: set[tuple[str, int, int]]) -> BatchContext:
    """What a plan needs to count on `machines` from `since` on, where PLCs report `reported_orders`, and
    which of `positions` were ingested."""
    windows = load_dispatch_windows(connection, since)
    # the orders the batch can count for, start, pause or complete: those dispatched to its machines, and
    # those its PLCs report; their windows on other machines only tell whether they still run there
    candidates = reported_orders | {w.work_order for m in machines for w in windows.get(m, ()) if w.work_order}
    work_orders = load_work_orders(connection, candidates)
    needs, places, balances = stock_for(connection, work_orders, machines) if work_orders else ({}, {}, {})
    ingested = find_ingested(connection, positions)
    return BatchContext(ingested, windows, work_orders, needs, places, balances,
                        find_pruned(connection, {edge for edge, _, _ in positions}))


def find_ingested(connection: Connection, positions: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], Ingested]:
    """Which of `positions` were ingested, with their digests. Only a position at or below its edge's cursor or
    a dead letter's taken in again (`ingested_ahead`) can have a key (core.rules.sequencing.may_have_key), so the
    others, a batch's new messages, are not looked up: a look-up probes every day partition of the table."""
    if not positions:
        return {}
    edges = sorted({edge for edge, _, _ in positions})
    bounds = {row.edge_id: (EdgeCursor(row.epoch, row.seq) if row.epoch is not None else None,
                            EdgeCursor(row.ahead_epoch, row.ahead_seq) if row.ahead_epoch is not None else None)
              for row in connection.execute(text(
                  """SELECT e.edge_id, c.epoch, c.seq, a.epoch AS ahead_epoch, a.seq AS ahead_seq
                     FROM unnest(CAST(:edges AS text[])) AS e(edge_id)
                     LEFT JOIN edge_cursors c USING (edge_id) LEFT JOIN ingested_ahead a USING (edge_id)"""),
                  {"edges": edges})}
    positions = {(edge, epoch, seq) for edge, epoch, seq in positions
                 if may_have_key(EdgeCursor(epoch, seq), *bounds.get(edge, (None, None)))}
    if not positions:
        return {}
    edges, epochs, seqs = zip(*positions, strict=True)
    return {(edge, epoch, seq): Ingested(digest) for edge, epoch, seq, digest in connection.execute(text(
        """SELECT m.edge_id, m.epoch, m.seq, m.digest FROM ingested_messages m
           JOIN unnest(CAST(:edges AS text[]), CAST(:epochs AS bigint[]), CAST(:seqs AS bigint[])) AS p(edge_id, epoch, seq)
             USING (edge_id, epoch, seq)"""), {"edges": list(edges), "epochs": list(epochs), "seqs": list(seqs)})}


def raise_ahead(connection: Connection, messages: list[IngestedMessage]) -> None:
    """Each edge's furthest position of these messages, ingested without moving its cursor (dead letters taken in
    again, core.services.review), kept in `ingested_ahead` so that `find_ingested` looks them up."""
    furthest: dict[str, EdgeCursor] = {}
    for message in messages:
        position = EdgeCursor(message.epoch, message.seq)
        furthest[message.edge_id] = max(furthest.get(message.edge_id, position), position)
    if furthest:
        connection.execute(text(
            """INSERT INTO ingested_ahead AS a (edge_id, epoch, seq) VALUES (:edge, :epoch, :seq)
               ON CONFLICT (edge_id) DO UPDATE SET epoch = EXCLUDED.epoch, seq = EXCLUDED.seq
               WHERE (EXCLUDED.epoch, EXCLUDED.seq) > (a.epoch, a.seq)"""),
            [{"edge": edge, "epoch": p.epoch, "seq": p.seq} for edge, p in sorted(furthest.items())])


def find_pruned(connection: Connection, edges: set[str]) -> dict[str, EdgeCursor]:
    """Each edge's key watermark. Read after the keys: the retention job raises it and drops the keys in one
    transaction, whose drop waits for a batch that read the keys, so a key the batch missed was dropped under
    a watermark this later statement sees."""
    if not edges:
        return {}
    return {edge: EdgeCursor(epoch, seq) for edge, epoch, seq in connection.execute(text(
        """SELECT edge_id, pruned_epoch, pruned_seq FROM edge_cursors
           WHERE edge_id = ANY(:edges) AND pruned_epoch IS NOT NULL"""), {"edges": sorted(edges)})}


def load_work_orders(connection: Connection, work_orders: set[str]) -> dict[str, WorkOrderFacts]:
    """The existing ones of these orders, locked until the batch commits, with the good units counted so
    far of those that auto-complete."""
    if not work_orders:
        return {}
    found = {row.work_order_id: WorkOrderFacts(row.status, row.quantity, row.auto_complete) for row in connection.execute(text(
        """SELECT work_order_id, status, quantity, auto_complete FROM work_orders WHERE work_order_id = ANY(:orders)
           ORDER BY work_order_id FOR UPDATE"""), {"orders": sorted(work_orders)})}
    auto = sorted(order for order, facts in found.items() if facts.auto_complete)
    if auto:
        for order, good, last in connection.execute(text(
                """SELECT work_order_id, sum(good), max(last_ts) FROM production_attributions
                   WHERE work_order_id = ANY(:orders) GROUP BY work_order_id"""), {"orders": auto}):
            found[order] = found[order]._replace(good=int(good), last_counted=last)
    return found


def load_dispatch_windows(connection: Connection, since: datetime | None) -> dict[str, list[DispatchWindow]]:
    """Dispatch windows per machine still open at `since` or later (none when there is nothing to attribute)."""
    if since is None:
        return {}
    windows: dict[str, list[DispatchWindow]] = {}
    for row in connection.execute(text(
            """SELECT machine_id, work_order_id, start_ts, end_ts, source FROM dispatches
               WHERE end_ts IS NULL OR end_ts > :since ORDER BY machine_id, start_ts, id"""), {"since": since}):
        window = DispatchWindow(row.machine_id, row.work_order_id, row.start_ts, row.end_ts, row.source)
        clashes = overlaps([*windows.get(row.machine_id, ()), window])
        if clashes:
            # The API never writes these; refusing the whole batch would stop ingest for everyone.
            log.error("overlapping dispatch windows; the later one is ignored", windows=[str(w) for w in clashes[0]])
            continue
        windows.setdefault(row.machine_id, []).append(window)
    return windows


_STAGING = {
    "counter_state": ("(machine_id text, counter text, value bigint, ts timestamptz)",
                      """INSERT INTO counter_state (machine_id, counter, value, ts) SELECT * FROM staging_counter_state
                         ON CONFLICT (machine_id, counter) DO UPDATE SET value = EXCLUDED.value, ts = EXCLUDED.ts"""),
    # added to what is stored: the table always equals production_intervals summed (core.rules.hourly)
    "production_hourly": ("(bucket timestamptz, machine_id text, good bigint, scrap bigint, energy_wh bigint, intervals bigint)",
                          """INSERT INTO production_hourly SELECT * FROM staging_production_hourly
                             ON CONFLICT (machine_id, bucket) DO UPDATE SET good = production_hourly.good + EXCLUDED.good,
                                 scrap = production_hourly.scrap + EXCLUDED.scrap,
                                 energy_wh = production_hourly.energy_wh + EXCLUDED.energy_wh,
                                 intervals = production_hourly.intervals + EXCLUDED.intervals"""),
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
    # the plan writes only a newer report (core.rules.connections)
    "machine_connections": ("(machine_id text, status text, detail text, since timestamptz, unusable jsonb, edge_id text, "
                            "epoch bigint, reported_at timestamptz, received_at timestamptz)",
                            """INSERT INTO machine_connections SELECT * FROM staging_machine_connections
                               ON CONFLICT (machine_id) DO UPDATE SET status = EXCLUDED.status, detail = EXCLUDED.detail,
                                   since = EXCLUDED.since, unusable = EXCLUDED.unusable, edge_id = EXCLUDED.edge_id,
                                   epoch = EXCLUDED.epoch, reported_at = EXCLUDED.reported_at,
                                   received_at = EXCLUDED.received_at"""),
}


def _upsert(connection: Connection | Session, table: str, rows: list) -> None:
    if not rows:
        return
    definition, upsert = _STAGING[table]
    connection.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS staging_{table} {definition} ON COMMIT DELETE ROWS"))
    copy_rows(connection, f"staging_{table}", rows)
    connection.execute(text(upsert))


# The columns' types of the rows every message makes (a binary COPY parses no text on the server).
_MESSAGE_TYPES = ("text", "int8", "int8", "text", "timestamptz", "bool", "int4", "timestamptz", "timestamptz", "numeric", "bytea")
_INTERVAL_TYPES = ("text", "timestamptz", "timestamptz", "int8", "int8", "int8", "text", "int8", "int8")
_ATTRIBUTION_TYPES = ("text", "int8", "int8", "text", "text", "int8", "int8", "int8", "timestamptz", "timestamptz")


def write_intervals(connection: Connection | Session, intervals: list[ProductionInterval]) -> None:
    """Production intervals and, in the same transaction, the hours they add to (`production_hourly`)."""
    copy_rows(connection, "production_intervals", intervals, binary=_INTERVAL_TYPES)
    _upsert(connection, "production_hourly", hourly_totals(intervals))


def write_plan(connection: Connection, plan: BatchPlan) -> None:
    """Every row of the plan, in the caller's transaction."""
    copy_rows(connection, "ingested_messages", plan.messages, binary=_MESSAGE_TYPES)
    copy_rows(connection, "samples", plan.samples, binary=SAMPLE_TYPES)
    write_intervals(connection, plan.intervals)
    _write_dispatches(connection, plan)
    copy_rows(connection, "production_attributions", plan.attributions, binary=_ATTRIBUTION_TYPES)
    if plan.backflush is not None:
        write_backflush(connection, plan.backflush)
    copy_rows(connection, "machine_states", plan.states)
    copy_rows(connection, "counter_events", plan.events)
    copy_rows(connection, "dead_letters", plan.dead_letters)
    copy_rows(connection, "edge_status_events", plan.status_events)
    _upsert(connection, "counter_state", plan.counter_state_rows())
    _upsert(connection, "edge_cursors", plan.cursor_rows())
    _upsert(connection, "machine_live", plan.live_rows())
    _upsert(connection, "edge_status", plan.edge_status_rows())
    _upsert(connection, "machine_connections", plan.connection_rows())
    if plan.rollups_since is not None:
        mark_changed(connection.exec_driver_sql, plan.rollups_since)


def _write_dispatches(connection: Connection, plan: BatchPlan) -> None:
    """Windows the batch ends, then those it opens (an opened one may still be open: ends come first), and
    the orders' status changes."""
    plc = [{"machine": end.machine_id, "end": end.end_ts} for end in plan.dispatches_ended if end.source == "plc"]
    if plc:
        connection.execute(text(
            "UPDATE dispatches SET end_ts = :end WHERE machine_id = :machine AND source = 'plc' AND end_ts IS NULL"), plc)
    api = [{"order": end.work_order_id, "end": end.end_ts} for end in plan.dispatches_ended if end.source == "api"]
    if api:
        connection.execute(text(
            """UPDATE dispatches SET end_ts = greatest(start_ts, :end)
               WHERE work_order_id = :order AND source = 'api' AND end_ts IS NULL"""), api)
    copy_rows(connection, "dispatches", plan.dispatches_opened)
    statuses = plan.work_order_statuses()
    if statuses:
        connection.execute(text("UPDATE work_orders SET status = :status WHERE work_order_id = :order"),
                           [{"order": order, "status": status} for order, status in statuses.items()])
    copy_rows(connection, "work_order_events", plan.work_order_events)
