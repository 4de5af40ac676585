"""Benchmark 3: production through attribution + backflush + the stock ledger, against ingest alone.

The same plant and workload shape as benchmark 1 (tests/bench/ingest.py), drained by the real
core (`CoreProcess`) twice in the same run, each time into a fresh database:

(a) ingest alone: no work orders, so every count goes to the unassigned bucket and the store loads no
    stock (`stock_for` is never called);
(b) every machine dispatched to its own released work order for one item whose BOM has two levels
    (a phantom sub-kit + bought components with scrap factors), every line with a line-side
    location stocked with a few lots per component: enough of two components, about half of what
    the run needs of the third, so the shortage path (unknown-lot picks + exceptions) runs too.

Seeding goes through the services the API calls (mes/services/) and is not timed. The dispatch
windows start an hour before the workload's first sample, so every counted unit is attributed.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext

import psycopg
from sqlalchemy.orm import Session

import core.ingest.plan as ingest_plan
import core.ingest.store as ingest_store
import inventory.services.backflush as backflush_service
from kernel.rules.quantities import EXACT
from inventory.models import Item
from kernel.db.models import make_engine
from kernel.plant import Plant
from inventory.services import masterdata, stock
from inventory.services.valuation import ValuationWorker
from mes.services import workorders
from tests.bench.infra import Services
from tests.bench.ingest import IngestRun, Workload, run_ingest

PRODUCT = "bench-assembly"
KIT = "bench-kit"  # phantom: never stocked, its own BOM is consumed in its place
# item, kind, uom, shelf life
ITEMS = ((PRODUCT, "make", "pcs", 30), (KIT, "make", "pcs", None), ("bench-housing", "buy", "pcs", None),
         ("bench-screw", "buy", "pcs", None), ("bench-resin", "buy", "kg", None))
# parent, component, quantity_per, scrap_factor, phantom
BOM = ((PRODUCT, KIT, Decimal("1"), Decimal("0.01"), True),
       (PRODUCT, "bench-housing", Decimal("1"), Decimal("0.02"), False),
       (KIT, "bench-screw", Decimal("4"), Decimal("0.005"), False),
       (KIT, "bench-resin", Decimal("0.125"), Decimal("0.05"), False))
SHORT = "bench-screw"  # stocked at about half of what the run consumes: the shortage path
LOTS_PER_COMPONENT = 3
ENOUGH, SHORT_SHARE = Decimal("1.5"), Decimal("0.5")  # stock on hand as a share of the run's need per line


@dataclass
class StepTimes:
    """Seconds in the backflush-related functions of the ingest, measured inside the run."""

    windows: float = 0.0  # load_dispatch_windows (both runs)
    work_orders: float = 0.0  # load_work_orders: the orders the batch can touch, locked, with counts for auto-complete
    stock: float = 0.0  # stock_for: materials, line sides and lot balances, read locked (run b only)
    plan_backflush: float = 0.0  # the pure part, inside plan_batch
    write_backflush: float = 0.0  # write_backflush inside write_plan: lots, stock_moves + exceptions COPY, holds
    copies: dict[str, float] = field(default_factory=dict)  # table → seconds in write_backflush's COPYs (server side included)
    # per stock_for call, in batch order: (seconds, work orders it loaded for)
    stock_calls: list[tuple[float, int]] = field(default_factory=list)
    # the core's valuation job values the moves as they commit, in a thread of the core's process: the CPU
    # its rounds take (the round in hand when the core stops included) is Python the ingest thread shares a GIL with
    valuation: float = 0.0
    valuation_cpu: float = 0.0


# (module, function) → StepTimes attribute; a name the core does not have (it moves on) is simply not timed
TIMED = {(ingest_store, "load_dispatch_windows"): "windows", (ingest_store, "load_work_orders"): "work_orders",
         (ingest_store, "stock_for"): "stock", (ingest_plan, "plan_backflush"): "plan_backflush",
         (ingest_store, "write_backflush"): "write_backflush", (backflush_service, "copy_rows"): "copies",
         (ValuationWorker, "round"): "valuation"}


@contextmanager
def timed_backflush(times: StepTimes):
    """Wrap the backflush-related functions of the ingest (in this process only); restored afterwards."""
    saved = {key: getattr(*key) for key in TIMED if hasattr(*key)}

    def timed(key, attribute: str):
        function = saved[key]

        def wrapper(*args, **kwargs):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                if attribute == "valuation":
                    times.valuation_cpu += time.thread_time() - cpu
                if attribute == "copies":
                    times.copies[args[1]] = times.copies.get(args[1], 0.0) + elapsed
                else:
                    setattr(times, attribute, getattr(times, attribute) + elapsed)
                if attribute == "stock":
                    times.stock_calls.append((elapsed, len(args[1])))
        return wrapper

    for key in saved:
        setattr(*key, timed(key, TIMED[key]))
    try:
        yield times
    finally:
        for (module, name), function in saved.items():
            setattr(module, name, function)


@dataclass
class Seeded:
    work_orders: int
    lines: int
    locations: int
    lots: int
    per_unit: dict[str, Decimal]  # the released orders' BOM snapshot (the same for every order)
    stocked: dict[str, Decimal]  # component → quantity received over all line sides
    need: dict[str, Decimal]  # component → what the workload's units consume (from the payloads)
    dispatched_at: datetime
    seconds: float


@dataclass
class BackflushRun:
    label: str
    run: IngestRun
    steps: StepTimes
    deltas: int  # counter samples whose value moved: the production deltas the core turned into counts
    good: int
    scrap: int
    unassigned_units: int
    attributed_units: int
    attribution_rows: int
    moves: dict[str, int] = field(default_factory=dict)  # reason → stock moves the core wrote
    exceptions: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # kind → (rows, quantity)
    held: int = 0
    consumed: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # component → (ledger, expected)
    mismatches: int | None = None  # (work order, component) pairs whose consumption ≠ units × per-unit
    receipts_match: bool | None = None  # finished goods received = Σ good, per work order
    ledger_rows: int = 0
    balance_query_ms: float | None = None  # the core's balance look-up once more, after the run, full ledger

    @property
    def deltas_per_s(self) -> float:
        return self.deltas / self.run.seconds


@dataclass
class BackflushResults:
    machines: int
    workload: Workload
    batch_max_messages: int
    seeded: Seeded
    alone: BackflushRun
    with_backflush: BackflushRun

    @property
    def ratio(self) -> float:
        return self.with_backflush.deltas_per_s / self.alone.deltas_per_s


def _workload_facts(workload: Workload) -> tuple[datetime, dict[str, int]]:
    """The first sample's time, and the units (good + scrap) each machine counts, from the payloads."""
    first: datetime | None = None
    low: dict[tuple[str, str], int] = {}
    high: dict[tuple[str, str], int] = {}
    for messages in workload.per_publisher:
        for _, payload in messages:
            message = json.loads(payload)
            for sample in message["samples"]:
                ts = datetime.fromisoformat(sample["ts"])
                first = ts if first is None or ts < first else first
                if sample["signal"] in ("good", "scrap"):
                    key = (message["machine"], sample["signal"])
                    low[key] = min(low.get(key, sample["value"]), sample["value"])
                    high[key] = max(high.get(key, sample["value"]), sample["value"])
    units: dict[str, int] = defaultdict(int)
    for key, value in high.items():
        units[key[0]] += value - low[key]
    return first, units


