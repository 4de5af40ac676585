"""The Open MES Grafana boards: line, plant overview, planner, inventory (and, from Prometheus, system health:
dashboards/grafana/system.py). No I/O.

Queries read what stays small however long the history: the hourly rollups (`production_hourly`,
`oee_hourly`, `downtime_hourly`), state changes (`machine_states`, one row per change), the current
state (`machine_live`, `work_orders`, `dispatches`, `alerts`, `stock_on_hand`, `item_valuations`) and
the value ledger (`stock_values`); never the raw `samples`. Ratios are computed from summed rollup
rows, never averaged, with the definitions of `mes.rules.oee.measure`.

Hourly rollups cover whole hours: a time range counts every hour it touches (`_hours_in_range`).
"""

from __future__ import annotations

from dashboards.grafana.panels import (
    barchart,
    dashboard,
    override,
    query_variable,
    row,
    stat,
    state_timeline,
    table,
    timeseries,
)
from dashboards.grafana.system import system_board
from inventory.rules.reports import DEFAULT_AGE_BOUNDS, NO_RECEIPT_BUCKET, age_bucket_labels
from kernel.signals import MachineState
from mes.services.workorders import RATE_WINDOW

LINE_UID, PLANT_UID, PLANNER_UID, INVENTORY_UID = "mes-line", "mes-plant", "mes-planner", "mes-inventory"

STATE_COLOURS = {"running": "green", "idle": "yellow", "fault": "red", "blocked": "orange", "starved": "purple",
                 "setup": "blue", "planned_stop": "text"}
STATES = {code: (name, STATE_COLOURS[name]) for code, name in MachineState.NAMES.items()}
OEE_THRESHOLDS = ((None, "red"), (0.6, "orange"), (0.85, "green"))
OPEN_ORDER_STATUSES = "('released', 'running', 'paused')"
STOCK_ALERT_KINDS = "('stock_shortage', 'safety_stock', 'lot_expiring', 'lot_expired', 'slow_moving')"

SITE = query_variable("site", "Site", "SELECT DISTINCT site FROM machines ORDER BY 1")
LINE = query_variable("line", "Line", "SELECT DISTINCT line FROM machines WHERE site IN ($site) ORDER BY 1")
MACHINE = query_variable("machine", "Machine",
                         "SELECT machine_id FROM machines WHERE site IN ($site) AND line IN ($line) ORDER BY 1")

_RATE_WINDOW = f"interval '{int(RATE_WINDOW.total_seconds())} seconds'"
_PLANT_MACHINES = "m.site IN ($site) AND m.line IN ($line)"
_LINE_MACHINES = _PLANT_MACHINES + " AND m.machine_id IN ($machine)"


def _hours_in_range(column: str) -> str:
    """Hour buckets that overlap the dashboard's time range."""
    return f"{column} > $__timeFrom()::timestamptz - interval '1 hour' AND {column} <= $__timeTo()::timestamptz"


def _oee_columns(alias: str = "o") -> str:
    """Availability, performance, quality and OEE of summed `oee_hourly` rows, as `mes.rules.oee.measure`:
    A = run / (run + stopped), P = ideal / run, Q = good / total; OEE = A·P·Q, NULL without planned busy
    time, 0 when the machines did not run or made nothing."""
    run, busy, ideal = f"sum({alias}.run_s)", f"(sum({alias}.run_s) + sum({alias}.stopped_s))", f"sum({alias}.ideal_s)"
    good, total = f"sum({alias}.good)::numeric", f"sum({alias}.total)"
    return f"""{run} / NULLIF({busy}, 0) AS availability,
       {ideal} / NULLIF({run}, 0) AS performance,
       {good} / NULLIF({total}, 0) AS quality,
       CASE WHEN {busy} = 0 THEN NULL WHEN {run} = 0 OR {ideal} = 0 THEN 0
            ELSE {ideal} / {busy} * {good} / NULLIF({total}, 0) END AS oee"""


def _running_orders(machines: str) -> str:
    """CTE `running`: per machine the work order it runs now, the PLC's own before the API's (as
    `core.queries.running_work_orders`)."""
    return f"""running AS (
    SELECT DISTINCT ON (d.machine_id) d.machine_id, d.work_order_id
    FROM dispatches d JOIN machines m USING (machine_id)
    WHERE d.end_ts IS NULL AND d.work_order_id IS NOT NULL AND {machines}
    ORDER BY d.machine_id, d.source = 'plc' DESC, d.start_ts DESC)"""


