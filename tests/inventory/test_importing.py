"""Import files: a good workbook and CSV files give the same plan; a bad one lists every bad row, by row number."""

import csv
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.services.importing import read_workbook
from inventory.rules.importing import (
    BomLineRecord,
    CustomerRecord,
    ImportFile,
    ImportPlan,
    ItemRecord,
    KnownKeys,
    OpeningStockRecord,
    RowError,
    Sheet,
    SupplierRecord,
    opening_stock_source_ref,
    validate,
)

D = Decimal
IN_DATABASE = KnownKeys(items=frozenset({"BAG"}), locations=frozenset({"WH", "LINE-1"}))

# Cells as a person types them in Excel: numbers as numbers, dates as dates, booleans as booleans.
GOOD = {
    "items": [
        ["item_id", "name", "kind", "uom", "shelf_life_days", "standard_cost", "valuation", "safety_stock", "reorder_quantity"],
        ["BREAD", "White bread", "make", "pc", 3, 1.25, None, 20, 100],
        ["FLOUR", "Flour T55", "Buy", "kg", None, 0.1, "FIFO", None, None],
        ["DOUGH", "Dough kit", "make", "kg", None, None, None, None, None],
    ],
    "boms": [
        ["parent_item", "component_item", "quantity_per", "scrap_factor", "phantom", "effective_from", "effective_to"],
        ["BREAD", "DOUGH", 1, 0.02, True, None, None],
        ["DOUGH", "FLOUR", 0.25, None, None, datetime(2026, 1, 1), datetime(2027, 1, 1)],
        ["BREAD", "BAG", 1, None, "no", None, None],
    ],
    "suppliers": [["supplier_id", "name", "email"], ["MILL", "Moulin SA", "orders@moulin.example"]],
    "customers": [["Customer ID", "Name", "Email"], ["SHOP", "Corner shop", None]],
    "opening_stock": [
        ["item_id", "location_id", "lot", "quantity", "unit_cost", "expires"],
        ["FLOUR", "WH", "F-0512", 250, 0.48, datetime(2026, 12, 5)],
        ["BAG", "LINE-1", None, 1000, "0.020", None],
    ],
}

GOOD_PLAN = ImportPlan(
    items=(
        ItemRecord("BREAD", "White bread", "make", "pc", 3, D("1.25"), "moving_average", D(20), D(100)),
        ItemRecord("FLOUR", "Flour T55", "buy", "kg", None, D("0.1"), "fifo", None, None),
        ItemRecord("DOUGH", "Dough kit", "make", "kg", None, None, "moving_average", None, None),
    ),
    bom_lines=(
        BomLineRecord("BREAD", "DOUGH", D(1), D("0.02"), True, None, None),
        BomLineRecord("DOUGH", "FLOUR", D("0.25"), D(0), False, date(2026, 1, 1), date(2027, 1, 1)),
        BomLineRecord("BREAD", "BAG", D(1), D(0), False, None, None),
    ),
    suppliers=(SupplierRecord("MILL", "Moulin SA", "orders@moulin.example"),),
    customers=(CustomerRecord("SHOP", "Corner shop", None),),
    opening_stock=(
        OpeningStockRecord("FLOUR", "WH", "F-0512", D(250), D("0.48"), date(2026, 12, 5),
                           opening_stock_source_ref("FLOUR", "WH", "F-0512")),
        OpeningStockRecord("BAG", "LINE-1", None, D(1000), D("0.020"), None, opening_stock_source_ref("BAG", "LINE-1", None)),
    ),
)


def write_xlsx(path, sheets: dict[str, list[list]]):
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def write_csv(path, rows: list[list]):
    def text(cell):
        if cell is None:
            return ""
        if isinstance(cell, datetime):
            return cell.date().isoformat()
        return str(cell)
    with open(path, "w", newline="", encoding="utf-8-sig") as file:
        csv.writer(file).writerows([[text(cell) for cell in row] for row in rows])
    return path


def where(errors: list[RowError]) -> list[tuple]:
    return [(error.sheet, error.row, error.column) for error in errors]


# -- a good file ------------------------------------------------------------------------------------------

def test_a_good_workbook_validates_into_the_plan(tmp_path):
    plan = validate(read_workbook(write_xlsx(tmp_path / "masterdata.xlsx", GOOD)), IN_DATABASE)
    assert plan == GOOD_PLAN


