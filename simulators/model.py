"""A simulated machine: what its PLC shows and the exact ground truth behind it. No I/O, no clocks.

Simulated time is kept in whole microseconds and energy in microjoules as a Fraction, so counters and
ground truth stay exact however finely or coarsely the simulation is stepped.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from kernel.payload import is_order_id
from kernel.signals import COUNTERS, ORDER, MachineState
from kernel.plant import Machine

US_PER_S = 1_000_000
UJ_PER_WH = 3_600 * US_PER_S
DEFAULT_RESET_HOLD_S = Decimal(3)

# Arbitrary nonzero vendor codes; the MES only needs "nonzero while in FAULT".
NATURAL_FAULT_CODES = (101, 102, 103, 201, 202, 301)


def whole_microseconds(seconds: Decimal | int, what: str = "duration") -> int:
    microseconds = Decimal(seconds) * US_PER_S
    if microseconds != microseconds.to_integral_value():
        raise ValueError(f"{what} must be a whole number of microseconds, got {seconds} s")
    return int(microseconds)


def seconds_from_microseconds(microseconds: int) -> Decimal:
    return Decimal(microseconds) / US_PER_S


@dataclass
class GroundTruth:
    """What a perfect reader of the counters would count since production started."""

    good: int = 0
    scrap: int = 0
    energy_wh: int = 0
    cycles: int = 0
    faults: int = 0
    plc_resets: int = 0
    state_us: dict[int, int] = field(default_factory=lambda: dict.fromkeys(MachineState.NAMES, 0))
    # good / scrap / energy_wh made while the PLC showed each order id ("" = none)
    by_order: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, counter: str, amount: int, order: str) -> None:
        setattr(self, counter, getattr(self, counter) + amount)
        made = self.by_order.setdefault(order, dict.fromkeys(COUNTERS, 0))
        made[counter] += amount

    def as_dict(self) -> dict:
        return {
            "good": self.good,
            "scrap": self.scrap,
            "energy_wh": self.energy_wh,
            "cycles": self.cycles,
            "faults": self.faults,
            "plc_resets": self.plc_resets,
            "state_seconds": {MachineState.NAMES[code]: seconds_from_microseconds(us) for code, us in self.state_us.items()},
            "by_order": {order: dict(made) for order, made in self.by_order.items()},
        }


@dataclass
class Fault:
    code: int
    remaining_us: int
    # A repair that ends in a PLC reset switches the PLC off for its final stretch, two holds long:
    # the counters stand still for one hold, drop to zero, and stand at zero for another. A poller
    # then sees both the last values and the zeros, so the reset is neither lost nor hidden by
    # production climbing straight back past the old value.
    powered_down_us: int
    resets_counters: bool
    resume_state: int
    reset_at_remaining_us: int = 0

    @property
    def powered(self) -> bool:
        return self.remaining_us > self.powered_down_us


class MachineModel:
    """One machine's PLC.

    Frozen (IDLE, nothing counts) until `start_production()`; then `advance()` moves simulated time.
    `reset_hold_s` is in simulated seconds: the caller converts its wall-clock hold with the plant's
    acceleration.
    """

    def __init__(self, machine: Machine, *, reset_hold_s: Decimal = DEFAULT_RESET_HOLD_S) -> None:
        simulation = machine.simulation
        self.machine = machine
        self.truth = GroundTruth()
        self._cycle_us = whole_microseconds(machine.ideal_cycle_s, "ideal_cycle_s")
        self._reset_hold_us = max(0, math.ceil(Decimal(reset_hold_s) * US_PER_S))
        self._modulus = {counter: 2**spec.width for counter, spec in machine.counters.items()}
        self._scrap_rate = simulation.scrap_rate
        self._cycle_energy_uj = Fraction(simulation.energy_wh_per_cycle) * UJ_PER_WH
        # Watts are joules per second, hence microjoules per microsecond.
        self._idle_uj_per_us = Fraction(simulation.idle_power_w)
        # Without a seed the machine id still makes every run of the same plant identical.
        self._rng = random.Random(simulation.seed if simulation.seed is not None else machine.id)
        self._raw = dict.fromkeys(COUNTERS, machine.counter_start)
        self._energy_below_wh_uj = Fraction(0)
        self._state = MachineState.IDLE
        self._fault: Fault | None = None
        self._producing = False
        self._order = ""
        self._cycle_progress_us = 0
        self._until_failure_us: int | None = None

    @property
    def state(self) -> int:
        return MachineState.FAULT if self._fault else self._state

    @property
    def fault_code(self) -> int:
        return self._fault.code if self._fault else 0

    @property
    def producing(self) -> bool:
        return self._producing

    @property
    def order(self) -> str:
        return self._order

    def counters(self) -> dict[str, int | str]:
        """The values the PLC shows now: counters modulo their width, state and fault codes, order id."""
        shown: dict[str, int | str] = {counter: raw % self._modulus[counter] for counter, raw in self._raw.items()}
        return shown | {"state": self.state, "fault": self.fault_code, ORDER: self._order}

    def set_order(self, order_id: str) -> None:
        """The order the PLC reports it is making from now on ("" for none); it counts for that order."""
        if not is_order_id(order_id):
            raise ValueError(f"{order_id!r} is not an order id a PLC can report")
        self._order = order_id

    def ground_truth(self) -> dict:
        return self.truth.as_dict()

    def start_production(self) -> None:
        if self._producing:
            return
        self._producing = True
        if not self._fault:
            self._state = MachineState.RUNNING
        self._until_failure_us = self._draw_time_to_failure()

    def advance(self, sim_seconds: Decimal | int) -> None:
        remaining_us = whole_microseconds(sim_seconds, "sim_seconds")
        if remaining_us < 0:
            raise ValueError("simulated time only moves forward")
        if not self._producing:
            return
        while remaining_us > 0:
            step_us = min(remaining_us, self._until_next_event_us(remaining_us))
            self._spend(step_us)
            remaining_us -= step_us
            self._handle_due_events()

    def force_fault(self, fault_code: int, duration_s: Decimal | int, reset: bool = False) -> None:
        """Stop the machine with `fault_code` for `duration_s` simulated seconds (at least the reset
        hold when the repair ends in a PLC reset)."""
        if fault_code == 0:
            raise ValueError("a fault needs a nonzero fault code")
        self._enter_fault(fault_code, whole_microseconds(duration_s), reset)

    def plc_reset(self) -> None:
        """All counters to zero now. The caller makes sure readers saw the last values first."""
        self._raw = dict.fromkeys(COUNTERS, 0)
        self.truth.plc_resets += 1

    def set_state(self, state: int) -> None:
        """Planned stops, idling, set-up, back to running... Ends any fault without a reset."""
        if state == MachineState.FAULT:
            raise ValueError("use force_fault() to stop a machine with a fault")
        if state not in MachineState.NAMES:
            raise ValueError(f"unknown machine state {state}")
        self._fault = None
        self._state = state

    def _until_next_event_us(self, horizon_us: int) -> int:
        if self._fault:
            if self._fault.powered:
                return self._fault.remaining_us - self._fault.powered_down_us
            if self._fault.resets_counters:
                return self._fault.remaining_us - self._fault.reset_at_remaining_us
            return self._fault.remaining_us
        if self._state == MachineState.RUNNING:
            until = self._cycle_us - self._cycle_progress_us
            if self._until_failure_us is not None:
                until = min(until, self._until_failure_us)
            return until
        return horizon_us

    def _spend(self, step_us: int) -> None:
        """Let `step_us` pass without crossing an event (see `_until_next_event_us`)."""
        self.truth.state_us[self.state] += step_us
        if self._fault:
            if self._fault.powered:
                self._add_energy(self._idle_uj_per_us * step_us)
            self._fault.remaining_us -= step_us
        elif self._state == MachineState.RUNNING:
            self._cycle_progress_us += step_us
            if self._until_failure_us is not None:
                self._until_failure_us -= step_us
        else:
            self._add_energy(self._idle_uj_per_us * step_us)

    def _handle_due_events(self) -> None:
        if self._fault:
            if self._fault.resets_counters and self._fault.remaining_us == self._fault.reset_at_remaining_us:
                self._fault.resets_counters = False
                self.plc_reset()
            if self._fault.remaining_us == 0:
                self._end_fault()
            return
        if self._state != MachineState.RUNNING:
            return
        if self._cycle_progress_us == self._cycle_us:
            self._cycle_progress_us = 0
            self._complete_cycle()
        if self._until_failure_us == 0:
            self._fail()

    def _complete_cycle(self) -> None:
        scrapped = Decimal(self._rng.random()) < self._scrap_rate
        counter = "scrap" if scrapped else "good"
        self._raw[counter] += 1
        self.truth.count(counter, 1, self._order)
        self.truth.cycles += 1
        self._add_energy(self._cycle_energy_uj)

    def _add_energy(self, microjoules: Fraction) -> None:
        self._energy_below_wh_uj += microjoules
        whole_wh = int(self._energy_below_wh_uj // UJ_PER_WH)
        if whole_wh:
            self._energy_below_wh_uj -= whole_wh * UJ_PER_WH
            self._raw["energy_wh"] += whole_wh
            self.truth.count("energy_wh", whole_wh, self._order)

    def _fail(self) -> None:
        simulation = self.machine.simulation
        code = self._rng.choice(NATURAL_FAULT_CODES)
        repair_us = self._draw_exponential_us(simulation.mttr_s)
        # Drawn before checking the counters so the random sequence does not depend on them.
        resets = Decimal(self._rng.random()) < simulation.plc_reset_probability and self._reset_is_recognisable()
        self._until_failure_us = self._draw_time_to_failure()
        self._enter_fault(code, repair_us, resets)

    def _reset_is_recognisable(self) -> bool:
        """A reset from the top half of a counter's range reads as a rollover to any reader (see
        core.rules.counters); a natural failure only resets counters that sit in their lower half."""
        return all(raw % self._modulus[c] < self._modulus[c] // 2 for c, raw in self._raw.items())

    def _enter_fault(self, code: int, duration_us: int, resets_counters: bool) -> None:
        hold_us = self._reset_hold_us if resets_counters else 0
        self._fault = Fault(
            code=code,
            remaining_us=max(duration_us, 2 * hold_us),
            powered_down_us=2 * hold_us,
            resets_counters=resets_counters,
            resume_state=self._state,
            reset_at_remaining_us=hold_us,
        )
        self.truth.faults += 1

    def _end_fault(self) -> None:
        assert self._fault is not None
        self._state = self._fault.resume_state
        self._fault = None

    def _draw_time_to_failure(self) -> int | None:
        mtbf_s = self.machine.simulation.mtbf_s
        return None if mtbf_s is None else self._draw_exponential_us(mtbf_s)

    def _draw_exponential_us(self, mean_s: Decimal) -> int:
        # Inverse-transform sampling in Decimal: the same seed gives the same durations everywhere.
        uniform = Decimal(1) - Decimal(self._rng.random())  # in (0, 1], so ln() is defined
        return max(1, int(-uniform.ln() * mean_s * US_PER_S))
