"""Downtime: machine state intervals with their reasons, stop reasons, the pareto, the shift calendar.

State intervals are derived on read, never stored: `state_intervals` loads a machine's state changes
and its communication record and hands them to `mes.rules.states.derive_intervals`, then `clip`s them
to the period asked. What is loaded:
  * changes    the machine_states rows in the period, with the last rows before it (the state at `start`
               and the codes that resolve the two rows one sample leaves at one instant);
  * contacts   the machine's data messages (the instants their samples were placed at,
               `ingested_messages.first_ts`/`last_ts`: the machine was heard then, whenever that arrived),
               its edge's status events (`edge_status_events`: online = heard, offline = lost, the Last
               Will included). The machine's edges are those its messages and state rows came from and
               those whose status names it.
Contacts are thinned in SQL: each message is two instants (first_ts and last_ts), and per bucket of
`offline_after` (date_bin of the instant itself) only the earliest and the latest instant are read,
plus the first instant after each offline event. This derives exactly what all the instants would: a
gap inside a bucket is shorter than the timeout, so no silence appears or disappears; the last instant
before a silence and the first after it are each the last / first of their bucket; and a Last Will
ends at the first evidence after it, which is read explicitly. A long period therefore costs two rows
per bucket, not one per message. (Bucketing whole messages by last_ts is not exact: a message's
first_ts may lie in the bucket before, and the bucket's min(first_ts)..max(last_ts) then spans more
than the timeout, hiding the instants inside it: a silence that never was.)

Decisions, stated:
  * The communication record is read from the machine's last state change before `start`, so a stop
    that began earlier keeps its true start (its identity) and its class; a machine that has not changed
    state for long makes the query scan its messages since then.
  * A stop is classified on its whole length: the derivation runs up to `end` + the microstop threshold
    (or now, if earlier), so a stop going on at `end` is not called a microstop just because the period
    cut it. Nothing is derived after now.
  * A stop's reason is the latest annotation's reason for (machine, stop start = `began`), else the
    fault_reasons mapping of its fault code (the machine's own mapping before the plant-wide one), else
    none; its comment is the latest annotation's comment. An annotation with only a comment keeps the
    reason. Planned stops take reasons and comments too; a reason's `planned` flag is information for
    people: it does not move time between planned and unplanned downtime (the state does).
  * Pareto of unplanned stops (category stopped: faults, idle, blocked, starved, setup) inside planned
    production time (see the calendar below): per key the stops that began there and their time there,
    microstops apart in their own two columns (count and time) and left out of `stops`, `seconds` and
    `share`; share = seconds / Σ seconds of all keys (28 significant digits, ROUND_HALF_EVEN). By
    reason, machine, line, or shift name (the shift the time falls in; a stop is counted in the shift
    it began in). Sorted by seconds, then microstop time, descending.
  * Calendar: when no shift is defined, the whole period is planned production time (less the planned
    non-production periods); `PUT /calendar` replaces the timezone and every shift pattern, checked
    through `mes.rules.shifts` over the coming year (overlaps included).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.orm import Session

from kernel.rules.instants import MICROSECOND, require_aware
from mes.rules.states import (
    MICROSTOP_THRESHOLD,
    Category,
    Contact,
    StateChange,
    StateInterval,
    StopKind,
    clip,
    derive_intervals,
    unplanned_stops,
)
from mes.rules.shifts import (
    Break,
    NonProduction,
    ShiftCalendar,
    ShiftInstance,
    ShiftPattern,
    planned_production_time,
    shift_instances,
    planned_windows,
)
from kernel.rules.refusals import Conflict, NotFound
from mes.services.rollup_marks import mark_changed
from kernel.settings import Settings

# Enough rows before `start` to resolve the codes of the last instant before it (see states.py).
ROWS_BEFORE = 20
# Calendars are checked for overlapping shifts over this span (both clock changes of a year).
CALENDAR_CHECK = timedelta(days=372)
_SHARE = Context(prec=28, rounding=ROUND_HALF_EVEN)
_BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
# Without shifts every instant is planned: a 24-hour shift starting every local midnight.
STOP_CATEGORIES = (Category.STOPPED, Category.PLANNED)


@dataclass(frozen=True, slots=True)
class Derivation:
    """How intervals are derived: offline timeout, microstop threshold, and the present instant."""

    offline_after: timedelta
    microstop_threshold: timedelta = MICROSTOP_THRESHOLD
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, offline_after: timedelta | None = None, microstop_threshold: timedelta | None = None,
           now: datetime | None = None) -> Derivation:
        """Unset parameters from the settings (`offline_after_s`), the rule's 2 min default and the clock."""
        return cls(offline_after if offline_after is not None else timedelta(seconds=Settings().offline_after_s),
                   microstop_threshold if microstop_threshold is not None else MICROSTOP_THRESHOLD,
                   require_aware(now, "now") if now is not None else datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.offline_after <= timedelta(0):
            raise ValueError(f"the offline timeout must be positive, not {self.offline_after}")
        if self.microstop_threshold <= timedelta(0):
            raise ValueError(f"the microstop threshold must be positive, not {self.microstop_threshold}")


@dataclass(frozen=True, slots=True)
class ExplainedInterval:
    interval: StateInterval
    reason_code: str | None
    reason_source: str | None  # "annotation", "fault_code" or None
    comment: str | None


class MachineRow(NamedTuple):
    machine_id: str
    line: str


class ParetoRow(NamedTuple):
    key: str | None
    stops: int
    time: timedelta
    share: Decimal | None
    microstops: int
    microstop_time: timedelta



def require_period(start: datetime, end: datetime) -> None:
    require_aware(start, "start")
    require_aware(end, "end")
    if end <= start:
        raise ValueError(f"the period must end after it starts: {start.isoformat()} to {end.isoformat()}")


# --- state intervals --------------------------------------------------------------------------------


def machines(session: Session, machine_id: str | None = None, line_id: str | None = None) -> list[MachineRow]:
    """The machines selected by the filters, by id; NotFound for a machine or line that does not exist."""
    rows = [MachineRow(*row) for row in session.execute(text(
        """SELECT machine_id, line FROM machines
           WHERE (CAST(:machine AS text) IS NULL OR machine_id = :machine) AND (CAST(:line AS text) IS NULL OR line = :line)
           ORDER BY machine_id"""), {"machine": machine_id, "line": line_id})]
    if machine_id is not None and session.execute(text("SELECT 1 FROM machines WHERE machine_id = :m"),
                                                  {"m": machine_id}).first() is None:
        raise NotFound(f"machine {machine_id!r} does not exist")
    if line_id is not None and session.execute(text("SELECT 1 FROM machines WHERE line = :l"), {"l": line_id}).first() is None:
        raise NotFound(f"line {line_id!r} does not exist (no machine is on it)")
    return rows


def state_intervals(session: Session, machine_id: str, start: datetime, end: datetime,
                    derivation: Derivation | None = None) -> list[StateInterval]:
    """The machine's state intervals inside [start, end), in order (none after now)."""
    require_period(start, end)
    machines(session, machine_id)
    return derive(session, machine_id, start, end, derivation or Derivation.of())


def derive(session: Session, machine_id: str, start: datetime, end: datetime, derivation: Derivation) -> list[StateInterval]:
    """`state_intervals` for a machine known to exist (in UTC)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    until = min(derivation.now, end + derivation.microstop_threshold)
    if until <= start:
        return []
    q = session.execute
    before = q(text("""SELECT ts, state_code, fault_code, edge_id FROM machine_states
                       WHERE machine_id = :m AND ts < :start ORDER BY ts DESC LIMIT :n"""),
               {"m": machine_id, "start": start, "n": ROWS_BEFORE}).all()
    if len(before) == ROWS_BEFORE:  # the oldest instant may have been cut in two
        before = [row for row in before if row.ts != before[-1].ts]
    after = q(text("""SELECT ts, state_code, fault_code, edge_id FROM machine_states
                      WHERE machine_id = :m AND ts >= :start AND ts < :until"""),
              {"m": machine_id, "start": start, "until": until}).all()
    heard_from = before[0].ts if before else start
    window = {"m": machine_id, "from": heard_from, "until": until}
    # What the machine's messages cover is the time of their samples, whenever they arrived (a backlog
    # replayed after an outage covers the outage); rows from before migration 0008 only know their receipt.
    messages = q(text("""SELECT edge_id, min(instant.ts), max(instant.ts)
                         FROM ingested_messages CROSS JOIN LATERAL (VALUES (first_ts), (last_ts)) AS instant(ts)
                         WHERE machine_id = :m AND last_ts >= :from AND last_ts < :until
                         GROUP BY edge_id, date_bin(:width, instant.ts, :origin)
                         UNION ALL
                         SELECT edge_id, min(received_at), max(received_at) FROM ingested_messages
                         WHERE machine_id = :m AND received_at >= :from AND received_at < :until AND last_ts IS NULL
                         GROUP BY edge_id, date_bin(:width, received_at, :origin)"""),
                 {**window, "width": derivation.offline_after, "origin": _BUCKET_ORIGIN}).all()
    edges = {row.edge_id for row in [*before, *after]} | {edge for edge, _, _ in messages} | set(q(text(
        """SELECT edge_id FROM edge_status_events WHERE :m = ANY(machines)
           UNION SELECT edge_id FROM edge_status WHERE :m = ANY(machines)"""), {"m": machine_id}).scalars())
    status = q(text("""SELECT received_at, online FROM edge_status_events
                       WHERE edge_id = ANY(:edges) AND received_at >= :from AND received_at < :until"""),
               {**window, "edges": sorted(edges)}).all()
    lost = sorted({ts for ts, online in status if not online})
    back = q(text("""SELECT (SELECT min(instant.ts) FROM ingested_messages CROSS JOIN LATERAL
                                    (VALUES (coalesce(first_ts, received_at)), (coalesce(last_ts, received_at))) AS instant(ts)
                             WHERE machine_id = :m AND coalesce(last_ts, received_at) > lost
                               AND coalesce(last_ts, received_at) < :until AND instant.ts > lost)
                     FROM unnest(CAST(:lost AS timestamptz[])) AS lost"""), {**window, "lost": lost}).scalars()

    changes = [StateChange(row.ts, row.state_code, row.fault_code) for row in [*before, *after]]
    contacts = [Contact(ts, online) for ts, online in status]
    contacts += [Contact(ts, True) for _, first, last in messages for ts in (first, last)]
    contacts += [Contact(ts, True) for ts in back if ts is not None]
    intervals = derive_intervals(machine_id, changes, contacts, until, derivation.offline_after,
                                 derivation.microstop_threshold)
    return clip(intervals, start, end)


def explain(session: Session, intervals: Iterable[StateInterval]) -> list[ExplainedInterval]:
    """Each interval with the reason and comment of its stop (None for running and offline time)."""
    intervals = list(intervals)
    stops = {(i.machine_id, i.began) for i in intervals if i.category in STOP_CATEGORIES}
    reasons, comments = {}, {}
    if stops:
        keys = {"machines": sorted({m for m, _ in stops}), "starts": sorted({b for _, b in stops})}
        for column, found in (("reason_code", reasons), ("comment", comments)):
            for machine_id, began, value in session.execute(text(
                    f"""SELECT DISTINCT ON (machine_id, stop_start) machine_id, stop_start, {column} FROM downtime_annotations
                        WHERE machine_id = ANY(:machines) AND stop_start = ANY(:starts) AND {column} IS NOT NULL
                        ORDER BY machine_id, stop_start, id DESC"""), keys):
                found[(machine_id, began)] = value
    mapping = {(machine_id, fault): reason for machine_id, fault, reason in session.execute(text(
        "SELECT machine_id, fault_code, reason_code FROM fault_reasons"))}
    explained = []
    for interval in intervals:
        stop = (interval.machine_id, interval.began)
        mapped = mapping.get((interval.machine_id, interval.fault_code)) or mapping.get((None, interval.fault_code))
        if stop not in stops:
            explained.append(ExplainedInterval(interval, None, None, None))
        elif stop in reasons:
            explained.append(ExplainedInterval(interval, reasons[stop], "annotation", comments.get(stop)))
        else:
            explained.append(ExplainedInterval(interval, mapped, "fault_code" if mapped else None, comments.get(stop)))
    return explained


# --- reasons ------------------------------------------------------------------------------------------


def create_reason(session: Session, code: str, description: str, planned: bool = False, active: bool = True) -> dict:
    if session.execute(text("SELECT 1 FROM downtime_reasons WHERE code = :code"), {"code": code}).first():
        raise Conflict(f"downtime reason {code!r} already exists")
    session.execute(text("INSERT INTO downtime_reasons VALUES (:code, :description, :planned, :active)"),
                    {"code": code, "description": description, "planned": planned, "active": active})
    session.commit()
    return {"code": code, "description": description, "planned": planned, "active": active}


def list_reasons(session: Session) -> list[dict]:
    rows = session.execute(text("SELECT code, description, planned, active FROM downtime_reasons ORDER BY code"))
    return [dict(row._mapping) for row in rows]


def _usable_reason(session: Session, code: str) -> None:
    active = session.execute(text("SELECT active FROM downtime_reasons WHERE code = :code"), {"code": code}).scalar()
    if active is None:
        raise NotFound(f"downtime reason {code!r} does not exist")
    if not active:
        raise Conflict(f"downtime reason {code!r} is no longer in use")


def set_fault_reason(session: Session, machine_id: str | None, fault_code: int, reason_code: str) -> dict:
    """Map a fault code to a reason for one machine, or for every machine (machine_id None); replaces."""
    if machine_id is not None:
        machines(session, machine_id)
    _usable_reason(session, reason_code)
    if fault_code <= 0:
        raise ValueError(f"a fault code is a positive number, not {fault_code}")
    key = {"machine": machine_id, "fault": fault_code, "reason": reason_code}
    session.execute(text("""DELETE FROM fault_reasons WHERE coalesce(machine_id, '') = coalesce(CAST(:machine AS text), '')
                            AND fault_code = :fault"""), key)
    session.execute(text("INSERT INTO fault_reasons VALUES (:machine, :fault, :reason)"), key)
    session.commit()
    return {"machine_id": machine_id, "fault_code": fault_code, "reason_code": reason_code}


def list_fault_reasons(session: Session) -> list[dict]:
    rows = session.execute(text("""SELECT machine_id, fault_code, reason_code FROM fault_reasons
                                   ORDER BY machine_id NULLS FIRST, fault_code"""))
    return [dict(row._mapping) for row in rows]


def annotate(session: Session, machine_id: str, stop_start: datetime, actor: str, reason_code: str | None = None,
             comment: str | None = None, derivation: Derivation | None = None) -> dict:
    """Give the stop that began at `stop_start` a reason and/or a comment (appended; the latest counts)."""
    require_aware(stop_start, "stop start")
    if reason_code is None and comment is None:
        raise ValueError("give a reason_code, a comment or both")
    machines(session, machine_id)
    at = derive(session, machine_id, stop_start, stop_start + MICROSECOND, derivation or Derivation.of())
    if not any(i.began == stop_start and i.category in STOP_CATEGORIES for i in at):
        raise NotFound(f"no stop of machine {machine_id!r} starts at {stop_start.isoformat()}"
                       + (f" (it is {at[0].state} since {at[0].began.isoformat()})" if at else ""))
    if reason_code is not None:
        _usable_reason(session, reason_code)
    row = session.execute(text(
        """INSERT INTO downtime_annotations (machine_id, stop_start, reason_code, comment, actor)
           VALUES (:m, :start, :reason, :comment, :actor) RETURNING id, machine_id, stop_start, reason_code, comment, actor, ts"""),
        {"m": machine_id, "start": stop_start, "reason": reason_code, "comment": comment, "actor": actor}).one()
    if reason_code is not None:  # the stop's time moves to this reason in the hourly rollups too
        mark_changed(session.connection().exec_driver_sql, stop_start)
    session.commit()
    return dict(row._mapping)


def annotations(session: Session, machine_id: str, stop_start: datetime) -> list[dict]:
    """Everything said about one stop, oldest first."""
    require_aware(stop_start, "stop start")
    machines(session, machine_id)
    rows = session.execute(text("""SELECT id, machine_id, stop_start, reason_code, comment, actor, ts FROM downtime_annotations
                                   WHERE machine_id = :m AND stop_start = :start ORDER BY id"""),
                           {"m": machine_id, "start": stop_start})
    return [dict(row._mapping) for row in rows]


# --- calendar -------------------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not a time zone name such as UTC or Europe/Berlin") from None


def load_calendar(session: Session, start: datetime | None = None, end: datetime | None = None) -> ShiftCalendar:
    """The stored calendar; only the non-production periods touching [start, end) when both are given."""
    q = session.execute
    timezone = q(text("SELECT timezone FROM calendar_settings")).scalar_one()
    breaks = defaultdict(list)
    for name, begin, finish in q(text("SELECT shift_name, start_time, end_time FROM shift_breaks ORDER BY id")):
        breaks[name].append(Break(begin, finish))
    patterns = [ShiftPattern(name, frozenset(weekdays), begin, finish, tuple(breaks[name])) for name, weekdays, begin, finish
                in q(text("SELECT name, weekdays, start_time, end_time FROM shift_patterns ORDER BY start_time, name"))]
    periods = [NonProduction(begin, finish, reason) for begin, finish, reason in q(text(
        """SELECT start_ts, end_ts, reason FROM non_production
           WHERE (CAST(:start AS timestamptz) IS NULL OR end_ts > :start) AND (CAST(:end AS timestamptz) IS NULL OR start_ts < :end)
           ORDER BY start_ts"""), {"start": start, "end": end})]
    return ShiftCalendar(ZoneInfo(timezone), tuple(patterns), tuple(periods))


class ShiftSpec(NamedTuple):
    """A shift pattern as given: weekdays 0 = Monday … 6 = Sunday; breaks as (start, end) wall times."""

    name: str
    weekdays: Iterable[int]
    start: time
    end: time
    breaks: Iterable[tuple[time, time]] = ()


def set_calendar(session: Session, timezone: str, specs: Iterable[ShiftSpec], now: datetime | None = None) -> ShiftCalendar:
    """Replace the timezone and every shift pattern; ValueError (nothing written) when the rules refuse them."""
    patterns = tuple(ShiftPattern(spec.name, frozenset(spec.weekdays), spec.start, spec.end,
                                  tuple(Break(*pause) for pause in spec.breaks)) for spec in specs)
    names = [pattern.name for pattern in patterns]
    if len(set(names)) != len(names):
        raise ValueError(f"shift names must be unique: {sorted({n for n in names if names.count(n) > 1})}")
    calendar = ShiftCalendar(_zone(timezone), patterns)
    now = now or datetime.now(UTC)
    shift_instances(calendar, now - timedelta(days=1), now + CALENDAR_CHECK)  # refuses overlapping shifts
    session.execute(text("UPDATE calendar_settings SET timezone = :tz"), {"tz": timezone})
    session.execute(text("DELETE FROM shift_patterns"))
    for pattern in patterns:
        session.execute(text("INSERT INTO shift_patterns VALUES (:name, :weekdays, :start, :end)"),
                        {"name": pattern.name, "weekdays": sorted(pattern.weekdays), "start": pattern.start, "end": pattern.end})
        for pause in pattern.breaks:
            session.execute(text("INSERT INTO shift_breaks (shift_name, start_time, end_time) VALUES (:name, :start, :end)"),
                            {"name": pattern.name, "start": pause.start, "end": pause.end})
    session.commit()
    return load_calendar(session)


def non_production_periods(session: Session) -> list[dict]:
    rows = session.execute(text("SELECT id, start_ts AS start, end_ts AS end, reason FROM non_production ORDER BY start_ts, id"))
    return [dict(row._mapping) for row in rows]


def add_non_production(session: Session, start: datetime, end: datetime, reason: str = "") -> dict:
    NonProduction(start, end, reason)  # the rule's checks
    row = session.execute(text("""INSERT INTO non_production (start_ts, end_ts, reason) VALUES (:start, :end, :reason)
                                  RETURNING id, start_ts AS start, end_ts AS end, reason"""),
                          {"start": start, "end": end, "reason": reason}).one()
    session.commit()
    return dict(row._mapping)


def remove_non_production(session: Session, period_id: int) -> None:
    if session.execute(text("DELETE FROM non_production WHERE id = :id RETURNING id"), {"id": period_id}).first() is None:
        raise NotFound(f"non-production period {period_id} does not exist")
    session.commit()


def shifts(session: Session, start: datetime, end: datetime) -> list[tuple[ShiftInstance, timedelta]]:
    """The shifts sharing an instant with [start, end), each with its planned production time."""
    require_period(start, end)
    calendar = load_calendar(session, start - timedelta(days=1), end + timedelta(days=1))
    return [(shift, planned_production_time(calendar, shift.start, shift.end))
            for shift in shift_instances(calendar, start, end)]


# --- pareto ---------------------------------------------------------------------------------------------


def pareto(session: Session, start: datetime, end: datetime, by: str, *, machine_id: str | None = None,
           line_id: str | None = None, derivation: Derivation | None = None) -> list[ParetoRow]:
    """Unplanned stops inside planned production time by reason, machine, line or shift (see the module doc)."""
    require_period(start, end)
    if by not in ("reason", "machine", "line", "shift"):
        raise ValueError(f"pareto by reason, machine, line or shift, not {by!r}")
    derivation = derivation or Derivation.of()
    selected = machines(session, machine_id, line_id)
    groups = planned_windows(load_calendar(session, start, end), start, min(end, derivation.now))
    stops, time_in = defaultdict(int), defaultdict(lambda: timedelta(0))
    micro, micro_time = defaultdict(int), defaultdict(lambda: timedelta(0))
    keys = set()
    for machine in selected:
        intervals = derive(session, machine.machine_id, start, end, derivation)
        reason_of = {e.interval.began: e.reason_code for e in explain(session, intervals)} if by == "reason" else {}
        for shift, windows in groups:
            for piece, began_here in unplanned_stops(intervals, windows):
                key = _pareto_key(by, machine, shift, reason_of.get(piece.began))
                keys.add(key)
                if piece.stop is StopKind.MICROSTOP:
                    micro[key] += began_here
                    micro_time[key] += piece.duration
                else:
                    stops[key] += began_here
                    time_in[key] += piece.duration
    total = sum(time_in.values(), timedelta(0))
    rows = [ParetoRow(key, stops[key], time_in[key], _share(time_in[key], total), micro[key], micro_time[key]) for key in keys]
    return sorted(rows, key=lambda row: (-row.time, -row.microstop_time, row.key is None, row.key or ""))


def _pareto_key(by: str, machine: MachineRow, shift: ShiftInstance | None, reason: str | None) -> str | None:
    if by == "reason":
        return reason
    if by == "shift":
        return shift.name if shift else None
    return machine.machine_id if by == "machine" else machine.line


def _share(part: timedelta, whole: timedelta) -> Decimal | None:
    if not whole:
        return None
    ratio = Fraction(part // MICROSECOND, whole // MICROSECOND)
    return _SHARE.divide(Decimal(ratio.numerator), Decimal(ratio.denominator))
