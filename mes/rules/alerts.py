"""Alert engine rules: which conditions deserve an alert, an alert's lifecycle, and its notifications.

Rules. An `AlertRule` has a kind, a severity and a scope (the plant, one line or one machine):
- machine_down: the machine has been in a down state for longer than `minutes`. Down states are, by
  default, idle, fault, blocked and starved; a rule may list its own among those and setup. Planned
  stop never counts, and an offline machine is not down (its last state is stale): offline has its own rule.
- offline: the machine (or its edge) has been offline for longer than `minutes`.
- scrap_rate: over the trailing `minutes`, scrap is above `percent` % of the units made (good + scrap),
  judged only once the window holds at least `min_units` units (default 20), so that 1 scrap of 2
  units does not fire.
- low_rate: over the trailing `minutes`, with the machine running throughout, it made less than
  `percent` % of what it makes at ideal speed. Ambiguity, stated: a stop inside the window is lost
  availability, which machine_down reports, not lost speed; so the window restarts with every stop,
  short ones (idle between cycles) included.
- stock_shortage, safety_stock, slow_moving, overdue_sales_order, lot_expiring: passthrough kinds. The
  inventory side decides which subjects (item at a location, sales order, lot) are in that condition
  and sends them as `Fact`s; the rule only gives them a severity and can switch them off. The issue's
  "stock shortage" and "shortages from backflush" are read as one kind, stock_shortage.
- review_waiting: passthrough as well; its one subject, "review", holds while a dead letter or a
  quarantined counter step has waited for a decision longer than the plant allows (`review_overdue`).
- planned_shortage: passthrough as well; the planning side reports each item the live plan finds short
  within the next days (a demand reached late, or below safety stock), with the planned orders to release:
  the time-phased counterpart of safety_stock's purchase suggestion (`planning.services.shortage_alerts`).
A rule of a kind applies to a machine if its scope is that machine, else its line, else the plant: the
most specific rule wins and replaces the others, it does not add to them. A disabled rule still wins,
which is how one machine is exempted from a line's rule. A scope has at most one rule per kind, so
there are no escalation tiers (warning at 10 minutes, critical at 30). Passthrough rules are plant-wide.

Lifecycle: active → acknowledged → cleared, or active → cleared. An alert is about one (kind, subject);
at most one alert per (kind, subject) is open (active or acknowledged) at a time. `reconcile` takes
the open alerts and one round of conditions and returns the transitions:
- a holding condition with no open alert raises one; with an open alert of the same rule it changes
  nothing: the alert keeps the detail and value it was raised with, so a round repeated is silent;
- a condition that does not hold clears the open alert;
- a cleared alert never changes again: when the condition holds again, a new alert is raised.
`acknowledge` records who and when, once, and only while the alert is active. Every change, raise,
acknowledgement or clearing, is a `Transition` (event, when, by whom, why): stored, they are the
alert's audit trail.
Ambiguity, stated: evaluation may be partial. An open alert whose (kind, subject) has no condition in
the round is left alone; only a condition saying it no longer holds clears it. A condition therefore
also says which rule governs its subject now (`rule_id`, or None when no enabled rule does): an open
alert of the same (kind, subject) raised by another rule is cleared, so deleting, disabling or
overriding a rule clears its alerts the next time the subject is evaluated. For a passthrough kind, the
facts sent are the complete list of subjects in that condition: an open alert whose subject is missing
from the list is cleared.

Time limits are strict: "longer than 10 minutes" holds from 10 minutes and one microsecond on; a
fractional number of minutes is rounded up to the microsecond. Rates are compared exactly (fractions);
the `value` an alert reports (minutes, percent) is for display, rounded half-even to 0.01.

Notifications: every transition, acknowledgement included, becomes one `Notification` whose key is
(alert id, event). An alert is raised, acknowledged and cleared at most once each, so the key names
one transition for ever and a receiver drops a repeat by it. Delivery is at least once: the sender
retries on a schedule that doubles from 1 s to a cap of 5 minutes and never gives up (a receiver may
be down for hours; a delivery ends when it succeeds or the webhook is removed). Deliver each receiver's
notifications oldest first, one at a time, so it sees raised before cleared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any, Literal, NamedTuple, TypeVar, cast

from kernel.rules.instants import require_aware
from kernel.rules.quantities import exact_quantity, whole_number
from kernel.signals import MachineState

_MICROSECONDS_PER_MINUTE = 60_000_000
_MICROSECONDS_PER_SECOND = 1_000_000


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(str, Enum):
    MACHINE_DOWN = "machine_down"
    OFFLINE = "offline"
    SCRAP_RATE = "scrap_rate"
    LOW_RATE = "low_rate"
    # Passthrough: the inventory side computes them. A stock shortage is what backflush records when
    # a location had less than was consumed.
    STOCK_SHORTAGE = "stock_shortage"
    SAFETY_STOCK = "safety_stock"
    SLOW_MOVING = "slow_moving"
    OVERDUE_SALES_ORDER = "overdue_sales_order"
    LOT_EXPIRING = "lot_expiring"
    LOT_EXPIRED = "lot_expired"
    # Passthrough too: what the ingest set aside for review has waited longer than the plant allows.
    REVIEW_WAITING = "review_waiting"
    # Passthrough too: the live plan's shortages of the next days, with its purchase suggestion (planning).
    PLANNED_SHORTAGE = "planned_shortage"


class AlertStatus(str, Enum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"  # final


class AlertEvent(str, Enum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


MACHINE_KINDS = (AlertKind.MACHINE_DOWN, AlertKind.OFFLINE, AlertKind.SCRAP_RATE, AlertKind.LOW_RATE)
PASSTHROUGH_KINDS = tuple(kind for kind in AlertKind if kind not in MACHINE_KINDS)

# Planned stop is not down (nobody expects output) and offline has its own rule. Setup is planned work
# whose length varies by changeover, so it counts only where a rule says so.
DOWN_STATE_CHOICES = frozenset({"idle", "fault", "blocked", "starved", "setup"})
DEFAULT_DOWN_STATES = frozenset({"idle", "fault", "blocked", "starved"})
RUNNING = MachineState.NAMES[MachineState.RUNNING]
_STATE_NAMES = frozenset(MachineState.NAMES.values())

# Below 20 units one scrap unit moves the rate by more than 5 points.
DEFAULT_MIN_UNITS = 20

_PARAMETERS: dict[AlertKind, frozenset[str]] = {
    AlertKind.MACHINE_DOWN: frozenset({"minutes", "down_states"}),
    AlertKind.OFFLINE: frozenset({"minutes"}),
    AlertKind.SCRAP_RATE: frozenset({"minutes", "percent", "min_units"}),
    AlertKind.LOW_RATE: frozenset({"minutes", "percent"}),
}
_PARAMETER_NAMES = ("minutes", "percent", "min_units", "down_states")




def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} is required")
    return value


_Member = TypeVar("_Member", bound=Enum)


def _enum(enum: type[_Member], value: object, what: str) -> _Member:
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(member.value for member in enum)
        raise ValueError(f"unknown {what} {value!r}: expected one of {known}") from None


def _display(value: Fraction) -> Decimal:
    """`value` rounded half-even to 0.01, as an exact Decimal."""
    return Decimal(round(value * 100)).scaleb(-2)


def _display_value(value: Decimal | None, what: str) -> None:
    if value is not None and not isinstance(value, Decimal):
        raise TypeError(f"the value shown for {what} must be a Decimal, not {type(value).__name__}: {value!r}")


def _minutes(elapsed: timedelta) -> Fraction:
    return Fraction(max(elapsed, timedelta(0)) // timedelta(microseconds=1), _MICROSECONDS_PER_MINUTE)


# --- Rules and their resolution ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a rule applies: the whole plant, one line or one machine. Written "plant", "line=L1", "machine=M1"."""

    level: Literal["plant", "line", "machine"]
    id: str | None = None

    def __post_init__(self) -> None:
        if self.level == "plant":
            if self.id is not None:
                raise ValueError(f"a plant-wide scope names no line or machine, got {self.id!r}")
        elif self.level in ("line", "machine"):
            _text(self.id, f"the {self.level} of a {self.level} scope")
        else:
            raise ValueError(f"unknown scope {self.level!r}: expected plant, line=<id> or machine=<id>")

    @classmethod
    def parse(cls, text: str) -> Scope:
        level, _, scope_id = text.strip().partition("=")
        return cls(level.strip(), scope_id.strip() or None)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.level if self.id is None else f"{self.level}={self.id}"


