"""Import of master data and opening stock from a file: read it, then validate every row of it at once.

`inventory.services.importing.read_workbook` reads it, every cell as text, so "0.1" stays exactly 0.1.
`validate` is pure: it checks every row against the others and against the keys already in the database
(`KnownKeys`), and returns either the whole `ImportPlan` or every `RowError` it found, never a part:
the service writes nothing unless the whole file is valid.

The file:
- an Excel workbook (.xlsx, .xlsm) with one sheet per kind, named items, boms, suppliers, customers,
  opening_stock (any subset, any order); or
- a CSV file (.csv, comma-separated, UTF-8, a BOM allowed: Excel's "CSV UTF-8") holding one kind,
  named after it: items.csv, boms.csv, suppliers.csv, customers.csv, opening_stock.csv.
Row 1 names the columns; rows are numbered as Excel shows them (the first data row is row 2). Names of
sheets and columns are matched ignoring case, surrounding spaces, and spaces or hyphens for underscores
("Opening stock" is opening_stock). Columns may come in any order; optional ones may be left out.

Columns per kind (* required):
- items: item_id*, name*, kind* (make | buy), uom*, shelf_life_days (whole days > 0), standard_cost
  (>= 0), valuation (moving_average | fifo; default moving_average), safety_stock (>= 0),
  reorder_quantity (> 0)
- boms: parent_item*, component_item*, quantity_per* (> 0), scrap_factor (>= 0, default 0),
  phantom (true/false, yes/no, 1/0; default false), effective_from, effective_to (exclusive)
- suppliers: supplier_id*, name*, email
- customers: customer_id*, name*, email
- opening_stock: item_id*, location_id*, lot, quantity* (> 0), unit_cost* (>= 0), expires (needs a lot)

Values: surrounding spaces are dropped and an empty cell is a missing value. Ids are case-sensitive.
Enumerations and booleans ignore case. Dates are YYYY-MM-DD (an Excel date cell, read as midnight, is
fine; a time of day is not). Numbers are written out in plain decimal notation with a point: "1e3" (how
a spreadsheet shows a number it has turned into a binary float), "1,5" and "1,000" are refused with a
reason rather than guessed at. Money (standard_cost, unit_cost) takes at most 6 decimals and 12 digits
before the point, the database's numeric(18, 6), so nothing is rounded silently when it is stored.

Checks beyond one cell: no key twice in the file (items by item_id, BOM lines by parent_item,
component_item and effective_from, suppliers, customers, opening stock by item_id, location_id and lot;
the later row is reported, naming the earlier); items named by BOM lines and opening stock are in the
file's items or in the database; locations are in the database (they are not imported); a BOM line
does not name its parent as its component, nor close a cycle with the file's other lines and the
database's (whatever the lines' dates: every row on a cycle is reported, with the cycle); effective_from
is before effective_to; one lot has one expiry date across the file's rows.

Re-import (idempotency): every record carries its natural key. Master data is upserted by it, the file
being the whole record: a missing optional column or an empty cell writes "not set" (or the default),
so importing a file twice, or after a change, leaves the database as the file says. BOM lines not in
the file stay. Opening stock is booked once per item, location and lot: the record's `source_ref`
is derived from that key alone (not the quantity), so a re-import skips it even if the quantity or cost
was changed in the file. Ambiguity, stated: a reference derived from the whole row would book a
corrected row a second time on top of the first, doubling the stock; a correction of stock already
booked is a stock adjustment, which the service should tell the user when the stored and imported
values differ. A blank row is skipped. An empty sheet with another name (Excel's "Sheet1") is ignored;
one with content is reported, so a misspelt sheet is not skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple, cast

from openpyxl.utils import get_column_letter

from inventory.rules.bom import lines_on_cycles

KINDS = ("items", "boms", "suppliers", "customers", "opening_stock")
ITEM_KINDS = ("make", "buy")
VALUATIONS = ("moving_average", "fifo")
DEFAULT_VALUATION = "moving_average"
MONEY_DECIMALS = 6
MONEY_INTEGER_DIGITS = 12
SOURCE_REF_PREFIX = "import:opening_stock:"
FIRST_DATA_ROW = 2  # row 1 is the header, as Excel numbers it
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
PLAIN_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
EXCEL_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?: 00:00:00)?")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


# -- what is read, what is known, what comes out ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sheet:
    name: str  # as in the file; for a CSV file, the file's name without its suffix
    header: tuple[str, ...]  # row 1
    rows: tuple[tuple[str, ...], ...]  # rows[0] is row 2; every cell is text, "" when empty


@dataclass(frozen=True, slots=True)
class ImportFile:
    name: str
    sheets: tuple[Sheet, ...]


@dataclass(frozen=True, slots=True)
class KnownKeys:
    """Keys already in the database that the file may refer to."""

    items: frozenset[str] = frozenset()
    locations: frozenset[str] = frozenset()
    bom_edges: frozenset[tuple[str, str]] = frozenset()  # (parent_item, component_item) of stored BOM lines


class RowError(NamedTuple):
    sheet: str
    row: int | None  # as Excel shows it, header = 1; None for the sheet or file as a whole
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.sheet if self.row is None else f"{self.sheet} row {self.row}"
        return f"{where}, {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"


class ItemRecord(NamedTuple):
    item_id: str
    name: str
    kind: str
    uom: str
    shelf_life_days: int | None
    standard_cost: Decimal | None
    valuation: str
    safety_stock: Decimal | None
    reorder_quantity: Decimal | None


class BomLineRecord(NamedTuple):
    parent_item: str
    component_item: str
    quantity_per: Decimal
    scrap_factor: Decimal
    phantom: bool
    effective_from: date | None
    effective_to: date | None  # exclusive


class SupplierRecord(NamedTuple):
    supplier_id: str
    name: str
    email: str | None


class CustomerRecord(NamedTuple):
    customer_id: str
    name: str
    email: str | None


class OpeningStockRecord(NamedTuple):
    item_id: str
    location_id: str
    lot: str | None  # None: stock of no known lot
    quantity: Decimal
    unit_cost: Decimal
    expires: date | None
    source_ref: str  # the same for the same item, location and lot in any file: skip it when already booked


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """Everything the file holds, valid as a whole; write it in this order (items before what names them)."""

    items: tuple[ItemRecord, ...] = ()
    bom_lines: tuple[BomLineRecord, ...] = ()
    suppliers: tuple[SupplierRecord, ...] = ()
    customers: tuple[CustomerRecord, ...] = ()
    opening_stock: tuple[OpeningStockRecord, ...] = ()


# -- validation ---------------------------------------------------------------------------------------

def validate(file: ImportFile, known: KnownKeys) -> ImportPlan | list[RowError]:
    """The file's plan if every row is valid, else every error found, in the order of the file."""
    errors: list[RowError] = []
    sheets = _sheets_by_kind(file, errors)
    rows = {kind: _parse_sheet(kind, sheet, errors) for kind, sheet in sheets.items()}
    items_in_file = {row.values["item_id"] for row in rows.get("items", ()) if "item_id" in row.values}
    for kind, key in NATURAL_KEYS.items():
        _report_duplicates(rows.get(kind, ()), key, errors)
    _check_items_known(rows.get("boms", ()), ("parent_item", "component_item"), items_in_file | known.items, errors)
    _check_items_known(rows.get("opening_stock", ()), ("item_id",), items_in_file | known.items, errors)
    _check_locations_known(rows.get("opening_stock", ()), known.locations, errors)
    _report_cycles(rows.get("boms", ()), known.bom_edges, errors)
    _report_lot_expiry_conflicts(rows.get("opening_stock", ()), errors)
    if errors:
        sheet_order = {sheet.name: position for position, sheet in enumerate(file.sheets)}
        return sorted(errors, key=lambda error: (sheet_order.get(error.sheet, -1), error.row or 0))
    return ImportPlan(**{PLAN_FIELDS[kind]: tuple(RECORDS[kind](row) for row in kind_rows) for kind, kind_rows in rows.items()})


