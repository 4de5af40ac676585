"""Capable to promise: when an inquiry (item, quantity, wanted date) can be delivered.

ATP first: when the plan can promise the quantity by the wanted date, that is the answer. Beyond it, the
earlier of the ATP date (if any within the horizon) and what making or buying it from today gives:

- bought: today + its purchase lead time;
- made: every component (BOM lines effective today, quantity × quantity per × (1 + scrap factor)) is
  promised the same way, recursively (its ATP, else making or buying it); when the last is there, the run
  needs quantity × ideal cycle time on the item's work centre, taken from the centre's free time (the
  shift calendar's available time minus the load of released and planned orders), bucket by bucket from
  the one the material is ready in. The promise is the later of material ready + the item's lead time and
  the last day of the bucket the run's time is found in. Time taken for one component is no longer free
  for another (rough-cut: the centre's time is a pool per bucket, not a sequence of operations);
- no date when a work centre has not the time within the horizon.

Nothing is booked: the answer changes no plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Literal, NamedTuple

from inventory.rules.bom import Boms, effective_lines
from kernel.rules.quantities import EXACT, non_negative_quantity, positive_quantity
from planning.rules.atp import earliest_promise, plan_atp
from planning.rules.horizon import Horizon
from planning.rules.mrp import PHANTOM_POLICY, ItemPolicy, Plan

Source = Literal["atp", "make", "buy", "none"]


@dataclass(frozen=True, slots=True)
class Routing:
    work_centre: str
    ideal_cycle_time_seconds: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "ideal_cycle_time_seconds",
                           non_negative_quantity(self.ideal_cycle_time_seconds, "ideal cycle time"))


class Promise(NamedTuple):
    item: str
    quantity: Decimal
    date: date | None
    source: Source
    reasons: tuple[str, ...]  # what set the date (or prevented one), outermost first


@dataclass(frozen=True, slots=True)
class CtpContext:
    plan: Plan
    today: date
    boms: Boms
    policies: Mapping[str, ItemPolicy]
    routings: Mapping[str, Routing]
    free_seconds: Mapping[str, Sequence[Decimal]]  # per work centre and bucket: available − load


def rough_cut_free_time(horizon: Horizon, available: Mapping[str, Sequence[Decimal]],
                        loads: Sequence[tuple[str, date, Decimal]]) -> dict[str, list[Decimal]]:
    """Each work centre's free seconds per bucket: its available time less the loads (work centre,
    date, seconds) of released and planned orders; a load before the horizon counts in the first bucket,
    one beyond it is left out; free time is never negative."""
    free = {centre: list(seconds) for centre, seconds in available.items()}
    with localcontext(EXACT):
        for centre, on, seconds in loads:
            bucket = horizon.bucket_of(on)
            if bucket is None:
                continue
            row = free.setdefault(centre, [Decimal(0)] * horizon.count)
            row[bucket] -= seconds
    return {centre: [max(seconds, Decimal(0)) for seconds in row] for centre, row in free.items()}


def capable_to_promise(context: CtpContext, item: str, quantity: Decimal, wanted: date) -> Promise:
    quantity = positive_quantity(quantity, "inquiry quantity")
    free = {centre: list(seconds) for centre, seconds in context.free_seconds.items()}
    atp_date = _atp_date(context, item, quantity, wanted)
    if atp_date is not None and atp_date <= wanted:
        return Promise(item, quantity, atp_date, "atp", (f"{quantity} of {item} available to promise on {atp_date}",))
    built = _make_or_buy(context, item, quantity, free)
    if atp_date is not None and (built.date is None or atp_date <= built.date):
        return Promise(item, quantity, atp_date, "atp", (f"{quantity} of {item} available to promise on {atp_date}",))
    if built.date is not None and built.date < wanted:
        return built._replace(date=wanted)
    return built


def _atp_date(context: CtpContext, item: str, quantity: Decimal, wanted: date) -> date | None:
    if item not in context.plan.records:
        return None
    return earliest_promise(plan_atp(context.plan, item), quantity, wanted)


def _component_date(context: CtpContext, item: str, quantity: Decimal, free: dict[str, list[Decimal]]) -> Promise:
    atp_date = _atp_date(context, item, quantity, context.today)
    built = _make_or_buy(context, item, quantity, free)
    if atp_date is not None and (built.date is None or atp_date <= built.date):
        return Promise(item, quantity, atp_date, "atp", (f"{quantity} of {item} available to promise on {atp_date}",))
    return built


def _make_or_buy(context: CtpContext, item: str, quantity: Decimal, free: dict[str, list[Decimal]]) -> Promise:
    phantom = any(line.component == item and line.phantom for lines in context.boms.values() for line in lines)
    policy = PHANTOM_POLICY if phantom else context.policies.get(item, ItemPolicy())
    if policy.lead_time is None:
        raise ValueError(f"item {item!r} has no lead time: cannot promise {quantity} of it")
    lead_days = policy.lead_time.days_for(quantity)
    lines = effective_lines(item, context.boms, context.today)
    if not lines:
        promise = context.today + timedelta(days=lead_days)
        return Promise(item, quantity, promise, "buy", (f"buy {quantity} of {item}: {lead_days} days' lead time → {promise}",))
    ready, reasons = context.today, list[str]()
    for line in lines:
        with localcontext(EXACT):
            needed = quantity * line.gross_quantity
        component = _component_date(context, line.component, needed, free)
        reasons.extend(component.reasons)
        if component.date is None:
            return Promise(item, quantity, None, "none", (f"no date for {needed} of {line.component}", *reasons))
        ready = max(ready, component.date)
    promise = ready + timedelta(days=lead_days)
    routing = context.routings.get(item)
    if routing is not None:
        finished = _take_capacity(context.plan.horizon, free, routing, quantity, ready)
        if finished is None:
            return Promise(item, quantity, None, "none",
                           (f"work centre {routing.work_centre} has not the time for {quantity} of {item} "
                            f"from {ready} within the horizon", *reasons))
        promise = max(promise, finished)
    return Promise(item, quantity, promise, "make",
                   (f"make {quantity} of {item}: material ready {ready}, {lead_days} days' lead time → {promise}", *reasons))


def _take_capacity(horizon: Horizon, free: dict[str, list[Decimal]], routing: Routing, quantity: Decimal,
                   ready: date) -> date | None:
    """The last day of the bucket by which the run's time is found on the centre, from `ready`'s bucket;
    the time found is taken out of `free`. None when the horizon has not enough."""
    first = horizon.bucket_of(ready)
    row = free.get(routing.work_centre)
    if first is None or row is None:
        return None
    with localcontext(EXACT):
        needed = quantity * routing.ideal_cycle_time_seconds
        taken: list[tuple[int, Decimal]] = []
        for bucket in range(first, horizon.count):
            if needed <= 0:
                break
            share = min(needed, row[bucket])
            if share > 0:
                taken.append((bucket, share))
                needed -= share
        if needed > 0:
            return None
        for bucket, share in taken:
            row[bucket] -= share
    if not taken:
        return ready
    return horizon.bucket_start(taken[-1][0]) + timedelta(days=horizon.days - 1)