PLANT = Scope("plant")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One configured rule. Parameters a kind does not use must be left out.

    `minutes` is the time limit (machine_down, offline), the trailing window (scrap_rate) or how long
    the machine must have run slow (low_rate). Text values (kind, severity, scope) are accepted as stored.
    """

    rule_id: str
    kind: AlertKind
    severity: Severity
    scope: Scope = PLANT
    minutes: Decimal | None = None
    percent: Decimal | None = None
    min_units: int | None = None
    down_states: frozenset[str] | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        def set_field(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        _text(self.rule_id, "a rule id")
        kind = _enum(AlertKind, self.kind, "alert kind")
        set_field("kind", kind)
        set_field("severity", _enum(Severity, self.severity, "severity"))
        if isinstance(self.scope, str):
            set_field("scope", Scope.parse(self.scope))
        if not isinstance(self.enabled, bool):
            raise TypeError(f"rule {self.rule_id}: enabled must be true or false, not {self.enabled!r}")
        used = _PARAMETERS.get(kind, frozenset())
        for name in _PARAMETER_NAMES:
            if name not in used and getattr(self, name) is not None:
                raise ValueError(f"rule {self.rule_id}: {kind.value} rules take no {name}")
        if kind in PASSTHROUGH_KINDS and self.scope != PLANT:
            raise ValueError(f"rule {self.rule_id}: {kind.value} rules are about stock, not a line or machine; "
                             f"its scope must be the plant, not {self.scope}")
        if "minutes" in used:
            set_field("minutes", self._minutes_checked())
        if "percent" in used:
            set_field("percent", self._percent_checked(kind))
        if "min_units" in used:
            min_units = DEFAULT_MIN_UNITS if self.min_units is None else whole_number(self.min_units, "minimum units")
            if min_units < 1:
                raise ValueError(f"rule {self.rule_id}: the minimum units must be at least 1")
            set_field("min_units", min_units)
        if "down_states" in used:
            set_field("down_states", self._down_states_checked())

    def _minutes_checked(self) -> Decimal:
        if self.minutes is None:
            raise ValueError(f"rule {self.rule_id}: {self.kind.value} rules need minutes")
        minutes = exact_quantity(self.minutes, f"minutes of rule {self.rule_id}")
        if minutes <= 0:
            raise ValueError(f"rule {self.rule_id}: minutes must be more than 0, got {minutes}")
        try:
            _duration(minutes)
        except OverflowError:
            raise ValueError(f"rule {self.rule_id}: {minutes} minutes is too long") from None
        return minutes

    def _percent_checked(self, kind: AlertKind) -> Decimal:
        if self.percent is None:
            raise ValueError(f"rule {self.rule_id}: {kind.value} rules need a percent")
        percent = exact_quantity(self.percent, f"percent of rule {self.rule_id}")
        # A scrap rate can never be above 100 %; a rate below 0 % of ideal cannot happen.
        if kind is AlertKind.SCRAP_RATE and not 0 <= percent < 100:
            raise ValueError(f"rule {self.rule_id}: the scrap limit must be from 0 up to (not including) 100 %, got {percent}")
        if kind is AlertKind.LOW_RATE and not 0 < percent <= 100:
            raise ValueError(f"rule {self.rule_id}: the rate limit must be above 0 and at most 100 % of ideal, got {percent}")
        return percent

    def _down_states_checked(self) -> frozenset[str]:
        if self.down_states is None:
            return DEFAULT_DOWN_STATES
        if isinstance(self.down_states, str):
            raise TypeError(f"rule {self.rule_id}: down states must be a list of states, not one string")
        states = frozenset(self.down_states)
        wrong = sorted(str(state) for state in states - DOWN_STATE_CHOICES)
        if wrong or not states:
            raise ValueError(f"rule {self.rule_id}: down states must be some of {', '.join(sorted(DOWN_STATE_CHOICES))}"
                             + (f", not {', '.join(wrong)}" if wrong else ""))
        return states

    @property
    def duration(self) -> timedelta:
        """`minutes` as a timedelta, rounded up to the microsecond."""
        if self.minutes is None:
            raise ValueError(f"{self.kind.value} rules have no minutes")
        return _duration(self.minutes)


def _duration(minutes: Decimal) -> timedelta:
    return timedelta(microseconds=math.ceil(Fraction(minutes) * _MICROSECONDS_PER_MINUTE))


class RuleBook:
    """The configured rules, checked once: rule ids are unique and each scope has at most one rule per kind."""

    def __init__(self, rules: Iterable[AlertRule]) -> None:
        self._by_scope: dict[tuple[AlertKind, Scope], AlertRule] = {}
        ids: set[str] = set()
        for rule in rules:
            if rule.rule_id in ids:
                raise ValueError(f"two rules have the id {rule.rule_id}")
            ids.add(rule.rule_id)
            other = self._by_scope.setdefault((rule.kind, rule.scope), rule)
            if other is not rule:
                raise ValueError(f"rules {other.rule_id} and {rule.rule_id} are both {rule.kind.value} rules for "
                                 f"{rule.scope}; keep one")

    def rule_for(self, kind: AlertKind | str, line_id: str | None = None, machine_id: str | None = None) -> AlertRule | None:
        """The enabled rule of `kind` that applies: the machine's, else its line's, else the plant's.

        None when no rule applies or the one that applies is disabled. Passthrough kinds ignore the place.
        """
        kind = _enum(AlertKind, kind, "alert kind")
        scopes = [PLANT]
        if kind in MACHINE_KINDS:
            _text(machine_id, f"the machine a {kind.value} rule is looked up for")
            scopes = [Scope("machine", machine_id), *([Scope("line", line_id)] if line_id else []), PLANT]
        rule = next((self._by_scope[kind, scope] for scope in scopes if (kind, scope) in self._by_scope), None)
        return rule if rule is not None and rule.enabled else None


# --- Conditions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """One evaluation: whether `kind` holds for `subject` now, under which rule.

    `rule_id` None means no enabled rule governs the subject: the condition cannot hold, and any open
    alert of its (kind, subject) clears.
    """

    kind: AlertKind
    subject: str
    rule_id: str | None
    severity: Severity | None
    holds: bool
    detail: str
    value: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(AlertKind, self.kind, "alert kind"))
        if self.severity is not None:
            object.__setattr__(self, "severity", _enum(Severity, self.severity, "severity"))
        _text(self.subject, "the subject of a condition")
        _display_value(self.value, self.subject)
        if (self.rule_id is None) != (self.severity is None):
            raise ValueError(f"the {self.kind.value} condition for {self.subject} needs both a rule and a severity, or neither")
        if self.holds and self.rule_id is None:
            raise ValueError(f"the {self.kind.value} condition for {self.subject} cannot hold without a rule")


class MachineStatus(NamedTuple):
    """What the core knows about a machine now."""

    machine_id: str
    state: str | None  # a name from MachineState.NAMES; None before the first report
    state_since: datetime | None
    offline_since: datetime | None  # None while online


class Fact(NamedTuple):
    """A subject the inventory side reports in a passthrough condition, e.g. "RM-7 at WH-1", "SO-1042", "lot L-88"."""

    subject: str
    detail: str
    value: Decimal | int | None = None


def _condition(rule: AlertRule, subject: str, holds: bool, detail: str, value: Decimal | None) -> Condition:
    return Condition(rule.kind, subject, rule.rule_id, rule.severity, holds, detail, value)


def _checked_rule(rule: AlertRule, kind: AlertKind) -> AlertRule:
    if rule.kind is not kind:
        raise ValueError(f"rule {rule.rule_id} is for {rule.kind.value}, not {kind.value}")
    if not rule.enabled:
        raise ValueError(f"rule {rule.rule_id} is disabled; its subjects are ungoverned")
    return rule


def _checked_status(status: MachineStatus, now: datetime) -> None:
    _text(status.machine_id, "a machine id")
    require_aware(now, "now")
    if status.state is not None and status.state not in _STATE_NAMES:
        raise ValueError(f"unknown state {status.state!r} of {status.machine_id}: expected one of "
                         f"{', '.join(sorted(_STATE_NAMES))}")
    if (status.state is None) != (status.state_since is None):
        raise ValueError(f"the state of {status.machine_id} and the time it began come together")
    for when, what in ((status.state_since, "state start"), (status.offline_since, "offline start")):
        if when is not None:
            require_aware(when, f"the {what} of {status.machine_id}")


def ungoverned(kind: AlertKind | str, subject: str) -> Condition:
    """The condition for a subject no enabled rule of `kind` applies to: it clears any open alert."""
    kind = _enum(AlertKind, kind, "alert kind")
    return Condition(kind, subject, None, None, False, f"no enabled {kind.value} rule applies to {subject}")


def machine_down(rule: AlertRule, status: MachineStatus, now: datetime) -> Condition:
    """Down for longer than the rule's minutes, in one of its down states. An offline machine is not down:
    its last state is stale and the offline rule covers it."""
    _checked_rule(rule, AlertKind.MACHINE_DOWN)
    _checked_status(status, now)
    machine = status.machine_id
    if status.offline_since is not None:
        return _condition(rule, machine, False, f"{machine} is offline; its last state is not current", None)
    if status.state is None:
        return _condition(rule, machine, False, f"{machine} has not reported a state yet", None)
    # AlertRule gives each kind its parameters; _checked_status: a state comes with the time it began
    if status.state not in cast(frozenset[str], rule.down_states):
        return _condition(rule, machine, False, f"{machine} is {status.state}", None)
    elapsed = now - cast(datetime, status.state_since)
    minutes = _display(_minutes(elapsed))
    return _condition(rule, machine, elapsed > rule.duration,
                      f"{machine} has been {status.state} for {minutes} min (limit {rule.minutes:f} min)", minutes)


def offline(rule: AlertRule, status: MachineStatus, now: datetime) -> Condition:
    """Offline (no data reaches the core) for longer than the rule's minutes."""
    _checked_rule(rule, AlertKind.OFFLINE)
    _checked_status(status, now)
    machine = status.machine_id
    if status.offline_since is None:
        return _condition(rule, machine, False, f"{machine} is online", None)
    elapsed = now - status.offline_since
    minutes = _display(_minutes(elapsed))
    return _condition(rule, machine, elapsed > rule.duration,
                      f"{machine} has been offline for {minutes} min (limit {rule.minutes:f} min)", minutes)


