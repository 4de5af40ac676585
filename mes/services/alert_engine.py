"""Alert engine: the machine alerts evaluated in rounds, and the rules configured per plant, line or machine.

One round (`evaluate_machines`, run by the core's `MachineAlerts` job every `alert_every_s`) evaluates every
machine for the machine kinds (machine_down, offline, scrap_rate, low_rate) under the rule
`RuleBook.rule_for(kind, line, machine)` picks (machine's, else line's, else plant's; a subject no
enabled rule governs gets `ungoverned`), reconciles the conditions with the open alerts of those kinds
and stores the transitions (`mes.services.alerts.store`: alerts, alert_events and the notification
outbox), all in one transaction. What it reads, per machine:
- State: `machine_live.state_code`, named by `MachineState.NAMES`. Since: the start of the current run
  of that state code in `machine_states` (the earliest row of that code after the last row of another).
  Ambiguity, stated: `machine_live.state_ts` moves with every heartbeat that restates the state, so it
  says when the state was last confirmed, not since when it holds; it is only the fallback when
  `machine_states` has no row of the current run. A code outside `MachineState` counts as no state.
- Offline since, the earlier of:
  * the edge's Last Will (or clean stop): while the edge serving the machine (the latest
    `edge_status` listing it) is offline, the first offline `edge_status_events` row after its last
    online one (else `edge_status.changed_at`). Ambiguity, stated: the first, not the last: the
    broker re-sends the retained offline status to a core that reconnects, which must not restart the
    clock. As in `mes.rules.states`, a message from the machine received after it ends the offline time.
  * silence: no message for longer than `offline_after_s` → offline since last_seen + offline_after_s.
    Silence is counted from `listening_since` at the earliest (the core's start): while the core was
    down nobody listened, and a restarted core must not call every machine offline before its
    backlog arrives.
  A machine never heard of (no `machine_live` row) is neither down nor offline until its edge says so.
- scrap_rate: good and scrap of the machine's `production_attributions` whose last_ts lies in
  (now − minutes, now]. Ambiguity, stated: a message is counted whole in the window its last sample
  falls in (messages span a flush interval, a fraction of a second).
- low_rate: ideal time = Σ (good + scrap) × ideal cycle over the same kind of window, the cycle being
  `machine_items` for the item of the attribution's work order, else `machines.ideal_cycle_s`
  (unassigned units, or an item without a cycle of its own there). Ambiguity, stated: per
  attribution rather than "the running order's item": a window spanning an order change is judged on
  each order's own cycle.
Concurrency: the round locks the open alerts of its kinds (FOR UPDATE), as an acknowledgement does,
so the two serialize: an acknowledgement made during a round that clears the alert waits and then
finds it cleared (409); a round after an acknowledgement clears the acknowledged alert.

Rules (`put_rule`, `load_rules`, `delete_rule`): a rule is validated by constructing `AlertRule`
(ValueError/TypeError: a malformed rule, 422); a second rule of a kind for the same scope, or a
scope naming an unknown machine or line, is refused (409, 404). Deleting or disabling a rule clears
its alerts at the next round (the subject is governed by another rule or none).
Defaults, decided: none are seeded automatically. Seeding "whenever no rule of a kind exists" would
bring back a rule a plant deleted on purpose. `DEFAULT_RULES` are installed on request
(`install_default_rules`, POST /alert-rules/defaults): each default whose kind has no plant-wide
rule yet and whose id is free; line and machine rules refine them with PUT /alert-rules/{id}.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from kernel.signals import MachineState
from mes.rules.alerts import (
    MACHINE_KINDS,
    PLANT,
    Alert,
    AlertKind,
    AlertRule,
    Condition,
    MachineStatus,
    RuleBook,
    Severity,
    Transition,
    low_rate,
    machine_down,
    offline,
    reconcile,
    scrap_rate,
    ungoverned,
)
from kernel.db.models import make_engine
from kernel.rules.refusals import NotFound, as_conflict
from mes.services.alerts import _ALERT_COLUMNS, RULE_COLUMNS, load_rules, log_transitions, store
from kernel.settings import Settings

DEFAULT_OFFLINE_AFTER_S: int = Settings.model_fields["offline_after_s"].default

DEFAULT_RULES = (
    AlertRule("machine-down", AlertKind.MACHINE_DOWN, Severity.WARNING, PLANT, minutes=Decimal(10)),
    AlertRule("offline", AlertKind.OFFLINE, Severity.WARNING, PLANT, minutes=Decimal(5)),
    AlertRule("scrap-rate", AlertKind.SCRAP_RATE, Severity.WARNING, PLANT, minutes=Decimal(60), percent=Decimal(5)),
    AlertRule("low-rate", AlertKind.LOW_RATE, Severity.INFO, PLANT, minutes=Decimal(30), percent=Decimal(80)),
    AlertRule("review-waiting", AlertKind.REVIEW_WAITING, Severity.WARNING, PLANT),
)

_MACHINE_KIND_VALUES = [kind.value for kind in MACHINE_KINDS]


# --- one round --------------------------------------------------------------------------------------------


def evaluate_machines(session: Session, now: datetime | None = None, *, offline_after_s: int = DEFAULT_OFFLINE_AFTER_S,
                      listening_since: datetime | None = None) -> list[Transition]:
    """One round of the machine alerts; returns the transitions stored (committed)."""
    now = now or datetime.now(UTC)
    book = RuleBook(load_rules(session))
    current = [Alert(*row) for row in session.execute(text(
        f"""SELECT {_ALERT_COLUMNS} FROM alerts WHERE status <> 'cleared' AND kind = ANY(:kinds)
            ORDER BY alert_id FOR UPDATE"""), {"kinds": _MACHINE_KIND_VALUES})]
    machines = session.execute(text("SELECT machine_id, line FROM machines ORDER BY machine_id")).all()
    rules = {(kind, machine): book.rule_for(kind, line, machine) for machine, line in machines for kind in MACHINE_KINDS}
    if not current and not any(rules.values()):
        session.commit()
        return []
    statuses = _statuses(session, now, timedelta(seconds=offline_after_s), listening_since)
    scrap_windows = _window_counts(session, now, {m: r.duration for (k, m), r in rules.items() if r and k is AlertKind.SCRAP_RATE})
    rate_windows = _window_counts(session, now, {m: r.duration for (k, m), r in rules.items() if r and k is AlertKind.LOW_RATE})
    conditions: list[Condition] = []
    for machine, _ in machines:
        status = statuses[machine]
        for kind in MACHINE_KINDS:
            rule = rules[kind, machine]
            if rule is None:
                conditions.append(ungoverned(kind, machine))
            elif kind is AlertKind.MACHINE_DOWN:
                conditions.append(machine_down(rule, status, now))
            elif kind is AlertKind.OFFLINE:
                conditions.append(offline(rule, status, now))
            elif kind is AlertKind.SCRAP_RATE:
                good, scrap, _ = scrap_windows[machine]
                conditions.append(scrap_rate(rule, machine, good, scrap))
            else:
                conditions.append(low_rate(rule, status, rate_windows[machine][2], now))
    stored = store(session, reconcile(current, conditions, now))
    session.commit()
    return stored


_STATUS = """
    SELECT m.machine_id, l.state_code, l.state_ts, l.last_seen,
           (SELECT min(s.ts) FROM machine_states s
            WHERE s.machine_id = m.machine_id AND s.state_code = l.state_code
              AND s.ts >= coalesce((SELECT max(d.ts) FROM machine_states d
                                    WHERE d.machine_id = m.machine_id AND d.state_code IS DISTINCT FROM l.state_code),
                                   '-infinity')) AS run_since,
           edge.offline_since
    FROM machines m
    LEFT JOIN machine_live l ON l.machine_id = m.machine_id
    LEFT JOIN LATERAL (
        SELECT CASE WHEN e.online THEN NULL ELSE coalesce(
                   (SELECT min(x.received_at) FROM edge_status_events x
                    WHERE x.edge_id = e.edge_id AND NOT x.online
                      AND x.received_at > coalesce((SELECT max(y.received_at) FROM edge_status_events y
                                                    WHERE y.edge_id = e.edge_id AND y.online), '-infinity')),
                   e.changed_at) END AS offline_since
        FROM edge_status e WHERE m.machine_id = ANY(e.machines) ORDER BY e.changed_at DESC LIMIT 1
    ) AS edge ON true"""


class MachineAlerts:
    """The core's job for the machine alerts: a round of `evaluate_machines` every `alert_every_s`, in a
    database connection of its own. Silence counts from the job's creation, the core's start."""

    def __init__(self, database_url: str, offline_after_s: int = DEFAULT_OFFLINE_AFTER_S):
        self.engine = make_engine(database_url)
        self.offline_after_s = offline_after_s
        self.listening_since = datetime.now(UTC)

    def round(self) -> None:
        with Session(self.engine) as session:
            log_transitions(evaluate_machines(session, offline_after_s=self.offline_after_s,
                                              listening_since=self.listening_since))

    def close(self) -> None:
        self.engine.dispose()


def _statuses(session: Session, now: datetime, offline_after: timedelta,
              listening_since: datetime | None) -> dict[str, MachineStatus]:
    statuses = {}
    for machine, code, state_ts, last_seen, run_since, edge_offline in session.execute(text(_STATUS)):
        state = MachineState.NAMES.get(code)
        offline_since = []
        if edge_offline is not None and (last_seen is None or last_seen <= edge_offline):
            offline_since.append(edge_offline)
        silent_since = last_seen if listening_since is None or last_seen is None else max(last_seen, listening_since)
        if silent_since is not None and now - silent_since > offline_after:
            offline_since.append(silent_since + offline_after)
        statuses[machine] = MachineStatus(machine, state, (run_since or state_ts) if state else None, min(offline_since, default=None))
    return statuses


def _window_counts(session: Session, now: datetime, windows: dict[str, timedelta]) -> dict[str, tuple[int, int, Decimal]]:
    """Per machine: good, scrap and their ideal time in seconds over its trailing window (now − window, now]."""
    if not windows:
        return {}
    rows = session.execute(text(
        """SELECT w.machine_id, coalesce(sum(a.good), 0)::bigint, coalesce(sum(a.scrap), 0)::bigint,
                  coalesce(sum((a.good + a.scrap) * coalesce(mi.ideal_cycle_s, m.ideal_cycle_s)), 0)
           FROM unnest(CAST(:machines AS text[]), CAST(:since AS timestamptz[])) AS w(machine_id, since)
           JOIN machines m ON m.machine_id = w.machine_id
           LEFT JOIN production_attributions a ON a.machine_id = w.machine_id AND a.last_ts > w.since AND a.last_ts <= :now
                AND a.last_ts > :earliest  -- a constant bound, for the BRIN index on last_ts
           LEFT JOIN work_orders o ON o.work_order_id = a.work_order_id
           LEFT JOIN machine_items mi ON mi.machine_id = a.machine_id AND mi.item_id = o.item_id
           GROUP BY w.machine_id"""),
        {"machines": list(windows), "since": [now - window for window in windows.values()], "now": now,
         "earliest": now - max(windows.values())})
    return {machine: (good, scrap, Decimal(ideal)) for machine, good, scrap, ideal in rows}


# --- rules ------------------------------------------------------------------------------------------------


def put_rule(session: Session, rule: AlertRule) -> AlertRule:
    """Create or replace `rule` (already validated: build it with `AlertRule`)."""
    level, place = rule.scope.level, rule.scope.id
    column = {"machine": "machine_id", "line": "line"}.get(level)
    if column and session.execute(text(f"SELECT 1 FROM machines WHERE {column} = :id LIMIT 1"), {"id": place}).first() is None:
        raise NotFound(f"{level} {place!r} does not exist")
    with as_conflict():
        RuleBook([*(r for r in load_rules(session) if r.rule_id != rule.rule_id), rule])
    _write(session, rule)
    session.commit()
    return rule


def _write(session: Session, rule: AlertRule) -> None:
    session.execute(text(
        f"""INSERT INTO alert_rules ({RULE_COLUMNS})
            VALUES (:rule_id, :kind, :severity, :scope, :minutes, :percent, :min_units, :down_states, :enabled)
            ON CONFLICT (rule_id) DO UPDATE SET kind = EXCLUDED.kind, severity = EXCLUDED.severity, scope = EXCLUDED.scope,
                minutes = EXCLUDED.minutes, percent = EXCLUDED.percent, min_units = EXCLUDED.min_units,
                down_states = EXCLUDED.down_states, enabled = EXCLUDED.enabled"""),
        {"rule_id": rule.rule_id, "kind": rule.kind.value, "severity": rule.severity.value, "scope": str(rule.scope),
         "minutes": rule.minutes, "percent": rule.percent, "min_units": rule.min_units,
         "down_states": None if rule.down_states is None else sorted(rule.down_states), "enabled": rule.enabled})


def delete_rule(session: Session, rule_id: str) -> None:
    """Its open alerts clear at the next round of their kind."""
    if session.execute(text("DELETE FROM alert_rules WHERE rule_id = :id RETURNING 1"), {"id": rule_id}).first() is None:
        raise NotFound(f"alert rule {rule_id!r} does not exist")
    session.commit()


def install_default_rules(session: Session, defaults: Iterable[AlertRule] = DEFAULT_RULES) -> list[AlertRule]:
    """Add each default whose kind has no plant-wide rule and whose id is free; returns those added."""
    existing = load_rules(session)
    taken_ids = {rule.rule_id for rule in existing}
    plant_kinds = {rule.kind for rule in existing if rule.scope == PLANT}
    added = [rule for rule in defaults if rule.rule_id not in taken_ids and rule.kind not in plant_kinds]
    for rule in added:
        _write(session, rule)
    session.commit()
    return added