def _made() -> str:
    """CTE `made` after `running`: good and scrap so far, and the good units of the recent window."""
    return f"""made AS (
    SELECT a.work_order_id, sum(a.good) AS good, sum(a.scrap) AS scrap,
           sum(a.good) FILTER (WHERE a.last_ts > now() - {_RATE_WINDOW}) AS recent
    FROM production_attributions a WHERE a.work_order_id IN (SELECT work_order_id FROM running) GROUP BY 1)"""


def _pace() -> str:
    """CTE `pace` after `running`: how much of the recent window the order has run, which turns its
    recent good units into a rate and a projected finish as `mes.rules.workorders.progress` does."""
    return f"""pace AS (
    SELECT d.work_order_id, least({_RATE_WINDOW}, now() - min(d.start_ts)) AS span
    FROM dispatches d WHERE d.work_order_id IN (SELECT work_order_id FROM running) GROUP BY 1)"""


def _open_alerts(title: str, condition: str, width: int = 8, height: int = 8) -> dict:
    sql = f"""SELECT a.raised_at AS raised, a.severity, a.kind, a.subject, a.detail, a.status
FROM alerts a
WHERE a.status <> 'cleared' AND {condition}
ORDER BY a.raised_at DESC"""
    severity_colours = {"critical": ("red", 0), "warning": ("orange", 1), "info": ("blue", 2)}
    mapping = {"type": "value", "options": {name: {"color": colour, "index": index} for name, (colour, index) in severity_colours.items()}}
    return table(title, sql, ["raised", "severity", "kind", "subject", "detail", "status"], width=width, height=height,
                 description="Alerts not yet cleared (active or acknowledged), newest first.",
                 overrides=[override("byName", "severity", {"mappings": [mapping],
                                                            "custom.cellOptions": {"type": "color-text"}})])


# A machine's connection as `mes.rules.connections.shown_connection` decides it, from `machine_connections`
# (alias c) and its reporting edge's `edge_status` (alias e): unreachable while that edge is offline for the
# run that made the report or a later one, else what the edge reported.
_EDGE_OFFLINE = "(e.online = false AND (e.epoch IS NULL OR c.epoch IS NULL OR e.epoch >= c.epoch))"
CONNECTION_COLOURS = {"ok": "green", "stale": "orange", "bad_config": "red", "unreachable": "text"}


def _connection_columns() -> str:
    return f"""CASE WHEN {_EDGE_OFFLINE} THEN 'unreachable' ELSE c.status END AS connection,
       CASE WHEN {_EDGE_OFFLINE} THEN 'edge ' || c.edge_id || ' offline; it last reported ' || c.status
                                      || CASE WHEN c.detail <> '' THEN ': ' || c.detail ELSE '' END
            ELSE c.detail END AS "connection detail\""""


def _percent_gauge(column: str) -> dict:
    return override("byName", column, {"unit": "percent", "max": 100, "min": 0,
                                       "custom.cellOptions": {"type": "gauge", "mode": "basic"}})


# -- line board -----------------------------------------------------------------------------------------

def _machine_states() -> dict:
    # At an instant with several rows (a sample's state and fault codes arrive as two rows) the state is
    # the code that differs from the state before, as mes.rules.states resolves it, with the codes of the
    # instant before standing in for that state: exact unless two such instants in a row swap the same
    # two states, where the second shows unknown (exact needs recursion over every change). The last
    # change before the range gives the state at its start.
    # Each machine's first instant is found first (materialized: inlined, the planner evaluates it again for every
    # earlier row), so the rows shown are one index range per machine, however long the history before the range.
    sql = """WITH since AS MATERIALIZED (
    SELECT m.machine_id, coalesce((SELECT max(p.ts) FROM machine_states p
                                   WHERE p.machine_id = m.machine_id AND p.ts <= $__timeFrom()), '-infinity') AS ts
    FROM machines m WHERE """ + _LINE_MACHINES + """),
shown AS (
    SELECT s.machine_id, s.ts, s.state_code
    FROM since JOIN machine_states s ON s.machine_id = since.machine_id AND s.ts >= since.ts AND s.ts <= $__timeTo()),
instants AS (
    SELECT machine_id, ts, array_agg(DISTINCT state_code) AS codes FROM shown GROUP BY machine_id, ts),
ordered AS (
    SELECT machine_id, ts, codes, lag(codes) OVER (PARTITION BY machine_id ORDER BY ts) AS before FROM instants)
SELECT greatest(ts, $__timeFrom()::timestamptz) AS "time", machine_id,
       CASE WHEN cardinality(codes) = 1 THEN codes[1]
            ELSE (SELECT CASE WHEN count(*) = 1 THEN min(c) END FROM unnest(codes) AS c
                  WHERE array_position(coalesce(before, '{NULL}'), c) IS NULL) END AS state
FROM ordered
ORDER BY 1, 2"""
    return state_timeline("Machine states", sql, STATES, description=(
        "The states the machines reported (state changes). Communication loss is not shown here: "
        "see unknown time in the OEE rollups."))


