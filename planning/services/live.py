"""The maintained live plan: the last full regeneration, kept as a run (`planning_runs.live`, migration 0015),
brought up to date by net change from the marks every change to a plan's input leaves (`planning_marks`).

- A full regeneration (`regenerate_live`) nets every item from what is stored now and replaces the run's rows;
  so does bringing it up to date when there is no live run yet, when the day has changed (the horizon starts
  today), when a mark asks for it (a BOM line, the machines, the shift calendar changed) and, from the planner
  job, when the last one is older than `MES_PLAN_REGENERATE_EVERY_S` (a running order's projected finish moves
  with time, not only with its counts).
- Net change (`bring_up_to_date`): the marks name items, or work orders (resolved to the order's item, its
  components, and the items the plan had its needs on); `planning.rules.net_change` replans those items and
  those below them whose dependent demand changed, from their stored parts and the new input of the dirty
  items alone; their rows are replaced; the marks brought in are deleted, in the same commit.

One writer at a time (a transaction-level advisory lock): the planner job (`LivePlanner`, a child process of
the core) waits for it; a reader tries it and, when the planner holds it, reads the plan as the planner last
committed it (at most a round behind). A reader that finds marks brings the plan up to date itself before
reading, so what a request changed is in the plan the next request reads, with or without a planner running.

Marks are read before the input they stand for, in READ COMMITTED: a change committed after the marks were
read may be partly seen, and its mark stays for the next round, so nothing is missed.

The live plan's horizon is today, `LIVE_BUCKET` buckets of `LIVE_BUCKETS` (the API's defaults); a read of
`live` with another horizon is computed at the read (`plans.live_plan`).
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from inventory.rules.bom import BomLine, explode
from kernel.db.models import make_engine
from kernel.db.notify import Notifications
from kernel.logs import get_logger
from kernel.rules.refusals import NotFound, Refused, as_conflict
from planning.rules.atp import AtpBucket, plan_atp
from planning.rules.horizon import BucketSize, Horizon
from planning.rules.levels import low_level_codes
from planning.rules.mrp import Demand, ItemPlan, ItemRecord, Plan
from planning.rules.net_change import net_change, parents_of, replan_order
from planning.services import plans
from planning.services.plan_rows import delete_items, read_demands, read_records, read_supplies, write_parts

log = get_logger("planning.live")

LIVE_BUCKET: BucketSize = "day"
LIVE_BUCKETS = 28
_KEY = "hashtext('mes planning: the live plan')"
NOTIFIED = "planning_marks"  # the channel the marks' triggers notify (migration 0015)
WAKE_AFTER_S = 1.0  # an idle planner looks anyway: a notification lost with a connection, a regeneration due
_WAIT = f"SELECT pg_advisory_xact_lock({_KEY})"
_TRY = f"SELECT pg_try_advisory_xact_lock({_KEY})"

Outcome = Literal["regenerated", "net_change", "current", "busy"]


@dataclass(frozen=True, slots=True)
class LiveRun:
    run_id: int
    horizon: Horizon
    today: date
    regenerated_at: datetime


@dataclass(frozen=True, slots=True)
class Structure:
    """What every item's plan depends on and only a full regeneration changes: the BOMs, their low-level codes,
    each work centre's available time. Kept per process for the regeneration it was read after."""

    boms: dict[str, list[BomLine]]
    codes: dict[str, int]
    available: dict[str, list[Decimal]]
    parents: dict[str, list[str]]
    graph: plans.BomGraph

    @classmethod
    def of(cls, boms: dict[str, list[BomLine]], codes: dict[str, int], available: dict[str, list[Decimal]]) -> Structure:
        return cls(boms, codes, available, parents_of(boms), plans.BomGraph.of(boms))


_structures: dict[tuple[int, datetime], Structure] = {}


def live_horizon(today: date) -> Horizon:
    return Horizon(today, LIVE_BUCKET, LIVE_BUCKETS)


