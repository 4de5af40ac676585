"""Work-order costing: what an order actually cost, what it should have cost, and why the two differ.

Actual cost of a work order, live while it runs (call again as the order accumulates):
- material: the valuation of what backflush consumed, passed in (valuing the moves is the ledger's job);
- energy: each metered step (a Wh delta from the core) × the price in force when it was counted, on the
  tariff of the machine that counted it; a machine with no tariff known adds no energy cost;
- machine: per machine, run seconds × its hourly rate / 3600 (the service derives run time from state
  intervals), rounded once per machine;
- labour, optional: Σ hours × hourly rate over the bookings.
Finished-goods lots are valued at actual cost per good unit, total / good: the cost of scrapped units
is absorbed by the good ones. The lot's value is the exact `total`; `unit_cost` is the rounded
quotient, and None until the order has made a good unit (there is nothing to value yet).

Standard cost per unit of an item, rolled up from BOM and routing: a bought item costs its purchase
cost. A made item costs, per unit, material Σ quantity_per × (1 + scrap_factor) × the component's
standard total (a made component contributes its own rolled-up total), energy Wh per unit × price per
kWh / 1000, machine ideal cycle seconds × hourly rate / 3600, labour seconds per unit × rate / 3600.

Variances of a work order that made T units (good + scrap) of which G good, against the item's
standard per unit; positive means over standard (unfavourable):
    material = actual material − T × standard material        (energy, machine, labour likewise)
    yield    = (T − G) × standard total                        (the standard cost of the units scrapped)
so that Σ variances = actual total − G × standard total, exactly: the whole gap between what the good
units cost and what they should have cost.

Worked example. Tariff Europe/Paris: Monday to Friday 06:00–22:00 at 0.20 /kWh, otherwise 0.12.
An order made 95 good and 5 scrap units (T = 100, G = 95) on a Monday evening:
    material  84.30 (backflush valuation)
    energy    1 500 Wh counted at 21:59:59 × 0.20 / 1000 = 0.30, 2 000 Wh counted at 22:00:00 × 0.12 / 1000
              = 0.24: 0.54
    machine   5 400 s × 40 /h / 3600 = 60.00
    total     144.84; unit cost 144.84 / 95 = 1.5246315… → 1.524632
Standard per unit: material 0.80, energy 25 Wh × 0.20 / 1000 = 0.005, machine 50 s × 40 / 3600 =
0.5555… → 0.555556, labour 0; total 1.360556.
Variances: material 84.30 − 100 × 0.80 = 4.30; energy 0.54 − 100 × 0.005 = 0.04; machine 60.00 −
100 × 0.555556 = 4.4444; labour 0; yield 5 × 1.360556 = 6.80278. Σ = 15.58718 = 144.84 − 95 × 1.360556.

Rounding: money is exact (Decimal in `EXACT`, never rounded) except where a division cannot be
avoided: machine time (÷ 3600), labour in a routing (÷ 3600) and unit cost (÷ good units). Each of
these is rounded once, from the exact quotient, at the end of its cost element, to `MONEY_QUANTUM`
(0.000001) half to even; never in between. Energy stays exact (Wh × price / 1000 always terminates),
so every total is the exact sum of its elements and the variance identity holds to the last digit.

Tariffs. A time-of-use period prices the local wall time of the tariff's zone (zoneinfo handles
daylight saving); an instant no period covers is priced at the default; a flat tariff has no periods.
Ambiguities, stated:
- A period is half-open, [start, end): 22:00 belongs to a period starting at 22:00, not to one ending
  then. start > end crosses midnight; start == end is a whole day of 24 wall-clock hours from start.
- `days` are the weekdays (0 = Monday) on which a period starts: Friday 22:00–06:00 covers Friday
  night into Saturday morning, not Friday morning.
- Periods price wall-clock times, so on the day clocks go forward a 02:00–03:00 period covers no
  instant, and on the day they go back it covers two hours.
- Two periods sharing any wall-clock time of the week are refused: the price there would be a guess.
- Prices and rates must not be negative: in a time-of-use schedule a negative price is a typo.
- A metered step is priced at the instant its sample was taken, the rule attribution uses to give it
  to a work order: energy used before a price change but counted after it pays the new price, so the
  split is as fine as the edge's sampling.

Standard roll-up. The caller passes the BOM lines it wants costed, phantoms already exploded (see
`inventory.rules.bom.explode`); each made item has one routing (one machine operation). Ambiguities,
stated: an item with both a purchase cost and a BOM or routing is refused (which is its standard?); a
BOM parent without a routing is refused (pass a routing of zeros to say it costs no conversion); a
made item with a routing and no BOM lines has no material cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from decimal import Decimal, localcontext
from fractions import Fraction
from itertools import combinations
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel.rules.instants import require_aware
from kernel.rules.quantities import EXACT, exact_quantity, non_negative_quantity, whole_number
from inventory.rules.bom import BomLine, find_cycle

MONEY_PLACES = 6
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)  # 0.000001
SECONDS_PER_HOUR = 3600

_MICROS_PER_DAY = 86_400 * 1_000_000
_MICROS_PER_WEEK = 7 * _MICROS_PER_DAY
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")




def _rounded_money(numerator: Decimal, denominator: int) -> Decimal:
    """numerator / denominator to MONEY_QUANTUM, half to even, rounded once from the exact quotient."""
    # Fraction rounds half to even with no intermediate precision: no double rounding.
    return Decimal(round(Fraction(numerator) / denominator * 10**MONEY_PLACES)).scaleb(-MONEY_PLACES, EXACT)


def _energy_money(wh: Decimal, price_per_kwh: Decimal) -> Decimal:
    """Wh × price per kWh / 1000, exactly: dividing by 1000 only shifts the exponent."""
    with localcontext(EXACT):
        return (wh * price_per_kwh).scaleb(-3)


def _week_position(weekday: int, wall: time) -> int:
    """Microseconds since Monday 00:00 of a wall-clock time on a weekday."""
    return weekday * _MICROS_PER_DAY + ((wall.hour * 60 + wall.minute) * 60 + wall.second) * 1_000_000 + wall.microsecond


@dataclass(frozen=True, slots=True)
class TariffPeriod:
    days: frozenset[int]  # weekdays the period starts on, 0 = Monday
    start: time  # local wall time, inclusive
    end: time  # local wall time, exclusive; before start: crosses midnight; equal: a whole day
    price_per_kwh: Decimal
    # [from, to) microseconds since Monday 00:00, a period running past Sunday midnight split in two
    spans: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        days = frozenset(self.days)
        for day in days:
            if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
                raise ValueError(f"tariff period days are weekdays 0 (Monday) to 6 (Sunday), not {day!r}")
        if not days:
            raise ValueError("a tariff period needs at least one weekday")
        for wall in (self.start, self.end):
            if not isinstance(wall, time):
                raise TypeError(f"tariff period start and end must be times of day, not {type(wall).__name__}: {wall!r}")
            if wall.tzinfo is not None:
                raise ValueError(f"tariff period times are wall times of the tariff's zone; {wall} carries its own zone")
        object.__setattr__(self, "days", days)
        object.__setattr__(self, "price_per_kwh", non_negative_quantity(self.price_per_kwh, "tariff period price per kWh"))
        length = (_week_position(0, self.end) - _week_position(0, self.start)) % _MICROS_PER_DAY or _MICROS_PER_DAY
        spans: list[tuple[int, int]] = []
        for day in sorted(days):
            begin = _week_position(day, self.start)
            spans.append((begin, min(begin + length, _MICROS_PER_WEEK)))
            if begin + length > _MICROS_PER_WEEK:
                spans.append((0, begin + length - _MICROS_PER_WEEK))
        object.__setattr__(self, "spans", tuple(spans))

    def covers(self, week_position: int) -> bool:
        return any(begin <= week_position < end for begin, end in self.spans)

    def __str__(self) -> str:
        days = ",".join(_DAY_NAMES[day] for day in sorted(self.days))
        return f"{days} {self.start.isoformat()}–{self.end.isoformat()} at {self.price_per_kwh}/kWh"


@dataclass(frozen=True, slots=True)
class Tariff:
    timezone: str  # IANA name, e.g. "Europe/Paris": the zone whose wall clock the periods read
    default_price_per_kwh: Decimal  # wherever no period applies
    periods: tuple[TariffPeriod, ...] = ()  # none: a flat tariff

    def __post_init__(self) -> None:
        if not isinstance(self.timezone, str):
            raise TypeError(f"tariff timezone must be an IANA zone name, not {type(self.timezone).__name__}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}: use an IANA name such as Europe/Paris") from None
        object.__setattr__(self, "default_price_per_kwh", non_negative_quantity(self.default_price_per_kwh, "default price per kWh"))
        periods = tuple(self.periods)
        for period in periods:
            if not isinstance(period, TariffPeriod):
                raise TypeError(f"tariff periods must be TariffPeriod, not {type(period).__name__}: {period!r}")
        object.__setattr__(self, "periods", periods)
        clashes = [(a, b) for a, b in combinations(periods, 2)
                   if any(a_from < b_to and b_from < a_to for a_from, a_to in a.spans for b_from, b_to in b.spans)]
        if clashes:
            raise ValueError("tariff periods overlap: " + "; ".join(f"{a} and {b}" for a, b in clashes))



def price_at(tariff: Tariff, ts: datetime) -> Decimal:
    """Price per kWh in force at the aware instant `ts`, read on the wall clock of the tariff's zone."""
    require_aware(ts, "tariff instant")
    local = ts.astimezone(ZoneInfo(tariff.timezone))
    position = _week_position(local.weekday(), local.time())
    return next((period.price_per_kwh for period in tariff.periods if period.covers(position)), tariff.default_price_per_kwh)