def _line_oee() -> dict:
    sql = f"""SELECT {_oee_columns()}
FROM oee_hourly o JOIN machines m USING (machine_id)
WHERE {_hours_in_range("o.bucket")} AND {_LINE_MACHINES}"""
    return stat("OEE", sql, unit="percentunit", decimals=1, width=8, height=8, thresholds=OEE_THRESHOLDS,
                description="OEE = availability × performance × quality over the hours of the range (ISO 22400-2, "
                            "from oee_hourly sums).")


def _good_scrap_target() -> dict:
    sql = f"""SELECT p.bucket AS "time", p.machine_id, p.good, p.scrap, 3600 / m.ideal_cycle_s AS target
FROM production_hourly p JOIN machines m USING (machine_id)
WHERE {_hours_in_range("p.bucket")} AND {_LINE_MACHINES}
ORDER BY 1, 2"""
    dashed = {"custom.drawStyle": "line", "custom.lineStyle": {"fill": "dash", "dash": [10, 10]}, "custom.fillOpacity": 0}
    return timeseries("Good and scrap per hour against target", sql, bars=True, width=16,
                      description="Units per hour and machine; target = 3600 / the machine's ideal cycle time.",
                      overrides=[override("byRegexp", ".*target.*", dashed),
                                 override("byRegexp", ".*scrap.*", {"color": {"mode": "fixed", "fixedColor": "red"}})])


def _running_work_orders() -> dict:
    sql = f"""WITH {_running_orders(_LINE_MACHINES)},
{_made()},
{_pace()}
SELECT r.machine_id AS machine, w.work_order_id AS "work order", w.item_id AS item, w.status, w.quantity,
       coalesce(made.good, 0) AS good, coalesce(made.scrap, 0) AS scrap,
       100.0 * coalesce(made.good, 0) / w.quantity AS "% complete",
       made.recent * 3600 / NULLIF(extract(epoch from pace.span), 0) AS "good per hour",
       CASE WHEN w.quantity > made.good AND made.recent > 0 AND pace.span > interval '0'
            THEN now() + (w.quantity - made.good) * pace.span / made.recent END AS "projected finish"
FROM running r JOIN work_orders w USING (work_order_id)
LEFT JOIN made USING (work_order_id) LEFT JOIN pace USING (work_order_id)
ORDER BY r.machine_id"""
    columns = ["machine", "work order", "item", "status", "quantity", "good", "scrap", "% complete", "good per hour",
               "projected finish"]
    return table("Running work orders", sql, columns, width=16, height=6, overrides=[_percent_gauge("% complete")],
                 description=f"Progress of the order each machine runs; the rate is the good units of the last "
                             f"{RATE_WINDOW} of its run, the finish projected at that rate.")


def _oee_per_hour() -> dict:
    sql = f"""SELECT mes_bucket(greatest(interval '1 hour', $__interval_ms * interval '1 millisecond'), o.bucket) AS "time",
       {_oee_columns()}
FROM oee_hourly o JOIN machines m USING (machine_id)
WHERE {_hours_in_range("o.bucket")} AND {_LINE_MACHINES}
GROUP BY 1
ORDER BY 1"""
    return timeseries("OEE per hour", sql, unit="percentunit", width=8, height=6,
                      description="Availability, performance, quality and OEE per hour (or per wider bucket on long ranges).")


def _downtime_pareto(machines: str, by: str, title: str) -> dict:
    sql = f"""SELECT {by} AS reason,
       coalesce(sum(d.seconds) FILTER (WHERE d.stop_kind <> 'microstop'), 0) / 60 AS "stop minutes",
       coalesce(sum(d.seconds) FILTER (WHERE d.stop_kind = 'microstop'), 0) / 60 AS "microstop minutes"
FROM downtime_hourly d JOIN machines m USING (machine_id)
WHERE {_hours_in_range("d.bucket")} AND {machines}
GROUP BY 1
ORDER BY 2 DESC, 3 DESC"""
    return barchart(title, sql, unit="m", stacked=True, width=8, description=(
        "Unplanned stop time inside planned production, microstops apart (from downtime_hourly)."))


def _energy_per_good_unit() -> dict:
    sql = f"""SELECT p.bucket AS "time", p.machine_id, p.energy_wh::numeric / NULLIF(p.good, 0) AS "Wh per good unit"
FROM production_hourly p JOIN machines m USING (machine_id)
WHERE {_hours_in_range("p.bucket")} AND {_LINE_MACHINES}
ORDER BY 1, 2"""
    return timeseries("Energy per good unit", sql, unit="watth", width=8,
                      description="Wh used per good unit, per machine and hour.")