def seed(database_url: str, plant: Plant, workload: Workload) -> Seeded:
    """Items, the BOM, a line-side location per line with lots, and one released, started order per machine."""
    started = time.monotonic()
    first_sample, units = _workload_facts(workload)
    dispatched_at = first_sample - timedelta(hours=1)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            for item_id, kind, uom, shelf_life in ITEMS:
                masterdata.create(session, Item, item_id, "item", item_id=item_id, name=item_id, kind=kind, uom=uom,
                                  shelf_life_days=shelf_life)
            for parent, component, quantity, scrap, phantom in BOM:
                masterdata.add_bom_line(session, parent, component, quantity, scrap, phantom=phantom)
            per_unit = masterdata.exploded(session, PRODUCT, dispatched_at.date())
            lines: dict[str, int] = defaultdict(int)
            for machine in plant.machines:
                lines[machine.line] += units[machine.id]
            stocked: dict[str, Decimal] = defaultdict(Decimal)
            need: dict[str, Decimal] = defaultdict(Decimal)
            lots = 0
            for line, line_units in sorted(lines.items()):
                location = f"{line}-side"
                masterdata.create_location(session, location_id=location, name=f"{line} line side", kind="line_side",
                                           line=line)
                for component, quantity in sorted(per_unit.items()):
                    with localcontext(EXACT):
                        line_need = line_units * quantity
                    need[component] += line_need
                    share = SHORT_SHARE if component == SHORT else ENOUGH
                    per_lot = Decimal(math.ceil(line_need * share / LOTS_PER_COMPONENT))
                    for number in range(LOTS_PER_COMPONENT):
                        # expiries out of receipt order: FEFO, not FIFO, decides which lot goes first
                        expires = date(2030, 1, 1) + timedelta(days=30 * ((number + 1) % LOTS_PER_COMPONENT))
                        stock.receive(session, component, f"{component}-{line}-{number + 1}", location, per_lot,
                                      expires=expires, source_ref=f"GR-bench-{line}-{component}-{number + 1}")
                        stocked[component] += per_lot
                        lots += 1
            for machine in plant.machines:
                number = f"WO-{machine.id}"
                workorders.create_work_order(session, number, PRODUCT, 10_000_000)
                workorders.act(session, number, "release", now=dispatched_at)
                workorders.act(session, number, "start", machine_id=machine.id, now=dispatched_at)
    finally:
        engine.dispose()
    return Seeded(len(plant.machines), len(lines), len(lines), lots, dict(per_unit), dict(stocked), dict(need),
                  dispatched_at, time.monotonic() - started)


