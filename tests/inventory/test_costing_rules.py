"""Work-order costing: tariffs, actual cost, standard roll-up and variances, worked by hand, then properties."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inventory.rules.costing import (
    MONEY_QUANTUM,
    MachineUse,
    Routing,
    StandardCost,
    Tariff,
    TariffPeriod,
    Variances,
    WorkOrderCost,
    actual_cost,
    energy_cost,
    machine_cost,
    price_at,
    standard_costs,
    variances,
)

D = Decimal
PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = frozenset(range(5))
# Monday to Friday 06:00–22:00 at 0.20 /kWh, otherwise 0.12: the module docstring's tariff.
PEAK = Tariff("Europe/Paris", D("0.12"), (TariffPeriod(WEEKDAYS, time(6), time(22), D("0.20")),))


def paris(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11, microsecond: int = 0) -> datetime:
    """A Paris wall-clock instant in 2026; in November, 23 is a Monday and 27 a Friday."""
    return datetime(2026, month, day, hour, minute, second, microsecond, tzinfo=PARIS)


def utc(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def tariff_with(*periods: TariffPeriod, default: Decimal = D("0.12")) -> Tariff:
    return Tariff("Europe/Paris", default, periods)


# --- tariffs -----------------------------------------------------------------------------------


def test_a_flat_tariff_prices_every_instant_at_its_default():
    flat = Tariff("UTC", D("0.15"))
    assert {price_at(flat, instant) for instant in (paris(23, 3), paris(28, 14), utc(3, 29, 1))} == {D("0.15")}


def test_a_period_starts_at_its_start_and_ends_just_before_its_end():
    assert price_at(PEAK, paris(23, 5, 59, 59)) == D("0.12")
    assert price_at(PEAK, paris(23, 6)) == D("0.20")
    assert price_at(PEAK, paris(23, 21, 59, 59, microsecond=999_999)) == D("0.20")
    assert price_at(PEAK, paris(23, 22)) == D("0.12")
    assert price_at(PEAK, paris(28, 12)) == D("0.12")  # Saturday: not a peak day


def test_the_wall_clock_of_the_tariffs_zone_prices_the_instant_whatever_zone_the_instant_carries():
    # 05:30 UTC on Monday 23 November is 06:30 in Paris (CET, UTC+1): peak.
    assert price_at(PEAK, utc(11, 23, 5, 30)) == D("0.20")
    assert price_at(Tariff("UTC", D("0.12"), PEAK.periods), utc(11, 23, 5, 30)) == D("0.12")


def test_a_night_period_crosses_midnight_from_the_day_it_starts_on():
    friday_night = tariff_with(TariffPeriod(frozenset({4}), time(22), time(6), D("0.08")))
    assert price_at(friday_night, paris(27, 23)) == D("0.08")  # Friday night
    assert price_at(friday_night, paris(28, 5, 59)) == D("0.08")  # Saturday morning, same night
    assert price_at(friday_night, paris(28, 6)) == D("0.12")
    assert price_at(friday_night, paris(27, 5)) == D("0.12")  # Friday morning belongs to Thursday's night
    assert price_at(friday_night, paris(26, 23)) == D("0.12")  # Thursday night: not a period day


def test_sunday_night_runs_into_monday_morning():
    sunday_night = tariff_with(TariffPeriod(frozenset({6}), time(22), time(6), D("0.08")))
    assert price_at(sunday_night, paris(29, 23)) == D("0.08")
    assert price_at(sunday_night, paris(30, 1)) == D("0.08")  # Monday 30 November, 01:00


def test_start_equal_to_end_is_a_whole_day():
    weekend = tariff_with(TariffPeriod(frozenset({5, 6}), time(0), time(0), D("0.10")))
    assert price_at(weekend, paris(28, 0)) == D("0.10")
    assert price_at(weekend, paris(29, 23, 59, 59)) == D("0.10")
    assert price_at(weekend, paris(30, 0)) == D("0.12")
    assert price_at(weekend, paris(27, 23, 59, 59)) == D("0.12")


def test_on_the_day_clocks_go_forward_a_period_in_the_skipped_hour_covers_no_instant():
    # 29 March 2026, Paris: 02:00 CET (01:00 UTC) becomes 03:00 CEST.
    small_hours = tariff_with(TariffPeriod(frozenset(range(7)), time(2), time(3), D("0.50")))
    assert price_at(small_hours, utc(3, 28, 1, 30)) == D("0.50")  # the day before: 02:30 CET
    assert price_at(small_hours, utc(3, 29, 0, 59, 59)) == D("0.12")  # 01:59:59 CET
    assert price_at(small_hours, utc(3, 29, 1)) == D("0.12")  # 03:00 CEST


def test_on_the_day_clocks_go_back_a_period_in_the_repeated_hour_covers_two_hours():
    # 25 October 2026, Paris: 03:00 CEST (01:00 UTC) becomes 02:00 CET; 02:00–03:00 happens twice.
    small_hours = tariff_with(TariffPeriod(frozenset(range(7)), time(2), time(3), D("0.50")))
    assert price_at(small_hours, utc(10, 25, 0)) == D("0.50")  # 02:00 CEST
    assert price_at(small_hours, utc(10, 25, 1, 30)) == D("0.50")  # 02:30 CET, the second time round
    assert price_at(small_hours, utc(10, 25, 2)) == D("0.12")  # 03:00 CET


def test_overlapping_periods_are_refused_naming_both():
    with pytest.raises(ValueError, match=r"overlap: Mon,Tue,Wed,Thu,Fri 06:00:00–22:00:00 at 0.20/kWh and Wed 21:00:00–23:00:00"):
        tariff_with(PEAK.periods[0], TariffPeriod(frozenset({2}), time(21), time(23), D("0.30")))


def test_an_overlap_across_sunday_midnight_is_found():
    sunday_night = TariffPeriod(frozenset({6}), time(23), time(1), D("0.08"))
    with pytest.raises(ValueError, match="overlap"):
        tariff_with(sunday_night, TariffPeriod(frozenset({0}), time(0, 30), time(2), D("0.09")))
    assert price_at(tariff_with(sunday_night, TariffPeriod(frozenset({0}), time(1), time(2), D("0.09"))), paris(30, 1)) == D("0.09")


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: Tariff("Mars/Olympus", D("0.1")), ValueError, "unknown time zone"),
        (lambda: Tariff("UTC", 0.1), TypeError, "float"),
        (lambda: Tariff("UTC", D("-0.1")), ValueError, "must not be negative"),
        (lambda: TariffPeriod(frozenset({7}), time(6), time(22), D("0.2")), ValueError, "weekdays 0"),
        (lambda: TariffPeriod(frozenset(), time(6), time(22), D("0.2")), ValueError, "at least one weekday"),
        (lambda: TariffPeriod(WEEKDAYS, time(6, tzinfo=UTC), time(22), D("0.2")), ValueError, "wall times"),
    ],
)
def test_bad_tariffs_are_refused(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError, match="must carry a time zone"):
        price_at(PEAK, datetime(2026, 11, 23, 12))


# --- actual cost -------------------------------------------------------------------------------


def test_each_metered_step_is_priced_when_its_sample_was_taken():
    # 1 500 Wh counted at 21:59:59 (peak) × 0.20 / 1000 = 0.30; 2 000 Wh counted at 22:00 × 0.12 / 1000 = 0.24.
    assert energy_cost(PEAK, [(paris(23, 21, 59, 59), 1500), (paris(23, 22), 2000)]) == D("0.54")


def test_energy_cost_is_exact_however_many_decimals_the_price_has():
    # 1 Wh × 0.1234567 / 1000 = 0.0001234567: more places than money is rounded to, kept.
    assert energy_cost(Tariff("UTC", D("0.1234567")), [(utc(11, 23, 12), 1)]) == D("0.0001234567")


def test_negative_metered_energy_is_refused():
    with pytest.raises(ValueError, match="must not be negative"):
        energy_cost(PEAK, [(paris(23, 12), -5)])


@pytest.mark.parametrize(
    ("run_seconds", "hourly_rate", "cost"),
    [
        (5400, 40, D("60.000000")),  # 1.5 h × 40
        (50, 40, D("0.555556")),  # 2000 / 3600 = 0.5555…
        (1, 1, D("0.000278")),  # 0.000277…
        (D("0.0018"), 1, D("0.000000")),  # exactly 0.0000005: half to even, down
        (D("0.0054"), 1, D("0.000002")),  # exactly 0.0000015: half to even, up
    ],
)
def test_machine_time_is_rounded_once_half_to_even(run_seconds, hourly_rate, cost):
    assert machine_cost(run_seconds, hourly_rate) == cost


def test_actual_cost_of_the_worked_example():
    # Module docstring's order, plus 1.5 h of labour at 30 /h = 45.00:
    # 84.30 + 0.54 + 60.00 + 45.00 = 189.84; per good unit 189.84 / 95 = 1.99831578… → 1.998316.
    readings = [(paris(23, 21, 59, 59), 1500), (paris(23, 22), 2000)]
    cost = actual_cost(D("84.30"), readings, PEAK, 5400, 40, good=95, scrap=5, labour_hours=D("1.5"), labour_rate=30)
    assert (cost.material, cost.energy, cost.machine, cost.labour) == (D("84.30"), D("0.54"), D("60"), D("45.0"))
    assert (cost.total, cost.unit_cost, cost.units_made) == (D("189.84"), D("1.998316"), 100)


def test_good_units_absorb_the_cost_of_scrap():
    # 10.00 of material for 4 good and 1 scrap: each good unit carries 10 / 4 = 2.50, not 10 / 5.
    cost = actual_cost(D("10.00"), [], PEAK, 0, 0, good=4, scrap=1)
    assert cost.unit_cost == D("2.500000")


def test_before_the_first_good_unit_there_is_no_unit_cost_yet():
    cost = actual_cost(D("3.00"), [(paris(23, 12), 100)], PEAK, 60, 36, good=0, scrap=2)
    assert cost.unit_cost is None and cost.total == D("3.00") + D("0.020") + D("0.6")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"good": -1, "scrap": 0}, ValueError), ({"good": 1.0, "scrap": 0}, TypeError), ({"good": 1, "scrap": 0, "labour_hours": 0.5}, TypeError)],
)
def test_bad_actual_cost_inputs_are_refused(kwargs, error):
    with pytest.raises(error):
        actual_cost(D(1), [], PEAK, 0, 0, **kwargs)


def test_actual_cost_of_an_order_on_several_machines_with_several_labour_bookings():
    # The press of the worked example (0.54 of energy, 60.00 of machine time), a welder whose work centre
    # has no tariff (its 100 Wh cost nothing) that ran 1 s at 1 /h (0.000277… → 0.000278), and two
    # labour bookings, 1.5 h × 30 + 0.25 h × 32 = 53.00: 84.30 + 0.54 + 60.000278 + 53.00 = 197.840278.
    press = MachineUse(PEAK, ((paris(23, 21, 59, 59), 1500), (paris(23, 22), 2000)), D(5400), D(40))
    welder = MachineUse(None, ((paris(23, 12), 100),), D(1), D(1))
    cost = actual_cost(D("84.30"), good=95, scrap=5, machines=[press, welder], labour=[(D("1.5"), 30), (D("0.25"), 32)])
    assert (cost.material, cost.energy, cost.machine, cost.labour) == (D("84.30"), D("0.54"), D("60.000278"), D("53.00"))
    assert cost.total == D("197.840278")


def test_machine_time_is_rounded_once_per_machine():
    # Three machines, 1 s each at 1 /h: 3 × 0.000278 = 0.000834 (not 3 s at 1 /h, 0.000833).
    cost = actual_cost(D(0), good=1, scrap=0, machines=[MachineUse(None, (), D(1), D(1))] * 3)
    assert cost.machine == D("0.000834")


def test_an_order_no_machine_worked_on_costs_its_material_and_labour():
    cost = actual_cost(D("2.50"), good=0, scrap=0, machines=[], labour=[])
    assert (cost.total, cost.energy, cost.machine, cost.labour) == (D("2.50"), 0, 0, 0)


@pytest.mark.parametrize("kwargs", [{"run_seconds": 60}, {"tariff": PEAK}, {"labour_hours": 1}])
def test_one_machine_or_labour_booking_given_directly_and_a_list_of_them_do_not_mix(kwargs):
    with pytest.raises(TypeError, match="not both"):
        actual_cost(D(1), good=1, scrap=0, machines=[], labour=[], **kwargs)


def test_a_machine_use_refuses_negative_energy_time_and_rates():
    for readings, seconds, rate in [(((paris(23, 12), -1),), 0, 0), ((), -1, 0), ((), 0, D("-0.5"))]:
        with pytest.raises(ValueError):
            MachineUse(None, readings, seconds, rate)
    with pytest.raises(TypeError):
        MachineUse(PEAK, (), 1.5, 40)


def test_material_valued_later_is_added_to_the_cost_and_carried_by_the_good_units():
    cost = actual_cost(D("10.00"), [], PEAK, 0, 0, good=4, scrap=1).with_material(D("2.000001"))
    assert (cost.material, cost.total, cost.unit_cost) == (D("12.000001"), D("12.000001"), D("3.000000"))


# --- standard cost -----------------------------------------------------------------------------

CHAIR_BOM = {"CHAIR": [("FRAME", 1, 0), ("SCREW", 4, D("0.05"))], "FRAME": [("TUBE", D("1.8"), D("0.02"))]}
CHAIR_ROUTING = {
    "CHAIR": Routing(ideal_cycle_s=120, hourly_rate=30, energy_wh_per_unit=200, energy_price_per_kwh=D("0.15"),
                     labour_s_per_unit=90, labour_rate=36),
    "FRAME": Routing(ideal_cycle_s=45, hourly_rate=48, energy_wh_per_unit=150, energy_price_per_kwh=D("0.20")),
}
CHAIR_BUYS = {"TUBE": D("2.50"), "SCREW": D("0.04")}


def test_two_level_roll_up_by_hand():
    # FRAME: material 1.8 × 1.02 × 2.50 = 4.59; energy 150 × 0.20 / 1000 = 0.03; machine 45 × 48 / 3600 = 0.60.
    #        total 5.22.
    # CHAIR: material FRAME 1 × 5.22 + SCREW 4 × 1.05 × 0.04 = 0.168 → 5.388; energy 200 × 0.15 / 1000 = 0.03;
    #        machine 120 × 30 / 3600 = 1.00; labour 90 × 36 / 3600 = 0.90. total 7.318.
    costs = standard_costs(CHAIR_BOM, CHAIR_BUYS, CHAIR_ROUTING)
    assert costs["FRAME"] == StandardCost(material=D("4.59"), energy=D("0.03"), machine=D("0.6"))
    assert costs["CHAIR"] == StandardCost(material=D("5.388"), energy=D("0.03"), machine=D("1"), labour=D("0.9"))
    assert costs["CHAIR"].total == D("7.318")
    assert costs["TUBE"] == StandardCost(material=D("2.50"))


def test_a_made_item_without_bom_lines_has_no_material_cost():
    costs = standard_costs({}, {}, {"BLANK": Routing(60, 60, 0, 0)})
    assert costs["BLANK"] == StandardCost(material=D(0), machine=D(1))


def test_a_bom_cycle_is_refused_naming_it():
    routing = {item: Routing(1, 1, 1, 1) for item in "AB"}
    with pytest.raises(ValueError, match="BOM cycle: A → B → A"):
        standard_costs({"A": [("B", 1, 0)], "B": [("A", 1, 0)]}, {}, routing)


def test_a_bought_component_without_a_cost_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"GLUE \(in the BOM of CHAIR\) has no standard cost"):
        standard_costs({"CHAIR": [("GLUE", D("0.01"), 0)]}, {}, {"CHAIR": Routing(1, 1, 1, 1)})


def test_an_item_both_bought_and_made_is_refused():
    with pytest.raises(ValueError, match="FRAME: both bought"):
        standard_costs(CHAIR_BOM, {**CHAIR_BUYS, "FRAME": D(5)}, CHAIR_ROUTING)


def test_a_bom_parent_without_a_routing_is_refused():
    with pytest.raises(ValueError, match="made item FRAME has no routing"):
        standard_costs(CHAIR_BOM, CHAIR_BUYS, {"CHAIR": CHAIR_ROUTING["CHAIR"]})


def test_a_malformed_bom_line_is_refused():
    with pytest.raises(ValueError, match=r"must be \(component, quantity per, scrap factor\)"):
        standard_costs({"CHAIR": [("SCREW", 4)]}, CHAIR_BUYS, CHAIR_ROUTING)


# --- variances ---------------------------------------------------------------------------------


def test_variances_of_the_worked_example():
    # Module docstring: T = 100, G = 95. material 84.30 − 80 = 4.30; energy 0.54 − 0.5 = 0.04;
    # machine 60 − 55.5556 = 4.4444; labour 0; yield 5 × 1.360556 = 6.80278. Σ 15.58718 = 144.84 − 95 × 1.360556.
    actual = actual_cost(D("84.30"), [(paris(23, 21, 59, 59), 1500), (paris(23, 22), 2000)], PEAK, 5400, 40, good=95, scrap=5)
    routing = Routing(ideal_cycle_s=50, hourly_rate=40, energy_wh_per_unit=25, energy_price_per_kwh=D("0.20"))
    standard = standard_costs({"PART": [("RESIN", D("0.4"), 0)]}, {"RESIN": D(2)}, {"PART": routing})["PART"]
    assert standard == StandardCost(material=D("0.80"), energy=D("0.005"), machine=D("0.555556"))
    assert variances(actual, standard) == Variances(material=D("4.30"), energy=D("0.04"), machine=D("4.4444"), labour=D(0),
                                                    yield_=D("6.80278"))
    assert variances(actual, standard).total == D("15.58718")


# --- properties --------------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=0, max_value=1, places=5, allow_nan=False, allow_infinity=False)
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))
readings_lists = st.lists(st.tuples(instants, st.integers(0, 100_000)), max_size=30)


@st.composite
def tariffs(draw) -> Tariff:
    """Up to three periods on the quarter hour, starting on disjoint days; those crossing midnight stop at it."""
    days = list(range(7))
    periods = []
    for _ in range(draw(st.integers(0, 3))):
        chosen = draw(st.sets(st.sampled_from(days), min_size=1, max_size=2)) if days else set()
        if not chosen:
            break
        days = [day for day in days if day not in chosen]
        start, end = (time(*divmod(draw(st.integers(0, 95)) * 15, 60)) for _ in range(2))
        if end <= start:
            end = time(0)  # a tail into the next day could overlap that day's own period
        periods.append(TariffPeriod(frozenset(chosen), start, end, draw(prices)))
    return Tariff("Europe/Paris", draw(prices), tuple(periods))


@given(tariffs(), readings_lists, st.data())
@settings(max_examples=100)
def test_energy_cost_of_two_groups_sums_to_the_whole(tariff, readings, data):
    in_first = data.draw(st.lists(st.booleans(), min_size=len(readings), max_size=len(readings)))
    first = [reading for reading, chosen in zip(readings, in_first, strict=True) if chosen]
    second = [reading for reading, chosen in zip(readings, in_first, strict=True) if not chosen]
    assert energy_cost(tariff, first) + energy_cost(tariff, second) == energy_cost(tariff, readings)


@given(prices, readings_lists)
def test_energy_cost_under_a_flat_tariff_is_total_energy_times_price(price, readings):
    assert energy_cost(Tariff("Europe/Paris", price), readings) == sum(wh for _, wh in readings) * price / 1000


@given(st.integers(0, 6), st.integers(1, 23), st.integers(1, 23), prices, instants)
def test_a_period_crossing_midnight_prices_like_its_two_halves(day, start_hour, end_hour, price, instant):
    assume(start_hour != end_hour)
    start, end = time(max(start_hour, end_hour)), time(min(start_hour, end_hour))
    crossing = tariff_with(TariffPeriod(frozenset({day}), start, end, price))
    halves = tariff_with(TariffPeriod(frozenset({day}), start, time(0), price),
                         TariffPeriod(frozenset({(day + 1) % 7}), time(0), end, price))
    assert price_at(crossing, instant) == price_at(halves, instant)


@given(st.lists(st.tuples(st.sets(st.integers(0, 6), min_size=1), st.integers(0, 23), st.integers(0, 23)), max_size=3))
def test_periods_are_refused_exactly_when_some_hour_of_the_week_falls_in_two(specs):
    # Independent count on the hour grid: a period starting on day d at hour s lasting n hours covers
    # week hours 24d + s … 24d + s + n − 1, modulo the week.
    covered = [0] * 168
    for days, start, end in specs:
        hours = (end - start) % 24 or 24
        for day in days:
            for hour in range(24 * day + start, 24 * day + start + hours):
                covered[hour % 168] += 1
    periods = tuple(TariffPeriod(frozenset(days), time(start), time(end), D(1)) for days, start, end in specs)
    if max(covered, default=0) > 1:
        with pytest.raises(ValueError, match="overlap"):
            Tariff("UTC", D(0), periods)
    else:
        Tariff("UTC", D(0), periods)


@given(st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False), money)
def test_machine_cost_is_the_nearest_money_quantum_to_the_exact_cost(run_seconds, hourly_rate):
    cost = machine_cost(run_seconds, hourly_rate)
    exact = Fraction(run_seconds) * Fraction(hourly_rate) / 3600
    assert cost == cost.quantize(MONEY_QUANTUM)
    assert abs(Fraction(cost) - exact) <= Fraction(MONEY_QUANTUM) / 2


@given(money, readings_lists, money, st.integers(0, 10**6), st.integers(0, 10**6), money, money)
@settings(max_examples=100)
def test_actual_cost_is_the_sum_of_its_elements_and_good_units_carry_it(material, readings, hourly_rate, run_seconds, good,
                                                                        labour_hours, labour_rate):
    cost = actual_cost(material, readings, PEAK, run_seconds, hourly_rate, good=good, scrap=7,
                       labour_hours=labour_hours, labour_rate=labour_rate)
    energy = sum((wh * price_at(PEAK, ts) for ts, wh in readings), D(0)) / 1000
    assert cost.total == material + energy + machine_cost(run_seconds, hourly_rate) + labour_hours * labour_rate
    if good:
        assert abs(cost.unit_cost * good - cost.total) <= good * MONEY_QUANTUM / 2
    else:
        assert cost.unit_cost is None


@given(money, money, money, money, st.integers(0, 10**6), st.integers(0, 10**6), money, money, money, money)
def test_variances_sum_to_actual_total_less_good_units_at_standard(material, energy, machine, labour, good, scrap,
                                                                   std_material, std_energy, std_machine, std_labour):
    actual = WorkOrderCost(material, energy, machine, labour, good=good, scrap=scrap)
    standard = StandardCost(std_material, std_energy, std_machine, std_labour)
    assert variances(actual, standard).total == actual.total - good * standard.total


quantities = st.decimals(min_value=D("0.001"), max_value=100, places=3, allow_nan=False, allow_infinity=False)
scrap_factors = st.decimals(min_value=0, max_value=D("0.5"), places=3, allow_nan=False, allow_infinity=False)
routings = st.builds(Routing, st.integers(0, 3600), money, st.integers(0, 10_000), prices, st.integers(0, 600), money)


@given(quantities, scrap_factors, quantities, money, money, routings, routings)
def test_two_level_roll_up_equals_the_hand_sum(frame_qty, frame_scrap, tube_qty, tube_cost, screw_cost, chair_route, frame_route):
    bom = {"CHAIR": [("FRAME", frame_qty, frame_scrap), ("SCREW", 4, 0)], "FRAME": [("TUBE", tube_qty, 0)]}
    costs = standard_costs(bom, {"TUBE": tube_cost, "SCREW": screw_cost}, {"CHAIR": chair_route, "FRAME": frame_route})

    def conversion(route: Routing) -> Decimal:
        return (route.energy_wh_per_unit * route.energy_price_per_kwh / 1000 + machine_cost(route.ideal_cycle_s, route.hourly_rate)
                + machine_cost(route.labour_s_per_unit, route.labour_rate))

    frame = tube_qty * tube_cost + conversion(frame_route)
    assert costs["FRAME"].total == frame
    assert costs["CHAIR"].total == frame_qty * (1 + frame_scrap) * frame + 4 * screw_cost + conversion(chair_route)


def test_live_cost_grows_with_each_interval_of_a_running_order():
    # Two hours of a running order, one interval at a time: the cost at each point is that of what ran so far.
    start = paris(23, 20)
    intervals = [(start + timedelta(minutes=30 * i), 400, 10) for i in range(1, 5)]  # 400 Wh and 10 good per half hour
    totals = [actual_cost(D(0), [(ts, wh) for ts, wh, _ in intervals[:n]], PEAK, 1800 * n, 40, good=10 * n, scrap=0).total
              for n in range(1, 5)]
    # 20:30, 21:00, 21:30 at 0.20 → 0.08 each; 22:00 at 0.12 → 0.048; machine 20.00 per half hour.
    assert totals == [D("20.08"), D("40.16"), D("60.24"), D("80.288")]


machine_uses = st.builds(MachineUse, st.one_of(st.none(), st.just(PEAK)), readings_lists.map(tuple),
                         st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False), money)


@given(money, st.lists(machine_uses, max_size=4), st.lists(st.tuples(money, money), max_size=3), st.integers(0, 10**6))
@settings(max_examples=100)
def test_several_machines_cost_the_sum_of_each_machine_alone(material, uses, bookings, good):
    cost = actual_cost(material, good=good, scrap=1, machines=uses, labour=bookings)
    alone = [actual_cost(0, use.energy_readings, use.tariff, use.run_seconds, use.hourly_rate, good=good, scrap=1) for use in uses]
    assert cost.energy == sum((part.energy for part in alone), D(0))
    assert cost.machine == sum((part.machine for part in alone), D(0))
    assert cost.labour == sum((hours * rate for hours, rate in bookings), D(0))
    assert cost.total == material + cost.energy + cost.machine + cost.labour


@given(money, money, st.integers(0, 10**6), st.integers(0, 10**6))
def test_material_added_later_adds_exactly_to_the_total(material, more, good, scrap):
    before = actual_cost(material, good=good, scrap=scrap, machines=[], labour=[])
    after = before.with_material(more)
    assert after.total == before.total + more and (after.good, after.scrap, after.energy) == (good, scrap, 0)
    assert after == actual_cost(material + more, good=good, scrap=scrap, machines=[], labour=[])