def scrap_rate(rule: AlertRule, machine_id: str, good: int, scrap: int) -> Condition:
    """Scrap above the rule's percent of the units made in its trailing window (`good`, `scrap`: the
    window's counts), once the window holds at least `min_units` units."""
    _checked_rule(rule, AlertKind.SCRAP_RATE)
    _text(machine_id, "a machine id")
    units = whole_number(good, "good units") + whole_number(scrap, "scrap units")
    window = f"the last {rule.minutes:f} min"
    if units == 0:
        return _condition(rule, machine_id, False, f"{machine_id} made nothing in {window}", None)
    rate = Fraction(100 * scrap, units)
    percent = _display(rate)
    if units < cast(int, rule.min_units):  # AlertRule gives each kind its parameters
        return _condition(rule, machine_id, False, f"{machine_id} made only {units} units in {window}; "
                          f"the scrap rate is judged from {rule.min_units}", percent)
    return _condition(rule, machine_id, rate > cast(Decimal, rule.percent),
                      f"{machine_id} scrapped {scrap} of {units} units ({percent} %) in {window} "
                      f"(limit {rule.percent:f} %)", percent)


def low_rate(rule: AlertRule, status: MachineStatus, ideal_time_s: Decimal | int, now: datetime) -> Condition:
    """Running throughout the rule's trailing minutes, yet below its percent of ideal speed.

    `ideal_time_s`: the seconds the units (good + scrap) made in that window would take at ideal speed,
    Σ units × ideal cycle of their item. A machine that stopped in the window is left to the down rule:
    a stop is lost availability, not lost speed.
    """
    _checked_rule(rule, AlertKind.LOW_RATE)
    _checked_status(status, now)
    ideal = exact_quantity(ideal_time_s, "ideal time")
    if ideal < 0:
        raise ValueError(f"the ideal time of {status.machine_id}'s units cannot be negative, got {ideal}")
    machine, window = status.machine_id, rule.duration
    if status.offline_since is not None or status.state != RUNNING:
        now_doing = "offline" if status.offline_since is not None else (status.state or "without a state")
        return _condition(rule, machine, False, f"{machine} is {now_doing}, not running", None)
    running_since = cast(datetime, status.state_since)  # _checked_status: a state comes with the time it began
    if now - running_since < window:
        return _condition(rule, machine, False, f"{machine} has been running for {_display(_minutes(now - running_since))}"
                          f" min, less than the {rule.minutes:f} min the rate is judged over", None)
    speed = Fraction(ideal) * 100 * _MICROSECONDS_PER_SECOND / (window // timedelta(microseconds=1))
    percent = _display(speed)
    return _condition(rule, machine, speed < cast(Decimal, rule.percent),  # AlertRule gives each kind its parameters
                      f"{machine} ran at {percent} % of ideal speed over the last {rule.minutes:f} min "
                      f"(limit {rule.percent:f} %)", percent)


def review_overdue(dead_letters: int, oldest_dead_letter: datetime | None, steps: int, oldest_step: datetime | None,
                   now: datetime, allowed: timedelta) -> Fact | None:
    """The review_waiting fact when the oldest item waiting for review has waited longer than `allowed`."""
    waiting = [ts for ts in (oldest_dead_letter, oldest_step) if ts is not None]
    if not waiting or now - min(waiting) <= allowed:
        return None
    minutes = _display(_minutes(now - min(waiting)))
    return Fact("review", f"{dead_letters} dead letter(s) and {steps} quarantined counter step(s) wait for review; "
                          f"the oldest for {minutes} min", minutes)


def passthrough(book: RuleBook, kind: AlertKind | str, facts: Iterable[Fact], open_alerts: Iterable[Alert]) -> list[Condition]:
    """Conditions from the complete list of subjects the inventory side reports in `kind` now.

    Each fact holds under the plant's rule of that kind (or is ungoverned without an enabled one);
    an open alert of the kind whose subject is not reported any more no longer holds.
    """
    kind = _enum(AlertKind, kind, "alert kind")
    if kind not in PASSTHROUGH_KINDS:
        raise ValueError(f"{kind.value} is evaluated by its own rule, not passed through")
    rule = book.rule_for(kind)
    conditions: dict[str, Condition] = {}
    for fact in facts:
        if fact.subject in conditions:
            raise ValueError(f"{fact.subject} is reported twice as {kind.value}")
        value = None if fact.value is None else exact_quantity(fact.value, f"the value reported for {fact.subject}")
        conditions[fact.subject] = (
            ungoverned(kind, fact.subject) if rule is None else _condition(rule, fact.subject, True, fact.detail, value)
        )
    for alert in open_alerts:
        if alert.kind is kind and alert.is_open and alert.subject not in conditions:
            conditions[alert.subject] = (
                ungoverned(kind, alert.subject) if rule is None
                else _condition(rule, alert.subject, False, f"{alert.subject} is no longer reported as {kind.value}", None)
            )
    return list(conditions.values())


# --- Lifecycle ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """One occurrence of a condition. `alert_id` is None until the store gives it one."""

    alert_id: int | str | None
    kind: AlertKind
    subject: str
    rule_id: str
    severity: Severity
    status: AlertStatus
    raised_at: datetime
    detail: str
    value: Decimal | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    cleared_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(AlertKind, self.kind, "alert kind"))
        object.__setattr__(self, "severity", _enum(Severity, self.severity, "severity"))
        object.__setattr__(self, "status", _enum(AlertStatus, self.status, "alert status"))
        if isinstance(self.alert_id, bool) or not (self.alert_id is None or isinstance(self.alert_id, int | str)):
            raise TypeError(f"an alert id is a number or a text, not {self.alert_id!r}")
        name = self.name
        _display_value(self.value, name)
        require_aware(self.raised_at, f"the time {name} was raised")
        acknowledged = self.acknowledged_at is not None
        if acknowledged != (self.acknowledged_by is not None):
            raise ValueError(f"{name}: who acknowledged it and when come together")
        if (self.status is AlertStatus.ACKNOWLEDGED) != (acknowledged and self.cleared_at is None):
            raise ValueError(f"{name} is {self.status.value} but its acknowledgement and clearing say otherwise")
        if (self.status is AlertStatus.CLEARED) != (self.cleared_at is not None):
            raise ValueError(f"{name}: only a cleared alert has a clearing time, and it must have one")
        if self.acknowledged_at is not None:
            if require_aware(self.acknowledged_at, f"the time {name} was acknowledged") < self.raised_at:
                raise ValueError(f"{name} cannot be acknowledged before it was raised")
        if self.cleared_at is not None:
            if require_aware(self.cleared_at, f"the time {name} was cleared") < (self.acknowledged_at or self.raised_at):
                raise ValueError(f"{name} cannot be cleared before it was raised and acknowledged")

    @property
    def name(self) -> str:
        number = "" if self.alert_id is None else f" {self.alert_id}"
        return f"alert{number} ({self.kind.value} for {self.subject})"

    @property
    def is_open(self) -> bool:
        return self.status is not AlertStatus.CLEARED