def line_board() -> dict:
    panels = [
        row("Line $line", repeat="line"),
        _machine_states(),
        _line_oee(),
        _good_scrap_target(),
        _running_work_orders(),
        _oee_per_hour(),
        _downtime_pareto(_LINE_MACHINES, "d.reason_code", "Downtime pareto"),
        _energy_per_good_unit(),
        _open_alerts("Open alerts", "a.subject IN (SELECT m.machine_id FROM machines m WHERE " + _LINE_MACHINES + ")"),
    ]
    return dashboard(LINE_UID, "Open MES · Line", "One section per line: states, output against target, OEE, "
                     "running orders, downtime, energy, alerts.", panels, [SITE, LINE, MACHINE], refresh="10s")


# -- plant overview -------------------------------------------------------------------------------------

def plant_board() -> dict:
    oee = stat("Plant OEE", f"""SELECT {_oee_columns()}
FROM oee_hourly o JOIN machines m USING (machine_id)
WHERE {_hours_in_range("o.bucket")} AND {_PLANT_MACHINES}""", unit="percentunit", decimals=1, width=12,
               thresholds=OEE_THRESHOLDS)
    output = stat("Output", f"""SELECT coalesce(sum(p.good), 0) AS good, coalesce(sum(p.scrap), 0) AS scrap,
       sum(p.energy_wh)::numeric / NULLIF(sum(p.good), 0) AS "Wh per good unit"
FROM production_hourly p JOIN machines m USING (machine_id)
WHERE {_hours_in_range("p.bucket")} AND {_PLANT_MACHINES}""", width=8)
    alerts = stat("Open alerts", """SELECT count(*) FILTER (WHERE severity = 'critical') AS critical,
       count(*) FILTER (WHERE severity = 'warning') AS warning, count(*) FILTER (WHERE severity = 'info') AS info
FROM alerts WHERE status <> 'cleared'""", width=4, thresholds=((None, "green"), (1, "orange")))
    lines = table("Lines", f"""SELECT m.line, sum(o.good) AS good, sum(o.total) - sum(o.good) AS scrap, {_oee_columns()},
       sum(o.energy_wh) / NULLIF(sum(o.good), 0) AS "Wh per good unit"
FROM oee_hourly o JOIN machines m USING (machine_id)
WHERE {_hours_in_range("o.bucket")} AND {_PLANT_MACHINES}
GROUP BY m.line
ORDER BY m.line""", ["line", "good", "scrap", "availability", "performance", "quality", "oee", "Wh per good unit"],
                  overrides=[override("byRegexp", "availability|performance|quality|oee", {"unit": "percentunit", "decimals": 1})])
    state_mapping = {"type": "value", "options": {str(code): {"text": name, "color": colour, "index": index}
                                                  for index, (code, (name, colour)) in enumerate(STATES.items())}}
    connection_mapping = {"type": "value", "options": {status: {"text": status.replace("_", " "), "color": colour, "index": index}
                                                       for index, (status, colour) in enumerate(CONNECTION_COLOURS.items())}}
    machines = table("Machines now", f"""WITH {_running_orders(_PLANT_MACHINES)},
{_made()}
SELECT m.line, m.machine_id AS machine, l.state_code AS state, nullif(l.fault_code, 0) AS fault, l.last_seen AS "last seen",
       {_connection_columns()},
       r.work_order_id AS "work order", 100.0 * coalesce(made.good, 0) / w.quantity AS "% complete"
FROM machines m LEFT JOIN machine_live l USING (machine_id)
LEFT JOIN machine_connections c USING (machine_id) LEFT JOIN edge_status e ON e.edge_id = c.edge_id
LEFT JOIN running r USING (machine_id) LEFT JOIN work_orders w USING (work_order_id) LEFT JOIN made USING (work_order_id)
WHERE {_PLANT_MACHINES}
ORDER BY m.line, m.machine_id""", ["line", "machine", "state", "fault", "last seen", "connection", "connection detail",
                                    "work order", "% complete"],
                     overrides=[override("byName", "state", {"mappings": [state_mapping],
                                                             "custom.cellOptions": {"type": "color-background"}}),
                                override("byName", "connection", {"mappings": [connection_mapping],
                                                                  "custom.cellOptions": {"type": "color-text"}}),
                                _percent_gauge("% complete")])
    good_per_line = timeseries("Good per hour by line", f"""SELECT p.bucket AS "time", m.line, sum(p.good) AS good
FROM production_hourly p JOIN machines m USING (machine_id)
WHERE {_hours_in_range("p.bucket")} AND {_PLANT_MACHINES}
GROUP BY 1, 2
ORDER BY 1, 2""", bars=True, width=16)
    panels = [oee, output, alerts, lines, machines, good_per_line,
              _downtime_pareto(_PLANT_MACHINES, "m.line", "Downtime by line"),
              _open_alerts("Open alerts", "true", width=24)]
    return dashboard(PLANT_UID, "Open MES · Plant overview", "Every line at a glance: OEE, output, machines, downtime, alerts.",
                     panels, [SITE, LINE])