def energy_cost(tariff: Tariff, readings: Iterable[tuple[datetime, int]]) -> Decimal:
    """Σ Wh × price at the step's sample instant / 1000 over metered (instant, Wh delta) steps, exactly."""
    total = Decimal(0)
    for ts, wh in readings:
        cost = _energy_money(non_negative_quantity(wh, f"metered energy (Wh) at {ts}"), price_at(tariff, ts))
        with localcontext(EXACT):
            total += cost
    return total


def machine_cost(run_seconds: Decimal | int, hourly_rate: Decimal | int) -> Decimal:
    """run seconds × hourly rate / 3600, rounded once to MONEY_QUANTUM half to even."""
    seconds = non_negative_quantity(run_seconds, "run time (s)")
    rate = non_negative_quantity(hourly_rate, "machine hourly rate")
    with localcontext(EXACT):
        return _rounded_money(seconds * rate, SECONDS_PER_HOUR)


@dataclass(frozen=True, slots=True)
class WorkOrderCost:
    material: Decimal
    energy: Decimal
    machine: Decimal
    labour: Decimal
    good: int
    scrap: int
    total: Decimal = field(init=False)  # material + energy + machine + labour: the finished-goods lot's value
    unit_cost: Decimal | None = field(init=False)  # total / good, rounded; None before the first good unit

    def __post_init__(self) -> None:
        for name in ("material", "energy", "machine", "labour"):
            object.__setattr__(self, name, non_negative_quantity(getattr(self, name), f"{name} cost"))
        whole_number(self.good, "good units")
        whole_number(self.scrap, "scrap units")
        with localcontext(EXACT):
            total = self.material + self.energy + self.machine + self.labour
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "unit_cost", _rounded_money(total, self.good) if self.good else None)

    @property
    def units_made(self) -> int:
        """Good + scrap: every unit made used material, energy and machine time."""
        return self.good + self.scrap

    def with_material(self, more: Decimal | int) -> WorkOrderCost:
        """This cost with `more` material consumed (valued in a pass whose entries are not written yet)."""
        with localcontext(EXACT):
            return replace(self, material=self.material + exact_quantity(more, "material added"))


