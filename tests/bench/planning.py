"""python -m tests.bench.planning [ITEMS ...] — a full MRP regeneration of the pure rules, timed.

Per size: ITEMS items in 5 BOM levels (a fifth each), every item above the last level made of 3 components
from the levels below (fixed seed), 26 weekly buckets, 2 open demands per item on the end items' level (20,000
for 10,000 items), on hand and one open purchase order per bought item, lot-for-lot, a lead time per item.
Timed through `planning.services.plans.regenerate`, what the live plan runs. Prints wall and CPU seconds (on a shared machine the CPU time is the figure to compare) and the process's
peak resident memory. The database load is not part of it (the live plan's
reads are a handful of queries); the target is 10,000 items in under 5 s and 1 GB.
"""

from __future__ import annotations

import random
import resource
import sys
import time
from datetime import date, timedelta
from decimal import Decimal

from inventory.rules.bom import BomLine
from planning.rules.horizon import Horizon
from planning.rules.lead_times import ManufactureLeadTime, PurchaseLeadTime
from planning.rules.mrp import Demand, ItemPolicy, PlanInput, Supply
from planning.services.plans import regenerate

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


def main(sizes: list[int]) -> None:
    for items in sizes:
        given = workload(items)
        began, began_cpu = time.perf_counter(), time.process_time()
        result = regenerate(given)
        seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{items:>6} items, {len(given.demands):>6} demands, 26 weeks: {seconds:6.2f} s ({cpu:.2f} s CPU), "
              f"{len(result.planned_orders)} planned orders, {len(result.pegs)} pegs, peak RSS {peak_mb:.0f} MB", flush=True)


if __name__ == "__main__":
    main([int(size) for size in sys.argv[1:]] or [1000, 10000, 50000])