# -- planner --------------------------------------------------------------------------------------------

def planner_board() -> dict:
    orders = table("Work orders", """SELECT w.work_order_id AS "work order", w.item_id AS item, w.status, w.quantity,
       coalesce(sum(a.good), 0) AS good, coalesce(sum(a.scrap), 0) AS scrap,
       100.0 * coalesce(sum(a.good), 0) / w.quantity AS "% complete", w.due
FROM work_orders w LEFT JOIN production_attributions a USING (work_order_id)
WHERE w.status <> 'closed'
GROUP BY w.work_order_id
ORDER BY w.due NULLS LAST, w.work_order_id""", ["work order", "item", "status", "quantity", "good", "scrap", "% complete", "due"],
                   width=16, overrides=[_percent_gauge("% complete")],
                   description="Orders not yet closed, earliest due first.")
    completion = barchart("Completion of open orders", f"""SELECT w.work_order_id AS "work order",
       100.0 * coalesce(sum(a.good), 0) / w.quantity AS "% complete"
FROM work_orders w LEFT JOIN production_attributions a USING (work_order_id)
WHERE w.status IN {OPEN_ORDER_STATUSES}
GROUP BY w.work_order_id
ORDER BY w.work_order_id""", unit="percent", width=8)
    finished = table("Finished goods in stock", """SELECT i.item_id AS item, i.name, i.uom, sum(s.quantity) AS "on hand"
FROM stock_on_hand s JOIN items i USING (item_id)
WHERE i.kind = 'make'
GROUP BY i.item_id
ORDER BY i.item_id""", ["item", "name", "uom", "on hand"], width=8)
    components = table("Critical components", f"""WITH needed AS (
    SELECT c.component_item AS item_id,
           sum(greatest(w.quantity - coalesce(made.good, 0), 0) * c.quantity_per_unit) AS required
    FROM work_orders w JOIN work_order_components c USING (work_order_id)
    LEFT JOIN (SELECT work_order_id, sum(good) AS good FROM production_attributions GROUP BY 1) AS made USING (work_order_id)
    WHERE w.status IN {OPEN_ORDER_STATUSES}
    GROUP BY 1),
held AS (SELECT item_id, sum(quantity) AS on_hand FROM stock_on_hand GROUP BY 1)
SELECT i.item_id AS component, i.name, i.uom, coalesce(held.on_hand, 0) AS "on hand",
       needed.required AS "required by open orders", i.safety_stock AS "safety stock",
       100 * coalesce(held.on_hand, 0) / NULLIF(needed.required, 0) AS "% covered"
FROM needed JOIN items i USING (item_id) LEFT JOIN held USING (item_id)
ORDER BY 7 NULLS LAST, 1""", ["component", "name", "uom", "on hand", "required by open orders", "safety stock", "% covered"],
                       width=16, description="Components the open orders still need (remaining units × the released BOM), "
                                             "against stock on hand; least covered first.",
                       overrides=[override("byName", "% covered", {"unit": "percent", "thresholds": {
                           "mode": "absolute", "steps": [{"value": None, "color": "red"}, {"value": 100, "color": "green"}]},
                           "custom.cellOptions": {"type": "color-text"}})])
    shortages = table("Backflush shortages", """SELECT e.ts AS since, e.kind, e.work_order_id AS "work order", e.item_id AS item,
       e.location_id AS location, e.quantity, e.reason
FROM backflush_exceptions e
WHERE NOT e.resolved
ORDER BY e.ts DESC""", ["since", "kind", "work order", "item", "location", "quantity", "reason"],
                      description="Open backflush exceptions: consumed from the unknown lot, or blocked and the order held.")
    panels = [orders, completion, components, finished, shortages,
              _open_alerts("Stock alerts", f"a.kind IN {STOCK_ALERT_KINDS}", width=12),
              *_latest_plan_run(), *_plan_kpis()]
    return dashboard(PLANNER_UID, "Open MES · Planner", "Work-order completion, finished goods, critical components, shortages, "
                     "the latest plan run, delivery and forecast KPIs.", panels, time_from="now-7d", refresh="1m")