def test_csv_files_give_the_same_records_as_the_workbook(tmp_path):
    known = KnownKeys(items=frozenset({"BREAD", "FLOUR", "DOUGH", "BAG"}), locations=IN_DATABASE.locations)
    plans = [validate(read_workbook(write_csv(tmp_path / f"{kind}.csv", rows)), known) for kind, rows in GOOD.items()]
    assert ImportPlan(plans[0].items, plans[1].bom_lines, plans[2].suppliers, plans[3].customers, plans[4].opening_stock) == GOOD_PLAN


def test_validating_the_same_file_twice_gives_equal_plans(tmp_path):
    path = write_xlsx(tmp_path / "masterdata.xlsx", GOOD)
    assert validate(read_workbook(path), IN_DATABASE) == validate(read_workbook(path), IN_DATABASE)


def test_opening_stock_reference_follows_item_location_and_lot_only():
    changed = {**GOOD, "opening_stock": [GOOD["opening_stock"][0], GOOD["opening_stock"][2],
                                         ["FLOUR", "WH", "F-0512", 260, 0.5, datetime(2026, 12, 5)]]}
    plan = validate(ImportFile("again.xlsx", tuple(sheet_of(name, rows) for name, rows in changed.items())), IN_DATABASE)
    first, corrected = GOOD_PLAN.opening_stock[0], plan.opening_stock[1]
    assert corrected.quantity == D(260) and corrected.source_ref == first.source_ref  # booked once: a re-import skips it
    assert len({opening_stock_source_ref("FLOUR", "WH", lot) for lot in ("F-0512", "F-0513", None)}) == 3
    assert first.source_ref.startswith("import:opening_stock:")


def test_stray_empty_sheet_blank_rows_and_header_spelling_are_tolerated(tmp_path):
    sheets = {"Sheet1": [], "Items ": [[" Item ID", "NAME", "Kind", "UoM"], [], ["  SALT ", "Salt", " buy ", "kg"], [None]]}
    plan = validate(read_workbook(write_xlsx(tmp_path / "salt.xlsx", sheets)), KnownKeys())
    assert plan == ImportPlan(items=(ItemRecord("SALT", "Salt", "buy", "kg", None, None, "moving_average", None, None),))


# -- a bad file -------------------------------------------------------------------------------------------