@dataclass(slots=True)
class _Row:
    sheet: str
    number: int
    values: dict[str, Any] = field(default_factory=dict)  # the cells that parsed, by column (each column's parser's type)


class _Column(NamedTuple):
    name: str
    parse: Callable[[str], object]
    required: bool = False
    default: object = None


def _sheets_by_kind(file: ImportFile, errors: list[RowError]) -> dict[str, Sheet]:
    sheets: dict[str, Sheet] = {}
    for sheet in file.sheets:
        kind = _normal_name(sheet.name)
        if kind in sheets:
            errors.append(RowError(sheet.name, None, None, f"a second sheet of {kind} (the first is {sheets[kind].name!r})"))
        elif kind in KINDS:
            sheets[kind] = sheet
        elif sheet.header or sheet.rows:
            errors.append(RowError(sheet.name, None, None, f"unknown sheet: name it one of {', '.join(KINDS)} "
                                                           "(for a CSV file, name the file so, e.g. items.csv)"))
    if not sheets:
        errors.append(RowError(file.name, None, None, f"nothing to import: no sheet named {', '.join(KINDS)}"))
    return {kind: sheets[kind] for kind in KINDS if kind in sheets}


def _parse_sheet(kind: str, sheet: Sheet, errors: list[RowError]) -> list[_Row]:
    """Every non-blank row with the cells that parsed; the cells that did not are reported."""
    if not sheet.header:
        errors.append(RowError(sheet.name, 1, None, f"empty: row 1 must name the columns ({', '.join(c.name for c in COLUMNS[kind])})"))
        return []
    positions = _column_positions(kind, sheet, errors)
    rows = []
    for number, cells in enumerate(sheet.rows, start=FIRST_DATA_ROW):
        cells = tuple(cell.strip() for cell in cells) + ("",) * (len(sheet.header) - len(cells))
        if not any(cells):
            continue
        row = _Row(sheet.name, number)
        for position, header in enumerate(sheet.header):
            if cells[position] and not _normal_name(header):
                errors.append(RowError(sheet.name, number, f"column {get_column_letter(position + 1)}",
                                       "a value in a column without a name in row 1"))
        for column in COLUMNS[kind]:
            text = cells[positions[column.name]] if column.name in positions else ""
            if not text:
                if column.required and column.name in positions:
                    errors.append(RowError(sheet.name, number, column.name, "required, but empty"))
                elif not column.required:
                    row.values[column.name] = column.default
                continue
            try:
                row.values[column.name] = column.parse(text)
            except ValueError as error:
                errors.append(RowError(sheet.name, number, column.name, str(error)))
        for column_name, reason in ROW_CHECKS.get(kind, _no_row_checks)(row.values):
            errors.append(RowError(sheet.name, number, column_name, reason))
        rows.append(row)
    return rows


