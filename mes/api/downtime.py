"""Downtime and OEE: state intervals, stop reasons, pareto, the shift calendar, OEE by ISO 22400-2.

Periods are [start, end) with a time zone (…Z or +01:00). Durations are exact decimal seconds
(microseconds), ratios decimals with 28 significant digits. Derivation parameters, on every endpoint
that derives intervals: `offline_after_s` (default: the setting `offline_after_s`) and
`microstop_threshold_s` (default 120). How intervals, reasons and the pareto are defined:
`mes.services.downtime`; OEE: `mes.services.oee` and docs/oee.md.
"""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator
from sqlalchemy.orm import Session

from kernel.auth import Caller
from kernel.http import Db, Id, In, NamedInBody
from kernel.rules.instants import exact_seconds
from kernel.rules.refusals import Invalid, refused_as
from mes.services import downtime as service
from mes.services.oee import oee as compute_oee

T = TypeVar("T")

ReasonCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]
Start = Annotated[datetime, Query(description="period start, included, with a time zone; a period longer than the "
                                              "setting api_max_period_days (default 400) is refused with 422")]
End = Annotated[datetime, Query(description="period end, excluded, with a time zone")]
DAY_S = 86_400
OfflineAfter = Annotated[Decimal | None, Query(gt=0, le=7 * DAY_S, max_digits=16,
                                               description="seconds without a message before a machine is offline "
                                                           "(default: the setting offline_after_s)")]
Microstop = Annotated[Decimal, Query(gt=0, le=DAY_S, max_digits=16,
                                     description="stops shorter than this many seconds are microstops")]
FaultCode = Annotated[int, Field(gt=0, le=2_147_483_647, description="the PLC's fault code (a PostgreSQL integer)")]
_INSTANT = TypeAdapter(datetime)


def bounded_period(request: Request) -> None:
    """A period (`start`, `end` of the query) longer than the setting api_max_period_days is refused: deriving
    years of machine states would hold a worker for minutes. Parsed as the route parses them; what does not
    parse is left to the route's own 422."""
    start, end = request.query_params.get("start"), request.query_params.get("end")
    if start is None or end is None:
        return
    try:
        span = _INSTANT.validate_python(end) - _INSTANT.validate_python(start)
    except (ValidationError, TypeError):
        return
    limit: timedelta = request.app.state.max_period
    if span > limit:
        raise Invalid(f"the period is longer than {limit.days} days (the setting api_max_period_days): ask for shorter ones")


router = APIRouter(dependencies=[Depends(bounded_period)])
MachineFilter = Annotated[Id | None, Query(description="this machine only")]
LineFilter = Annotated[Id | None, Query(description="the machines of this line only")]


def _refused(call: Callable[[], T]) -> T:
    """A service call; what the rules refuse (a ValueError not classified yet) is a 422 with their message."""
    with refused_as(Invalid):
        return call()


def _duration(value: Decimal, what: str) -> timedelta:
    microseconds = value * 1_000_000
    if microseconds != microseconds.to_integral_value():
        raise Invalid(f"{what} must be a whole number of microseconds, not {value} s")
    return timedelta(microseconds=int(microseconds))


def _derivation(offline_after_s: Decimal | None, microstop_threshold_s: Decimal) -> service.Derivation:
    offline_after = None if offline_after_s is None else _duration(offline_after_s, "offline_after_s")
    return service.Derivation.of(offline_after, _duration(microstop_threshold_s, "microstop_threshold_s"))


# --- state intervals ------------------------------------------------------------------------------------


class IntervalOut(BaseModel):
    machine_id: str
    start: datetime
    end: datetime
    began: datetime = Field(description="when the whole interval began (before start when the period cut it): "
                                        "a stop is identified by its machine and this instant")
    state: str = Field(description="running, idle, fault, blocked, starved, setup, planned_stop, offline or unknown")
    category: Literal["running", "stopped", "planned", "offline"]
    stop: Literal["microstop", "breakdown", "setup", "idle", "blocked", "starved"] | None
    fault_code: int | None
    reason_code: str | None
    reason_source: Literal["annotation", "fault_code"] | None
    comment: str | None
    duration_s: Decimal


