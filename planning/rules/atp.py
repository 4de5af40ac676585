"""Available to promise per item and bucket.

- supply = on hand (first bucket) + scheduled and planned receipts of the bucket;
- booked = what is already promised: every gross requirement but the unconsumed forecast (sales-order
  lines, work orders' component needs, dependent demand of planned orders);
- discrete ATP of a bucket = its supply − its booked, after look-ahead: a bucket that books more than it
  receives takes the rest from the buckets before it (latest first), so no promise made early can be
  broken by an order already booked later. A shortfall that even the first bucket cannot cover stays
  there, negative;
- cumulative ATP = the running sum of the discrete ATP. With the look-ahead it equals, for each bucket,
  the least over it and every later bucket of (on hand + supply − booked, cumulated): the quantity that can
  still be promised for delivery in that bucket without breaking a later promise. It never exceeds on hand
  plus the receipts up to the bucket, and never decreases after the first bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal, localcontext
from typing import NamedTuple

from kernel.rules.quantities import EXACT
from planning.rules.mrp import Plan


class AtpBucket(NamedTuple):
    start: date
    supply: Decimal
    booked: Decimal
    discrete_atp: Decimal
    cumulative_atp: Decimal


def available_to_promise(starts: Sequence[date], on_hand: Decimal, receipts: Sequence[Decimal],
                         booked: Sequence[Decimal]) -> list[AtpBucket]:
    if not len(starts) == len(receipts) == len(booked):
        raise ValueError("starts, receipts and booked need one entry per bucket")
    with localcontext(EXACT):
        supply = [receipt + (on_hand if index == 0 else 0) for index, receipt in enumerate(receipts)]
        running, balances = Decimal(0), []
        for received, promised in zip(supply, booked, strict=True):
            running += received - promised
            balances.append(running)
        cumulative = list(balances)
        for index in range(len(cumulative) - 2, -1, -1):
            cumulative[index] = min(cumulative[index], cumulative[index + 1])
        return [AtpBucket(start, supply[index], booked[index],
                          cumulative[index] - (cumulative[index - 1] if index else 0), cumulative[index])
                for index, start in enumerate(starts)]


def earliest_promise(atp: Sequence[AtpBucket], quantity: Decimal, wanted: date) -> date | None:
    """The first date from `wanted` on whose bucket can promise `quantity`; None within the horizon."""
    for index, bucket in enumerate(atp):
        ends = atp[index + 1].start if index + 1 < len(atp) else None
        if (ends is None or wanted < ends) and bucket.cumulative_atp >= quantity:
            return max(bucket.start, wanted)
    return None


def plan_atp(plan: Plan, item: str) -> list[AtpBucket]:
    """The item's ATP from a plan: its receipts (scheduled and planned) and its booked demand."""
    record = plan.records.get(item)
    if record is None:
        raise ValueError(f"item {item!r} is not in the plan")
    forecast = [Decimal(0)] * plan.horizon.count
    with localcontext(EXACT):
        for demand in plan.demands:
            if demand.item == item and demand.kind == "forecast":
                bucket = plan.horizon.bucket_of(demand.due)
                if bucket is not None:
                    forecast[bucket] += demand.quantity
        return available_to_promise(
            [bucket.start for bucket in record.buckets], record.on_hand,
            [bucket.scheduled_receipts + bucket.planned_receipts for bucket in record.buckets],
            [bucket.gross_requirements - forecast[index] for index, bucket in enumerate(record.buckets)])