def _column_positions(kind: str, sheet: Sheet, errors: list[RowError]) -> dict[str, int]:
    expected = {column.name: column for column in COLUMNS[kind]}
    positions: dict[str, int] = {}
    for position, header in enumerate(sheet.header):
        name = _normal_name(header)
        if not name:
            continue
        if name not in expected:
            errors.append(RowError(sheet.name, 1, header, f"unknown column; {kind} has {', '.join(expected)}"))
        elif name in positions:
            errors.append(RowError(sheet.name, 1, header, f"column {name} appears twice"))
        else:
            positions[name] = position
    for name, column in expected.items():
        if column.required and name not in positions:
            errors.append(RowError(sheet.name, 1, name, "required column is missing"))
    return positions


def _normal_name(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _report_duplicates(rows: Iterable[_Row], key: tuple[str, ...], errors: list[RowError]) -> None:
    first_row: dict[tuple[object, ...], int] = {}
    for row in rows:
        if not all(column in row.values for column in key):
            continue
        value = tuple(row.values[column] for column in key)
        if value in first_row:
            shown = ", ".join(f"{column} {row.values[column]!s}" for column in key if row.values[column] is not None)
            errors.append(RowError(row.sheet, row.number, key[0], f"{shown} is already on row {first_row[value]}"))
        else:
            first_row[value] = row.number


def _check_items_known(rows: Iterable[_Row], columns: tuple[str, ...], items: set[str] | frozenset[str],
                       errors: list[RowError]) -> None:
    for row in rows:
        for column in columns:
            item = row.values.get(column)
            if item is not None and item not in items:
                errors.append(RowError(row.sheet, row.number, column, f"unknown item {item!r}: not in the items sheet nor in the database"))


def _check_locations_known(rows: Iterable[_Row], locations: frozenset[str], errors: list[RowError]) -> None:
    for row in rows:
        location = row.values.get("location_id")
        if location is not None and location not in locations:
            errors.append(RowError(row.sheet, row.number, "location_id",
                                   f"unknown location {location!r}: create it before importing stock into it"))


def _report_lot_expiry_conflicts(rows: Iterable[_Row], errors: list[RowError]) -> None:
    first: dict[tuple[str, str], tuple[date | None, int]] = {}
    for row in rows:
        item, lot = row.values.get("item_id"), row.values.get("lot")
        if item is None or lot is None or "expires" not in row.values:
            continue
        expires = row.values["expires"]
        if (item, lot) not in first:
            first[(item, lot)] = (expires, row.number)
        elif first[(item, lot)][0] != expires:
            earlier, number = first[(item, lot)]
            errors.append(RowError(row.sheet, row.number, "expires", f"lot {lot} of {item} expires {_show_date(earlier)} "
                                                                     f"on row {number}: one lot has one expiry date"))


def _report_cycles(rows: Iterable[_Row], stored_edges: frozenset[tuple[str, str]], errors: list[RowError]) -> None:
    """Every BOM row whose line lies on a cycle of the file's lines and the stored ones."""
    lines = [(row, row.values["parent_item"], row.values["component_item"]) for row in rows
             if {"parent_item", "component_item"} <= row.values.keys() and row.values["parent_item"] != row.values["component_item"]]
    cycles = lines_on_cycles([(parent, component) for _, parent, component in lines], stored_edges)
    for row, parent, component in lines:
        if (parent, component) in cycles:
            errors.append(RowError(row.sheet, row.number, "component_item",
                                   f"makes a BOM cycle: {' → '.join(cycles[(parent, component)])}"))


# -- cells ----------------------------------------------------------------------------------------------

def _text(text: str) -> str:
    return text


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"must be {' or '.join(choices)}, not {text!r}")
        return text.lower()
    return parse