BALANCES = """SELECT b.item_id, b.location_id, b.lot, b.quantity, l.expires, l.received_at
              FROM lot_balances b LEFT JOIN lots l USING (item_id, lot)
              WHERE b.location_id = ANY(%s) AND b.item_id = ANY(%s)"""  # as inventory/services/backflush.py:lot_balances


def measure(label: str, database_url: str, run: IngestRun, steps: StepTimes, seeded: Seeded | None) -> BackflushRun:
    """Counts and checks read back from the run's database (after the clock stopped)."""
    with psycopg.connect(database_url) as conn:
        (deltas,) = conn.execute(
            """SELECT count(*) FILTER (WHERE value <> previous) FROM (
                   SELECT value, lag(value) OVER (PARTITION BY machine_id, signal ORDER BY ts) AS previous
                   FROM samples WHERE signal IN ('good', 'scrap', 'energy_wh')) AS counters""").fetchone()
        good, scrap, unassigned, attributed, rows = conn.execute(
            """SELECT coalesce(sum(good), 0), coalesce(sum(scrap), 0),
                      coalesce(sum(good + scrap) FILTER (WHERE work_order_id IS NULL), 0),
                      coalesce(sum(good + scrap) FILTER (WHERE work_order_id IS NOT NULL), 0), count(*)
               FROM production_attributions""").fetchone()
        result = BackflushRun(label, run, steps, deltas, int(good), int(scrap), int(unassigned), int(attributed), rows)
        result.moves = dict(conn.execute(
            "SELECT reason, count(*) FROM stock_moves WHERE work_order_id IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall())
        result.exceptions = {kind: (count, quantity) for kind, count, quantity in conn.execute(
            "SELECT kind, count(*), sum(quantity) FROM backflush_exceptions GROUP BY 1 ORDER BY 1")}
        (result.held,) = conn.execute("SELECT count(*) FROM work_orders WHERE held_reason IS NOT NULL").fetchone()
        (result.ledger_rows,) = conn.execute("SELECT count(*) FROM stock_moves").fetchone()
        if seeded is None:
            return result
        ledger = dict(conn.execute("""SELECT item_id, sum(quantity) FROM stock_moves
                                      WHERE reason = 'backflush' GROUP BY 1""").fetchall())
        with localcontext(EXACT):
            result.consumed = {component: (ledger.get(component, Decimal(0)), attributed * per_unit)
                               for component, per_unit in sorted(seeded.per_unit.items())}
        # per work order and component, in PostgreSQL's exact numeric arithmetic
        (result.mismatches,) = conn.execute(
            """WITH made AS (SELECT work_order_id, sum(good + scrap) AS units, sum(good) AS good
                             FROM production_attributions WHERE work_order_id IS NOT NULL GROUP BY 1),
                    used AS (SELECT work_order_id, item_id, sum(quantity) AS quantity FROM stock_moves
                             WHERE reason = 'backflush' GROUP BY 1, 2)
               SELECT count(*) FROM made JOIN work_order_components c USING (work_order_id)
               LEFT JOIN used u ON u.work_order_id = made.work_order_id AND u.item_id = c.component_item
               WHERE u.quantity IS DISTINCT FROM made.units * c.quantity_per_unit""").fetchone()
        (wrong_receipts,) = conn.execute(
            """WITH made AS (SELECT work_order_id, sum(good) AS good FROM production_attributions
                             WHERE work_order_id IS NOT NULL GROUP BY 1),
                    received AS (SELECT work_order_id, sum(quantity) AS quantity FROM stock_moves
                                 WHERE reason = 'production receipt' GROUP BY 1)
               SELECT count(*) FROM made FULL JOIN received USING (work_order_id)
               WHERE received.quantity IS DISTINCT FROM made.good""").fetchone()
        result.receipts_match = wrong_receipts == 0
        locations = [row[0] for row in conn.execute("SELECT location_id FROM locations WHERE kind = 'line_side'")]
        conn.execute(BALANCES, (locations, sorted(seeded.per_unit))).fetchall()  # warm
        started = time.perf_counter()
        conn.execute(BALANCES, (locations, sorted(seeded.per_unit))).fetchall()
        result.balance_query_ms = (time.perf_counter() - started) * 1000
    return result


def run_backflush(services: Services, plant: Plant, workload: Workload, batch_max_messages: int,
                  progress) -> BackflushResults:
    runs: dict[str, BackflushRun] = {}
    seeded: Seeded | None = None

    def seeding(database_url: str) -> None:
        nonlocal seeded
        task = progress.add_task("seed items, BOM, stock, work orders (not timed)", total=None)
        seeded = seed(database_url, plant, workload)
        progress.update(task, total=1, completed=1,
                        description=f"seeded {seeded.work_orders} work orders, {seeded.lots} lots in {seeded.seconds:.1f} s")

    plans: list[tuple[str, Callable[[str], None] | None]] = [("ingest alone", None), ("+ backflush", seeding)]
    for label, seeder in plans:
        steps = StepTimes()
        name = "bench_backflush_off" if seeder is None else "bench_backflush_on"
        with timed_backflush(steps):
            run, database_url = run_ingest(services, plant, workload, batch_max_messages, name, progress,
                                           keep_rows=False, seed=seeder)
        runs[label] = measure(label, database_url, run, steps, seeded if seeder is not None else None)
    return BackflushResults(len(plant.machines), workload, batch_max_messages, seeded, runs["ingest alone"],
                            runs["+ backflush"])
