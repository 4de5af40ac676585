"""The core's decoding of data messages (kernel.payload.decode_data) against DataMessage, the schema of record:
the same messages taken, with the same values and the same content bytes (the digest that tells a redelivery
from a reused position); the same refused, with DataMessage's reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kernel.payload import DataMessage, DecodedMessage, Sample, decode_data
from kernel.signals import COUNTERS, ORDER

slugs = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True)
positive = st.integers(1, 2**63 - 1)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30)),
                           timezone(timedelta(hours=14)), timezone(timedelta(minutes=-1))])
instants = st.builds(lambda start, micro, zone: (start + timedelta(microseconds=micro)).astimezone(zone),
                     st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
                     st.sampled_from([0, 1, 500_000, 999_999, 120_000, 7]), offsets)


def written(ts: datetime, form: int) -> str:
    """A timestamp as publishers write it: Python's isoformat, with Z, with milliseconds, pydantic's own."""
    if form == 0:
        return ts.isoformat()
    if form == 1:
        return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if form == 2:
        return ts.isoformat(timespec="milliseconds")
    return json.loads(Sample(ts=ts, signal="good", value=0).model_dump_json())["ts"]


order_ids = st.one_of(st.just(""), st.from_regex(r"[!-~]([ -~]{0,20}[!-~])?", fullmatch=True))


@st.composite
def samples(draw):
    signal = draw(st.sampled_from([*COUNTERS, "state", "fault", ORDER]))
    value = draw(order_ids) if signal == ORDER else draw(st.integers(0, 2**63 - 1))
    return {"ts": written(draw(instants), draw(st.integers(0, 3))), "signal": signal, "value": value}


@st.composite
def messages(draw):
    body = {"edge_id": draw(slugs), "epoch": draw(positive), "seq": draw(positive), "machine": draw(slugs),
            "samples": draw(st.lists(samples(), min_size=1, max_size=6))}
    if draw(st.booleans()):
        body["v"] = 1
    if draw(st.booleans()):
        body["historical"] = draw(st.booleans())
    if draw(st.booleans()):
        body["prev"] = None if draw(st.booleans()) else {"epoch": draw(positive), "seq": draw(positive)}
    return body


def same(payload: bytes) -> None:
    """decode_data takes `payload` exactly as DataMessage does, or refuses it with the same errors."""
    try:
        model = DataMessage.model_validate_json(payload)
    except ValidationError as refused:
        with pytest.raises(ValidationError) as raised:
            decode_data(payload)
        assert raised.value.errors(include_context=False) == refused.errors(include_context=False)
        assert str(raised.value) == str(refused)
        return
    decoded = decode_data(payload)
    assert (decoded.v, decoded.edge_id, decoded.epoch, decoded.seq, decoded.machine, decoded.historical) == (
        model.v, model.edge_id, model.epoch, model.seq, model.machine, model.historical)
    assert (decoded.prev.epoch, decoded.prev.seq) == (model.prev.epoch, model.prev.seq) if model.prev else decoded.prev is None
    assert [(s.ts, s.ts.utcoffset(), s.signal, s.value) for s in decoded.samples] == [
        (s.ts, s.ts.utcoffset(), s.signal, s.value) for s in model.samples]
    assert decoded.content() == model.content()


@settings(max_examples=300)
@given(messages())
def test_a_valid_message_decodes_to_datamessages_values_and_content(body):
    payload = json.dumps(body).encode()
    DataMessage.model_validate_json(payload)  # valid indeed
    msgspec.json.decode(payload, type=DecodedMessage)  # and read by msgspec itself, not handed to pydantic
    same(payload)


BAD_VALUES = [None, True, 1.5, -1, 2**63, 2**64, "", "x\n", "a b", " m1", "m1\n", "2026-12-07T23:13:52", [], {}, {"x": 1},
              "2026-12-07T23:13:52.1234567Z", "2026-12-07T23:13Z", "2026-12-07T23:13:52,5Z", "1700000000", 0, 1,
              "WO 1 ", "é", "x" * 41, "2026-02-30T00:00:00Z"]


@st.composite
def spoiled(draw):
    """A valid message with one field replaced by a value of the wrong kind, one removed, or one added."""
    body = draw(messages())
    target = body["samples"][draw(st.integers(0, len(body["samples"]) - 1))] if draw(st.booleans()) else body
    if target is body and "prev" in body and isinstance(body["prev"], dict) and draw(st.booleans()):
        target = body["prev"]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    key = draw(st.sampled_from(sorted(target)))
    if action == "replace":
        target[key] = draw(st.sampled_from(BAD_VALUES))
    elif action == "remove":
        del target[key]
    else:
        target[draw(st.sampled_from(["extra", "Samples", "edge"]))] = 1
    if draw(st.booleans()):
        body["samples"] = draw(st.sampled_from([[], "none", [1]]))
    return body


@settings(max_examples=500)
@given(spoiled())
def test_a_spoiled_message_is_taken_or_refused_as_datamessage_does(body):
    same(json.dumps(body).encode())


@pytest.mark.parametrize("payload", [b"", b"{", b"[]", b"null", b'{"v": 2}', b"\xff", b'{"edge_id": "e1"} x', b"{} "])
def test_what_is_not_a_message_is_refused_with_datamessages_reasons(payload):
    same(payload)


def test_forms_only_pydantic_reads_still_pass():
    for ts in ("2026-12-07T23:13Z", "2026-12-07T23:13:52,5Z", "2026-12-07T23:13:52.1234567Z"):
        body = {"edge_id": "e1", "epoch": 1, "seq": 1, "machine": "m1", "samples": [{"ts": ts, "signal": "good", "value": 3}]}
        same(json.dumps(body).encode())


SAMPLE = b'{"ts":"2026-01-01T00:00:00Z","signal":"good","value":1}'
HEAD = b'"edge_id":"e1","epoch":1,"seq":1,"machine":"m1"'


@pytest.mark.parametrize("payload", [
    b'{"edge_id":"e0",' + HEAD + b',"samples":[' + SAMPLE + b"]}",  # a key twice: the last one counts
    b"{" + HEAD + b',"samples":[{"ts":"2026-01-01T00:00:00Z","signal":"good","value":1,"value":2}]}',
    b"{" + HEAD + b',"samples":[{"ts":"2026-01-01T00:00:00Z","signal":"good","value":1.0}]}',
    b"{" + HEAD + b',"samples":[{"ts":"2026-01-01T00:00:00Z","signal":"good","value":1e3}]}',
    b"{" + HEAD + b',"samples":[{"ts":"2026-01-01T00:00:00Z","signal":"good","value":-0}]}',
    b"{" + HEAD.replace(b'"epoch":1', b'"epoch":1.0') + b',"samples":[' + SAMPLE + b"]}",
    b"{" + HEAD + b',"v":1.0,"samples":[' + SAMPLE + b"]}",
    b"{" + HEAD + b',"historical":0,"samples":[' + SAMPLE + b"]}",
    b"{" + HEAD + b',"prev":{"epoch":1,"seq":1,"x":1},"samples":[' + SAMPLE + b"]}",
    b"{" + HEAD.replace(b'"e1"', b'"e\\u0031"') + b',"samples":[{"ts":"2026-01-01T00:00:00Z","signal":"order","value":"W\\"O\\\\1/"}]}',
    b"\xef\xbb\xbf{" + HEAD + b',"samples":[' + SAMPLE + b"]}",
    b"{" + HEAD + b',"samples":[' + SAMPLE + b"]}   \n",
])
def test_json_corners_are_read_as_datamessage_reads_them(payload):
    same(payload)