def _number(text: str) -> Decimal:
    if not PLAIN_NUMBER.fullmatch(text):
        if "e" in text.lower() and PLAIN_NUMBER.fullmatch(text.lower().split("e")[0]):
            raise ValueError(f"write {text!r} out in full (e.g. 1000, not 1e3): format the cell as a number with its decimals")
        if "," in text:
            raise ValueError(f"{text!r}: use a point for decimals and no thousands separator (1234.5)")
        raise ValueError(f"{text!r} is not a number")
    return Decimal(text)


def _at_least_zero(text: str) -> Decimal:
    number = _number(text)
    if number < 0:
        raise ValueError(f"must not be negative, got {text}")
    return number


def _positive(text: str) -> Decimal:
    number = _number(text)
    if number <= 0:
        raise ValueError(f"must be more than zero, got {text}")
    return number


def _money(text: str) -> Decimal:
    amount = _at_least_zero(text)
    if -cast(int, amount.as_tuple().exponent) > MONEY_DECIMALS:  # an int: _number gives finite numbers only
        raise ValueError(f"{text}: at most {MONEY_DECIMALS} decimals")
    if amount >= 10 ** MONEY_INTEGER_DIGITS:
        raise ValueError(f"{text}: at most {MONEY_INTEGER_DIGITS} digits before the point")
    return amount


def _days(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) <= 0:
        raise ValueError(f"must be a whole number of days above zero, not {text!r}")
    return int(text)