@router.get("/machines/{machine_id}/states", response_model=list[IntervalOut])
def states(machine_id: str, start: Start, end: End, db: Db, offline_after_s: OfflineAfter = None,
           microstop_threshold_s: Microstop = Decimal(120)):
    """The machine's state intervals inside the period (none after now), each stop with its reason and comment."""
    derivation = _derivation(offline_after_s, microstop_threshold_s)
    intervals = _refused(lambda: service.state_intervals(db, machine_id, start, end, derivation))
    return [IntervalOut(machine_id=e.interval.machine_id, start=e.interval.start, end=e.interval.end, began=e.interval.began,
                        state=e.interval.state, category=e.interval.category.value,
                        stop=e.interval.stop.value if e.interval.stop else None, fault_code=e.interval.fault_code,
                        reason_code=e.reason_code, reason_source=e.reason_source, comment=e.comment,
                        duration_s=exact_seconds(e.interval.duration))
            for e in service.explain(db, intervals)]


# --- reasons ----------------------------------------------------------------------------------------------


class DowntimeReasonIn(In):
    code: ReasonCode
    description: str = Field(min_length=1, max_length=200)
    planned: bool = Field(default=False, description="information for people: the machine's state decides planned time")
    active: bool = True


class DowntimeReasonOut(BaseModel):
    code: str
    description: str
    planned: bool
    active: bool


class FaultReasonIn(In):
    machine_id: Id | None = Field(default=None, description="none: every machine without its own mapping of the code")
    fault_code: FaultCode
    reason_code: ReasonCode


class FaultReasonOut(BaseModel):
    machine_id: str | None
    fault_code: int
    reason_code: str


class AnnotationIn(In):
    reason_code: ReasonCode | None = None
    comment: str | None = Field(default=None, min_length=1, max_length=2000)
    actor: NamedInBody = None

    @model_validator(mode="after")
    def says_something(self):
        if self.reason_code is None and self.comment is None:
            raise ValueError("give a reason_code, a comment or both")
        return self


class AnnotationOut(BaseModel):
    id: int
    machine_id: str
    stop_start: datetime
    reason_code: str | None
    comment: str | None
    actor: str
    ts: datetime


@router.get("/downtime-reasons", response_model=list[DowntimeReasonOut])
def list_reasons(db: Db):
    return service.list_reasons(db)


@router.post("/downtime-reasons", response_model=DowntimeReasonOut, status_code=201)
def create_reason(body: DowntimeReasonIn, db: Db):
    return service.create_reason(db, body.code, body.description, body.planned, body.active)


@router.get("/fault-reasons", response_model=list[FaultReasonOut])
def list_fault_reasons(db: Db):
    return service.list_fault_reasons(db)


@router.put("/fault-reasons", response_model=FaultReasonOut)
def set_fault_reason(body: FaultReasonIn, db: Db):
    """The reason a stop with this fault code gets unless someone gives it another; replaces an earlier mapping."""
    return service.set_fault_reason(db, body.machine_id, body.fault_code, body.reason_code)


@router.post("/machines/{machine_id}/stops/{stop_start}/annotations", response_model=AnnotationOut, status_code=201)
def annotate(machine_id: str, stop_start: datetime, body: AnnotationIn, db: Db, caller: Caller,
             offline_after_s: OfflineAfter = None):
    """Give a stop (identified by when it began) a reason and/or a comment; the latest one counts.
    404 when no stop of the machine begins at that instant."""
    derivation = _derivation(offline_after_s, Decimal(120))
    return _refused(lambda: service.annotate(db, machine_id, stop_start, caller.name, body.reason_code, body.comment, derivation))