@dataclass(frozen=True, slots=True)
class MachineUse:
    """What one machine put into a work order: the energy it metered, priced on its tariff (None: no
    tariff known, the energy costs 0), and its run time at its hourly rate."""

    tariff: Tariff | None
    energy_readings: tuple[tuple[datetime, int], ...]  # (instant counted, Wh delta) steps
    run_seconds: Decimal | int  # a Decimal once constructed
    hourly_rate: Decimal | int  # a Decimal once constructed

    def __post_init__(self) -> None:
        readings = tuple(self.energy_readings)
        for ts, wh in readings:
            require_aware(ts, "metered energy instant")
            non_negative_quantity(wh, f"metered energy (Wh) at {ts}")
        object.__setattr__(self, "energy_readings", readings)
        object.__setattr__(self, "run_seconds", non_negative_quantity(self.run_seconds, "run time (s)"))
        object.__setattr__(self, "hourly_rate", non_negative_quantity(self.hourly_rate, "machine hourly rate"))

    @property
    def energy(self) -> Decimal:
        return Decimal(0) if self.tariff is None else energy_cost(self.tariff, self.energy_readings)

    @property
    def machine(self) -> Decimal:
        return machine_cost(self.run_seconds, self.hourly_rate)


def actual_cost(material_value: Decimal | int, energy_readings: Iterable[tuple[datetime, int]] = (), tariff: Tariff | None = None,
                run_seconds: Decimal | int = 0, hourly_rate: Decimal | int = 0, *, good: int, scrap: int,
                labour_hours: Decimal | int = 0, labour_rate: Decimal | int = 0,
                machines: Iterable[MachineUse] | None = None,
                labour: Iterable[tuple[Decimal | int, Decimal | int]] | None = None) -> WorkOrderCost:
    """A work order's actual cost so far: call it again as the order runs to keep its lot's value live.

    One machine's use is given by `energy_readings`, `tariff`, `run_seconds` and `hourly_rate`, or the
    uses of any number of machines by `machines`, not both; one labour booking by `labour_hours` and
    `labour_rate`, or any number by `labour`, (hours, hourly rate) each, not both.
    """
    if machines is None:
        machines = [MachineUse(tariff, tuple(energy_readings), run_seconds, hourly_rate)]
    elif energy_readings or tariff is not None or run_seconds or hourly_rate:
        raise TypeError("give one machine's energy readings, tariff, run seconds and hourly rate, or `machines`, not both")
    if labour is None:
        labour = [(labour_hours, labour_rate)]
    elif labour_hours or labour_rate:
        raise TypeError("give one booking's labour hours and rate, or `labour`, not both")
    energy = machine = labour_cost = Decimal(0)
    with localcontext(EXACT):
        for use in machines:
            energy += use.energy
            machine += use.machine
        for hours, rate in labour:
            labour_cost += non_negative_quantity(hours, "labour hours") * non_negative_quantity(rate, "labour hourly rate")
    return WorkOrderCost(
        material=non_negative_quantity(material_value, "material value"),
        energy=energy,
        machine=machine,
        labour=labour_cost,
        good=good,
        scrap=scrap,
    )