class Transition(NamedTuple):
    """One step in an alert's life, and the audit record of it."""

    event: AlertEvent
    alert: Alert  # as it is after the transition
    at: datetime
    by: str | None  # who acknowledged; None for what the engine did itself
    note: str  # why: the condition's detail, or the acknowledger's comment


def reconcile(open_alerts: Iterable[Alert], conditions: Iterable[Condition], now: datetime) -> list[Transition]:
    """The alerts raised and cleared by one round of conditions, in the conditions' order.

    `open_alerts` are the alerts not yet cleared; raised alerts come back without an id.
    """
    require_aware(now, "now")
    open_by_key: dict[tuple[AlertKind, str], Alert] = {}
    for alert in open_alerts:
        if not alert.is_open:
            raise ValueError(f"{alert.name} is cleared; only open alerts are reconciled")
        other = open_by_key.setdefault((alert.kind, alert.subject), alert)
        if other is not alert:
            raise ValueError(f"{other.name} and {alert.name} are both open; one must be cleared first")
    evaluated: set[tuple[AlertKind, str]] = set()
    transitions: list[Transition] = []
    for condition in conditions:
        key = (condition.kind, condition.subject)
        if key in evaluated:
            raise ValueError(f"{condition.kind.value} for {condition.subject} was evaluated twice in one round")
        evaluated.add(key)
        current = open_by_key.get(key)
        if current is not None and current.rule_id != condition.rule_id:
            why = condition.detail if condition.rule_id is None else f"rule {condition.rule_id} applies now: {condition.detail}"
            transitions.append(_clear(current, now, why))
            current = None
        elif current is not None and not condition.holds:
            transitions.append(_clear(current, now, condition.detail))
            current = None
        if condition.holds and current is None:
            # Condition: one that holds has a rule, and with it a severity
            raised = Alert(None, condition.kind, condition.subject, cast(str, condition.rule_id),
                           cast(Severity, condition.severity), AlertStatus.ACTIVE, now, condition.detail, condition.value)
            transitions.append(Transition(AlertEvent.RAISED, raised, now, None, condition.detail))
    return transitions


