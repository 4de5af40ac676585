"""Hourly rollups for the boards: `oee_hourly` and `downtime_hourly` (migration 0006).

Each row is recomputed by the rules that answer the API: a machine's state intervals are derived
once for the hours refreshed (`downtime.derive`), tallied per hour over that hour's planned production
windows with what the machine made in it (`mes.rules.oee.tally_machine`), and its unplanned stops summed per
reason and stop kind (`mes.rules.states.unplanned_stops`, reasons by `downtime.explain`). So a board that sums
rollup rows and measures the sums agrees with `GET /oee` and `GET /downtime/pareto` for whole hours.

Decisions, stated:
  * Buckets are UTC hours, like `production_hourly`. The hour going on is refreshed up to now.
  * Refreshing replaces the rows of the hours and machines it covers in one transaction (a reason a
    supervisor later gives a stop moves its time to that reason; nothing is added twice). An hour with
    nothing to tally has no row.
  * The core's rollup job (`Rollups`) refreshes the last `rollup_hours` hours every `rollup_every_s`
    seconds, in a process of its own so ingest never waits for it; at start it first catches up from the
    last hour rolled up. A round also reaches back to the mark (`rollup_marks`, migration 0007) that writers of
    past data leave in their own transactions: an ingest batch with data older than the hour every round
    redoes (samples an edge kept through an outage, a backlog the broker kept while the core was down)
    and every reason given to a stop. A new
    fault→reason mapping changes all history: recompute with `mes db rollups --since …`.
  * `production_hourly` needs no refresh: whoever writes production intervals adds their hours in the same
    transaction (`core.ingest.store.write_intervals`, migration 0018).
  * One refresher at a time across cores: a transaction-scoped advisory lock; a core that does not get
    it skips the round and leaves the mark for the next.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from mes.rules.states import StateInterval, unplanned_stops
from kernel.logs import get_logger
from kernel.rules.instants import exact_seconds
from kernel.db.models import make_engine
from mes.rules.oee import OeeTotals, tally_machine
from mes.rules.shifts import Window, planned_windows
from mes.services.downtime import (
    Derivation,
    derive,
    explain,
    load_calendar,
    machines,
)
from mes.services.oee import made_in_spans
from mes.rules.rollups import ALWAYS_REDONE, HOUR, hours_between
from mes.services.rollup_marks import CLEAR_MARK, READ_MARK

log = get_logger("mes.rollups")

UNASSIGNED_REASON = "unassigned"
# oee_hourly's sums, in the order of OeeTotals' fields; durations are stored as exact seconds
_SUMS = ("planned_production_s", "planned_downtime_s", "unknown_s", "run_s", "stopped_s", "breakdown_s", "microstop_s",
         "failures", "microstops", "ideal_s", "total", "good", "energy_wh")
_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('mes-rollups'))"


def refresh(session: Session, since: datetime, until: datetime | None = None, derivation: Derivation | None = None) -> int:
    """Recompute the rollups of every machine for the hours from `since` to `until` (default now).

    Flushes, does not commit: the caller's transaction holds the replacement. Returns the number of
    hours refreshed."""
    derivation = derivation or Derivation.of()
    hours = hours_between(since, min(until or derivation.now, derivation.now))
    if not hours:
        return 0
    start, end = hours[0], hours[-1] + HOUR
    selected = machines(session)
    ids = [m.machine_id for m in selected]
    calendar = load_calendar(session, start, end)
    windows = [[w for _, found in planned_windows(calendar, hour, min(hour + HOUR, derivation.now)) for w in found]
               for hour in hours]
    made = made_in_spans(session, ids, [(hour, hour + HOUR) for hour in hours])
    oee_rows, downtime_rows = [], []
    for machine_id in ids:
        intervals = derive(session, machine_id, start, end, derivation)
        reason_of = {e.interval.began: e.reason_code for e in explain(session, intervals)}
        for hour, planned, made_then in zip(hours, windows, made, strict=True):
            totals = tally_machine(intervals, planned, made_then.get(machine_id, []))
            if totals != OeeTotals():
                oee_rows.append(_oee_row(machine_id, hour, totals, derivation.now))
            downtime_rows += _downtime_rows(machine_id, hour, intervals, planned, reason_of)
    bounds = {"machines": ids, "start": start, "end": end}
    for table in ("oee_hourly", "downtime_hourly"):
        session.execute(text(f"DELETE FROM {table} WHERE machine_id = ANY(:machines) AND bucket >= :start AND bucket < :end"),
                        bounds)
    if oee_rows:
        session.execute(text(
            f"""INSERT INTO oee_hourly (machine_id, bucket, {', '.join(_SUMS)}, refreshed_at)
                VALUES (:machine_id, :bucket, {', '.join(f':{column}' for column in _SUMS)}, :refreshed_at)"""), oee_rows)
    if downtime_rows:
        session.execute(text(
            "INSERT INTO downtime_hourly VALUES (:machine_id, :bucket, :reason_code, :stop_kind, :stops, :seconds)"),
            downtime_rows)
    session.flush()
    return len(hours)


def _oee_row(machine_id: str, hour: datetime, totals: OeeTotals, now: datetime) -> dict:
    sums = (getattr(totals, field.name) for field in fields(OeeTotals))
    return {"machine_id": machine_id, "bucket": hour, "refreshed_at": now,
            **{column: exact_seconds(value) if isinstance(value, timedelta) else value for column, value in zip(_SUMS, sums, strict=True)}}


def _downtime_rows(machine_id: str, hour: datetime, intervals: list[StateInterval], planned: Iterable[Window],
                   reason_of: dict[datetime, str | None]) -> list[dict]:
    stops: dict[tuple[str, str], int] = defaultdict(int)
    time_in: dict[tuple[str, str], timedelta] = defaultdict(timedelta)
    for piece, began_here in unplanned_stops(intervals, planned):
        key = (reason_of.get(piece.began) or UNASSIGNED_REASON, piece.stop.value)
        stops[key] += began_here
        time_in[key] += piece.duration
    return [{"machine_id": machine_id, "bucket": hour, "reason_code": reason, "stop_kind": kind,
             "stops": stops[(reason, kind)], "seconds": exact_seconds(time_in[(reason, kind)])}
            for reason, kind in sorted(time_in)]


def rolled_up_totals(session: Session, start: datetime, until: datetime) -> tuple[dict[str, OeeTotals], set[datetime]]:
    """Per machine the summed totals of the rolled-up hours that lie wholly in [start, until], and which
    hours those were (an hour without a row for a machine added nothing for it)."""
    found: dict[str, OeeTotals] = defaultdict(OeeTotals)
    hours = set()
    for machine_id, bucket, *sums in session.execute(text(
            f"""SELECT machine_id, bucket, {', '.join(_SUMS)} FROM oee_hourly
                WHERE bucket >= :start AND bucket + interval '1 hour' <= :until"""), {"start": start, "until": until}):
        found[machine_id] += OeeTotals(*(
            timedelta(microseconds=int(value.scaleb(6))) if isinstance(field.default, timedelta) else value  # microsecond-exact
            for field, value in zip(fields(OeeTotals), sums, strict=True)))
        hours.add(bucket)
    return dict(found), hours


def catch_up_since(session: Session, lookback: timedelta, now: datetime) -> datetime:
    """Where a starting refresher begins: the last hour rolled up, else the first production, and at
    the latest `lookback` before now."""
    last, first = session.execute(text(
        "SELECT (SELECT max(bucket) FROM oee_hourly), (SELECT min(end_ts) FROM production_intervals)")).one()
    return min(now - lookback, last or first or now)


class Rollups:
    """The core's rollup job, run in a process of its own (`kernel.jobs`): deriving every machine's states
    is CPU work that, in a thread of the core, held the ingest's GIL (docs/benchmarks.md: p99 latency ×2.5
    at 1,000 machines).

    Refresh rounds: the first catches up from the last hour rolled up; each later one redoes the last
    hours, and from further back when a mark says data about the past was written (`rollup_marks`)."""

    def __init__(self, database_url: str, hours: int, every_s: float = 0):
        # never less than what ingest leaves unmarked (ALWAYS_REDONE) and may have written since the last round
        self.lookback = max(timedelta(hours=hours), ALWAYS_REDONE + timedelta(seconds=every_s))
        self.engine = make_engine(database_url)
        self._caught_up = False

    def round(self) -> None:
        derivation = Derivation.of()
        with Session(self.engine) as session:
            mark = session.execute(text(READ_MARK)).one_or_none()
            if not session.execute(text(_LOCK)).scalar():  # another core is refreshing; the mark waits for the next round
                session.rollback()
                return
            start = min(self._since(session, derivation.now), mark.since if mark else derivation.now)
            hours = refresh(session, start, derivation=derivation)
            if mark is not None:
                session.execute(text(CLEAR_MARK), {"version": mark.version})
            session.commit()
        if not self._caught_up or start < derivation.now - self.lookback:
            log.info("rollups refreshed", since=start.isoformat(), hours=hours)
        self._caught_up = True

    def close(self) -> None:
        self.engine.dispose()

    def _since(self, session: Session, now: datetime) -> datetime:
        return now - self.lookback if self._caught_up else catch_up_since(session, self.lookback, now)