def test_a_csv_file_with_bad_rows_lists_every_one_with_its_row_number(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(
        "item_id,name,kind,uom,shelf_life_days,standard_cost,valuation,safety_stock\n"  # row 1
        "BREAD,White bread,make,pc,3,1.25,,\n"                                           # row 2: good
        "ROLL,Roll,bought,pc,,,,\n"                                                      # row 3
        "\n"                                                                             # row 4: blank, skipped
        "BREAD,Bread again,make,pc,,1e3,,\n"                                             # row 5: twice
        ",,make,pc,2.5,,,\n"                                                             # row 6
        "\"PLAIT\",\"Plait,\nbraided\",make,pc,,,,\n"                                   # row 7: a two-line cell, good
        "BUN,Bun,make,pc,,,lifo,\n"                                                      # row 8
        "CAKE,Cake,make,pc,,-1,,\"1,5\"\n",                                              # row 9
        encoding="utf-8")
    errors = validate(read_workbook(path), KnownKeys())
    assert where(errors) == [
        ("items", 3, "kind"),
        ("items", 5, "standard_cost"), ("items", 5, "item_id"),
        ("items", 6, "item_id"), ("items", 6, "name"), ("items", 6, "shelf_life_days"),
        ("items", 8, "valuation"),
        ("items", 9, "standard_cost"), ("items", 9, "safety_stock"),
    ]
    assert str(errors[2]) == "items row 5, item_id: item_id BREAD is already on row 2"
    assert str(errors[0]) == "items row 3, kind: must be make or buy, not 'bought'"


def test_a_workbook_with_bad_rows_in_every_sheet_lists_them_all(tmp_path):
    sheets = {
        "items": [GOOD["items"][0], *GOOD["items"][1:], ["CAKE", "Cake", "make", None, 0, None, None, None, 0]],
        "boms": [
            GOOD["boms"][0], *GOOD["boms"][1:],
            ["FLOUR", "BREAD", 1, None, None, None, None],             # row 5: closes BREAD → DOUGH → FLOUR → BREAD
            ["BREAD", "SALT", 0, -0.1, "maybe", None, None],          # row 6
            ["CAKE", "FLOUR", 1, None, None, "2026-12-01", "2026-06-01"],  # row 7
            ["BREAD", "DOUGH", 2, None, None, None, None],             # row 8: same key as row 2
        ],
        "Supplier": [["supplier_id", "name"], ["MILL", "Moulin"]],
        "opening_stock": [
            GOOD["opening_stock"][0],
            ["FLOUR", "WH", "F-0512", 250, 0.48, datetime(2026, 12, 5)],
            ["FLOUR", "WH", "F-0512", 10, 0.48, datetime(2026, 12, 5)],   # row 3: same item, location and lot
            ["FLOUR", "COLD", "F-0512", -5, 0.1234567, datetime(2026, 12, 6)],  # row 4
            ["SUGAR", "WH", None, 1, 1, "2026-12-24 08:30:00"],           # row 5
        ],
    }
    errors = validate(read_workbook(write_xlsx(tmp_path / "bad.xlsx", sheets)), IN_DATABASE)
    assert not isinstance(errors, ImportPlan)
    assert where(errors) == [
        ("items", 5, "uom"), ("items", 5, "shelf_life_days"), ("items", 5, "reorder_quantity"),
        ("boms", 2, "component_item"), ("boms", 3, "component_item"),
        ("boms", 5, "component_item"),
        ("boms", 6, "quantity_per"), ("boms", 6, "scrap_factor"), ("boms", 6, "phantom"), ("boms", 6, "component_item"),
        ("boms", 7, "effective_to"),
        ("boms", 8, "parent_item"), ("boms", 8, "component_item"),
        ("Supplier", None, None),
        ("opening_stock", 3, "item_id"),
        ("opening_stock", 4, "quantity"), ("opening_stock", 4, "unit_cost"), ("opening_stock", 4, "location_id"),
        ("opening_stock", 4, "expires"),
        ("opening_stock", 5, "expires"), ("opening_stock", 5, "item_id"),
    ]
    cycles = {error.reason for error in errors if "cycle" in error.reason}
    assert "makes a BOM cycle: FLOUR → BREAD → DOUGH → FLOUR" in cycles


def test_a_cycle_through_lines_already_stored_is_found():
    known = KnownKeys(items=frozenset({"A", "B", "C"}), bom_edges=frozenset({("A", "B"), ("B", "C")}))
    boms = sheet_of("boms", [["parent_item", "component_item", "quantity_per"], ["C", "A", "1"], ["C", "D", "1"]])
    errors = validate(ImportFile("boms.csv", (boms,)), known)
    assert errors == [RowError("boms", 2, "component_item", "makes a BOM cycle: C → A → B → C"),
                      RowError("boms", 3, "component_item", "unknown item 'D': not in the items sheet nor in the database")]


def test_a_missing_required_column_is_reported_once_not_on_every_row():
    items = sheet_of("items", [["item_id", "name", "kind", "colour"], ["A", "A", "buy", "red"], ["B", "B", "buy", "blue"]])
    assert validate(ImportFile("items.csv", (items,)), KnownKeys()) == [
        RowError("items", 1, "colour", "unknown column; items has item_id, name, kind, uom, shelf_life_days, standard_cost, "
                                       "valuation, safety_stock, reorder_quantity"),
        RowError("items", 1, "uom", "required column is missing"),
    ]


def test_a_file_with_nothing_to_import_and_a_value_without_a_column_name():
    assert where(validate(ImportFile("notes.csv", (sheet_of("notes", [["text"], ["hello"]]),)), KnownKeys())) == [
        ("notes.csv", None, None), ("notes", None, None)]
    suppliers = sheet_of("suppliers", [["supplier_id", "name", ""], ["MILL", "Moulin", "stray"]])
    assert validate(ImportFile("suppliers.csv", (suppliers,)), KnownKeys()) == [
        RowError("suppliers", 2, "column C", "a value in a column without a name in row 1")]


@pytest.mark.parametrize(("text", "reason"), [
    ("1e3", "out in full"), ("1,5", "use a point"), ("1 000", "not a number"), ("NaN", "not a number"), ("-2", "more than zero"),
])
def test_quantities_in_plain_decimal_notation_only(text, reason):
    rows = [["item_id", "location_id", "quantity", "unit_cost"], ["BAG", "WH", text, "1"]]
    [error] = validate(ImportFile("opening_stock.csv", (sheet_of("opening_stock", rows),)), IN_DATABASE)
    assert error.column == "quantity" and reason in error.reason


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=D("0.000001")))
def test_any_decimal_written_out_reads_back_exactly(quantity):
    rows = [["item_id", "location_id", "quantity", "unit_cost"], ["BAG", "WH", format(quantity, "f"), ".5"]]
    plan = validate(ImportFile("opening_stock.csv", (sheet_of("opening_stock", rows),)), IN_DATABASE)
    assert plan.opening_stock[0].quantity == quantity and plan.opening_stock[0].unit_cost == D("0.5")