# The latest stored plan run (`POST /planning/runs` writes planning_runs and its rows, migration 0010): what the
# plan was when it ran, not the live plan the built-in planner page computes.
_LATEST_RUN = "latest AS (SELECT run_id, today FROM planning_runs ORDER BY run_id DESC LIMIT 1)"
_SHORTAGE_DAYS = 7  # as the built-in page and `GET /planning/shortages`


def _latest_plan_run() -> list[dict]:
    summary = stat("Latest plan run", f"""WITH {_LATEST_RUN}
SELECT (SELECT count(*) FROM planning_planned_orders p JOIN latest USING (run_id)) AS "planned orders",
       (SELECT count(*) FROM planning_exceptions e JOIN latest USING (run_id) WHERE e.kind = 'demand_late') AS "late demands",
       (SELECT count(*) FROM planning_exceptions e JOIN latest USING (run_id) WHERE e.kind = 'below_safety_stock')
         AS "buckets below safety stock"
""", width=8, description="Counts of the newest stored run (POST /planning/runs); 0 before any run.")
    to_release = table("Planned orders to release (latest run)", f"""WITH {_LATEST_RUN}
SELECT p.planned_order_id AS "planned order", p.item_id AS item, p.kind, p.quantity, p.release, p.receipt,
       p.release_past_due AS "past due"
FROM planning_planned_orders p JOIN latest USING (run_id)
WHERE p.release < latest.today + {_SHORTAGE_DAYS}
ORDER BY p.release, p.planned_order_id""", ["planned order", "item", "kind", "quantity", "release", "receipt", "past due"],
                       width=16, description=f"Planned orders of the newest run to release within {_SHORTAGE_DAYS} days of its "
                                             "day, past due included: the ones to firm.")
    shortages = table("Shortages of the next 7 days (latest run)", f"""WITH {_LATEST_RUN}
SELECT e.item_id AS item, e.kind, e.reference, e.on_date AS "on", e.to_date AS "covered on", e.quantity,
       coalesce((SELECT g.demand_of_order FROM planning_pegs g WHERE g.run_id = e.run_id AND g.demand = e.reference
                 AND g.demand_of_order IS NOT NULL LIMIT 1), CASE WHEN e.kind = 'demand_late' THEN e.reference END) AS "order hit"
FROM planning_exceptions e JOIN latest USING (run_id)
WHERE e.kind IN ('demand_late', 'below_safety_stock') AND e.on_date < latest.today + {_SHORTAGE_DAYS}
ORDER BY e.on_date, e.item_id, e.id""", ["item", "kind", "reference", "on", "covered on", "quantity", "order hit"], width=24,
                      description="Late demands (with the order a component need belongs to) and buckets below safety stock "
                                  f"within {_SHORTAGE_DAYS} days of the newest run's day.")
    return [summary, to_release, shortages]


