"""The batch planner: payloads → rows, pure. Worked cases, then a property over redelivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.ingest.plan import (
    BatchContext,
    IngestState,
    Incoming,
    LiveCodes,
    MachineInfo,
    attributions,
    parse_batch,
    plan_batch,
)
from core.rules.counters import CounterPoint
from core.rules.sequencing import EdgeCursor, Ingested
from kernel.payload import data_topic
from kernel.plant import CounterSpec
from mes.rules.attribution import AttributionRow, CountStep, attribute

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SPEC = CounterSpec(width=16, max_rate_per_s=Decimal(40))
REGISTRY = {"m1": MachineInfo("s", "a", "l", {c: SPEC for c in ("good", "scrap", "energy_wh")})}
TOPIC = data_topic("s", "a", "l", "m1")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def incoming(seq: int, samples: list[tuple[float, str, int]], *, epoch: int = 1, edge: str = "e1", topic: str = TOPIC,
             machine: str = "m1", received: float = 100) -> Incoming:
    body = {"v": 1, "edge_id": edge, "epoch": epoch, "seq": seq, "machine": machine,
            "samples": [{"ts": at(t).isoformat(), "signal": signal, "value": value} for t, signal, value in samples]}
    return Incoming(topic, json.dumps(body).encode(), at(received))


def plan(batch, state=None, already=frozenset()):
    return plan_batch(parse_batch(batch, REGISTRY), state or IngestState(), REGISTRY, set(already))


def test_one_interval_per_message_with_every_counter_delta():
    state = IngestState(counters={("m1", "good"): CounterPoint(100, at(0)), ("m1", "scrap"): CounterPoint(5, at(0))})
    result = plan([incoming(1, [(1, "good", 103), (2, "good", 105), (2, "scrap", 6)])], state)
    assert result.intervals == [("m1", at(0), at(2), 5, 1, 0, "e1", 1, 1)]
    assert result.state.counters[("m1", "good")] == CounterPoint(105, at(2))
    assert len(result.samples) == 3 and len(result.messages) == 1


def test_baselines_alone_make_no_interval():
    result = plan([incoming(1, [(0, "good", 7), (0, "scrap", 1), (0, "energy_wh", 9)])])
    assert result.intervals == []
    assert set(result.changed_counters) == {("m1", "good"), ("m1", "scrap"), ("m1", "energy_wh")}


def test_state_change_rows_only_when_the_code_changes_and_a_clock_stepped_back_never_reorders_them():
    # message 4 was read last, stamped before message 3 (the PLC's clock stepped back): its state
    # change stands, placed at the last known instant, never before the state it follows
    batch = [incoming(1, [(1, "state", 1), (1, "fault", 0)]), incoming(2, [(2, "state", 1)]),
             incoming(3, [(3, "state", 3), (3, "fault", 42)]), incoming(4, [(2.5, "state", 1)])]
    result = plan(batch)
    assert [(row.ts, row.state_code, row.fault_code) for row in result.states] == [
        (at(1), 1, None), (at(1), 1, 0), (at(3), 3, 0), (at(3), 3, 42), (at(3), 1, 42)]
    live = result.state.live["m1"]
    assert (live.state_code, live.fault_code, live.state_ts) == (1, 42, at(3))


def test_a_sample_stamped_years_ahead_is_placed_at_its_receipt_flagged_and_freezes_nothing():
    state = IngestState(counters={("m1", "good"): CounterPoint(100, at(0))})
    years = 73 * 365 * 86_400  # stamped 2099
    result = plan([incoming(1, [(1, "good", 101)], received=1), incoming(2, [(years, "good", 102)], received=2),
                   incoming(3, [(3, "good", 103), (3, "state", 1)], received=3),
                   incoming(4, [(4, "good", 104)], received=4)], state)
    assert sum(row.good for row in result.intervals) == 4 and result.events == []
    assert [row.ts for row in result.samples if row.signal == "good"] == [at(1), at(2), at(3), at(4)]
    assert [(row.seq, row.clock_ahead_s) for row in result.messages] == [
        (1, None), (2, Decimal(years - 2)), (3, None), (4, None)]
    assert [(row.first_ts, row.last_ts) for row in result.messages][1:3] == [(at(2), at(2)), (at(3), at(3))]


def test_a_clock_stepped_back_counts_every_unit_at_the_last_known_instant():
    # one message a second, 20 units each, stamped 30 s back from message 3 on: nothing quarantined
    state = IngestState(counters={("m1", "good"): CounterPoint(0, at(0))},
                        live={"m1": LiveCodes(last_seen=at(0))})
    batch = [incoming(seq, [(seq if seq < 3 else seq - 30, "good", 20 * seq)], received=seq) for seq in range(1, 11)]
    result = plan(batch, state)
    assert sum(row.good for row in result.intervals) == 200 and result.events == []
    assert [row.ts for row in result.samples] == [at(1), at(2), *[at(2)] * 8]


def test_a_clock_stepped_forward_an_hour_counts_every_unit():
    state = IngestState(counters={("m1", "good"): CounterPoint(0, at(0))})
    batch = [incoming(seq, [(seq if seq < 3 else seq + 3600, "good", 20 * seq)], received=seq + 3600 * (seq >= 3))
             for seq in range(1, 6)]
    result = plan(batch, state)
    assert sum(row.good for row in result.intervals) == 100 and result.events == []


def test_messages_reordered_inside_a_batch_are_put_back_in_sequence():
    result = plan([incoming(2, [(2, "good", 20)]), incoming(1, [(1, "good", 10)])])
    assert result.dead_letters == [] and [m[2] for m in result.messages] == [1, 2]
    assert result.intervals[0][3] == 10


def test_a_redelivery_in_the_same_or_a_later_batch_is_skipped():
    first = plan([incoming(1, [(1, "good", 10)]), incoming(1, [(1, "good", 10)])])
    assert first.duplicates == 1 and len(first.messages) == 1
    later = plan([incoming(1, [(1, "good", 10)])], first.state, already={("e1", 1, 1)})
    assert later.duplicates == 1 and later.messages == [] and later.dead_letters == []


def test_a_reused_position_with_other_content_is_dead_lettered_in_the_same_batch_or_later():
    replayed = incoming(1, [(1, "good", 10)])
    replayed = Incoming(replayed.topic, replayed.payload.replace(b'"samples"', b'"historical": true, "samples"'), at(101))
    first = plan([incoming(1, [(1, "good", 10)]), replayed, incoming(1, [(1, "good", 99)])])
    assert first.duplicates == 1, "a replay marked historical says the same: a redelivery"
    (conflict,) = first.dead_letters
    assert conflict.reason.startswith("conflicting duplicate: epoch 1 seq 1") and b'"value": 99' in conflict.payload
    stored = {("e1", 1, 1): Ingested(first.messages[0].digest)}
    later = plan_batch(parse_batch([incoming(1, [(1, "good", 99)]), incoming(1, [(1, "good", 10)])], REGISTRY),
                       first.state, REGISTRY, context=BatchContext(stored))
    assert later.duplicates == 1 and [row.reason.split(":")[0] for row in later.dead_letters] == ["conflicting duplicate"]


def test_an_older_epoch_arriving_after_a_newer_one_is_a_regression_in_the_same_batch_too():
    result = plan([incoming(5, [(1, "good", 10)], epoch=2), incoming(6, [(2, "good", 12)], epoch=1),
                   incoming(1, [(3, "good", 15)], epoch=3)])
    assert [(row.epoch, row.seq) for row in result.messages] == [(2, 5), (3, 1)]
    (regression,) = result.dead_letters
    assert regression.reason == "epoch regression: epoch 1 after epoch 2 was ingested"


def test_a_forged_far_position_is_a_dead_letter_and_the_edge_goes_on():
    top = 2**63 - 1
    result = plan([incoming(1, [(1, "good", 10)]), incoming(top, [(2, "good", 60_000)]),
                   incoming(5, [(3, "good", 60_000)], epoch=top), incoming(2, [(4, "good", 12)]),
                   incoming(3, [(5, "good", 15)])])
    assert [row.seq for row in result.messages] == [1, 2, 3] and sum(row.good for row in result.intervals) == 5
    assert [row.reason.split(":")[0] for row in result.dead_letters] == ["seq too far ahead", "epoch too far ahead"]
    assert result.state.cursors["e1"] == EdgeCursor(1, 3)


def test_a_payload_beyond_the_bounds_is_a_dead_letter_with_its_size_and_hash_and_its_head_kept():
    import hashlib

    from core.ingest.plan import IngestLimits
    from core.ingest.rows import STORED_PAYLOAD_BYTES

    huge = Incoming(TOPIC, b'{"v": 1, "samples": [' + b" " * (10 * 1024 * 1024) + b"]}", at(100))
    many = incoming(1, [(1, "good", value) for value in range(11)])
    result = plan_batch(parse_batch([huge, many], REGISTRY, IngestLimits(max_samples=10)), IngestState(), REGISTRY)
    too_large, too_many = result.dead_letters
    assert too_large.reason.startswith(f"payload too large: {len(huge.payload)} bytes")
    assert (too_large.size, too_large.sha256) == (len(huge.payload), hashlib.sha256(huge.payload).digest())
    assert too_large.payload == huge.payload[:STORED_PAYLOAD_BYTES] and too_large.machine_id == "m1"
    assert too_many.reason.startswith("too many samples: 11") and (too_many.edge_id, too_many.machine_id) == ("e1", "m1")
    assert result.messages == [] and result.samples == []


def test_reasons_for_dead_letters():
    result = plan([
        incoming(1, [(1, "good", 1)], machine="m2", topic=data_topic("s", "a", "l", "m2")),
        incoming(2, [(1, "good", 1)], topic=data_topic("s", "other-area", "l", "m1")),
        Incoming("mes/v1/wrong", b"{}", at(0)),
        Incoming(TOPIC, b"\xff\xfe", at(0)),
    ])
    # those that name their place in the sequence are planned in it (after the others)
    reasons = [row.reason for row in result.dead_letters]
    assert reasons[2] == "unknown machine 'm2': not in the plant registry"
    assert reasons[3] == "topic path s/other-area/l does not match the registry's s/a/l"
    assert reasons[0] == "not a data or status topic"
    assert reasons[1].startswith("not JSON")


def test_quarantined_jump_is_an_event_pending_review_and_counts_nothing():
    state = IngestState(counters={("m1", "good"): CounterPoint(100, at(0))})
    result = plan([incoming(1, [(1, "good", 20_000)])], state)
    assert result.intervals == []
    (event,) = result.events
    assert event[3] == "jump" and event[7] == 19_900 and event[-1] == "pending"


def test_edge_status_is_kept_per_edge_and_every_status_is_recorded():
    status = Incoming("mes/v1/edge/e9/status", b'{"v": 1, "edge_id": "e9", "online": false}', at(5))
    mismatch = Incoming("mes/v1/edge/e8/status", b'{"v": 1, "edge_id": "e9", "online": true}', at(5))
    back = Incoming("mes/v1/edge/e9/status", b'{"v": 1, "edge_id": "e9", "online": true, "epoch": 4}', at(6))
    result = plan([status, mismatch, back])
    assert result.edge_status == {"e9": (True, 4, [], at(6))}, "the latest status per edge"
    assert result.status_events == [("e9", False, None, [], at(5)), ("e9", True, 4, [], at(6))], "and every one in the record"
    assert "does not match the topic" in result.dead_letters[0][3]


@st.composite
def delivery(draw):
    """Messages of one edge with a climbing 16-bit counter, delivered at least once in batches.

    Like a broker after consumer crashes: in order, but any run of messages may come again."""
    value = draw(st.integers(0, 65_535))
    messages, produced = [], 0
    for seq in range(1, draw(st.integers(1, 40)) + 1):
        step = draw(st.integers(0, 40))
        value, produced = (value + step) % 65_536, produced + (step if seq > 1 else 0)
        messages.append(incoming(seq, [(seq, "good", value)]))
    delivered, position = [], 0
    while position < len(messages):
        end = draw(st.integers(position + 1, len(messages)))
        delivered += messages[position:end]
        if draw(st.booleans()):
            position = draw(st.integers(max(0, position - 5), end))  # redeliver a few again
        else:
            position = end
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(delivered) - 1)), max_size=8)))
    batches = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True) if delivered[a:b]]
    return batches, produced, len(messages)


@given(delivery())
@settings(max_examples=200)
def test_at_least_once_delivery_in_any_batching_records_every_unit_once(case):
    batches, produced, message_count = case
    state, ingested, good = IngestState(), set(), 0
    for batch in batches:
        parsed = parse_batch(batch, REGISTRY)
        result = plan_batch(parsed, state, REGISTRY, ingested & parsed.positions_to_look_up(state.cursors))
        assert result.dead_letters == []
        ingested |= {(m[0], m[1], m[2]) for m in result.messages}
        good += sum(interval[3] for interval in result.intervals)
        state = result.state
    assert len(ingested) == message_count
    assert good == produced


def test_a_work_order_switch_inside_one_message_splits_its_counts_at_the_switch():
    from mes.rules.attribution import DispatchWindow

    windows = {"m1": [DispatchWindow("m1", "WO-A", at(0), at(2), "api"), DispatchWindow("m1", "WO-B", at(2), None, "api")]}
    state = IngestState(counters={("m1", "good"): CounterPoint(100, at(0)), ("m1", "energy_wh"): CounterPoint(5, at(0))})
    batch = [incoming(1, [(1, "good", 103), (1, "energy_wh", 9), (2, "good", 104), (3, "good", 110)])]
    result = plan_batch(parse_batch(batch, REGISTRY), state, REGISTRY, set(), windows)
    assert result.attributions == [
        ("e1", 1, 1, "m1", "WO-A", 3, 0, 4, at(1), at(1)),
        ("e1", 1, 1, "m1", "WO-B", 7, 0, 0, at(2), at(3)),
    ]
    assert sum(row[5] for row in result.attributions) == result.intervals[0][3] == 10


def test_counts_with_no_work_order_running_go_to_the_unassigned_bucket():
    state = IngestState(counters={("m1", "scrap"): CounterPoint(1, at(0))})
    result = plan([incoming(1, [(1, "scrap", 3)])], state)
    assert result.attributions == [("e1", 1, 1, "m1", None, 0, 2, 0, at(1), at(1))]


def test_the_plcs_order_id_opens_and_closes_plc_windows_that_win_over_the_api_inside_the_batch():
    from core.ingest.plan import PlcSwitch
    from mes.rules.attribution import DispatchWindow

    api = {"m1": [DispatchWindow("m1", "WO-API", at(0), None, "api")]}
    state = IngestState(counters={("m1", "good"): CounterPoint(0, at(0))})
    batch = [incoming(1, [(1, "good", 1), (2, "order", "WO-7"), (2, "good", 2), (3, "good", 4)]),
             incoming(2, [(4, "order", "WO-7"), (5, "order", "NOPE"), (5, "good", 5), (6, "order", ""), (6, "good", 9)]),
             # read last, stamped earlier (the PLC's clock stepped back): a switch, placed at the last one
             incoming(3, [(5.5, "order", "WO-7")])]
    result = plan_batch(parse_batch(batch, REGISTRY), state, REGISTRY, set(), api, {"WO-7": "released"})
    assert result.plc_switches == [
        PlcSwitch("m1", at(2), "WO-7", "WO-7", None),
        PlcSwitch("m1", at(5), "NOPE", None, "the PLC reports order 'NOPE', which is not a work order here"),
        PlcSwitch("m1", at(6), "", None, None),
        PlcSwitch("m1", at(6), "WO-7", "WO-7", None),
    ]
    by_order = {(row[2], row[4]): row[5] for row in result.attributions}
    # before the PLC reported anything and after it reported none: the API's order; an unknown id: unassigned
    assert by_order == {(1, "WO-API"): 1, (1, "WO-7"): 3, (2, None): 1, (2, "WO-API"): 4}
    assert all(row[2] != "order" for row in result.samples), "order ids live in dispatch windows, not samples"
    live = result.state.live["m1"]
    assert (live.plc_order, live.plc_order_ts) == ("WO-7", at(6))


def test_a_plc_order_that_cannot_receive_production_is_named_with_its_status():
    result = plan_batch(parse_batch([incoming(1, [(1, "order", "WO-9")])], REGISTRY), IngestState(), REGISTRY, set(),
                        {}, {"WO-9": "planned"})
    assert result.plc_switches[0].rejected_reason == "the PLC reports order 'WO-9', which is planned: it cannot receive production"


def test_a_batch_names_the_earliest_instant_it_changes_for_the_rollups():
    state = IngestState(counters={("m1", "good"): CounterPoint(100, at(50))})
    result = plan([incoming(1, [(60, "good", 103)]), incoming(2, [(30, "state", 1)])], state)
    assert result.earliest_change() == at(30), "a state change as well as production"
    assert plan([incoming(1, [(0, "good", 7)])]).earliest_change() is None, "a baseline changes nothing"


def _status(edge: str, received: float, connections: dict, *, epoch: int = 1, stamp: float | None = None,
            machines: tuple[str, ...] = ("m1",)) -> Incoming:
    body = {"v": 1, "edge_id": edge, "online": True, "epoch": epoch, "machines": list(machines), "connections": connections}
    if stamp is not None:
        body["ts"] = at(stamp).isoformat()
    return Incoming(f"mes/v1/edge/{edge}/status", json.dumps(body).encode(), at(received))


def test_each_machines_connection_is_kept_as_its_edges_newest_status_reports_it():
    wrong = {"m1": {"status": "bad_config", "detail": "ns=2;i=9: BadNodeIdUnknown", "since": at(1).isoformat(),
                    "unusable": {"bad_config": 2}}, "ghost": {"status": "ok"}}
    late = {"m1": {"status": "ok"}}
    result = plan([_status("e1", 5, wrong, stamp=3), _status("e1", 6, late, stamp=2)])
    (row,) = result.connection_rows()  # a machine the registry does not know has no row to go to
    assert row == ("m1", "bad_config", "ns=2;i=9: BadNodeIdUnknown", at(1), '{"bad_config": 2}', "e1", 1, at(3), at(5))
    assert result.state.connections["m1"] == row, "the state the next batch starts from"
    later = plan([_status("e1", 7, late, stamp=4)], state=result.state)
    assert [row.status for row in later.connection_rows()] == ["ok"]
    again = plan([_status("e1", 8, late, stamp=1)], state=later.state)
    assert again.connection_rows() == [] and again.state.connections["m1"].status == "ok"


def test_a_status_reporting_the_connection_of_another_edges_machine_is_refused():
    registry = {"m1": MachineInfo("s", "a", "l", {}, edge_id="e1")}
    parsed = parse_batch([_status("e2", 5, {"m1": {"status": "ok"}}, machines=())], registry)
    assert parsed.connections == [] and "edge not assigned" in parsed.dead_letters[0].reason


@given(st.lists(st.tuples(st.integers(0, 3_600_000), st.integers(0, 50), st.integers(0, 5), st.integers(0, 90)),
                min_size=1, max_size=20))
def test_a_machine_without_windows_gets_what_the_attribution_rule_gives_it(units):
    steps = [CountStep("m1", T0 + timedelta(milliseconds=ms), good, scrap, energy) for ms, good, scrap, energy in units]
    origin = ("e1", 1, 7)
    assert attributions(origin, steps, []) == [AttributionRow(*origin, *row) for row in attribute(steps, [])]