def live_run(session: Session) -> LiveRun | None:
    row = session.execute(text(
        "SELECT run_id, start, bucket, buckets, today, regenerated_at FROM planning_runs WHERE live")).one_or_none()
    if row is None:
        return None
    return LiveRun(row.run_id, Horizon(row.start, row.bucket, row.buckets), row.today, row.regenerated_at)


def regenerate_live(session: Session, now: datetime) -> LiveRun:
    """A full regeneration into the live run, in one commit (waits for a planner at work)."""
    session.execute(text(_WAIT))
    marks = session.execute(text("SELECT id FROM planning_marks")).scalars().all()
    run = _regenerate(session, now)
    _clear(session, marks)
    session.commit()
    return run


def bring_up_to_date(session: Session, now: datetime, *, wait: bool,
                     regenerate_every: timedelta | None = None) -> Outcome:
    """Bring the marks into the live plan, by net change, or by a full regeneration when one is due (see the
    module's docstring); one commit. Without `wait`, 'busy' when another writer holds the plan."""
    if wait:
        session.execute(text(_WAIT))
    elif not session.execute(text(_TRY)).scalar():
        session.rollback()
        return "busy"
    run = live_run(session)
    marks = session.execute(text("SELECT id, item_id, work_order_id FROM planning_marks")).all()
    today = now.astimezone(UTC).date()
    if (run is None or run.today != today or any(m.item_id is None and m.work_order_id is None for m in marks)
            or (regenerate_every is not None and now - run.regenerated_at >= regenerate_every)):
        _regenerate(session, now)
        outcome: Outcome = "regenerated"
    elif not marks:
        session.rollback()
        return "current"
    else:
        _net_change(session, run, now, {m.item_id for m in marks if m.item_id is not None},
                    {m.work_order_id for m in marks if m.work_order_id is not None})
        outcome = "net_change"
    _clear(session, [m.id for m in marks])
    session.commit()
    return outcome


def _clear(session: Session, marks: Collection[int]) -> None:
    if marks:
        session.execute(text("DELETE FROM planning_marks WHERE id = ANY(:ids)"), {"ids": list(marks)})


def _regenerate(session: Session, now: datetime) -> LiveRun:
    today = now.astimezone(UTC).date()
    horizon = live_horizon(today)
    loaded = plans.load_input(session, horizon, now)
    with as_conflict():
        parts = plans.regenerate_parts(loaded.given)
    run_id = session.execute(text(
        """INSERT INTO planning_runs (live, today, start, bucket, buckets, regenerated_at, changed_at)
           VALUES (true, :today, :start, :bucket, :buckets, :now, :now)
           ON CONFLICT (live) WHERE live DO UPDATE SET today = EXCLUDED.today, start = EXCLUDED.start,
               bucket = EXCLUDED.bucket, buckets = EXCLUDED.buckets, regenerated_at = EXCLUDED.regenerated_at,
               changed_at = EXCLUDED.changed_at
           RETURNING run_id"""),
        {"today": today, "start": horizon.start, "bucket": horizon.bucket, "buckets": horizon.count, "now": now}).scalar_one()
    delete_items(session, run_id, None)
    write_parts(session, run_id, parts)
    codes = {part.record.item: part.record.low_level_code for part in parts}
    _keep_structure((run_id, now), Structure.of(loaded.boms, codes, loaded.available))
    log.info("live plan regenerated", items=len(parts), planned_orders=sum(len(p.planned_orders) for p in parts))
    return LiveRun(run_id, horizon, today, now)


def _structure(session: Session, run: LiveRun) -> Structure:
    key = (run.run_id, run.regenerated_at)
    found = _structures.get(key)
    if found is None:
        boms = plans.load_boms(session)
        found = _keep_structure(key, Structure.of(boms, low_level_codes(boms), plans.available_seconds(session, run.horizon)))
    return found


def _keep_structure(key: tuple[int, datetime], structure: Structure) -> Structure:
    """Only the latest regeneration's is kept (the API's threads may race here: any of them is right)."""
    for old in [other for other in list(_structures) if other != key]:
        _structures.pop(old, None)
    _structures[key] = structure
    return structure


