"""Import of items, BOMs, suppliers, customers and opening stock from a CSV or Excel file, all or nothing.

The file's format and its checks: `inventory.rules.importing` (its module docstring). `import_file` reads the file,
validates every row against the others and the database, and writes only when the whole file is valid, in
ONE transaction: a file with any bad row writes nothing and the report lists every bad row.

Writing, stated:
- Items, suppliers and customers are upserted by their id, the file being the whole record: a column left
  out or empty writes "not set" (reorder_quantity: 0, the database's default). What the file does not name
  (an item's minimum_order and order_multiple) stays as it is. A row equal to what is stored is "unchanged".
- An item whose valuation method changes keeps valuing its stock with the method it was first valued with
  (`inventory.services.valuation`); the report says so.
- A BOM line is recognised by its natural key: parent_item, component_item and effective_from (none matches
  none). A stored line with that key is updated (quantity_per, scrap_factor, phantom, effective_to) or
  "unchanged" when equal; otherwise the line is created. BOM lines not in the file stay. When the database
  holds two lines with one key (added twice through the API), the row is refused: which one the file means
  cannot be told, and updating one would leave the other doubling the component.
- Opening stock is a receipt from nowhere into its location, reason 'opening stock', at the row's unit
  cost (the valuation worker values it at that cost), with the row's `source_ref` (derived from item,
  location and lot). A source_ref already in the ledger is skipped, never booked twice; when the booked
  quantity or cost differs from the file's, the report says so (correct booked stock with a stocktake).
  A lot that exists with another expiry date is refused.
- Problems only the database shows (a BOM key stored twice, a lot's stored expiry) are found before anything
  is written. They name the kind's sheet by its kind and the row by its key, not its number: the validated
  records do not carry row numbers.
- Two imports at once would both see an opening balance as not booked yet: imports take a transaction-level
  advisory lock and run one at a time.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inventory.rules import importing
from inventory.rules.importing import ImportFile, ImportPlan, KnownKeys, RowError, Sheet
from inventory.rules.operations import PlannedMove
from inventory.models import BomLine, Customer, Item, Location, Lot, Supplier
from inventory.services import stock

EXCEL_SUFFIXES = (".xlsx", ".xlsm")

OPENING_STOCK = "opening stock"
_LOCK = 7_461_002  # pg_advisory_xact_lock key of imports (the valuation worker's is 7_461_001)


@dataclass(slots=True)
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.skipped


@dataclass(frozen=True, slots=True)
class ImportReport:
    file: str
    errors: tuple[RowError, ...] = ()  # nothing was written when there are any
    tallies: dict[str, Tally] = field(default_factory=dict)  # by kind, every kind in `importing.KINDS` order
    notes: tuple[str, ...] = ()  # what the user should know about rows that were written or skipped

    @property
    def ok(self) -> bool:
        return not self.errors


def import_file(session: Session, path: str | Path) -> ImportReport:
    """Import the file in one transaction, or write nothing and return every error."""
    try:
        file = read_workbook(path)
    except ValueError as error:
        name = Path(path).name
        return ImportReport(name, errors=(RowError(name, None, None, str(error).removeprefix(f"{name}: ")),))
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    plan = importing.validate(file, _known_keys(session))
    if isinstance(plan, list):
        session.rollback()
        return ImportReport(file.name, errors=tuple(plan))
    bom_lines, booked = _stored_bom_lines(session), _booked_opening_stock(session, plan)
    errors = _database_conflicts(session, plan, bom_lines, booked)
    if errors:
        session.rollback()
        return ImportReport(file.name, errors=tuple(errors))
    try:
        tallies, notes = _write(session, plan, bom_lines, booked)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return ImportReport(file.name, tallies=tallies, notes=tuple(notes))


def _known_keys(session: Session) -> KnownKeys:
    return KnownKeys(items=frozenset(session.scalars(select(Item.item_id))),
                     locations=frozenset(session.scalars(select(Location.location_id))),
                     bom_edges=frozenset((parent, component) for parent, component in
                                         session.execute(select(BomLine.parent_item, BomLine.component_item))))


BomKey = tuple[str, str, date | None]  # parent_item, component_item, effective_from


def _stored_bom_lines(session: Session) -> dict[BomKey, list[BomLine]]:
    lines: dict[BomKey, list[BomLine]] = {}
    for line in session.scalars(select(BomLine).order_by(BomLine.id)):
        lines.setdefault((line.parent_item, line.component_item, line.effective_from), []).append(line)
    return lines


def _database_conflicts(session: Session, plan: ImportPlan, bom_lines: dict[BomKey, list[BomLine]],
                        booked: dict[str, Booked]) -> list[RowError]:
    errors = []
    for record in plan.bom_lines:
        stored = bom_lines.get((record.parent_item, record.component_item, record.effective_from), [])
        if len(stored) > 1:
            errors.append(RowError("boms", None, "component_item",
                                   f"{record.parent_item} → {record.component_item} from {_day(record.effective_from, 'the start')}: the "
                                   f"database holds {len(stored)} such lines (ids {', '.join(str(line.id) for line in stored)}); "
                                   "remove the extra ones first, the file cannot say which one it means"))
    for record in plan.opening_stock:
        if record.source_ref in booked or record.lot is None or record.expires is None:
            continue
        lot = session.get(Lot, (record.item_id, record.lot))
        if lot is not None and lot.expires != record.expires:
            errors.append(RowError("opening_stock", None, "expires",
                                   f"lot {record.lot} of {record.item_id} exists and expires {_day(lot.expires, 'never')}, "
                                   f"not {_day(record.expires, 'never')}: one lot has one expiry date"))
    return errors


def _write(session: Session, plan: ImportPlan, bom_lines: dict[BomKey, list[BomLine]],
           booked: dict[str, Booked]) -> tuple[dict[str, Tally], list[str]]:
    tallies = {kind: Tally() for kind in importing.KINDS}
    notes: list[str] = []
    methods = {item: method for item, method in session.execute(text("SELECT item_id, method FROM item_valuations"))}
    for record in plan.items:
        fields = record._asdict()
        fields["reorder_quantity"] = record.reorder_quantity if record.reorder_quantity is not None else Decimal(0)
        stored = session.get(Item, record.item_id)
        changes_method = stored is not None and stored.valuation != record.valuation
        _upsert(session, Item, fields, "item_id", tallies["items"])
        if changes_method and methods.get(record.item_id, record.valuation) != record.valuation:
            notes.append(f"item {record.item_id}: valuation is now {record.valuation}; its stock keeps being valued by "
                         f"{methods[record.item_id]}, the method it was first valued with")
    session.flush()  # BOM lines and opening stock refer to the items
    for record in plan.suppliers:
        _upsert(session, Supplier, record._asdict(), "supplier_id", tallies["suppliers"])
    for record in plan.customers:
        _upsert(session, Customer, record._asdict(), "customer_id", tallies["customers"])
    for record in plan.bom_lines:
        (stored,) = bom_lines.get((record.parent_item, record.component_item, record.effective_from), [None])
        if stored is None:
            session.add(BomLine(**record._asdict()))
            tallies["boms"].created += 1
        else:
            _update(stored, record._asdict(), tallies["boms"])
    for record in plan.opening_stock:
        if record.source_ref in booked:
            tallies["opening_stock"].skipped += 1
            quantity, unit_cost, ts = booked[record.source_ref]
            if (quantity, unit_cost) != (record.quantity, record.unit_cost):
                notes.append(f"opening stock of {record.item_id} at {record.location_id}{_lot(record.lot)} was booked on "
                             f"{ts:%Y-%m-%d} as {_number(quantity)} at {_number(unit_cost)}; the file says "
                             f"{_number(record.quantity)} at {_number(record.unit_cost)}: not booked again "
                             "(count it in a stocktake to correct it)")
            continue
        stock.post_moves(session, [PlannedMove(record.item_id, record.lot, None, record.location_id, record.quantity,
                                               OPENING_STOCK, record.unit_cost)],
                         source_ref=record.source_ref, expires={(record.item_id, record.lot): record.expires})
        tallies["opening_stock"].created += 1
    session.flush()
    return tallies, notes


def _upsert(session: Session, model, fields: dict, key: str, tally: Tally) -> None:
    stored = session.get(model, fields[key])
    if stored is None:
        session.add(model(**fields))
        tally.created += 1
    else:
        _update(stored, fields, tally)


def _update(stored, fields: dict, tally: Tally) -> None:
    changed = {name: value for name, value in fields.items() if getattr(stored, name) != value}
    for name, value in changed.items():
        setattr(stored, name, value)
    if changed:
        tally.updated += 1
    else:
        tally.unchanged += 1


Booked = tuple[Decimal, Decimal | None, datetime]  # quantity, unit cost, when


def _booked_opening_stock(session: Session, plan: ImportPlan) -> dict[str, Booked]:
    """Per source_ref of the file's opening stock already in the ledger: quantity, unit cost and when it was booked."""
    rows = session.execute(text(
        """SELECT source_ref, sum(quantity), max(unit_cost), min(ts) FROM stock_moves
           WHERE source_ref = ANY(:refs) GROUP BY source_ref"""), {"refs": [record.source_ref for record in plan.opening_stock]})
    return {source_ref: (quantity, unit_cost, ts) for source_ref, quantity, unit_cost, ts in rows}


