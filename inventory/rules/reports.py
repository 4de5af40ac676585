"""Inventory KPIs and reports as DataFrames, and their CSV / Excel export. Pure: no I/O, no clock.

The service loads the frames and passes the period or `as_of`; every function returns a new frame with
a default index. Input frames may carry more columns than a function reads; the extra ones are ignored.

Input frames (columns a function reads; money and quantities are Decimal or int objects, never float,
a float is refused with TypeError; timestamps are timezone-aware, a naive one is refused with ValueError):
- moves (the stock ledger): ts, item_id, from_location, to_location, quantity, value, and reason when
  `issue_reasons` is given. `value` is the move's cost (quantity × unit cost), positive. A move from
  nowhere is a receipt, from a location to nowhere an issue, between two locations a transfer.
- on_hand (balances by lot): item_id, location_id, lot, quantity, value, received_at (None/NaT for
  stock without a known receipt, e.g. a negative unknown-lot balance).
- receipts (purchase receipts): ts, item_id, quantity (> 0), unit_cost (>= 0).
- shipments (shipped sales order lines): ts (when shipped), sales_order_id, revenue, cost.

Output money and quantity columns hold Decimal objects (object dtype) so nothing is lost to binary
floating point. Sums are exact (the `EXACT` context traps any rounding). Every division rounds once,
from the exact quotient, ROUND_HALF_EVEN, to a fixed quantum:
- averages of money or quantity (average_value, average_daily_issue, weighted_average_cost) to
  0.000001, the scale of money in the database (numeric(18, 6));
- ratios and percentages (turnover, days_of_supply, margin_pct, change_pct) to 0.0001.
A ratio whose denominator is zero is None, never infinity or NaN.

Definitions and ambiguities, stated:
- Issue: a move out of stock to nowhere (consumption, shipment, scrap, a negative count adjustment).
  `issue_reasons` narrows it to the given reasons; the other moves out still lower the inventory value.
- Turnover over [start, end) = value issued in the period / time-weighted average inventory value.
  The average is the integral of the value held at each instant divided by the period's length (to the
  microsecond): the limit of a daily average, with no choice of a day's time zone or snapshot hour.
  It is not annualised: a 30-day period gives a 30-day turnover. A move at instant t counts from t
  on. The moves passed must hold the whole history before `end` (the opening value is their sum).
  Rows: every group that held stock in the period or issued any (a plant-level row is not made by
  transfers alone). Turnover is None when the
  average value is not positive.
- Days of supply = on-hand quantity / average daily issue quantity over the `days` days before `as_of`
  ([as_of - days, as_of)). None when nothing was issued in the window; 0 when nothing (or less than
  nothing) is on hand. Rows: items on hand or issued in the window; quantities of all locations summed.
- Aging: age = whole days since the lot's receipt at `as_of` (30 days and 23 hours is 30 days). Bucket
  bounds are inclusive upper ends: (30, 60, 90, 180) gives 0-30, 31-60, 61-90, 91-180, >180. A lot
  received after `as_of` (a clock ahead of the server's) counts as 0 days old rather than refusing the
  report; stock without a receipt time goes to the bucket "unknown". Every item gets a row per bucket,
  zeros included; "unknown" only where it holds something.
- Purchase price trend: months are calendar months in `tz` (UTC by default). The change compares a
  month with the item's previous month that had receipts in the window (`previous_month`), so the first
  month of an item in the window has no change; the change is taken between the rounded averages shown.
- Margin per shipped order: lines shipped in [start, end), summed per sales order; an order shipped
  across two periods shows in each with the lines shipped then. margin = revenue - cost;
  margin_pct = margin / revenue × 100, None when the revenue is zero.

Export: `to_csv_bytes` writes UTF-8 with a BOM (so Excel reads accented names right), Decimals in
plain fixed-point notation with all their digits (exact), timestamps in ISO 8601 with their offset,
missing values empty. A text cell starting with = + - @ or a tab gets a leading apostrophe so a
spreadsheet does not run it as a formula. `to_excel_bytes` writes Decimals as numbers, displayed with
their own number of decimals; Excel holds numbers as binary doubles (15 significant digits are safe,
the file stores 16), so amounts below 10^9 keep all 6 decimals and larger ones may not: the CSV is the
exact export. Excel has no time zones, so timestamps go in as ISO 8601 text with their offset; dates as dates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, localcontext
from fractions import Fraction
from math import isnan
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from openpyxl import Workbook

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell

from kernel.rules.instants import require_aware
from kernel.rules.quantities import EXACT, exact_quantity

MONEY_QUANTUM = Decimal("0.000001")
QUANTITY_QUANTUM = Decimal("0.000001")
RATIO_QUANTUM = Decimal("0.0001")
DEFAULT_AGE_BOUNDS = (30, 60, 90, 180)
NO_RECEIPT_BUCKET = "unknown"
DEFAULT_SUPPLY_DAYS = 30
GROUPINGS = ("item_id", "location_id")  # what turnover can be grouped by, in column order
EXCEL_SHEET_NAME_LIMIT = 31
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ZERO = Decimal(0)
MICROSECOND = timedelta(microseconds=1)


# -- KPIs ---------------------------------------------------------------------------------------------

def inventory_turnover(moves: pd.DataFrame, start: datetime, end: datetime, by: Sequence[str] = ("item_id",),
                       issue_reasons: Collection[str] | None = None) -> pd.DataFrame:
    """Turnover over [start, end) per group.

    Columns: the `by` columns (a subset of item_id, location_id; empty for the whole plant), then
    opening_value, closing_value, average_value, issued_value, turnover.
    """
    start, end = _period(start, end)
    unknown = [column for column in by if column not in GROUPINGS]
    if unknown or len(set(by)) != len(by):
        raise ValueError(f"turnover can be grouped by {' and/or '.join(GROUPINGS)}, not {list(by)}")
    group_columns = [column for column in GROUPINGS if column in by]
    legs = _legs(moves, issue_reasons)
    legs = legs[legs["ts"] < end]
    period = (end - start) // MICROSECOND
    rows = []
    groups = legs.groupby(group_columns, sort=True) if group_columns else [((), legs)]
    for key, group in groups:
        with localcontext(EXACT):
            opening = sum(group.loc[group["ts"] < start, "value"], ZERO)
            during = group[group["ts"] >= start].sort_values("ts", kind="stable")
            level, since, integral = opening, start, ZERO
            for ts, value in zip(during["ts"], during["value"], strict=True):
                integral += level * ((ts - since) // MICROSECOND)
                level += value
                since = ts
            integral += level * ((end - since) // MICROSECOND)
            issued = -sum(during.loc[during["issue"], "value"], ZERO)
        if not any((opening, level, integral, issued)):
            continue
        turnover = _divide(issued * period, integral, RATIO_QUANTUM) if integral > 0 else None
        rows.append((*_tuple(key), opening, level, _divide(integral, period, MONEY_QUANTUM), issued, turnover))
    return pd.DataFrame(rows, columns=[*group_columns, "opening_value", "closing_value", "average_value", "issued_value",
                                       "turnover"], dtype=object)


def days_of_supply(on_hand: pd.DataFrame, moves: pd.DataFrame, as_of: datetime, days: int = DEFAULT_SUPPLY_DAYS,
                   issue_reasons: Collection[str] | None = None) -> pd.DataFrame:
    """How many days each item's stock lasts at the pace of its issues over the last `days` days.

    Columns: item_id, on_hand_quantity, issued_quantity, average_daily_issue, days_of_supply.
    """
    as_of = require_aware(as_of, "as_of")
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise ValueError(f"days must be a positive whole number, got {days!r}")
    on_hand = _checked(on_hand, "on_hand", ("item_id",), decimals=("quantity",))
    legs = _legs(moves, issue_reasons)
    window = legs[legs["issue"] & (legs["ts"] >= as_of - timedelta(days=days)) & (legs["ts"] < as_of)]
    with localcontext(EXACT):
        held = _sums(on_hand, "item_id", "quantity")
        issued = {item: -value for item, value in _sums(window, "item_id", "quantity").items()}
    rows = []
    for item in sorted(held.keys() | issued.keys()):
        quantity, used = held.get(item, ZERO), issued.get(item, ZERO)
        supply = None if used == 0 else _divide(max(quantity, ZERO) * days, used, RATIO_QUANTUM)
        rows.append((item, quantity, used, _divide(used, days, QUANTITY_QUANTUM), supply))
    return pd.DataFrame(rows, columns=["item_id", "on_hand_quantity", "issued_quantity", "average_daily_issue",
                                       "days_of_supply"], dtype=object)


def age_bucket_labels(bounds: Sequence[int] = DEFAULT_AGE_BOUNDS) -> list[str]:
    """Labels of the age buckets in order: (30, 60) → ['0-30', '31-60', '>60']."""
    if not bounds or any(isinstance(bound, bool) or not isinstance(bound, int) for bound in bounds):
        raise ValueError(f"age bounds must be whole numbers of days, got {list(bounds)}")
    if bounds[0] < 0 or any(lower >= upper for lower, upper in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"age bounds must rise from 0 or more, got {list(bounds)}")
    lowers = [0, *(bound + 1 for bound in bounds)]
    return [f"{lower}-{upper}" for lower, upper in zip(lowers, bounds, strict=False)] + [f">{bounds[-1]}"]


def aging_buckets(on_hand: pd.DataFrame, as_of: datetime, bounds: Sequence[int] = DEFAULT_AGE_BOUNDS) -> pd.DataFrame:
    """On-hand quantity and value per item and age bucket. Columns: item_id, bucket, quantity, value."""
    as_of = require_aware(as_of, "as_of")
    labels = age_bucket_labels(bounds)
    on_hand = _checked(on_hand, "on_hand", ("item_id",), decimals=("quantity", "value"), instants=("received_at",),
                       optional_instants=True)
    totals: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    with localcontext(EXACT):
        for item, quantity, value, received in zip(on_hand["item_id"], on_hand["quantity"], on_hand["value"],
                                                   on_hand["received_at"], strict=True):
            bucket = NO_RECEIPT_BUCKET if pd.isna(received) else _bucket(max((as_of - received).days, 0), bounds, labels)
            held, worth = totals.get((item, bucket), (ZERO, ZERO))
            totals[(item, bucket)] = (held + quantity, worth + value)
    rows = []
    for item in sorted({item for item, _ in totals}):
        for label in labels:
            rows.append((item, label, *totals.get((item, label), (ZERO, ZERO))))
        if (item, NO_RECEIPT_BUCKET) in totals:
            rows.append((item, NO_RECEIPT_BUCKET, *totals[(item, NO_RECEIPT_BUCKET)]))
    return pd.DataFrame(rows, columns=["item_id", "bucket", "quantity", "value"], dtype=object)


def value_by_location(on_hand: pd.DataFrame) -> pd.DataFrame:
    """Stock value per location (quantities of different units do not add up, values do).

    Columns: location_id, item_count (distinct items with a balance there), value.
    """
    on_hand = _checked(on_hand, "on_hand", ("location_id", "item_id"), decimals=("value",))
    with localcontext(EXACT):
        values = _sums(on_hand, "location_id", "value")
    item_counts = on_hand.groupby("location_id")["item_id"].nunique()
    rows = [(location, int(item_counts[location]), value) for location, value in sorted(values.items())]
    return pd.DataFrame(rows, columns=["location_id", "item_count", "value"], dtype=object)


def purchase_price_trend(receipts: pd.DataFrame, start: datetime, end: datetime, tz: tzinfo = UTC) -> pd.DataFrame:
    """Per item and month: the weighted average unit cost paid, its range, and the change since before.

    Columns: item_id, month ('YYYY-MM'), quantity, weighted_average_cost, min_unit_cost, max_unit_cost,
    previous_month, change, change_pct.
    """
    start, end = _period(start, end)
    receipts = _checked(receipts, "receipts", ("item_id",), decimals=("quantity", "unit_cost"), instants=("ts",))
    receipts = receipts[(receipts["ts"] >= start) & (receipts["ts"] < end)]
    months: dict[str, dict[str, list[tuple[Decimal, Decimal]]]] = {}
    for item, ts, quantity, unit_cost in zip(receipts["item_id"], receipts["ts"], receipts["quantity"], receipts["unit_cost"],
                                             strict=True):
        if quantity <= 0 or unit_cost < 0:
            raise ValueError(f"a receipt of {item} on {ts.isoformat()} has quantity {quantity} and unit cost {unit_cost}: "
                             "receipts need a positive quantity and a cost of zero or more")
        months.setdefault(item, {}).setdefault(ts.astimezone(tz).strftime("%Y-%m"), []).append((quantity, unit_cost))
    rows = []
    for item in sorted(months):
        previous: tuple[str, Decimal] | None = None
        for month in sorted(months[item]):
            lines = months[item][month]
            with localcontext(EXACT):
                quantity = sum((quantity for quantity, _ in lines), ZERO)
                cost = sum((quantity * unit_cost for quantity, unit_cost in lines), ZERO)
            average = _divide(cost, quantity, MONEY_QUANTUM)
            unit_costs = [unit_cost for _, unit_cost in lines]
            if previous is None:
                compared, change, change_pct = None, None, None
            else:
                compared, before = previous
                with localcontext(EXACT):
                    change = average - before
                change_pct = _divide(change * 100, before, RATIO_QUANTUM) if before != 0 else None
            rows.append((item, month, quantity, average, min(unit_costs), max(unit_costs), compared, change, change_pct))
            previous = (month, average)
    return pd.DataFrame(rows, columns=["item_id", "month", "quantity", "weighted_average_cost", "min_unit_cost", "max_unit_cost",
                                       "previous_month", "change", "change_pct"], dtype=object)


def margin_per_order(shipments: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Revenue, cost and margin of each sales order's lines shipped in [start, end).

    Columns: sales_order_id, revenue, cost, margin, margin_pct.
    """
    start, end = _period(start, end)
    shipments = _checked(shipments, "shipments", ("sales_order_id",), decimals=("revenue", "cost"), instants=("ts",))
    shipments = shipments[(shipments["ts"] >= start) & (shipments["ts"] < end)]
    with localcontext(EXACT):
        revenues = _sums(shipments, "sales_order_id", "revenue")
        costs = _sums(shipments, "sales_order_id", "cost")
    rows = []
    for order in sorted(revenues):
        revenue, cost = revenues[order], costs[order]
        with localcontext(EXACT):
            margin = revenue - cost
        rows.append((order, revenue, cost, margin, _divide(margin * 100, revenue, RATIO_QUANTUM) if revenue != 0 else None))
    return pd.DataFrame(rows, columns=["sales_order_id", "revenue", "cost", "margin", "margin_pct"], dtype=object)