def _plan_kpis() -> list[dict]:
    """The KPIs of `planning.services.kpis` over the board's range, with the formulas of `inventory.rules.performance`
    and `planning.rules.forecast_accuracy` (days in UTC; unrounded, the rules round to 0.01)."""
    on_time = stat("On-time delivery", """WITH lines AS (
    SELECT l.so_id, l.item_id, o.due,
           sum(l.quantity) OVER (PARTITION BY l.so_id, l.item_id ORDER BY l.line COLLATE "C") AS needed
    FROM sales_order_lines l JOIN sales_orders o USING (so_id)
    WHERE o.status <> 'cancelled' AND $__timeFilter(o.due)),
shipped AS (
    SELECT split_part(substr(m.source_ref, 4), '/', 1) AS so_id, m.item_id, m.ts,
           sum(m.quantity) OVER (PARTITION BY split_part(substr(m.source_ref, 4), '/', 1), m.item_id
                                 ORDER BY m.ts, m.id) AS shipped
    FROM stock_moves m WHERE m.reason = 'shipment' AND m.source_ref LIKE 'so:%'),
judged AS (
    SELECT l.due, (SELECT min(s.ts) FROM shipped s WHERE s.so_id = l.so_id AND s.item_id = l.item_id AND s.shipped >= l.needed)
             AS completed_at
    FROM lines l)
SELECT 100.0 * count(*) FILTER (WHERE completed_at <= due)
       / NULLIF(count(*) FILTER (WHERE completed_at IS NOT NULL OR due < now()), 0) AS "on time vs due"
FROM judged""", unit="percent", decimals=1, width=6,
                   description="Sales-order lines due in the range, shipped complete by their due instant, of those judged "
                               "(complete, or due and not complete). Promise dates are not stored yet.")
    suppliers = table("Supplier scores", """WITH received AS (
    SELECT po.supplier_id, m.quantity * coalesce(m.unit_cost, 0) AS value, po.due, (m.ts AT TIME ZONE 'UTC')::date AS day
    FROM stock_moves m JOIN purchase_orders po ON po.po_id = split_part(substr(m.source_ref, 4), '/', 1)
    WHERE m.reason = 'goods receipt' AND m.source_ref LIKE 'po:%' AND m.from_location IS NULL AND $__timeFilter(m.ts)),
returned AS (
    SELECT po.supplier_id, m.quantity * coalesce((SELECT min(l.unit_cost) FROM purchase_order_lines l
                                                  WHERE l.po_id = po.po_id AND l.item_id = m.item_id), 0) AS value
    FROM stock_moves m JOIN purchase_orders po ON po.po_id = split_part(substr(m.source_ref, 4), '/', 1)
    WHERE m.reason LIKE 'return to supplier:%' AND m.source_ref LIKE 'po:%' AND m.to_location IS NULL AND $__timeFilter(m.ts)),
sums AS (
    SELECT supplier_id, sum(value) AS received, sum(value) FILTER (WHERE due IS NOT NULL) AS judged,
           coalesce(sum(value) FILTER (WHERE day <= due), 0) AS in_time
    FROM received GROUP BY 1),
scored AS (
    SELECT s.supplier_id, 100 * s.in_time / NULLIF(s.judged, 0) AS on_time,
           CASE WHEN s.received > 0 THEN least(greatest(100 - 100 * coalesce(b.returned, 0) / s.received, 0), 100) END AS quality
    FROM sums s LEFT JOIN (SELECT supplier_id, sum(value) AS returned FROM returned GROUP BY 1) AS b USING (supplier_id))
SELECT supplier_id AS supplier, on_time AS "on time %", quality AS "quality %",
       CASE WHEN on_time IS NULL THEN quality ELSE on_time * quality / 100 END AS score
FROM scored
ORDER BY 4 DESC NULLS LAST, 1""", ["supplier", "on time %", "quality %", "score"], width=9,
                      description="Per supplier, of its receipts in the range: value received by the due day, value not "
                                  "returned, score = on time × quality / 100 (inventory.rules.performance).")
    forecasts = table("Forecast accuracy", """WITH forecast AS (
    SELECT item_id, bucket_start, sum(quantity) AS quantity FROM planning_forecasts GROUP BY 1, 2),
placed AS (
    SELECT l.item_id, l.quantity, (o.due AT TIME ZONE 'UTC')::date AS due,
           (SELECT max(f.bucket_start) FROM forecast f WHERE f.item_id = l.item_id
              AND f.bucket_start <= (o.due AT TIME ZONE 'UTC')::date) AS bucket_start
    FROM sales_order_lines l JOIN sales_orders o USING (so_id) WHERE o.status <> 'cancelled'),
actual AS (
    SELECT item_id, bucket_start, sum(quantity) AS quantity FROM placed
    WHERE bucket_start IS NOT NULL AND due < bucket_start + 7 GROUP BY 1, 2),
judged AS (
    SELECT f.item_id, f.quantity AS forecast, coalesce(a.quantity, 0) AS actual
    FROM forecast f LEFT JOIN actual a USING (item_id, bucket_start)
    WHERE f.bucket_start >= ($__timeFrom()::timestamptz AT TIME ZONE 'UTC')::date
      AND f.bucket_start < ($__timeTo()::timestamptz AT TIME ZONE 'UTC')::date
      AND f.bucket_start + 7 <= (now() AT TIME ZONE 'UTC')::date)
SELECT item_id AS item, sum(forecast) AS forecast, sum(actual) AS actual,
       CASE WHEN sum(actual) = 0 THEN CASE WHEN sum(forecast) = 0 THEN 100 ELSE 0 END
            ELSE greatest(0, 100 - 100 * sum(abs(forecast - actual)) / sum(actual)) END AS "accuracy %",
       100 * (sum(forecast) - sum(actual)) / NULLIF(sum(actual), 0) AS "bias %"
FROM judged
GROUP BY item_id
ORDER BY 4, 1""", ["item", "forecast", "actual", "accuracy %", "bias %"], width=9,
                      description="Weekly forecasts whose week starts in the range and has ended, against the sales-order "
                                  "lines due in that week: accuracy = 1 − Σ|f − a| / Σa, bias = (Σf − Σa) / Σa "
                                  "(planning.rules.forecast_accuracy).")
    return [on_time, suppliers, forecasts]


# -- inventory ------------------------------------------------------------------------------------------

