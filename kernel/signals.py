"""What a machine reports: the signals, their kinds and the machine state codes.

The plant file, the wire payload, the edge, the simulators and the rules all speak this vocabulary;
it has no dependency, so a pure rule can use it without the plant-file parser.
"""

from __future__ import annotations

from typing import Literal

COUNTERS = ("good", "scrap", "energy_wh")
CODES = ("state", "fault")
# The order id the PLC reports it is making ("" when none): text, where every other signal is a number.
ORDER = "order"
SIGNALS = COUNTERS + CODES + (ORDER,)
ORDER_ID_MAX_LENGTH = 40
Signal = Literal["good", "scrap", "energy_wh", "state", "fault", "order"]
Counter = Literal["good", "scrap", "energy_wh"]


class MachineState:
    """State codes the simulators expose and the core understands (ISA-88/PackML-inspired)."""

    RUNNING = 1
    IDLE = 2
    FAULT = 3
    BLOCKED = 4
    STARVED = 5
    SETUP = 6
    PLANNED_STOP = 7

    NAMES = {1: "running", 2: "idle", 3: "fault", 4: "blocked", 5: "starved", 6: "setup", 7: "planned_stop"}