# -- export -------------------------------------------------------------------------------------------

def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as a CSV file (header row, no index), exact; see the module docstring."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([str(column) for column in frame.columns])
    for row in frame.itertuples(index=False, name=None):
        writer.writerow([_csv_text(value) for value in row])
    return text.getvalue().encode("utf-8-sig")


def to_excel_bytes(sheets: Mapping[str, pd.DataFrame]) -> bytes:
    """An .xlsx workbook with one sheet per frame (header row, no index), in the mapping's order."""
    if not sheets:
        raise ValueError("an Excel export needs at least one sheet")
    names = [name.casefold() for name in sheets]
    for name in sheets:
        if not name or len(name) > EXCEL_SHEET_NAME_LIMIT:
            raise ValueError(f"Excel sheet names need 1 to {EXCEL_SHEET_NAME_LIMIT} characters, not {name!r}")
        if names.count(name.casefold()) > 1:
            raise ValueError(f"Excel sees sheet names in any case as the same: {name!r} is there twice")
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]  # a new workbook's one sheet is active
    for name, frame in sheets.items():
        sheet = workbook.create_sheet(name)
        for column_number, column in enumerate(frame.columns, start=1):
            _write_cell(sheet.cell(row=1, column=column_number), str(column))
        for row_number, row in enumerate(frame.itertuples(index=False, name=None), start=2):
            for column_number, value in enumerate(row, start=1):
                _write_cell(sheet.cell(row=row_number, column=column_number), value)
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