@dataclass(frozen=True, slots=True)
class Routing:
    """How one unit of a made item is made: one machine operation, all quantities per unit."""

    ideal_cycle_s: Decimal
    hourly_rate: Decimal
    energy_wh_per_unit: Decimal
    energy_price_per_kwh: Decimal
    labour_s_per_unit: Decimal = Decimal(0)
    labour_rate: Decimal = Decimal(0)  # per hour

    def __post_init__(self) -> None:
        for name in ("ideal_cycle_s", "hourly_rate", "energy_wh_per_unit", "energy_price_per_kwh", "labour_s_per_unit", "labour_rate"):
            object.__setattr__(self, name, non_negative_quantity(getattr(self, name), f"routing {name.replace('_', ' ')}"))


@dataclass(frozen=True, slots=True)
class StandardCost:
    """What one unit of an item should cost."""

    material: Decimal
    energy: Decimal = Decimal(0)
    machine: Decimal = Decimal(0)
    labour: Decimal = Decimal(0)
    total: Decimal = field(init=False)

    def __post_init__(self) -> None:
        for name in ("material", "energy", "machine", "labour"):
            object.__setattr__(self, name, non_negative_quantity(getattr(self, name), f"standard {name} cost"))
        with localcontext(EXACT):
            object.__setattr__(self, "total", self.material + self.energy + self.machine + self.labour)


