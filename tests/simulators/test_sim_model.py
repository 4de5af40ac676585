from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.signals import COUNTERS, MachineState
from simulators.model import MachineModel
from simulators.plant import PlantClock
from sim_helpers import plant_with

D = Decimal


def machine(**fields):
    spec = {"id": "m-1", "protocol": "opcua", "ideal_cycle_s": "0.25"} | fields
    return plant_with([spec]).machines[0]


def producing(**fields) -> MachineModel:
    model = MachineModel(machine(**fields))
    model.start_production()
    return model


def test_frozen_and_idle_until_production_starts():
    model = MachineModel(machine(counter_start=7, simulation={"mtbf_s": 1}))
    model.advance(D(100))
    assert model.counters() == {"good": 7, "scrap": 7, "energy_wh": 7, "state": MachineState.IDLE, "fault": 0, "order": ""}
    assert model.ground_truth()["good"] == 0
    assert sum(model.ground_truth()["state_seconds"].values()) == 0


def test_one_unit_per_ideal_cycle_and_energy_per_cycle():
    model = producing(simulation={"scrap_rate": "0.1", "energy_wh_per_cycle": "1.5", "seed": 5})
    model.advance(D(10))
    truth = model.ground_truth()
    assert truth["cycles"] == 40
    assert truth["good"] + truth["scrap"] == 40
    assert truth["energy_wh"] == 60
    assert truth["state_seconds"]["running"] == 10
    assert model.counters()["state"] == MachineState.RUNNING


def test_idle_power_accumulates_exactly_while_not_running():
    model = producing(simulation={"idle_power_w": 1000})
    model.set_state(MachineState.PLANNED_STOP)
    for _ in range(3599):
        model.advance(D(1))
    assert model.counters()["energy_wh"] == 999  # 999.72 Wh: the counter shows whole Wh only
    model.advance(D(1))
    assert model.counters()["energy_wh"] == 1000
    assert model.ground_truth()["good"] == 0
    assert model.ground_truth()["state_seconds"]["planned_stop"] == 3600


def test_scrap_rate_extremes():
    no_scrap = producing(simulation={"scrap_rate": 0})
    no_scrap.advance(D(5))
    assert no_scrap.ground_truth()["good"] == 20 and no_scrap.ground_truth()["scrap"] == 0
    all_scrap = producing(simulation={"scrap_rate": 1})
    all_scrap.advance(D(5))
    assert all_scrap.ground_truth()["good"] == 0 and all_scrap.ground_truth()["scrap"] == 20


def test_sixteen_bit_counters_roll_over():
    model = producing(counter_width=16, counter_start=65530, simulation={"scrap_rate": 0, "energy_wh_per_cycle": 1})
    model.advance(D(2.5))  # 10 cycles
    assert model.counters()["good"] == 4
    assert model.counters()["energy_wh"] == 4
    assert model.counters()["scrap"] == 65530


def test_thirty_two_bit_counters_roll_over():
    model = producing(counter_width=32, counter_start=2**32 - 3, simulation={"scrap_rate": 0, "energy_wh_per_cycle": 0})
    model.advance(D(1))
    assert model.counters()["good"] == 1


def test_forced_fault_stops_production_then_resumes():
    model = producing(simulation={"energy_wh_per_cycle": 0, "idle_power_w": 0, "scrap_rate": 0})
    model.force_fault(42, D(2))
    model.advance(D(1))
    assert model.counters()["state"] == MachineState.FAULT and model.counters()["fault"] == 42
    assert model.ground_truth()["good"] == 0
    model.advance(D(2))
    assert model.counters()["state"] == MachineState.RUNNING and model.counters()["fault"] == 0
    assert model.ground_truth()["good"] == 4
    assert model.ground_truth()["state_seconds"]["fault"] == 2