def _clear(alert: Alert, now: datetime, why: str) -> Transition:
    return Transition(AlertEvent.CLEARED, replace(alert, status=AlertStatus.CLEARED, cleared_at=now), now, None, why)


def acknowledge(alert: Alert, who: str, now: datetime, note: str = "") -> Transition:
    """`who` acknowledges an active alert at `now`. A cleared or already acknowledged alert is refused."""
    who = _text(who, "who acknowledges the alert").strip()
    require_aware(now, "now")
    # Alert: its status says which of the times it has
    if alert.status is AlertStatus.CLEARED:
        raise ValueError(f"{alert.name} was cleared at {cast(datetime, alert.cleared_at).isoformat()}; "
                         "there is nothing to acknowledge")
    if alert.status is AlertStatus.ACKNOWLEDGED:
        raise ValueError(f"{alert.name} was already acknowledged by {alert.acknowledged_by} "
                         f"at {cast(datetime, alert.acknowledged_at).isoformat()}")
    acknowledged = replace(alert, status=AlertStatus.ACKNOWLEDGED, acknowledged_by=who, acknowledged_at=now)
    return Transition(AlertEvent.ACKNOWLEDGED, acknowledged, now, who, note)


# --- Notifications ------------------------------------------------------------------------------------

PAYLOAD_VERSION = 1