def _converted(material: Decimal, routing: Routing) -> StandardCost:
    with localcontext(EXACT):
        return StandardCost(
            material=material,
            energy=_energy_money(routing.energy_wh_per_unit, routing.energy_price_per_kwh),
            machine=_rounded_money(routing.ideal_cycle_s * routing.hourly_rate, SECONDS_PER_HOUR),
            labour=_rounded_money(routing.labour_s_per_unit * routing.labour_rate, SECONDS_PER_HOUR),
        )


def standard_costs(bom: Mapping[str, Sequence[tuple[str, Decimal | int, Decimal | int]]],
                   purchased_cost: Mapping[str, Decimal | int], routing: Mapping[str, Routing]) -> dict[str, StandardCost]:
    """Standard cost per unit of every item bought or made, made items rolled up through their BOMs.

    `bom` maps a parent to its (component, quantity_per, scrap_factor) lines, phantoms already exploded.
    Raises ValueError naming a BOM cycle, a component with no standard, or an item both bought and made.
    """
    lines: dict[str, list[BomLine]] = {}
    for parent, parent_lines in bom.items():
        lines[parent] = []
        for line in parent_lines:
            if len(line) != 3:
                raise ValueError(f"BOM line of {parent} must be (component, quantity per, scrap factor), got {line!r}")
            lines[parent].append(BomLine(parent, *line))  # type: ignore[arg-type]  # BomLine makes an int quantity Decimal
    made = set(lines) | set(routing)
    both = sorted(made & set(purchased_cost))
    if both:
        raise ValueError(f"{', '.join(both)}: both bought (a purchase cost) and made (a BOM or routing); "
                         "an item has one standard cost")
    costs = {item: StandardCost(material=non_negative_quantity(cost, f"purchase cost of {item}")) for item, cost in purchased_cost.items()}

    def cost_of(item: str, needed_by: str | None) -> StandardCost:
        if item in costs:
            return costs[item]
        if item not in made:
            raise ValueError(f"{item} (in the BOM of {needed_by}) has no standard cost: give it a purchase cost, or a BOM and a routing")
        if item not in routing:
            raise ValueError(f"made item {item} has no routing: give it one (all zeros if it costs no conversion)")
        with localcontext(EXACT):
            material = sum((line.gross_quantity * cost_of(line.component, item).total for line in lines.get(item, ())), Decimal(0))
        costs[item] = _converted(material, routing[item])
        return costs[item]

    for item in sorted(made):
        if item not in costs:
            cycle = find_cycle(item, lines)
            if cycle is not None:
                raise ValueError(f"BOM cycle: {' → '.join(cycle)}")
            cost_of(item, None)
    return costs


@dataclass(frozen=True, slots=True)
class Variances:
    """Actual minus standard, per cost element; positive: over standard (unfavourable)."""

    material: Decimal
    energy: Decimal
    machine: Decimal
    labour: Decimal
    yield_: Decimal  # the standard cost of the units scrapped
    total: Decimal = field(init=False)  # = actual total − good × standard total

    def __post_init__(self) -> None:
        for name in ("material", "energy", "machine", "labour", "yield_"):
            object.__setattr__(self, name, exact_quantity(getattr(self, name), f"{name.rstrip('_')} variance"))
        with localcontext(EXACT):
            object.__setattr__(self, "total", self.material + self.energy + self.machine + self.labour + self.yield_)


def variances(actual: WorkOrderCost, standard: StandardCost) -> Variances:
    """The work order's variances against the item's standard per unit (definitions in the module docstring)."""
    made = actual.units_made
    with localcontext(EXACT):
        return Variances(
            material=actual.material - made * standard.material,
            energy=actual.energy - made * standard.energy,
            machine=actual.machine - made * standard.machine,
            labour=actual.labour - made * standard.labour,
            yield_=actual.scrap * standard.total,
        )