@router.get("/machines/{machine_id}/stops/{stop_start}/annotations", response_model=list[AnnotationOut])
def annotation_history(machine_id: str, stop_start: datetime, db: Db):
    """Every reason and comment given to the stop, oldest first."""
    return _refused(lambda: service.annotations(db, machine_id, stop_start))


class ParetoRowOut(BaseModel):
    key: str | None = Field(description="the reason code, machine, line or shift name; null: none")
    stops: int = Field(description="stops (microstops apart) that began inside planned production time")
    seconds: Decimal
    share: Decimal | None = Field(description="seconds / all keys' seconds")
    microstops: int
    microstop_seconds: Decimal


@router.get("/downtime/pareto", response_model=list[ParetoRowOut])
def pareto(start: Start, end: End, db: Db, by: Literal["reason", "machine", "line", "shift"] = "reason",
           machine_id: MachineFilter = None, line_id: LineFilter = None, offline_after_s: OfflineAfter = None,
           microstop_threshold_s: Microstop = Decimal(120)):
    """Unplanned stops inside planned production time, largest first; microstops in their own columns."""
    derivation = _derivation(offline_after_s, microstop_threshold_s)
    rows = _refused(lambda: service.pareto(db, start, end, by, machine_id=machine_id, line_id=line_id, derivation=derivation))
    return [ParetoRowOut(key=row.key, stops=row.stops, seconds=exact_seconds(row.time), share=row.share,
                         microstops=row.microstops, microstop_seconds=exact_seconds(row.microstop_time)) for row in rows]


# --- calendar ---------------------------------------------------------------------------------------------


class BreakModel(In):
    start: time
    end: time


class ShiftModel(In):
    name: str = Field(min_length=1, max_length=40)
    weekdays: list[int] = Field(description="days the shift starts on: 0 = Monday … 6 = Sunday")
    start: time
    end: time = Field(description="at or before start: the shift ends the next day; equal: 24 hours")
    breaks: list[BreakModel] = []


class CalendarIn(In):
    timezone: str = Field(description="IANA name such as Europe/Berlin: the shifts' wall-clock times are local there")
    shifts: list[ShiftModel] = Field(description="no shift: the whole period is planned production time")


class NonProductionIn(In):
    start: datetime
    end: datetime
    reason: str = Field(default="", max_length=200)


class NonProductionOut(BaseModel):
    id: int
    start: datetime
    end: datetime
    reason: str


class CalendarOut(BaseModel):
    timezone: str
    shifts: list[ShiftModel]
    non_production: list[NonProductionOut]


class WindowOut(BaseModel):
    start: datetime
    end: datetime


class ShiftInstanceOut(BaseModel):
    name: str
    day: date = Field(description="the local date the shift starts on")
    start: datetime
    end: datetime
    breaks: list[WindowOut]
    planned_production_s: Decimal = Field(description="the shift less its breaks and non-production periods")


def _calendar_out(db: Session) -> CalendarOut:
    calendar = service.load_calendar(db)
    return CalendarOut(
        timezone=str(calendar.timezone),
        shifts=[ShiftModel(name=p.name, weekdays=sorted(p.weekdays), start=p.start, end=p.end,
                           breaks=[BreakModel(start=b.start, end=b.end) for b in p.breaks]) for p in calendar.shifts],
        non_production=service.non_production_periods(db))


@router.get("/calendar", response_model=CalendarOut)
def calendar(db: Db):
    return _calendar_out(db)


@router.put("/calendar", response_model=CalendarOut)
def set_calendar(body: CalendarIn, db: Db):
    """Replace the timezone and every shift pattern (non-production periods stay). 422 with the calendar
    rule's message when a shift, a break or the timezone is refused, or two shifts overlap."""
    specs = [service.ShiftSpec(s.name, s.weekdays, s.start, s.end, [(b.start, b.end) for b in s.breaks]) for s in body.shifts]
    _refused(lambda: service.set_calendar(db, body.timezone, specs))
    return _calendar_out(db)