def _aging_buckets() -> str:
    """CASE over the age in whole days → the labels of `inventory.rules.reports.aging_buckets`."""
    labels = age_bucket_labels(DEFAULT_AGE_BOUNDS)
    cases = " ".join(f"WHEN age <= {bound} THEN '{label}'" for bound, label in zip(DEFAULT_AGE_BOUNDS, labels[:-1], strict=True))
    return f"CASE WHEN age IS NULL THEN '{NO_RECEIPT_BUCKET}' {cases} ELSE '{labels[-1]}' END"


def inventory_board() -> dict:
    value = stat("Inventory value", "SELECT coalesce(sum(value), 0) AS value FROM stock_values", decimals=2, width=6,
                 description="Σ of the value ledger (stock_values) = the value of everything on hand.")
    trend = timeseries("Inventory value over time", """SELECT "time", sum(change) OVER (ORDER BY "time") AS value
FROM (SELECT greatest(mes_bucket(greatest(interval '1 hour', $__interval_ms * interval '1 millisecond'), v.ts),
                      mes_bucket(greatest(interval '1 hour', $__interval_ms * interval '1 millisecond'), $__timeFrom()::timestamptz)) AS "time",
             sum(v.value) AS change
      FROM stock_values v WHERE v.ts <= $__timeTo()
      GROUP BY 1) AS changes
ORDER BY 1""", width=18, description="Value on hand at the end of each bucket; the first bucket holds everything before the range.")
    by_item = barchart("Value by item", """SELECT i.name AS item, sum(v.value) AS value
FROM stock_values v JOIN items i USING (item_id)
GROUP BY i.name
HAVING sum(v.value) <> 0
ORDER BY 2 DESC
LIMIT 25""", width=12)
    aging = barchart("Aging", f"""WITH buckets(label, position) AS (VALUES {", ".join(
        f"('{label}', {index})" for index, label in enumerate([*age_bucket_labels(DEFAULT_AGE_BOUNDS), NO_RECEIPT_BUCKET]))}),
unit_cost AS (SELECT item_id, coalesce(value / NULLIF(quantity, 0), last_known_cost, 0) AS cost FROM item_valuations),
aged AS (
    SELECT s.item_id, s.quantity,
           CASE WHEN l.received_at IS NOT NULL
                THEN greatest(floor(extract(epoch from now() - l.received_at) / 86400), 0) END AS age
    FROM stock_on_hand s LEFT JOIN lots l ON l.item_id = s.item_id AND l.lot = s.lot)
SELECT b.label AS "age (days)", coalesce(sum(aged.quantity * coalesce(unit_cost.cost, 0)), 0) AS value
FROM buckets b
LEFT JOIN aged ON {_aging_buckets()} = b.label
LEFT JOIN unit_cost USING (item_id)
GROUP BY b.label, b.position
ORDER BY b.position""", horizontal=False, width=12,
                     description="Stock value by days since the lot's receipt (stock without a receipt date: unknown); "
                                 "valued at the item's current average cost.")
    turnover = table("Turnover", """WITH ledger AS (
    SELECT item_id,
           sum(-value) FILTER (WHERE kind = 'issue' AND ts >= $__timeFrom()) AS issued,
           sum(value * extract(epoch from $__timeTo()::timestamptz - greatest(ts, $__timeFrom()::timestamptz)))
             / extract(epoch from $__timeTo()::timestamptz - $__timeFrom()::timestamptz) AS average
    FROM stock_values WHERE ts < $__timeTo()
    GROUP BY item_id)
SELECT i.item_id AS item, i.name, coalesce(l.issued, 0) AS "issued value", l.average AS "average value",
       CASE WHEN l.average > 0 THEN coalesce(l.issued, 0) / l.average END AS turnover
FROM ledger l JOIN items i USING (item_id)
WHERE l.issued IS NOT NULL OR l.average <> 0
ORDER BY 5 DESC NULLS LAST, 1""", ["item", "name", "issued value", "average value", "turnover"], width=24,
                     description="Value issued in the range / time-weighted average value in the range "
                                 "(inventory.rules.reports.inventory_turnover; not annualised).")
    return dashboard(INVENTORY_UID, "Open MES · Inventory", "Stock value, its trend, turnover and aging.",
                     [value, trend, by_item, aging, turnover], time_from="now-30d", refresh="5m")


def boards() -> list[dict]:
    """Every board that reads the MES database, in the order they are listed and pushed."""
    return [plant_board(), line_board(), planner_board(), inventory_board()]


def every_board() -> list[dict]:
    """What `mes dashboards push` and `export` install: the database's boards, then the system health board
    (Prometheus, dashboards/grafana/system.py)."""
    return [*boards(), system_board()]
