"""A raw PLC value -> the value a signal carries on the wire, or the reason it cannot be used.

Signed counters: a PLC's INT/DINT/LINT counter wraps from its maximum to its minimum (Int16 32767 ->
-32768 is one more unit). Read as its two's-complement bits, the same counter is an unsigned one of
the same width wrapping to 0, which the core's rollover rule already counts exactly; so a signed
reading travels as that unsigned value.

Scaled values (a kWh meter scaled to Wh, a float energy register) are floored to whole units: the
PLC's value is cumulative, so the fraction not counted yet is counted by a later reading, and no
total ever loses more than the unit it has not completed.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from typing import NamedTuple

from kernel.payload import is_order_id
from kernel.plant import TYPE_BITS, SignalSettings
from kernel.signals import COUNTERS, ORDER

# What the wire (and the core's bigint columns) can carry.
LARGEST_VALUE = 2**63 - 1
# Reasons that say the plant file does not match the PLC (the machine shows `bad_config`).
CONFIG_REASONS = frozenset({"type_mismatch", "narrower_than_width"})


class Unusable(NamedTuple):
    """Why a reading was not sent on: `reason` is a short key counted per machine, `detail` says more."""

    reason: str
    detail: str


def is_integer_type(value_type: str) -> bool:
    return value_type[:3] in ("uin", "int")


def decimal_of(raw: float, value_type: str) -> Decimal:
    """The decimal a float reading means: a float32 to the 7 digits it carries, so 12.345 stays 12.345."""
    return Decimal(f"{raw:.7g}") if value_type == "float32" else Decimal(repr(raw))


def twos_complement(raw: int, value_type: str) -> int:
    """A signed reading as the unsigned value of the same bits."""
    return raw + (1 << TYPE_BITS[value_type]) if raw < 0 and value_type.startswith("int") else raw


def number_value(raw: object, value_type: str, settings: SignalSettings | None) -> int | Unusable:
    """A numeric reading (counter or code) as a whole non-negative number: two's complement for a
    signed integer, then `value * scale + offset`, floored."""
    if isinstance(raw, bool):
        raw = int(raw)
    if isinstance(raw, int):
        value = Decimal(twos_complement(raw, value_type) if is_integer_type(value_type) else raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            return Unusable("not_a_number", f"{raw}")
        value = decimal_of(raw, value_type)
    else:
        return Unusable("type_mismatch", f"{type(raw).__name__} {raw!r} where a number was expected")
    if settings is not None:
        value = value * settings.scale + settings.offset
    whole = int(value.to_integral_value(rounding=ROUND_FLOOR))
    if whole < 0:
        return Unusable("negative", f"{raw} gives {value}")
    if whole > LARGEST_VALUE:
        return Unusable("out_of_range", f"{raw} is above 2**63 - 1")
    return whole


def signal_value(signal: str, raw: object, value_type: str, settings: SignalSettings | None,
                 width: int | None) -> int | str | Unusable:
    """The wire value of `raw`, read as `value_type`; `width` is the counter's (None for other signals)."""
    if signal == ORDER:
        if not isinstance(raw, str):
            return Unusable("type_mismatch", f"{type(raw).__name__} {raw!r} where text was expected")
        # An unusable id is dropped here: sent on, it would cost the whole message its counts.
        text = raw.strip()
        return text if is_order_id(text) else Unusable("bad_order_id", repr(raw)[:60])
    if value_type == "string":
        return Unusable("type_mismatch", f"text {str(raw)[:40]!r} where a number was expected")
    if signal in COUNTERS and width is not None and is_integer_type(value_type) and TYPE_BITS[value_type] < width:
        return Unusable("narrower_than_width",
                        f"a {value_type} counter wraps at {TYPE_BITS[value_type]} bits, not {width}: set `width` or `type`")
    # A value beyond the counter's width goes on: the core quarantines it as out_of_range, visibly.
    return number_value(raw, value_type, settings)