@router.post("/calendar/non-production", response_model=NonProductionOut, status_code=201)
def add_non_production(body: NonProductionIn, db: Db):
    """Planned non-production (holiday, planned maintenance): not planned production time."""
    return _refused(lambda: service.add_non_production(db, body.start, body.end, body.reason))


@router.delete("/calendar/non-production/{period_id}", status_code=204)
def remove_non_production(period_id: int, db: Db):
    service.remove_non_production(db, period_id)


@router.get("/calendar/shifts", response_model=list[ShiftInstanceOut])
def shifts(start: Start, end: End, db: Db):
    """The shifts sharing an instant with the period, whole, in UTC."""
    found = _refused(lambda: service.shifts(db, start, end))
    return [ShiftInstanceOut(name=shift.name, day=shift.day, start=shift.start, end=shift.end,
                             breaks=[WindowOut(start=b.start, end=b.end) for b in shift.breaks],
                             planned_production_s=exact_seconds(planned)) for shift, planned in found]


# --- OEE --------------------------------------------------------------------------------------------------


class OeeOut(BaseModel):
    key: str | None = Field(description="machine, line, work order, or '<local date> <shift>'; null: the whole period "
                                        "when no shift is defined")
    start: datetime
    end: datetime
    planned_production_time_s: Decimal
    planned_downtime_s: Decimal
    unknown_time_s: Decimal = Field(description="offline or unknown: neither running nor stopped")
    planned_busy_time_s: Decimal
    run_time_s: Decimal
    stopped_time_s: Decimal
    breakdown_time_s: Decimal
    microstop_time_s: Decimal
    failures: int
    microstops: int
    ideal_time_s: Decimal
    total: int
    good: int
    energy_wh: Decimal
    availability: Decimal | None
    performance: Decimal | None
    quality: Decimal | None
    oee: Decimal | None
    mtbf_s: Decimal | None
    mttr_s: Decimal | None
    energy_per_good_unit_wh: Decimal | None


def _optional_seconds(duration: timedelta | None) -> Decimal | None:
    return None if duration is None else exact_seconds(duration)


@router.get("/oee", response_model=list[OeeOut])
def oee(start: Start, end: End, db: Db, by: Literal["machine", "line", "shift", "work_order"] = "machine",
        machine_id: MachineFilter = None, line_id: LineFilter = None, offline_after_s: OfflineAfter = None,
        microstop_threshold_s: Microstop = Decimal(120)):
    """Availability, performance, quality and OEE by ISO 22400-2 with their totals, MTBF, MTTR and energy per
    good unit, per machine, line, shift instance or work order (docs/oee.md)."""
    derivation = _derivation(offline_after_s, microstop_threshold_s)
    groups = _refused(lambda: compute_oee(db, start, end, by, machine_id=machine_id, line_id=line_id, derivation=derivation))
    out = []
    for group in groups:
        t, m = group.totals, group.measures
        out.append(OeeOut(
            key=group.key, start=group.start, end=group.end,
            planned_production_time_s=exact_seconds(t.planned_production_time),
            planned_downtime_s=exact_seconds(t.planned_downtime), unknown_time_s=exact_seconds(t.unknown_time),
            planned_busy_time_s=exact_seconds(t.planned_busy_time), run_time_s=exact_seconds(t.run_time),
            stopped_time_s=exact_seconds(t.stopped_time), breakdown_time_s=exact_seconds(t.breakdown_time),
            microstop_time_s=exact_seconds(t.microstop_time), failures=t.failures, microstops=t.microstops,
            ideal_time_s=t.ideal_seconds, total=t.total, good=t.good, energy_wh=t.energy_wh,
            availability=m.availability, performance=m.performance, quality=m.quality, oee=m.oee,
            mtbf_s=_optional_seconds(m.mtbf), mttr_s=_optional_seconds(m.mttr), energy_per_good_unit_wh=m.energy_per_good_unit))
    return out
