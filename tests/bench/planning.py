"""python -m tests.bench.planning [--net-change] [ITEMS ...] — the live plan, timed.

Regeneration (the default): a full MRP regeneration of the pure rules. Per size: ITEMS items in 5 BOM levels
(a fifth each), every item above the last level made of 3 components from the levels below (fixed seed), 26
weekly buckets, 2 open demands per item on the end items' level (20,000 for 10,000 items), on hand and one open
purchase order per bought item, lot-for-lot, a lead time per item. Timed through
`planning.services.plans.regenerate`, what the live plan runs. Prints wall and CPU seconds (on a shared machine
the CPU time is the figure to compare) and the process's peak resident memory; the target is 10,000 items in
under 5 s and 1 GB.

Net change (`--net-change`, `run_net_change`): the same shape stored in a fresh database (items, BOMs, planning
parameters, stock, sales and purchase orders), the maintained live plan regenerated from it (timed: the database
load of the live plan), then an end item's work order running on a machine: COMPLETIONS times, one good unit
counted and committed by the real ingest (`IngestService`: attribution, backflush of its components), then
the marks brought into the live plan (`planning.services.live.bring_up_to_date`, what the core's planner
runs each round) until the work order's row shows the unit. Latency = the ingest's commit → the plan's commit
of the updated row; the planner job adds at most one `MES_PLAN_EVERY_S` of waiting to it.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from inventory.rules.bom import BomLine
from planning.rules.horizon import Horizon
from planning.rules.lead_times import ManufactureLeadTime, PurchaseLeadTime
from planning.rules.levels import low_level_codes
from planning.rules.mrp import Demand, ItemPolicy, PlanInput, Supply
from planning.rules.net_change import replan_order
from planning.services.plans import regenerate

if TYPE_CHECKING:
    from core.ingest.service import IngestService

LEVELS = 5
START = date(2027, 1, 4)


def workload(items: int, seed: int = 15) -> PlanInput:
    rng = random.Random(seed)
    per_level = items // LEVELS
    levels = [[f"L{level}-{n}" for n in range(per_level)] for level in range(LEVELS)]
    boms: dict[str, list[BomLine]] = {}
    for depth in range(LEVELS - 1):
        for parent in levels[depth]:
            below = levels[depth + 1] if rng.random() < 0.7 else levels[rng.randrange(depth + 1, LEVELS)]
            boms[parent] = [BomLine(parent, component, Decimal(rng.randint(1, 4)), Decimal("0.02"))
                            for component in rng.sample(below, 3)]
    policies = {item: ItemPolicy(Decimal(rng.randint(0, 5)), lead_time=ManufactureLeadTime(rng.randint(1, 7)))
                for level in levels[:-1] for item in level}
    policies |= {item: ItemPolicy(Decimal(rng.randint(0, 20)), lead_time=PurchaseLeadTime(rng.randint(2, 21)))
                 for item in levels[-1]}
    end_items = levels[0]
    demands = [Demand(f"SO-{n}", rng.choice(end_items), START + timedelta(days=rng.randrange(182)),
                      Decimal(rng.randint(1, 50)), "sales_order") for n in range(2 * items)]
    receipts = [Supply(f"PO-{item}", item, START + timedelta(days=rng.randrange(60)), Decimal(rng.randint(10, 500)),
                       "purchase_order") for item in levels[-1]]
    on_hand = {item: Decimal(rng.randint(0, 200)) for level in levels for item in level}
    return PlanInput(Horizon(START, "week", 26), START, boms, on_hand, policies, demands, [], receipts)


@dataclass
class RegenerationRun:
    items: int
    demands: int
    wall_s: float
    cpu_s: float
    planned_orders: int
    pegs: int
    peak_rss_mb: float


def run_regeneration(items: int) -> RegenerationRun:
    """In this process: its peak memory is the process's."""
    given = workload(items)
    began, began_cpu = time.perf_counter(), time.process_time()
    result = regenerate(given)
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return RegenerationRun(items, len(given.demands), seconds, cpu, len(result.planned_orders), len(result.pegs), peak_mb)