def _boolean(text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise ValueError(f"must be true or false (yes/no, 1/0), not {text!r}")


def _date(text: str) -> date:
    match = EXCEL_DATE.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        return date.fromisoformat(match.group(1))
    except ValueError:
        raise ValueError(f"must be a date as YYYY-MM-DD (2026-12-01), not {text!r}") from None


def _email(text: str) -> str:
    if not EMAIL.fullmatch(text):
        raise ValueError(f"{text!r} is not an e-mail address")
    return text


def _show_date(day: date | None) -> str:
    return "never" if day is None else day.isoformat()


# -- the kinds ------------------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[_Column, ...]] = {
    "items": (
        _Column("item_id", _text, required=True), _Column("name", _text, required=True),
        _Column("kind", _one_of(*ITEM_KINDS), required=True), _Column("uom", _text, required=True),
        _Column("shelf_life_days", _days), _Column("standard_cost", _money),
        _Column("valuation", _one_of(*VALUATIONS), default=DEFAULT_VALUATION),
        _Column("safety_stock", _at_least_zero), _Column("reorder_quantity", _positive),
    ),
    "boms": (
        _Column("parent_item", _text, required=True), _Column("component_item", _text, required=True),
        _Column("quantity_per", _positive, required=True), _Column("scrap_factor", _at_least_zero, default=Decimal(0)),
        _Column("phantom", _boolean, default=False), _Column("effective_from", _date), _Column("effective_to", _date),
    ),
    "suppliers": (_Column("supplier_id", _text, required=True), _Column("name", _text, required=True), _Column("email", _email)),
    "customers": (_Column("customer_id", _text, required=True), _Column("name", _text, required=True), _Column("email", _email)),
    "opening_stock": (
        _Column("item_id", _text, required=True), _Column("location_id", _text, required=True), _Column("lot", _text),
        _Column("quantity", _positive, required=True), _Column("unit_cost", _money, required=True), _Column("expires", _date),
    ),
}

NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "items": ("item_id",),
    "boms": ("parent_item", "component_item", "effective_from"),
    "suppliers": ("supplier_id",),
    "customers": ("customer_id",),
    "opening_stock": ("item_id", "location_id", "lot"),
}


def _bom_row_checks(values: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if values.get("parent_item") is not None and values.get("parent_item") == values.get("component_item"):
        problems.append(("component_item", "an item cannot be a component of itself"))
    starts, ends = values.get("effective_from"), values.get("effective_to")
    if starts is not None and ends is not None and starts >= ends:
        problems.append(("effective_to", f"{ends} is not after effective_from {starts}"))
    return problems


def _opening_stock_row_checks(values: dict[str, Any]) -> list[tuple[str, str]]:
    if values.get("expires") is not None and values.get("lot") is None:
        return [("expires", "an expiry date belongs to a lot: give the lot too")]
    return []


def _no_row_checks(values: dict[str, Any]) -> list[tuple[str, str]]:
    return []


ROW_CHECKS: dict[str, Callable[[dict[str, Any]], list[tuple[str, str]]]] = {
    "boms": _bom_row_checks, "opening_stock": _opening_stock_row_checks,
}


def opening_stock_source_ref(item_id: str, location_id: str, lot: str | None) -> str:
    """The ledger's source reference of an imported opening balance: the same for the same key in any file."""
    key = json.dumps([item_id, location_id, lot], ensure_ascii=False)
    return SOURCE_REF_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def _opening_stock(row: _Row) -> OpeningStockRecord:
    values = row.values
    return OpeningStockRecord(**values, source_ref=opening_stock_source_ref(values["item_id"], values["location_id"], values["lot"]))


RECORDS: dict[str, Callable[[_Row], Any]] = {  # each kind its own record type
    "items": lambda row: ItemRecord(**row.values), "boms": lambda row: BomLineRecord(**row.values),
    "suppliers": lambda row: SupplierRecord(**row.values), "customers": lambda row: CustomerRecord(**row.values),
    "opening_stock": _opening_stock,
}
PLAN_FIELDS = {"items": "items", "boms": "bom_lines", "suppliers": "suppliers", "customers": "customers",
               "opening_stock": "opening_stock"}