def _net_change(session: Session, run: LiveRun, now: datetime, items: set[str], work_orders: set[str]) -> None:
    structure = _structure(session, run)
    dirty = items | _items_of_work_orders(session, run, work_orders, structure.boms)
    candidates = replan_order(dirty, structure.boms, structure.codes)
    previous, placed_above = _stored_parts(session, run.run_id, candidates)
    loaded = plans.load_input(session, run.horizon, now, dirty, structure.boms, available=structure.available,
                              policies_for=candidates, graph=structure.graph)
    with as_conflict():
        changed = net_change(previous, loaded.given, dirty, _codes(structure, dirty), placed_above, structure.parents)
    delete_items(session, run.run_id, list(changed))
    write_parts(session, run.run_id, list(changed.values()), placers=[*previous.values(), *(
        _placer(item, placed) for item, placed in placed_above.items())])
    session.execute(text("UPDATE planning_runs SET changed_at = :now WHERE run_id = :run"), {"now": now, "run": run.run_id})


def _codes(structure: Structure, dirty: Iterable[str]) -> dict[str, int]:
    """An item the regeneration did not know (new since) has no parent yet: code 0."""
    return structure.codes | {item: 0 for item in dirty if item not in structure.codes}


def _items_of_work_orders(session: Session, run: LiveRun, work_orders: set[str], boms: dict[str, list[BomLine]]
                          ) -> set[str]:
    """A work order's item, its components (its snapshot, or today's BOM while it is planned), and the items the
    plan had its needs on (they may be gone: it completed, or was closed)."""
    if not work_orders:
        return set()
    ids = {"ids": sorted(work_orders), "run": run.run_id}
    found: set[str] = set(session.execute(text(
        """SELECT component_item FROM work_order_components WHERE work_order_id = ANY(:ids)
           UNION SELECT item_id FROM planning_demands WHERE run_id = :run AND parent_supply = ANY(:ids)
           UNION SELECT item_id FROM planning_supplies WHERE run_id = :run AND supply_id = ANY(:ids)"""), ids).scalars())
    for item_id, status in session.execute(text("SELECT item_id, status FROM work_orders WHERE work_order_id = ANY(:ids)"), ids):
        found.add(item_id)
        if status == "planned":
            with as_conflict():
                found.update(explode(item_id, boms, run.today))
    return found


def _stored_parts(session: Session, run_id: int, candidates: Collection[str]
                  ) -> tuple[dict[str, ItemPlan], dict[str, list[Demand]]]:
    """The stored parts of the candidates as far as net change reads them (on hand, demands, receipts, what
    they placed), and what their other parents placed on them. Every component of a candidate is a candidate,
    so all of it is in the candidates' own demands."""
    records = read_records(session, run_id, candidates)
    demands, placed = read_demands(session, run_id, candidates)
    supplies = read_supplies(session, run_id, candidates)
    parts = {item: ItemPlan(record, (), tuple(demands.get(item, ())), tuple(supplies.get(item, ())), (), (),
                            tuple(placed.get(item, ()))) for item, record in records.items()}
    return parts, {item: found for item, found in placed.items() if item not in parts}


def _placer(item: str, placed: list[Demand]) -> ItemPlan:
    """A parent net change does not replan, as far as writing its components' rows reads it: what it placed."""
    return ItemPlan(ItemRecord(item, 0, Decimal(0), Decimal(0), ()), (), (), (), (), (), tuple(placed))


# --- reading the maintained plan ---------------------------------------------------------------------


def current_run(session: Session, now: datetime) -> LiveRun:
    """The live run, brought up to date first unless the planner is at it (then as it last committed it)."""
    outcome = bring_up_to_date(session, now, wait=False)
    run = live_run(session)
    if run is None or (outcome == "busy" and run.today != now.astimezone(UTC).date()):
        bring_up_to_date(session, now, wait=True)
        run = live_run(session)
    assert run is not None
    return run