class Notification(NamedTuple):
    key: str  # "<alert id>:<event>": the same key is the same transition
    event: AlertEvent
    payload: dict[str, Any]  # JSON-ready: ISO timestamps, Decimals as strings


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def notification(transition: Transition) -> Notification:
    """The message MQTT and the webhooks receive for one transition of a stored alert."""
    alert = transition.alert
    if alert.alert_id is None:
        raise ValueError(f"{alert.name} has no id yet; store it before notifying")
    key = f"{alert.alert_id}:{transition.event.value}"
    payload = {
        "v": PAYLOAD_VERSION,
        "key": key,
        "event": transition.event.value,
        "at": _iso(transition.at),
        "by": transition.by,
        "note": transition.note,
        "alert": {
            "id": alert.alert_id,
            "kind": alert.kind.value,
            "subject": alert.subject,
            "rule_id": alert.rule_id,
            "severity": alert.severity.value,
            "status": alert.status.value,
            "raised_at": _iso(alert.raised_at),
            "detail": alert.detail,
            "value": None if alert.value is None else str(alert.value),
            "acknowledged_by": alert.acknowledged_by,
            "acknowledged_at": _iso(alert.acknowledged_at),
            "cleared_at": _iso(alert.cleared_at),
        },
    }
    return Notification(key, transition.event, payload)


def next_attempt(failed_attempts: int, last_attempt_at: datetime, base: timedelta = timedelta(seconds=1), factor: int = 2,
                 cap: timedelta = timedelta(minutes=5)) -> datetime:
    """When to try a delivery again after its `failed_attempts`-th failure at `last_attempt_at`.

    The wait is base × factor^(failed_attempts − 1), at most `cap`: 1 s, 2 s, 4 s … 256 s, then every
    5 minutes for as long as it takes. The first attempt is made at once and needs no schedule.
    """
    if whole_number(failed_attempts, "failed attempts") < 1:
        raise ValueError("a retry is scheduled after a failed attempt; the first attempt is made at once")
    require_aware(last_attempt_at, "the last attempt")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"the back-off factor must be a whole number from 2, got {factor!r}")
    if not timedelta(0) < base <= cap:
        raise ValueError(f"the first wait ({base}) must be positive and no longer than the longest ({cap})")
    wait = base
    for _ in range(failed_attempts - 1):
        if wait >= cap:
            break
        wait *= factor
    return last_attempt_at + min(wait, cap)
