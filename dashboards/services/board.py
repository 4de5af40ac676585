"""The live board: one snapshot of the plant (lines → machine tiles, plant totals, open alerts) for `/board`.

Each figure comes from where the API gets it; the board's own arithmetic (period, live spans, rate,
sums) is `dashboards.rules.board`:
  * period      the current shift of the stored calendar (`mes.rules.shifts.shift_at`); with no shift
                defined, or between shifts, the current day from midnight in the calendar's timezone
                (UTC unless `PUT /calendar` set another).
  * state       the machine's state interval at `now` (`mes.services.downtime.derive`, so the state rules
                of `mes.rules.states`): offline after its edge's Last Will or `offline_after_s` of silence,
                unknown before any state was reported.
  * good, scrap the units made in [period start, now) as the OEE below counts them (by when their
                message's last sample was taken): from the rollup and the live part alike, so a long shift
                never reads every production interval of the shift on each refresh.
  * rate        good units per hour over the last 15 min; over the time since the machine's first
                recorded production when that is shorter (a machine that just started is not under-rated).
  * OEE         ISO 22400-2 (`mes.rules.oee.measure`) of the period's totals, summed per machine:
                for every hour `oee_hourly` holds (the rollup, complete hours inside the period) its rows;
                for the rest of the period (the hours not rolled up yet, the partial first and current
                hours) `mes.services.oee.oee`, derived live. Decided so because a board refreshes every
                few seconds: the rollup keeps a long shift cheap, the live part keeps the current hour
                exact. A rolled-up hour without a row for a machine adds nothing for that machine.
  * work order  the order the machine runs now (`mes.services.workorders.running_orders`: the PLC's own before
                the API's) with `mes.services.workorders.live_progress` (% complete; projected finish at
                the rate of its last 10 minutes).
  * connection  how its edge reaches the machine (`mes.services.connections`, the rules of
                `mes.rules.connections`): what the edge reported last, unreachable while the edge is offline;
                None before any edge reported it.
  * alerts      the newest open alerts (`mes.services.alerts.newest_open`); a machine's are those of the
                machine kinds whose subject is the machine.
Lines and the plant add their machines' counts, rates and OEE totals (`combine`) and measure the sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from dashboards.rules.board import RATE_WINDOW, Figures, Period, board_period, live_spans, recent_rate
from mes.rules.states import UNKNOWN, Category, StateInterval
from mes.rules.alerts import MACHINE_KINDS
from mes.rules.connections import ShownConnection
from mes.rules.oee import OeeTotals
from mes.rules.workorders import Progress
from mes.services.downtime import Derivation, derive, load_calendar
from mes.services.oee import oee
from mes.services.rollups import rolled_up_totals
from mes.services.alerts import newest_open
from mes.services.connections import machine_connections
from mes.services.review_waiting import waiting
from mes.services.workorders import live_progress, running_orders

ALERTS_SHOWN = 50  # the newest open alerts; a TV shows fewer, and more is a flood nobody reads
_MACHINE_KINDS = frozenset(kind.value for kind in MACHINE_KINDS)


class OpenAlert(NamedTuple):
    severity: str
    kind: str
    subject: str
    detail: str
    raised_at: datetime


@dataclass(frozen=True, slots=True)
class RunningOrder:
    work_order_id: str
    quantity: int
    progress: Progress


@dataclass(frozen=True, slots=True)
class Tile:
    machine_id: str
    line: str
    state: str  # a MachineState name, "offline" or "unknown"
    category: Category
    fault_code: int | None
    since: datetime | None
    figures: Figures
    work_order: RunningOrder | None
    alerts: list[OpenAlert]
    connection: ShownConnection | None


@dataclass(frozen=True, slots=True)
class Line:
    line: str
    area: str
    figures: Figures
    tiles: list[Tile]


@dataclass(frozen=True, slots=True)
class Board:
    site: str
    generated_at: datetime
    period: Period
    figures: Figures
    lines: list[Line]
    alerts: list[OpenAlert]
    open_alerts: int
    review: ReviewWaiting


class ReviewWaiting(NamedTuple):
    """What the ingest set aside and waits for a person (`mes review`, /review/...)."""

    dead_letters: int
    quarantined_steps: int
    oldest: datetime | None


# --- the snapshot ------------------------------------------------------------------------------------------


def snapshot(session: Session, now: datetime | None = None) -> Board:
    """The board as of `now` (default: the clock), read from one snapshot of the database (call on a fresh session)."""
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})  # the figures agree with each other
    derivation = Derivation.of(now=now)
    now = derivation.now
    period = board_period(load_calendar(session, now - timedelta(days=1), now), now)
    machines = session.execute(text("SELECT machine_id, site, area, line FROM machines ORDER BY line, machine_id")).all()
    recent = _recent(session, now)
    totals = _oee_totals(session, [m.machine_id for m in machines], period.start, now, derivation)
    orders = running_orders(session)
    connections = machine_connections(session)
    alerts = [OpenAlert(*row) for row in newest_open(session, ALERTS_SHOWN)]
    open_count = session.execute(text("SELECT count(*) FROM alerts WHERE status <> 'cleared'")).scalar_one()

    lines: dict[tuple[str, str], list[Tile]] = {}
    for machine in machines:
        recent_good, first_start = recent[machine.machine_id]
        made = totals[machine.machine_id]
        figures = Figures.of(made.good, made.total - made.good, recent_rate(recent_good, first_start, now), made)
        current = derive(session, machine.machine_id, now - derivation.offline_after, now, derivation)[-1:]
        lines.setdefault((machine.area, machine.line), []).append(Tile(
            machine.machine_id, machine.line, *_state(current), figures,
            _running_order(session, orders.get(machine.machine_id), now),
            [alert for alert in alerts if alert.subject == machine.machine_id and alert.kind in _MACHINE_KINDS],
            connections.get(machine.machine_id)))
    built = [Line(line, area, Figures.summed(tile.figures for tile in tiles), tiles) for (area, line), tiles in lines.items()]
    found = waiting(session)
    oldest = min([ts for ts in (found["oldest_dead_letter"], found["oldest_quarantined_step"]) if ts is not None], default=None)
    return Board(machines[0].site if machines else "", now, period, Figures.summed(line.figures for line in built), built,
                 alerts, open_count, ReviewWaiting(found["dead_letters"], found["quarantined_steps"], oldest))


def _state(current: list[StateInterval]) -> tuple[str, Category, int | None, datetime | None]:
    if not current:
        return UNKNOWN, Category.OFFLINE, None, None
    interval = current[0]
    return interval.state, interval.category, interval.fault_code, interval.began


def _recent(session: Session, now: datetime) -> dict[str, tuple[int, datetime | None]]:
    """Per machine: good units of the rate window, and the start of its first production."""
    rows = session.execute(text(
        """SELECT m.machine_id, coalesce(sum(p.good), 0),
                  (SELECT first.start_ts FROM production_intervals first WHERE first.machine_id = m.machine_id
                   ORDER BY first.end_ts LIMIT 1)
           FROM machines m
           LEFT JOIN production_intervals p ON p.machine_id = m.machine_id AND p.end_ts > :recent AND p.end_ts <= :now
           GROUP BY m.machine_id"""), {"recent": now - RATE_WINDOW, "now": now})
    return {machine: (int(good), first) for machine, good, first in rows}


def _oee_totals(session: Session, machine_ids: list[str], start: datetime, now: datetime,
                derivation: Derivation) -> dict[str, OeeTotals]:
    """Per machine, the OEE totals of [start, now): rolled-up hours from `oee_hourly`, the rest live."""
    found, rolled_up = rolled_up_totals(session, start, now)
    found = {machine_id: found.get(machine_id, OeeTotals()) for machine_id in machine_ids}
    for span in live_spans(start, now, rolled_up):
        for group in oee(session, span.start, span.end, "machine", derivation=derivation):
            found[group.key] += group.totals
    return found


def _running_order(session: Session, running: tuple[str, int, int] | None, now: datetime) -> RunningOrder | None:
    if running is None:
        return None
    work_order_id, _, quantity = running
    return RunningOrder(work_order_id, quantity, live_progress(session, work_order_id, now))