def test_repair_ending_in_a_reset_holds_every_counter_still_first():
    model = MachineModel(machine(counter_start=100, simulation={"idle_power_w": 3600, "scrap_rate": 0}), reset_hold_s=D(3))
    model.start_production()
    model.force_fault(7, D(1), reset=True)  # shorter than the hold: stretched to it
    model.advance(D("0.5"))
    before_hold = model.counters()
    model.advance(D("2.499"))
    assert model.counters() == before_hold
    model.advance(D("0.001"))
    assert model.counters()["good"] == 0 and model.counters()["energy_wh"] == 0
    assert model.ground_truth()["plc_resets"] == 1
    # and the zeros stand still for another hold, so a reader sees them before production resumes
    model.advance(D("2.999"))
    assert model.counters() | {"state": 0} == {"good": 0, "scrap": 0, "energy_wh": 0, "state": 0, "fault": 7, "order": ""}
    model.advance(D("0.001"))
    assert model.counters()["state"] == MachineState.RUNNING


def test_a_long_repair_only_freezes_its_last_two_holds_around_the_reset():
    model = MachineModel(machine(simulation={"idle_power_w": 3600}), reset_hold_s=D(3))
    model.start_production()
    model.force_fault(7, D(10), reset=True)
    model.advance(D(4))
    assert model.ground_truth()["energy_wh"] == 4  # 1 Wh per second while the PLC is on
    model.advance(D("5.9"))
    assert model.ground_truth()["energy_wh"] == 4


def test_plc_reset_zeroes_all_counters_at_once():
    model = producing(counter_start=500)
    model.advance(D(1))
    model.plc_reset()
    assert [model.counters()[c] for c in COUNTERS] == [0, 0, 0]


def test_fault_state_cannot_be_set_without_a_code():
    with pytest.raises(ValueError):
        producing().set_state(MachineState.FAULT)
    with pytest.raises(ValueError):
        producing().force_fault(0, D(1))


def test_cycle_times_finer_than_a_microsecond_are_refused():
    with pytest.raises(ValueError):
        MachineModel(machine(ideal_cycle_s="0.0000001"))


def test_natural_failures_follow_the_seed():
    def run() -> dict:
        model = producing(simulation={"mtbf_s": 5, "mttr_s": 2, "plc_reset_probability": "0.5", "seed": 11})
        model.advance(D(600))
        return model.ground_truth()

    first = run()
    assert first["faults"] > 10 and first["state_seconds"]["fault"] > 0
    assert run() == first


def test_plant_clock_scales_wall_time_and_freezes():
    clock = PlantClock(D("2.5"))
    clock.start(now_ns=1_000)
    assert clock.elapsed_us(now_ns=1_000 + 4_000_000) == 10_000
    clock.stop(now_ns=1_000 + 4_000_000)
    assert clock.elapsed_us(now_ns=10**12) == 10_000
    clock.start(now_ns=10**12)
    assert clock.elapsed_us(now_ns=10**12 + 1_000) == 10_002  # 2.5 µs: partial µs are not yet due


# --- properties -----------------------------------------------------------------------------------

HOLD_S = D(2)

machines = st.fixed_dictionaries(
    {
        "ideal_cycle_s": st.integers(10, 3_000).map(lambda ms: D(ms) / 1000),
        "counter_width": st.sampled_from([16, 32]),
        "headroom": st.integers(1, 300),
        "simulation": st.fixed_dictionaries(
            {
                "scrap_rate": st.integers(0, 100).map(lambda pct: D(pct) / 100),
                "energy_wh_per_cycle": st.integers(0, 20_000).map(lambda mwh: D(mwh) / 1000),
                "idle_power_w": st.integers(0, 10_000),
                "mtbf_s": st.none() | st.integers(1, 60),
                "mttr_s": st.integers(1, 10),
                "plc_reset_probability": st.integers(0, 100).map(lambda pct: D(pct) / 100),
                "seed": st.integers(0, 2**32),
            }
        ),
    }
)