DEFECTS = {"kind": ("kind", "purchased"), "uom": ("uom", ""), "cost": ("standard_cost", "0.1234567"),
           "days": ("shelf_life_days", "-3"), "valuation": ("valuation", "lifo")}


@settings(max_examples=100)
@given(st.lists(st.sampled_from([None, *DEFECTS]), min_size=1, max_size=30))
def test_every_bad_row_is_reported_and_no_good_one(defects):
    header = ["item_id", "name", "kind", "uom", "shelf_life_days", "standard_cost", "valuation"]
    rows = []
    for number, defect in enumerate(defects):
        row = dict(zip(header, [f"I{number}", "Item", "buy", "kg", "", "1.5", ""], strict=True))
        if defect is not None:
            column, text = DEFECTS[defect]
            row[column] = text
        rows.append([row[column] for column in header])
    result = validate(ImportFile("items.csv", (sheet_of("items", [header, *rows]),)), KnownKeys())
    bad_rows = [number + 2 for number, defect in enumerate(defects) if defect is not None]
    if bad_rows:
        assert [(error.row, error.column) for error in result] == [(row, DEFECTS[defects[row - 2]][0]) for row in bad_rows]
    else:
        assert [item.item_id for item in result.items] == [f"I{number}" for number in range(len(defects))]


@settings(max_examples=50)
@given(st.permutations(GOOD["opening_stock"][1:]))
def test_row_order_does_not_change_the_opening_stock_references(rows):
    plan = validate(ImportFile("x.xlsx", (sheet_of("opening_stock", [GOOD["opening_stock"][0], *rows]),)),
                    KnownKeys(items=frozenset({"BAG", "FLOUR"}), locations=IN_DATABASE.locations))
    assert {record.source_ref for record in plan.opening_stock} == {record.source_ref for record in GOOD_PLAN.opening_stock}


# -- reading ----------------------------------------------------------------------------------------------

def test_reading_keeps_cells_as_text_and_rows_as_excel_numbers_them(tmp_path):
    path = write_xlsx(tmp_path / "x.xlsx", {"items": [["item_id", "standard_cost"], [], [1001, 0.1], ["A", datetime(2026, 1, 2)]]})
    assert read_workbook(path) == ImportFile("x.xlsx", (Sheet("items", ("item_id", "standard_cost"), (
        ("", ""), ("1001", "0.1"), ("A", "2026-01-02 00:00:00"))),))


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(ValueError, match=".xlsx, .xlsm or .csv"):
        read_workbook(tmp_path / "items.txt")
    (tmp_path / "items.csv").write_bytes("item_id,name\nCAF\xc9,Caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="CSV UTF-8"):
        read_workbook(tmp_path / "items.csv")
    (tmp_path / "items.xlsx").write_text("item_id,name\n")
    with pytest.raises(ValueError, match="not an Excel workbook"):
        read_workbook(tmp_path / "items.xlsx")
    (tmp_path / "boms.csv").write_text("")
    assert where(validate(read_workbook(tmp_path / "boms.csv"), KnownKeys())) == [("boms", 1, None)]


def sheet_of(name: str, rows: list[list]) -> Sheet:
    def text(cell):
        if cell is None:
            return ""
        if isinstance(cell, datetime):
            return f"{cell.date().isoformat()} 00:00:00"
        return str(cell)
    width = max(len(row) for row in rows)
    cells = [tuple(text(cell) for cell in row) + ("",) * (width - len(row)) for row in rows]
    return Sheet(name, cells[0], tuple(cells[1:]))
