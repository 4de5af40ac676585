"""Alert rules: each kind by worked example, rule resolution, the lifecycle, notifications and the retry
schedule; then properties over random rounds of conditions."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes.rules.alerts import (
    DEFAULT_DOWN_STATES,
    DEFAULT_MIN_UNITS,
    PLANT,
    Alert,
    AlertEvent,
    AlertKind,
    AlertRule,
    AlertStatus,
    Condition,
    Fact,
    MachineStatus,
    RuleBook,
    Scope,
    Severity,
    acknowledge,
    low_rate,
    machine_down,
    next_attempt,
    notification,
    offline,
    passthrough,
    reconcile,
    scrap_rate,
    ungoverned,
)

D = Decimal
MICROSECOND = timedelta(microseconds=1)
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
K = AlertKind

DOWN_10 = AlertRule("down-10", "machine_down", "warning", minutes=10)
OFFLINE_5 = AlertRule("offline-5", "offline", "critical", minutes=5)
SCRAP_5 = AlertRule("scrap-5", "scrap_rate", "warning", minutes=60, percent=D(5))
SLOW_80 = AlertRule("slow-80", "low_rate", "info", minutes=10, percent=D(80))
SHORTAGE = AlertRule("shortage", "stock_shortage", "critical")


def ago(minutes, seconds=0) -> datetime:
    return NOW - timedelta(minutes=minutes, seconds=seconds)


def status(state="running", since_minutes=30, offline_minutes=None, machine="press-01") -> MachineStatus:
    since = None if state is None else ago(since_minutes)
    return MachineStatus(machine, state, since, None if offline_minutes is None else ago(offline_minutes))


def holding(kind=K.MACHINE_DOWN, subject="press-01", rule_id="down-10", severity="warning") -> Condition:
    return Condition(kind, subject, rule_id, severity, True, f"{subject} is in trouble", D(12))


def not_holding(kind=K.MACHINE_DOWN, subject="press-01", rule_id="down-10", severity="warning") -> Condition:
    return Condition(kind, subject, rule_id, severity, False, f"{subject} is fine")


def stored(transition, alert_id=1):
    """The transition as the service has it after storing the alert and receiving its id."""
    return transition._replace(alert=replace(transition.alert, alert_id=alert_id))


# --- Rules -------------------------------------------------------------------------------------------


def test_rules_are_read_from_stored_text_and_fill_in_defaults():
    rule = AlertRule("scrap", "scrap_rate", "critical", "line=L1", minutes=15, percent=D("2.5"))
    assert (rule.kind, rule.severity, rule.scope) == (K.SCRAP_RATE, Severity.CRITICAL, Scope("line", "L1"))
    assert (rule.minutes, rule.min_units, rule.duration) == (D(15), DEFAULT_MIN_UNITS, timedelta(minutes=15))
    assert DOWN_10.down_states == DEFAULT_DOWN_STATES == frozenset({"idle", "fault", "blocked", "starved"})
    assert str(rule.scope) == "line=L1" and Scope.parse("plant") == PLANT


def test_fractional_minutes_allow_short_limits_and_round_up_to_the_microsecond():
    assert AlertRule("r", "offline", "info", minutes=D("0.05")).duration == timedelta(seconds=3)
    # 1e-9 min = 0.06 µs: never shorter than configured, so 1 µs.
    assert AlertRule("r", "offline", "info", minutes=D("1E-9")).duration == timedelta(microseconds=1)


@pytest.mark.parametrize("arguments, message", [
    (dict(kind="machine_down"), "need minutes"),
    (dict(kind="machine_down", minutes=0), "more than 0"),
    (dict(kind="machine_down", minutes=10**20), "too long"),
    (dict(kind="offline", minutes=5, percent=D(1)), "offline rules take no percent"),
    (dict(kind="scrap_rate", minutes=5), "need a percent"),
    (dict(kind="scrap_rate", minutes=5, percent=D(100)), "scrap limit"),
    (dict(kind="scrap_rate", minutes=5, percent=D(5), min_units=0), "at least 1"),
    (dict(kind="low_rate", minutes=5, percent=D(0)), "rate limit"),
    (dict(kind="low_rate", minutes=5, percent=D(101)), "rate limit"),
    (dict(kind="machine_down", minutes=5, down_states=["fault", "planned_stop"]), "not planned_stop"),
    (dict(kind="machine_down", minutes=5, down_states=[]), "down states must be some of"),
    (dict(kind="lot_expiring", scope="line=L1"), "scope must be the plant"),
    (dict(kind="lot_expiring", minutes=5), "lot_expiring rules take no minutes"),
    (dict(kind="machine_stopped"), "unknown alert kind 'machine_stopped'"),
    (dict(kind="offline", minutes=5, severity="urgent"), "unknown severity 'urgent'"),
    (dict(kind="offline", minutes=5, scope="cell=C1"), "unknown scope 'cell'"),
    (dict(kind="offline", minutes=5, scope="line="), "line of a line scope is required"),
])
def test_a_rule_that_cannot_work_is_refused_with_the_reason(arguments, message):
    arguments = {"severity": "info", **arguments}
    with pytest.raises(ValueError, match=message):
        AlertRule("r1", **arguments)


def test_floats_are_refused():
    with pytest.raises(TypeError, match="float"):
        AlertRule("r", "scrap_rate", "info", minutes=5, percent=2.5)
    with pytest.raises(TypeError, match="float"):
        low_rate(SLOW_80, status(), 480.0, NOW)


def test_the_most_specific_rule_wins_and_a_disabled_one_exempts():
    line = AlertRule("line-L1", "machine_down", "warning", "line=L1", minutes=5)
    machine = AlertRule("press-02", "machine_down", "critical", "machine=press-02", minutes=2)
    exempt = AlertRule("press-03-off", "machine_down", "info", "machine=press-03", minutes=1, enabled=False)
    book = RuleBook([DOWN_10, line, machine, exempt, OFFLINE_5])
    assert book.rule_for("machine_down", "L1", "press-01") is line
    assert book.rule_for("machine_down", "L1", "press-02") is machine
    assert book.rule_for("machine_down", "L1", "press-03") is None
    assert book.rule_for("machine_down", "L2", "oven-01") is DOWN_10
    assert book.rule_for("offline", None, "press-02") is OFFLINE_5
    assert book.rule_for("scrap_rate", "L1", "press-01") is None
    assert RuleBook([SHORTAGE]).rule_for("stock_shortage") is SHORTAGE


def test_a_rule_book_refuses_two_rules_for_one_kind_and_scope_and_repeated_ids():
    with pytest.raises(ValueError, match="rules down-10 and down-5 are both machine_down rules for plant"):
        RuleBook([DOWN_10, AlertRule("down-5", "machine_down", "critical", minutes=5)])
    with pytest.raises(ValueError, match="two rules have the id down-10"):
        RuleBook([DOWN_10, replace(DOWN_10, scope=Scope("line", "L1"))])


# --- Evaluation, kind by kind ---------------------------------------------------------------------------


def test_machine_down_holds_only_after_the_limit():
    at_limit = machine_down(DOWN_10, status("fault", 10), NOW)
    beyond = machine_down(DOWN_10, MachineStatus("press-01", "fault", ago(10, 1), None), NOW)
    assert (at_limit.holds, at_limit.value) == (False, D("10.00"))
    assert (beyond.holds, beyond.value, beyond.rule_id, beyond.severity) == (True, D("10.02"), "down-10", Severity.WARNING)
    assert beyond.detail == "press-01 has been fault for 10.02 min (limit 10 min)"  # 601 s = 10.0166… min


@pytest.mark.parametrize("state", ["running", "setup", "planned_stop"])
def test_running_setup_and_planned_stop_are_not_down_by_default(state):
    assert not machine_down(DOWN_10, status(state, 600), NOW).holds


def test_a_rule_can_count_setup_as_down():
    rule = AlertRule("setup-45", "machine_down", "info", minutes=45, down_states=["setup"])
    assert machine_down(rule, status("setup", 50), NOW).holds
    assert not machine_down(rule, status("fault", 50), NOW).holds


def test_an_offline_machine_is_not_down_but_offline():
    faulted_then_lost = status("fault", 60, offline_minutes=6)
    down = machine_down(DOWN_10, faulted_then_lost, NOW)
    lost = offline(OFFLINE_5, faulted_then_lost, NOW)
    assert (down.holds, down.detail) == (False, "press-01 is offline; its last state is not current")
    assert (lost.holds, lost.value, lost.detail) == (True, D("6.00"), "press-01 has been offline for 6.00 min (limit 5 min)")
    assert not offline(OFFLINE_5, status("fault", 60, offline_minutes=5), NOW).holds
    assert not offline(OFFLINE_5, status(), NOW).holds


def test_a_machine_without_a_state_is_not_down():
    assert machine_down(DOWN_10, status(None), NOW).detail == "press-01 has not reported a state yet"


def test_unknown_states_and_naive_times_are_refused():
    with pytest.raises(ValueError, match="unknown state 'broken' of press-01"):
        machine_down(DOWN_10, status("broken"), NOW)
    with pytest.raises(ValueError, match="time zone"):
        machine_down(DOWN_10, status("fault"), datetime(2026, 11, 23, 10, 0))


def test_scrap_rate_above_the_limit_once_enough_units():
    # 5 % of 100 units is 5: 5 scrap is at the limit, 6 is above it.
    assert not scrap_rate(SCRAP_5, "press-01", 95, 5).holds
    above = scrap_rate(SCRAP_5, "press-01", 94, 6)
    assert (above.holds, above.value) == (True, D("6.00"))
    assert above.detail == "press-01 scrapped 6 of 100 units (6.00 %) in the last 60 min (limit 5 %)"


def test_one_scrap_of_two_units_does_not_fire():
    few = scrap_rate(SCRAP_5, "press-01", 1, 1)
    assert (few.holds, few.value) == (False, D("50.00"))
    assert few.detail == "press-01 made only 2 units in the last 60 min; the scrap rate is judged from 20"
    # 2 of 20 = 10 %: enough units now.
    assert scrap_rate(SCRAP_5, "press-01", 18, 2).holds
    assert scrap_rate(SCRAP_5, "press-01", 0, 0).value is None


def test_the_scrap_value_rounds_half_even_to_hundredths():
    # 1 of 80 = 1.25 % exactly; 1 of 3 = 33.333… %; 1 of 1600 = 0.0625 % → 0.06.
    assert [scrap_rate(SCRAP_5, "m", good, 1).value for good in (79, 2, 1599)] == [D("1.25"), D("33.33"), D("0.06")]


def test_low_rate_worked_example():
    # 10 min window at a 2 s ideal cycle: 300 units at ideal speed; 80 % of that is 240 units = 480 s.
    assert not low_rate(SLOW_80, status("running", 30), 240 * 2, NOW).holds
    slow = low_rate(SLOW_80, status("running", 30), 239 * 2, NOW)
    assert (slow.holds, slow.value) == (True, D("79.67"))  # 478 / 600 = 79.666…
    assert slow.detail == "press-01 ran at 79.67 % of ideal speed over the last 10 min (limit 80 %)"


def test_low_rate_needs_the_machine_running_throughout_the_window():
    assert not low_rate(SLOW_80, status("running", 9), 0, NOW).holds
    assert low_rate(SLOW_80, status("running", 10), 0, NOW).holds
    assert low_rate(SLOW_80, status("fault", 30), 0, NOW).detail == "press-01 is fault, not running"
    assert low_rate(SLOW_80, status("running", 30, offline_minutes=1), 0, NOW).detail == "press-01 is offline, not running"


def test_an_evaluation_needs_an_enabled_rule_of_its_kind():
    with pytest.raises(ValueError, match="rule down-10 is for machine_down, not offline"):
        offline(DOWN_10, status(), NOW)
    with pytest.raises(ValueError, match="rule down-10 is disabled"):
        machine_down(replace(DOWN_10, enabled=False), status(), NOW)


def test_ungoverned_subjects_never_hold():
    condition = ungoverned("machine_down", "press-03")
    assert (condition.rule_id, condition.holds, condition.detail) == \
        (None, False, "no enabled machine_down rule applies to press-03")
    with pytest.raises(ValueError, match="cannot hold without a rule"):
        Condition(K.OFFLINE, "m", None, None, True, "")


def test_passthrough_facts_hold_and_missing_subjects_clear():
    book = RuleBook([SHORTAGE])
    reported = [Fact("RM-7 at WH-1", "short by 4 kg", D(4))]
    open_alerts = [alert(1, K.STOCK_SHORTAGE, "RM-7 at WH-1", "shortage"), alert(2, K.STOCK_SHORTAGE, "RM-9 at WH-1", "shortage"),
                   alert(3, K.MACHINE_DOWN, "press-01")]
    conditions = passthrough(book, "stock_shortage", reported, open_alerts)
    assert [(c.subject, c.holds, c.value) for c in conditions] == [("RM-7 at WH-1", True, D(4)), ("RM-9 at WH-1", False, None)]
    assert [(t.event, t.alert.alert_id) for t in reconcile(open_alerts, conditions, NOW)] == [(AlertEvent.CLEARED, 2)]


def test_passthrough_without_an_enabled_rule_clears_everything():
    conditions = passthrough(RuleBook([replace(SHORTAGE, enabled=False)]), "stock_shortage",
                             [Fact("RM-7 at WH-1", "short")], [alert(1, K.STOCK_SHORTAGE, "RM-7 at WH-1", "shortage")])
    assert [(c.rule_id, c.holds) for c in conditions] == [(None, False)]


def test_passthrough_refuses_machine_kinds_and_repeated_subjects():
    with pytest.raises(ValueError, match="evaluated by its own rule"):
        passthrough(RuleBook([]), "offline", [], [])
    with pytest.raises(ValueError, match="SO-1 is reported twice as overdue_sales_order"):
        passthrough(RuleBook([]), "overdue_sales_order", [Fact("SO-1", ""), Fact("SO-1", "")], [])


# --- Lifecycle ------------------------------------------------------------------------------------------


def alert(alert_id, kind=K.MACHINE_DOWN, subject="press-01", rule_id="down-10", status=AlertStatus.ACTIVE, **changes):
    return Alert(alert_id, kind, subject, rule_id, Severity.WARNING, status, ago(30), "raised", **changes)


def test_raised_while_it_holds_and_cleared_after():
    raised = reconcile([], [holding()], NOW)
    assert [(t.event, t.alert.status, t.alert.raised_at, t.alert.alert_id, t.by) for t in raised] == \
        [(AlertEvent.RAISED, AlertStatus.ACTIVE, NOW, None, None)]
    active = replace(raised[0].alert, alert_id=7)
    assert reconcile([active], [holding()], NOW + timedelta(minutes=1)) == []
    later = NOW + timedelta(minutes=2)
    cleared = reconcile([active], [not_holding()], later)
    assert [(t.event, t.alert.status, t.alert.cleared_at, t.note) for t in cleared] == \
        [(AlertEvent.CLEARED, AlertStatus.CLEARED, later, "press-01 is fine")]


def test_a_holding_condition_does_not_touch_the_open_alert():
    acknowledged = alert(7, status=AlertStatus.ACKNOWLEDGED, acknowledged_by="anna", acknowledged_at=ago(1))
    assert reconcile([acknowledged], [replace(holding(), detail="worse now", value=D(40))], NOW) == []


def test_a_new_occurrence_after_clearing_is_a_new_alert():
    cleared = alert(7, status=AlertStatus.CLEARED, cleared_at=ago(5))
    with pytest.raises(ValueError, match="is cleared; only open alerts are reconciled"):
        reconcile([cleared], [holding()], NOW)
    assert [t.event for t in reconcile([], [holding()], NOW)] == [AlertEvent.RAISED]


def test_subjects_not_evaluated_keep_their_alerts():
    assert reconcile([alert(7)], [not_holding(subject="press-02")], NOW) == []


def test_a_rule_taking_over_a_subject_replaces_the_alert_of_the_rule_before():
    transitions = reconcile([alert(7)], [holding(rule_id="press-01-down", severity="critical")], NOW)
    assert [(t.event, t.alert.rule_id, t.alert.severity) for t in transitions] == \
        [(AlertEvent.CLEARED, "down-10", Severity.WARNING), (AlertEvent.RAISED, "press-01-down", Severity.CRITICAL)]
    assert transitions[0].note == "rule press-01-down applies now: press-01 is in trouble"


def test_a_rule_disabled_or_deleted_clears_its_alerts():
    transitions = reconcile([alert(7)], [ungoverned("machine_down", "press-01")], NOW)
    assert [(t.event, t.note) for t in transitions] == [(AlertEvent.CLEARED, "no enabled machine_down rule applies to press-01")]


def test_bad_rounds_are_refused():
    with pytest.raises(ValueError, match="evaluated twice in one round"):
        reconcile([], [holding(), not_holding()], NOW)
    with pytest.raises(ValueError, match=r"alert 1 \(machine_down for press-01\) and alert 2 .* are both open"):
        reconcile([alert(1), alert(2)], [], NOW)


def test_acknowledging_records_who_and_when():
    transition = acknowledge(alert(7), "anna", NOW, "maintenance called")
    assert (transition.event, transition.by, transition.at, transition.note) == (AlertEvent.ACKNOWLEDGED, "anna", NOW, "maintenance called")
    assert (transition.alert.status, transition.alert.acknowledged_by, transition.alert.acknowledged_at) == \
        (AlertStatus.ACKNOWLEDGED, "anna", NOW)
    # Acknowledged alerts still clear when the condition stops holding, keeping who acknowledged.
    cleared = reconcile([transition.alert], [not_holding()], NOW + timedelta(minutes=1))[0].alert
    assert (cleared.status, cleared.acknowledged_by) == (AlertStatus.CLEARED, "anna")


def test_acknowledging_twice_or_after_clearing_is_refused():
    acknowledged = acknowledge(alert(7), "anna", ago(2)).alert
    with pytest.raises(ValueError, match=r"alert 7 \(machine_down for press-01\) was already acknowledged by anna at 2026-11-23T09:58"):
        acknowledge(acknowledged, "ben", NOW)
    with pytest.raises(ValueError, match="was cleared at .*; there is nothing to acknowledge"):
        acknowledge(alert(7, status=AlertStatus.CLEARED, cleared_at=ago(1)), "ben", NOW)
    with pytest.raises(ValueError, match="who acknowledges the alert is required"):
        acknowledge(alert(7), "  ", NOW)
    with pytest.raises(ValueError, match="cannot be acknowledged before it was raised"):
        acknowledge(alert(7), "anna", ago(31))


@pytest.mark.parametrize("changes", [
    dict(status=AlertStatus.ACTIVE, acknowledged_by="anna", acknowledged_at=NOW),
    dict(status=AlertStatus.ACKNOWLEDGED),
    dict(status=AlertStatus.ACKNOWLEDGED, acknowledged_by="anna"),
    dict(status=AlertStatus.CLEARED),
    dict(status=AlertStatus.ACTIVE, cleared_at=NOW),
    dict(status=AlertStatus.CLEARED, cleared_at=ago(40)),
])
def test_an_alert_whose_fields_contradict_its_status_is_refused(changes):
    with pytest.raises(ValueError):
        alert(7, **changes)


# --- Notifications and delivery ---------------------------------------------------------------------------


def test_a_notification_is_json_ready_and_keyed_by_alert_and_event():
    transition = stored(acknowledge(alert(42, value=D("12.50")), "anna", NOW.astimezone(timezone(timedelta(hours=1)))), 42)
    message = notification(transition)
    assert (message.key, message.event) == ("42:acknowledged", AlertEvent.ACKNOWLEDGED)
    assert message.payload == {
        "v": 1, "key": "42:acknowledged", "event": "acknowledged", "at": "2026-11-23T11:00:00+01:00", "by": "anna", "note": "",
        "alert": {
            "id": 42, "kind": "machine_down", "subject": "press-01", "rule_id": "down-10", "severity": "warning",
            "status": "acknowledged", "raised_at": "2026-11-23T09:30:00+00:00", "detail": "raised", "value": "12.50",
            "acknowledged_by": "anna", "acknowledged_at": "2026-11-23T11:00:00+01:00", "cleared_at": None,
        },
    }
    assert json.loads(json.dumps(message.payload)) == message.payload


def test_an_alert_is_notified_only_once_stored():
    with pytest.raises(ValueError, match="has no id yet; store it before notifying"):
        notification(reconcile([], [holding()], NOW)[0])


def test_retries_double_from_one_second_up_to_five_minutes_and_go_on():
    waits = [next_attempt(failed, NOW) - NOW for failed in (1, 2, 3, 9, 10, 11, 10_000)]
    # 2^8 = 256 s; 2^9 = 512 s is beyond the 300 s cap.
    assert [wait.total_seconds() for wait in waits] == [1, 2, 4, 256, 300, 300, 300]


def test_a_retry_needs_a_failure_and_a_sane_schedule():
    with pytest.raises(ValueError, match="first attempt is made at once"):
        next_attempt(0, NOW)
    with pytest.raises(ValueError, match="factor"):
        next_attempt(1, NOW, factor=1)
    with pytest.raises(ValueError, match="no longer than the longest"):
        next_attempt(1, NOW, base=timedelta(minutes=10))


# --- Properties ---------------------------------------------------------------------------------------------

KEYS = [(kind, subject) for kind in (K.MACHINE_DOWN, K.SCRAP_RATE) for subject in ("m1", "m2", "m3")]

# One evaluation of one (kind, subject): which rule governs it (None: none) and whether it holds.
evaluation = st.one_of(st.just((None, False)), st.tuples(st.sampled_from(["r1", "r2"]), st.booleans()))
rounds = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(KEYS), evaluation, max_size=len(KEYS)),  # partial evaluation
        st.lists(st.sampled_from(KEYS), max_size=3),  # acknowledge the open alert of these, if any
        st.integers(0, 600),  # seconds until the next round
    ),
    max_size=12,
)


def conditions_of(evaluations):
    return [
        ungoverned(kind, subject) if rule_id is None
        else Condition(kind, subject, rule_id, Severity.WARNING, holds, f"{rule_id} {holds}")
        for (kind, subject), (rule_id, holds) in evaluations.items()
    ]


class Store:
    """What the service keeps: every alert by id, and the dedup key of every notification sent."""

    def __init__(self):
        self.alerts: dict[int, Alert] = {}
        self.keys: list[str] = []

    def open(self):
        return [alert for alert in self.alerts.values() if alert.is_open]

    def apply(self, transitions):
        for transition in transitions:
            if transition.event is AlertEvent.RAISED:
                transition = stored(transition, len(self.alerts) + 1)
            self.alerts[transition.alert.alert_id] = transition.alert
            self.keys.append(notification(transition).key)


@settings(max_examples=150)
@given(rounds)
def test_alerts_follow_their_conditions_round_after_round(history):
    store, now = Store(), NOW
    for evaluations, to_acknowledge, pause in history:
        cleared_before = {i: a for i, a in store.alerts.items() if not a.is_open}
        conditions = conditions_of(evaluations)
        store.apply(reconcile(store.open(), conditions, now))

        # Idempotent: the same round again changes nothing.
        assert reconcile(store.open(), conditions, now) == []
        # At most one open alert per (kind, subject), hence per (rule, subject).
        open_keys = [(a.kind, a.subject) for a in store.open()]
        assert len(open_keys) == len(set(open_keys))
        # An alert is open exactly while its condition holds, under the rule that holds it.
        open_by_key = {(a.kind, a.subject): a for a in store.open()}
        for condition in conditions:
            current = open_by_key.get((condition.kind, condition.subject))
            assert (current is not None) == condition.holds
            assert current is None or current.rule_id == condition.rule_id
        # A cleared alert never changes again.
        assert all(store.alerts[i] == a for i, a in cleared_before.items())

        for key in to_acknowledge:
            target = next((a for a in store.alerts.values() if (a.kind, a.subject) == key and a.is_open), None)
            if target is not None and target.status is AlertStatus.ACTIVE:
                store.apply([acknowledge(target, "anna", now)])
            elif target is not None:
                with pytest.raises(ValueError, match="already acknowledged"):
                    acknowledge(target, "anna", now)
        now += timedelta(seconds=pause)

    # Every alert clears once its condition stops holding.
    store.apply(reconcile(store.open(), conditions_of({key: ("r1", False) for key in KEYS}), now))
    assert store.open() == []
    # One notification per transition: each alert is raised, acknowledged and cleared at most once.
    assert len(store.keys) == len(set(store.keys))
    for cleared in store.alerts.values():
        with pytest.raises(ValueError, match="nothing to acknowledge"):
            acknowledge(cleared, "anna", now)


@given(st.integers(0, 10**6), st.integers(0, 10**6),
       st.decimals(min_value=0, max_value=D("99.99"), places=2), st.integers(1, 500))
def test_scrap_rate_fires_exactly_above_the_limit(good, scrap, percent, min_units):
    rule = AlertRule("r", "scrap_rate", "info", minutes=60, percent=percent, min_units=min_units)
    units = good + scrap
    expected = units >= min_units and Fraction(scrap, units) > Fraction(percent) / 100
    assert scrap_rate(rule, "m", good, scrap).holds == expected


@given(st.decimals(min_value=0, max_value=10**6, places=3),
       st.decimals(min_value=D("0.01"), max_value=100, places=2), st.integers(1, 240))
def test_low_rate_fires_exactly_below_the_limit(ideal_time_s, percent, minutes):
    rule = AlertRule("r", "low_rate", "info", minutes=minutes, percent=percent)
    expected = Fraction(ideal_time_s) / (minutes * 60) < Fraction(percent) / 100
    assert low_rate(rule, status("running", minutes), ideal_time_s, NOW).holds == expected


@given(st.decimals(min_value=D("0.001"), max_value=10**5, places=3), st.integers(0, 10**13))
def test_time_limits_are_strict(minutes, elapsed_us):
    down = AlertRule("d", "machine_down", "info", minutes=minutes)
    lost = AlertRule("o", "offline", "info", minutes=minutes)
    since = NOW - timedelta(microseconds=elapsed_us)
    expected = Fraction(elapsed_us, 60_000_000) > Fraction(minutes)
    assert machine_down(down, MachineStatus("m", "fault", since, None), NOW).holds == expected
    assert offline(lost, MachineStatus("m", "fault", since, since), NOW).holds == expected


@given(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(2, 10), st.integers(1, 60))
def test_retry_waits_grow_to_the_cap_and_stay_there(failed, cap_s, factor, base_ms):
    base, cap = timedelta(milliseconds=base_ms), timedelta(seconds=cap_s)
    if base > cap:
        return
    wait = next_attempt(failed, NOW, base, factor, cap) - NOW
    # Past 2^40 times a millisecond every wait is capped: comparing at that exponent is enough.
    assert wait == timedelta(microseconds=min(cap // MICROSECOND, base // MICROSECOND * factor ** min(failed - 1, 40)))
    assert base <= wait <= cap
    assert next_attempt(failed + 1, NOW, base, factor, cap) - NOW >= wait


def test_every_condition_the_stock_rules_find_is_a_kind_of_alert():
    from inventory.rules.stock_alerts import StockAlertKind

    assert {kind.value for kind in StockAlertKind} <= {kind.value for kind in K}