def run_regeneration_apart(items: int) -> RegenerationRun:
    """In a fresh process, so the peak memory is the regeneration's alone."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_regeneration, items).result()


@dataclass
class PlanningResults:
    regenerations: list[RegenerationRun] = field(default_factory=list)
    net_change: NetChangeRun | None = None


# --- net change through the database ------------------------------------------------------------------------

PLANNER_COMPLETIONS = 50
MACHINE = "m1"
LINE_SIDE = "line-side"
PLANT_YAML = f"""
site: s
edge_id: e1
areas: [{{id: a, lines: [{{id: l, machines: [{{id: {MACHINE}, protocol: modbus, ideal_cycle_s: 1}}]}}]}}]
"""


@dataclass
class NetChangeRun:
    items: int
    completions: int
    regenerate_s: float  # the live plan's full regeneration from the database
    regenerate_cpu_s: float
    latencies_s: list[float] = field(default_factory=list)  # ingest commit → the updated row committed
    cpu_s: list[float] = field(default_factory=list)  # CPU per net change: this process's and its database backend's
    below: int = 0  # the work order's item and the items below it: what a completion may replan at most
    with_planner_s: list[float] = field(default_factory=list)  # ingest commit → the row seen, the planner job running

    def percentile(self, values: list[float], share: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> str:
        lat, cpu = self.latencies_s, self.cpu_s
        return (f"{self.items:>6} items: regeneration from the database {self.regenerate_s:.2f} s "
                f"({self.regenerate_cpu_s:.2f} s CPU); net change over {self.completions} completions: "
                f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {self.percentile(lat, 0.99) * 1000:.0f} ms, "
                f"max {max(lat) * 1000:.0f} ms; CPU p50 {statistics.median(cpu) * 1000:.0f} ms, "
                f"p99 {self.percentile(cpu, 0.99) * 1000:.0f} ms; with the planner job p50 "
                f"{statistics.median(self.with_planner_s) * 1000:.0f} ms, p99 {self.percentile(self.with_planner_s, 0.99) * 1000:.0f} ms; "
                f"the work order's item has {self.below - 1} items below it")


def store_workload(database_url: str, given: PlanInput, today: date) -> str:
    """The workload as stored rows (COPY), due dates moved to today; returns the end item the work order makes."""
    import psycopg

    shift = today - START
    bought = {item for item in given.policies if item not in given.boms}
    with psycopg.connect(database_url) as conn:
        with conn.cursor().copy("COPY items (item_id, name, kind, uom) FROM STDIN") as copy:
            for item in given.policies:
                copy.write_row((item, item, "buy" if item in bought else "make", "pcs"))
        with conn.cursor().copy("COPY bom_lines (parent_item, component_item, quantity_per, scrap_factor) FROM STDIN") as copy:
            for parent, lines in given.boms.items():
                for line in lines:
                    copy.write_row((parent, line.component, line.quantity_per, line.scrap_factor))
        with conn.cursor().copy("COPY item_planning (item_id, lead_time_days, safety_stock) FROM STDIN") as copy:
            for item, policy in given.policies.items():
                lead = policy.lead_time
                days = lead.days if isinstance(lead, PurchaseLeadTime) else lead.fixed_days if lead is not None else 0
                copy.write_row((item, days, policy.safety_stock))
        conn.execute("INSERT INTO locations (location_id, name, kind) VALUES ('wh', 'Store', 'warehouse')")
        conn.execute(f"INSERT INTO locations (location_id, name, kind, line) VALUES ('{LINE_SIDE}', 'Line l', 'line_side', 'l')")
        conn.execute("INSERT INTO lots (item_id, lot) SELECT item_id, 'L1' FROM items")
        with conn.cursor().copy("COPY stock_moves (item_id, lot, to_location, quantity, reason, source_ref) FROM STDIN") as copy:
            for item, quantity in given.on_hand.items():
                if quantity > 0:
                    copy.write_row((item, "L1", "wh", quantity, "receipt", f"opening-{item}"))
        conn.execute("INSERT INTO customers (customer_id, name) VALUES ('c', 'Customer')")
        conn.execute("INSERT INTO suppliers (supplier_id, name) VALUES ('v', 'Supplier')")
        with conn.cursor().copy("COPY sales_orders (so_id, customer_id, due) FROM STDIN") as copy:
            for demand in given.demands:
                copy.write_row((demand.id, "c", datetime.combine(demand.due + shift, datetime.min.time(), UTC) + timedelta(hours=12)))
        with conn.cursor().copy("COPY sales_order_lines (so_id, line, item_id, quantity, unit_price) FROM STDIN") as copy:
            for demand in given.demands:
                copy.write_row((demand.id, "1", demand.item, demand.quantity, 1))
        with conn.cursor().copy("COPY purchase_orders (po_id, supplier_id, status, created_by, due) FROM STDIN") as copy:
            for receipt in given.receipts:
                copy.write_row((receipt.id, "v", "approved", "bench", receipt.due + shift))
        with conn.cursor().copy("COPY purchase_order_lines (po_id, line, item_id, quantity, unit_cost) FROM STDIN") as copy:
            for receipt in given.receipts:
                copy.write_row((receipt.id, "1", receipt.item, receipt.quantity, 1))
        end_item = max(given.boms, key=lambda item: (item.startswith("L0-"), len(given.boms[item]), item))
        for line in given.boms[end_item]:  # the work order's components at the line, for its backflush
            conn.execute("INSERT INTO stock_moves (item_id, lot, to_location, quantity, reason, source_ref) "
                         "VALUES (%s, 'L1', %s, 100000, 'receipt', %s)", (line.component, LINE_SIDE, f"line-{line.component}"))
        conn.execute("DELETE FROM planning_marks")
    return end_item


def run_net_change(database_url: str, items: int, completions: int, work_dir: Path) -> NetChangeRun:
    """On `database_url`, a fresh empty database."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from core.ingest.service import IngestService
    from core.service import prepare_database
    from kernel.db.models import make_engine
    from kernel.plant import load_plant
    from mes.services import workorders
    from planning.services import live
    from tests.bench.infra import process_cpu_s
    from tests.core.test_ingest_plan import T0, incoming

    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "plant.yaml").write_text(PLANT_YAML)
    prepare_database(database_url, load_plant(work_dir / "plant.yaml"))
    today = datetime.now(UTC).date()
    given = workload(items)
    end_item = store_workload(database_url, given, today)
    below = len(replan_order({end_item}, given.boms, low_level_codes(given.boms)))
    del given  # the workload is not the planner's to hold
    engine = make_engine(database_url)
    with Session(engine) as session:
        workorders.create_work_order(session, "WO-BENCH", end_item, completions + PLANNER_COMPLETIONS + 101,
                                     due=today + timedelta(days=14))
        workorders.act(session, "WO-BENCH", "release")
        workorders.act(session, "WO-BENCH", "start", machine_id=MACHINE, now=T0 - timedelta(minutes=1))
    with Session(engine) as session:
        began, began_cpu = time.perf_counter(), time.process_time()
        live.regenerate_live(session, datetime.now(UTC))
        run = NetChangeRun(items, completions, time.perf_counter() - began, time.process_time() - began_cpu, below=below)
    service = IngestService(database_url)
    service.ingest([incoming(1, [(0, "good", 0)])])  # the counter's baseline
    live.freeze_what_is_kept()  # as the planner's process does after a regeneration
    with Session(engine) as session:
        live.bring_up_to_date(session, datetime.now(UTC), wait=True)
        backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()  # the pool gives every round this one
    for number in range(1, completions + 1):
        service.ingest([incoming(number + 1, [(number, "good", number)])])  # one good unit, committed
        committed = time.perf_counter()
        began_cpu, began_backend = time.process_time(), process_cpu_s(backend)
        with Session(engine) as session:
            outcome = live.bring_up_to_date(session, datetime.now(UTC), wait=True)
            assert outcome == "net_change", outcome
        run.latencies_s.append(time.perf_counter() - committed)
        run.cpu_s.append(time.process_time() - began_cpu + process_cpu_s(backend) - began_backend)
    with Session(engine) as session:
        remaining = live.record(session, datetime.now(UTC), end_item)
        assert remaining is not None and sum(b.scheduled_receipts for b in remaining.buckets) == PLANNER_COMPLETIONS + 101, \
            "every unit is in the plan"
    run.with_planner_s = _with_the_planner(database_url, service, end_item, completions, PLANNER_COMPLETIONS)
    service.close()
    engine.dispose()
    return run