# Steps stay within the reset hold, as a reader polling at least that often would.
steps = st.lists(st.integers(1, int(HOLD_S * 1000)).map(lambda ms: D(ms) / 1000), min_size=1, max_size=120)
scripted = st.lists(
    st.tuples(
        st.sampled_from(["advance", "fault", "fault-with-reset", "planned-stop", "run"]),
        st.integers(1, int(HOLD_S * 1000)).map(lambda ms: D(ms) / 1000),
    ),
    min_size=1,
    max_size=120,
)


def model_for(fields: dict) -> MachineModel:
    width, headroom = fields["counter_width"], fields["headroom"]
    spec = {
        "ideal_cycle_s": fields["ideal_cycle_s"],
        "counter_width": width,
        "counter_start": 2**width - headroom,
        "simulation": {k: v for k, v in fields["simulation"].items() if v is not None},
    }
    model = MachineModel(machine(**spec), reset_hold_s=HOLD_S)
    model.start_production()
    return model


class Reader:
    """A perfect poller: sums counter increments, modulo the width, restarting from 0 after a reset."""

    def __init__(self, model: MachineModel) -> None:
        self.model = model
        self.modulus = 2**model.machine.counter_width
        self.last = model.counters()
        self.resets_seen = 0
        self.totals = dict.fromkeys(COUNTERS, 0)

    def poll(self) -> None:
        now = self.model.counters()
        resets = self.model.ground_truth()["plc_resets"]
        for counter in COUNTERS:
            assert 0 <= now[counter] < self.modulus
            if resets != self.resets_seen:
                self.totals[counter] += now[counter]
            else:
                self.totals[counter] += (now[counter] - self.last[counter]) % self.modulus
        self.last, self.resets_seen = now, resets


def assert_reader_matches_truth(model: MachineModel, reader: Reader) -> None:
    truth = model.ground_truth()
    assert reader.totals == {counter: truth[counter] for counter in COUNTERS}
    assert truth["good"] + truth["scrap"] == truth["cycles"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=machines, step_list=steps)
def test_polled_counters_add_up_to_ground_truth(fields, step_list):
    model = model_for(fields)
    reader = Reader(model)
    for step in step_list:
        model.advance(step)
        reader.poll()
    assert_reader_matches_truth(model, reader)
    assert sum(model.ground_truth()["state_seconds"].values()) == sum(step_list)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=machines, script=scripted)
def test_scripted_stops_and_resets_keep_polled_counters_exact(fields, script):
    model = model_for(fields)
    reader = Reader(model)
    for action, seconds in script:
        if action == "fault":
            model.force_fault(9, seconds)
        elif action == "fault-with-reset":
            model.force_fault(9, seconds, reset=True)
        elif action == "planned-stop":
            model.set_state(MachineState.PLANNED_STOP)
        elif action == "run":
            model.set_state(MachineState.RUNNING)
        model.advance(seconds)
        reader.poll()
    assert_reader_matches_truth(model, reader)


@settings(max_examples=60, deadline=None)
@given(fields=machines, step_list=steps)
def test_step_size_does_not_change_the_outcome(fields, step_list):
    stepped, at_once = model_for(fields), model_for(fields)
    for step in step_list:
        stepped.advance(step)
    at_once.advance(sum(step_list))
    assert stepped.ground_truth() == at_once.ground_truth()
    assert stepped.counters() == at_once.counters()


def test_units_count_for_the_order_the_plc_shows_when_they_are_made():
    model = MachineModel(machine(ideal_cycle_s=1, simulation={"scrap_rate": 0}))
    model.start_production()
    model.advance(5)
    model.set_order("WO-7")
    model.advance(3)
    model.set_order("")
    model.advance(2)
    assert model.counters()["order"] == ""
    by_order = model.ground_truth()["by_order"]
    assert {order: made["good"] for order, made in by_order.items()} == {"": 7, "WO-7": 3}
    assert sum(made["energy_wh"] for made in by_order.values()) == model.ground_truth()["energy_wh"]
    with pytest.raises(ValueError, match="not an order id"):
        model.set_order(" padded ")
