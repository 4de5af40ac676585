"""Raw PLC values -> wire values (edge/sources/values.py) and the plant-file vocabulary of real PLCs."""

import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.rules.counters import CounterPoint, counter_step
from edge.sources.modbus import decode_register
from edge.sources.values import Unusable, signal_value
from kernel.modbus import value_bytes, words_of
from kernel.plant import ModbusRegister, NodeAddress, SignalSettings, parse_node_address, parse_plant
from simulators.modbus_server import register_words

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SIGNED = {"int16": 16, "int32": 32, "int64": 64}


def wire(raw, value_type, width=None, **settings):
    return signal_value("good", raw, value_type, SignalSettings(**settings) if settings else None, width)


def test_a_signed_wrap_is_one_more_unit_for_the_core():
    before, after = wire(32767, "int16", 16), wire(-32768, "int16", 16)
    assert (before, after) == (32767, 32768)
    step = counter_step(CounterPoint(before, T0), CounterPoint(after, T0 + timedelta(seconds=1)), 16, Decimal(10))
    assert step.delta == 1
    wrapped = counter_step(CounterPoint(wire(-1, "int16", 16), T0), CounterPoint(wire(0, "int16", 16), T0 + timedelta(seconds=1)),
                           16, Decimal(10))
    assert wrapped.delta == 1  # -1 -> 0 is the unsigned 65535 -> 0 rollover
    assert wire(-2**31, "int32", 32) == 2**31


@given(st.sampled_from(sorted(SIGNED)), st.data())
def test_every_signed_step_counts_as_its_distance_modulo_the_width(value_type, data):
    bits = SIGNED[value_type]
    start = data.draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    climb = data.draw(st.integers(0, 1000))
    end = (start + climb + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)  # what the PLC shows after `climb` units
    first, second = wire(start, value_type, bits), wire(end, value_type, bits)
    if bits == 64 and min(start, end) < 0:
        # The wire (and the core's bigint) carry 63 bits: a negative LINT, 2**63 counts away, is refused.
        assert isinstance(first if start < 0 else second, Unusable)
        return
    step = counter_step(CounterPoint(first, T0), CounterPoint(second, T0 + timedelta(seconds=100)), bits, Decimal(100))
    assert step.delta == climb and step.quarantined == 0


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=30), st.sampled_from(["0.001", "0.01", "0.1"]))
def test_a_scaled_cumulative_meter_never_loses_more_than_the_unit_it_has_not_completed(steps, resolution):
    """A kWh meter read as Wh: each reading floors, the total counted always equals the meter's total floored."""
    scale, total = Decimal(1000), Decimal(0)
    counted = wire(0.0, "float64", 64, scale=scale)
    for milli in steps:
        total += Decimal(milli) * Decimal(resolution) / 1000
        reading = wire(float(total), "float64", 64, scale=scale)
        assert reading >= counted
        counted = reading
    assert counted == int(Decimal(repr(float(total))) * scale)


def test_unusable_readings_say_why():
    assert wire(-5, "float64").reason == "negative"
    assert wire(float("nan"), "float64").reason == "not_a_number"
    assert wire("12", "string").reason == "type_mismatch"
    assert wire(5, "int16", 32).reason == "narrower_than_width"
    assert wire(2**64 - 1, "uint64", 64).reason == "out_of_range"
    assert signal_value("order", 7, "uint16", None, None).reason == "type_mismatch"
    assert wire(12.345, "float32", 64, scale=Decimal(1000)) == 12345  # float32 read to the digits it carries
    assert wire(100, "uint16", 16, offset=Decimal(-50), scale=Decimal(2)) == 150


@pytest.mark.parametrize("order, words", [("ABCD", [0x1122, 0x3344]), ("CDAB", [0x3344, 0x1122]),
                                          ("BADC", [0x2211, 0x4433]), ("DCBA", [0x4433, 0x2211])])
def test_the_four_byte_orders(order, words):
    assert value_bytes(words, order) == bytes.fromhex("11223344")
    assert words_of(bytes.fromhex("11223344"), order) == words
    assert decode_register(words, ModbusRegister(address=0, type="uint32", byte_order=order), "good") == 0x11223344


@given(st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]), st.sampled_from(["int16", "int32", "int64", "uint64"]),
       st.integers(0, 2**63 - 1))
def test_what_the_simulator_writes_the_edge_reads_back(order, value_type, value):
    register = ModbusRegister(address=0, type=value_type, byte_order=order)
    value %= 2 ** (16 * register.register_count)  # a signed type past half its range: read negative, carried unsigned
    assert decode_register(register_words(value, register), register, "good", SIGNED.get(value_type, 64)) == value


def test_float32_energy_in_every_order():
    for order in ("ABCD", "CDAB", "BADC", "DCBA"):
        register = ModbusRegister(address=0, type="float32", byte_order=order, scale=Decimal(1000))
        words = words_of(struct.pack(">f", 12.345), order)
        assert decode_register(words, register, "energy_wh", 64) == 12345