def _with_the_planner(database_url: str, service: IngestService, end_item: str, counted: int, completions: int) -> list[float]:
    """The core's planner job (its own process, a round every MES_PLAN_EVERY_S) brings the completions in; each
    latency runs from the ingest's commit until a reader sees the updated row (polled every 10 ms)."""
    import psycopg

    from kernel.jobs import Jobs
    from kernel.settings import Settings
    from planning.services import live
    from tests.core.test_ingest_plan import incoming

    def to_come(conn: psycopg.Connection) -> Decimal:
        return conn.execute("""SELECT sum(scheduled_receipts) FROM planning_records JOIN planning_runs USING (run_id)
                               WHERE live AND item_id = %s""", (end_item,)).fetchone()[0]

    jobs = Jobs()
    jobs.every_in_process("mes-planner", Settings().plan_every_s, live.LivePlanner, database_url, 3600.0)
    jobs.start()
    latencies: list[float] = []
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for number in range(counted + 1, counted + completions + 2):  # the first one warms the planner up
                expected = to_come(conn) - 1
                service.ingest([incoming(number + 1, [(number, "good", number)])])
                committed = time.perf_counter()
                while to_come(conn) != expected:
                    assert time.perf_counter() - committed < 60, "the planner did not bring the completion in"
                    time.sleep(0.01)
                if number > counted + 1:
                    latencies.append(time.perf_counter() - committed)
    finally:
        jobs.stop()
    return latencies


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.planning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", type=int, help="sizes (default 1000 10000 50000; with --net-change 10000)")
    parser.add_argument("--net-change", action="store_true", help="the net-change latency through the database")
    parser.add_argument("--completions", type=int, default=200)
    args = parser.parse_args(argv)
    if not args.net_change:
        for items in args.items or [1000, 10000, 50000]:
            result = run_regeneration(items)
            print(f"{items:>6} items, {result.demands:>6} demands, 26 weeks: {result.wall_s:6.2f} s ({result.cpu_s:.2f} s CPU), "
                  f"{result.planned_orders} planned orders, {result.pegs} pegs, peak RSS {result.peak_rss_mb:.0f} MB",
                  flush=True)
        return
    from kernel.logs import configure_logging
    from kernel.settings import Settings
    from tests.bench.infra import services

    configure_logging("WARNING")
    settings = Settings()
    with services(settings, settings.data_dir / "bench") as svc:
        for items in args.items or [10000]:
            print(run_net_change(svc.fresh_database(f"bench_planning_{items}"), items, args.completions,
                                 settings.data_dir / "bench" / "planning").summary(), flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