def serves(start: date | None, bucket: str, buckets: int, now: datetime) -> bool:
    """Whether a read of `live` with this horizon is the maintained plan's."""
    return (start is None or start == now.astimezone(UTC).date()) and bucket == LIVE_BUCKET and buckets == LIVE_BUCKETS


def view(session: Session, now: datetime) -> plans.PlanView:
    run = current_run(session, now)
    return plans.run_view(session, run.run_id, "live", run.horizon)


def record(session: Session, now: datetime, item_id: str) -> ItemRecord | None:
    run = current_run(session, now)
    return read_records(session, run.run_id, [item_id]).get(item_id)


def atp(session: Session, now: datetime, item_id: str) -> list[AtpBucket]:
    run = current_run(session, now)
    found = read_records(session, run.run_id, [item_id]).get(item_id)
    if found is None:
        raise NotFound(f"item {item_id!r} does not exist")
    demands = read_demands(session, run.run_id, [item_id])[0].get(item_id, [])
    return plan_atp(Plan(run.horizon, {item_id: found}, [], demands, [], [], []), item_id)


def freeze_what_is_kept() -> None:
    """After a new `Structure` is kept: out of the cycle collector's sight. It is long-lived (the BOMs of every
    item: tens of thousands of objects) and without reference cycles, and a full collection rescanning it took a
    net change from 60 to 140 ms of CPU (10,000 items, tests.bench.planning). Only for a process that keeps
    nothing else between rounds, like the planner's (what is frozen is freed as usual when dropped, but cyclic
    garbage frozen with it would never be collected)."""
    gc.collect()
    gc.freeze()


class LivePlanner:
    """The core's planner job (a child process, `kernel.jobs`): each round brings the marks into the live plan,
    and regenerates it when the last regeneration is older than `regenerate_every_s`. Each round first waits
    for the marks' notification (every marking transaction sends one at its commit), at most `WAKE_AFTER_S`: a
    change is brought in as soon as it is committed, and an idle planner costs a query a second.

    A plan the rules refuse (a BOM cycle, an item that needs an order and has no lead time) is logged once, and
    tried again only when a new mark says something changed: the marks wait, and readers get the refusal."""

    def __init__(self, database_url: str, regenerate_every_s: float):
        self.engine = make_engine(database_url)
        self.regenerate_every = timedelta(seconds=regenerate_every_s)
        self.notifications = Notifications(database_url, NOTIFIED)
        self._first = True
        self._refused_at_mark: int | None = None  # the last mark when the plan was refused
        self._seen: LiveRun | None = None

    def round(self) -> None:
        if self._first:  # listening before looking: nothing committed in between is missed
            self.notifications.listen()
        else:  # a notification sent while the last round ran is taken at once
            self.notifications.wait(WAKE_AFTER_S)
        self._first = False
        kept = set(_structures)
        self._round()
        if set(_structures) != kept:
            freeze_what_is_kept()

    def _round(self) -> None:
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            last_mark = session.execute(text("SELECT coalesce(max(id), 0) FROM planning_marks")).scalar_one()
            session.rollback()
            if self._refused_at_mark is not None and last_mark <= self._refused_at_mark:
                return
            if last_mark == 0 and self._nothing_due(now):  # an idle round is that one query
                return
            try:
                bring_up_to_date(session, now, wait=True, regenerate_every=self.regenerate_every)
            except Refused as refusal:
                session.rollback()
                self._refused_at_mark = last_mark
                log.warning("the live plan is refused; tried again at the next change", reason=str(refusal))
                return
            self._seen = live_run(session)
            session.rollback()
        self._refused_at_mark = None

    def _nothing_due(self, now: datetime) -> bool:
        """No regeneration due, by the live run this planner saw last (one regenerated since by someone else
        only makes the next one come early)."""
        seen = self._seen
        return (seen is not None and seen.today == now.astimezone(UTC).date()
                and now - seen.regenerated_at < self.regenerate_every)

    def close(self) -> None:
        self.notifications.close()
        self.engine.dispose()