def _day(day: date | None, when_none: str) -> str:
    return when_none if day is None else day.isoformat()


def _number(number: Decimal | None) -> str:
    """1.180000 as 1.18, 120 as 120 (never 1.2E+2)."""
    return "none" if number is None else format(number.normalize(), "f")


def _lot(lot: str | None) -> str:
    return "" if lot is None else f", lot {lot}"


def read_workbook(path: str | Path) -> ImportFile:
    """Every sheet of an Excel workbook, or the one sheet of a CSV file, as text cells."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in EXCEL_SUFFIXES:
            frames = pd.read_excel(path, sheet_name=None, header=None, dtype=str, keep_default_na=False, engine="openpyxl")
        elif suffix == ".csv":
            frames = {path.stem: pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False,
                                             encoding="utf-8-sig")}
        else:
            raise ValueError(f"{path.name}: import reads .xlsx, .xlsm or .csv files, not {suffix or 'files without a suffix'}")
    except pd.errors.EmptyDataError:
        frames = {path.stem: pd.DataFrame(dtype=str)}
    except pd.errors.ParserError as error:
        raise ValueError(f"{path.name} is not a well-formed CSV file: {error}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path.name} is not UTF-8 text: save it from Excel as \"CSV UTF-8\"") from error
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path.name} is not an Excel workbook (.xlsx)") from error
    return ImportFile(path.name, tuple(_sheet(name, frame) for name, frame in frames.items()))


def _sheet(name: str, frame: pd.DataFrame) -> Sheet:
    # an Excel error cell (#DIV/0!) arrives as NaN whatever the dtype: it holds no value
    rows = [tuple("" if pd.isna(cell) else str(cell) for cell in row) for row in frame.itertuples(index=False, name=None)]
    return Sheet(str(name), rows[0] if rows else (), tuple(rows[1:]))