# -- helpers ------------------------------------------------------------------------------------------

def _divide(numerator: Decimal | int, denominator: Decimal | int, quantum: Decimal) -> Decimal:
    """numerator / denominator rounded once, half to even, to `quantum` (from the exact rational quotient)."""
    steps = round(Fraction(numerator) / Fraction(denominator) / Fraction(quantum))  # round() of a Fraction: half to even
    with localcontext(EXACT):
        return steps * quantum



def _period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = require_aware(start, "start"), require_aware(end, "end")
    if end <= start:
        raise ValueError(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    return start, end


def _checked(frame: pd.DataFrame, what: str, keys: Iterable[str], decimals: Iterable[str] = (), instants: Iterable[str] = (),
             optional_instants: bool = False) -> pd.DataFrame:
    """A copy with the needed columns checked: exact numbers as Decimal, aware timestamps in UTC."""
    decimals, instants = list(decimals), list(instants)
    missing = [column for column in [*keys, *decimals, *instants] if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {', '.join(missing)}")
    checked = frame.copy()
    for column in decimals:
        checked[column] = pd.Series([exact_quantity(value, f"{what}.{column}") for value in frame[column]],
                                    index=frame.index, dtype=object)
    for column in instants:
        checked[column] = _timestamps(frame[column], f"{what}.{column}", optional_instants)
    return checked


def _timestamps(values: pd.Series, what: str, optional: bool) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        converted: pd.Series = values.dt.tz_convert(UTC)
        return converted
    if pd.api.types.is_datetime64_dtype(values.dtype):
        raise ValueError(f"{what} must carry a time zone")
    for value in values:
        if not (optional and pd.isna(value)):
            require_aware(value, what)
    return pd.to_datetime(values, utc=True) if len(values) else pd.Series([], index=values.index, dtype="datetime64[us, UTC]")


def _legs(moves: pd.DataFrame, issue_reasons: Collection[str] | None) -> pd.DataFrame:
    """Each move as its signed value and quantity at each location it touches.

    Columns: ts, item_id, location_id, quantity, value, issue (the leg of a move out of stock that counts
    as an issue).
    """
    required = ["from_location", "to_location"] + (["reason"] if issue_reasons is not None else [])
    missing = [column for column in required if column not in moves.columns]
    if missing:
        raise ValueError(f"moves lacks the column(s) {', '.join(missing)}")
    moves = _checked(moves, "moves", ("item_id",), decimals=("quantity", "value"), instants=("ts",))
    origin, destination = moves["from_location"], moves["to_location"]
    if (origin.isna() & destination.isna()).any():
        raise ValueError("a move needs a location to come from or go to")
    issue = origin.notna() & destination.isna()
    if issue_reasons is not None:
        issue &= moves["reason"].isin(list(issue_reasons))
    incoming = moves[destination.notna()]
    outgoing = moves[origin.notna()]
    legs = pd.concat([
        pd.DataFrame({"ts": incoming["ts"], "item_id": incoming["item_id"], "location_id": incoming["to_location"],
                      "quantity": incoming["quantity"], "value": incoming["value"], "issue": False}),
        pd.DataFrame({"ts": outgoing["ts"], "item_id": outgoing["item_id"], "location_id": outgoing["from_location"],
                      "quantity": [-quantity for quantity in outgoing["quantity"]],
                      "value": [-value for value in outgoing["value"]], "issue": issue[origin.notna()]}),
    ], ignore_index=True)
    for column in ("quantity", "value"):
        legs[column] = legs[column].astype(object)
    legs["issue"] = legs["issue"].astype(bool)
    return legs


def _sums(frame: pd.DataFrame, key: str, column: str) -> dict[str, Decimal]:
    """Σ column per key, exactly (call inside the EXACT context)."""
    totals: dict[str, Decimal] = {}
    for name, value in zip(frame[key], frame[column], strict=True):
        totals[name] = totals.get(name, ZERO) + value
    return totals


def _bucket(age: int, bounds: Sequence[int], labels: Sequence[str]) -> str:
    return next((label for bound, label in zip(bounds, labels, strict=False) if age <= bound), labels[-1])


def _tuple(key: object) -> tuple[object, ...]:
    return key if isinstance(key, tuple) else (key,)


def _plain(value: object) -> object:
    """A cell as a plain Python value: None for every kind of missing; floats refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if isnan(value):
            return None
        raise TypeError(f"a float ({value!r}) reached an export: money and quantities must be Decimal to stay exact")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{value} is not a number that can be exported")
    if isinstance(value, datetime):
        require_aware(value, "an exported timestamp")
    return value


def _csv_text(value: object) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(FORMULA_PREFIXES) else text


def _write_cell(cell: Cell, value: object) -> None:
    value = _plain(value)
    if isinstance(value, datetime):
        cell.value = value.isoformat()
    elif isinstance(value, str):
        cell.value = value
        cell.data_type = "s"  # openpyxl would take a leading "=" for a formula
    else:
        cell.value = value  # type: ignore[assignment]  # what a frame holds: numbers, booleans, dates or None
        if isinstance(value, Decimal):
            places = max(-cast(int, value.as_tuple().exponent), 0)  # an int: _plain refused NaN and infinities
            cell.number_format = "#,##0." + "0" * places if places else "#,##0"
        elif isinstance(value, date):
            cell.number_format = "yyyy-mm-dd"