@pytest.mark.parametrize("text, expected", [
    ("ns=2;i=1001", NodeAddress(None, 2, "i", 1001)),
    ("ns=3;s=\"DB_Counters\".\"Good\"", NodeAddress(None, 3, "s", "\"DB_Counters\".\"Good\"")),
    ("nsu=urn:beckhoff:plc;s=MAIN.nGood", NodeAddress("urn:beckhoff:plc", None, "s", "MAIN.nGood")),
    ("nsu=http://x/;i=7", NodeAddress("http://x/", None, "i", 7)),
    ("ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a", NodeAddress(None, 1, "g", "09087e75-8e5e-499b-954f-f2a9603db28a")),
    ("ns=1;b=AAE=", NodeAddress(None, 1, "b", "AAE=")),
    ("i=2258", NodeAddress(None, 0, "i", 2258)),
    ("Counter.Good", NodeAddress("urn:plc", None, "s", "Counter.Good")),  # the short form
    (1001, NodeAddress("urn:plc", None, "i", 1001)),  # a YAML integer
])
def test_node_addresses_in_every_form(text, expected):
    assert parse_node_address(text, "urn:plc") == expected


@pytest.mark.parametrize("text, message", [("ns=x;i=1", "namespace index"), ("ns=2;i=abc", "whole number"),
                                           ("nsu=;i=1", "URI")])
def test_malformed_node_addresses_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_node_address(text, None)
    with pytest.raises(ValueError, match="short form"):
        parse_node_address("Counter.Good", None)


def test_the_4xxxx_form_is_refused_with_the_pdu_address_to_write():
    with pytest.raises(ValueError, match=r"40001 looks like a 4xxxx register number.*here 0"):
        ModbusRegister(address=40001)
    with pytest.raises(ValueError, match="here 99"):
        ModbusRegister.model_validate({"address": 400100})
    assert ModbusRegister(address=40001, address_is_pdu=True).address == 40001
    assert ModbusRegister(address=39999).address == 39999
    with pytest.raises(ValueError, match="coils and discrete inputs hold type bool"):
        ModbusRegister(address=0, table="coil", type="uint16")


def real_plc_plant():
    return parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
        {"id": "s7", "protocol": "opcua", "ideal_cycle_s": 2, "rated_power_w": 36000, "source": {
            "protocol": "opcua", "endpoint": "opc.tcp://plc:4840",
            "nodes": {"good": {"node": "ns=3;i=1001", "type": "int16"}, "scrap": "ns=3;i=1002",
                      "energy_wh": {"node": "ns=3;i=1003", "type": "float64", "scale": 1000, "max_rate_per_s": 50}}}},
        {"id": "meter", "protocol": "modbus", "ideal_cycle_s": 1, "rated_power_w": 3600, "source": {
            "protocol": "modbus", "host": "meter", "port": 502, "device_id": 0,
            "registers": {"good": {"address": 0, "type": "uint16"},
                          "energy_wh": {"address": 50, "table": "input", "type": "uint32", "byte_order": "CDAB"}}}},
        {"id": "unit-255", "protocol": "modbus", "ideal_cycle_s": 1, "device_id": 255},
    ]}]}]})


def test_counter_widths_and_limits_come_from_each_signal():
    s7, meter, unit_255 = real_plc_plant().machines
    assert {c: spec.width for c, spec in s7.counters.items()} == {"good": 16, "scrap": 32, "energy_wh": 64}
    assert s7.counters["energy_wh"].max_rate_per_s == 50
    assert s7.counters["good"].max_rate_per_s == Decimal("0.5") * 10  # from the ideal cycle time
    assert {c: spec.width for c, spec in meter.counters.items()} == {"good": 16, "scrap": 32, "energy_wh": 32}
    assert meter.source.device_id == 0 and unit_255.source.device_id == 255
    rated = parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
        {"id": "m", "protocol": "opcua", "ideal_cycle_s": 2, "rated_power_w": 36000}]}]}]}).machines[0]
    assert rated.counters["energy_wh"].max_rate_per_s == 100  # 36 kW = 10 Wh/s, times the plausibility factor


def test_a_real_energy_meter_without_a_limit_of_its_own_is_warned_about():
    import structlog

    meter = {"id": "m", "protocol": "modbus", "ideal_cycle_s": 1, "source": {
        "protocol": "modbus", "host": "h", "port": 502, "device_id": 1, "registers": {"energy_wh": {"address": 0}}}}
    with structlog.testing.capture_logs() as logs:
        parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [meter]}]}]})
    assert [line["machine"] for line in logs if line["event"] == "plant.energy_limit_from_simulation_defaults"] == ["m"]
    meter["source"]["registers"]["energy_wh"]["max_rate_per_s"] = 300  # the 300 Wh/s machine of the issue
    with structlog.testing.capture_logs() as logs:
        plant = parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [meter]}]}]})
    assert plant.machines[0].counters["energy_wh"].max_rate_per_s == 300 and not logs


def test_a_signed_counter_cannot_claim_a_wider_wrap_than_its_type():
    with pytest.raises(ValueError, match="cannot wrap at 32 bits"):
        parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
            {"id": "m", "protocol": "opcua", "ideal_cycle_s": 1, "source": {
                "protocol": "opcua", "endpoint": "opc.tcp://plc:4840",
                "nodes": {"good": {"node": "ns=3;i=1", "type": "int16", "width": 32}}}}]}]}]})


def test_the_examples_of_the_plant_file_guide_parse():
    import re
    from pathlib import Path

    import yaml

    guide = (Path(__file__).resolve().parents[2] / "docs" / "plant-file.md").read_text()
    machines = [yaml.safe_load(block)[0] for block in re.findall(r"```yaml\n(- id:.*?)```", guide, re.DOTALL)]
    assert len(machines) == 5  # S7-1500, Codesys, energy meter, Modbus PLC; a simulated secured server
    plant = parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": machines}]}]})
    s7 = plant.machine("press-01")
    assert s7.counters["good"].width == 16 and s7.counters["energy_wh"].max_rate_per_s == 125
    assert plant.machine("welder-02").source.registers["fault"].table == "coil"
