"""`mes import` and `import_file` on a real PostgreSQL: all or nothing, every bad row listed, re-import idempotent.

Files are written here, in the test, as a workbook (openpyxl) or as CSV files named after their kind.
"""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from openpyxl import Workbook
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from kernel.db.migrations import upgrade
from inventory.rules.importing import opening_stock_source_ref
from app.cli import app
from kernel.db.models import make_engine
from inventory.services import valuation
from inventory.services.importing import import_file
from mes.services.costing import running_cost

D = Decimal
TABLES = ("items", "bom_lines", "suppliers", "customers", "stock_moves", "lots", "moves_to_value")

SHEETS = {
    "items": [
        ["item_id", "name", "kind", "uom", "shelf_life_days", "standard_cost", "valuation", "safety_stock", "reorder_quantity"],
        ["bracket", "Bracket", "make", "pcs", "", "", "", "", ""],
        ["steel", "Steel coil", "buy", "kg", "", D("1.2"), "fifo", "50", "500"],
        ["screw", "Screw M6", "buy", "pcs", 730, "0.05", "moving_average", "", "1000"],
    ],
    "boms": [
        ["parent_item", "component_item", "quantity_per", "scrap_factor", "phantom", "effective_from"],
        ["bracket", "steel", "0.25", "0.02", "no", ""],
        ["bracket", "screw", 2, "", "", "2026-01-01"],
    ],
    "suppliers": [["supplier_id", "name", "email"], ["acme", "Acme Steel", "orders@acme.example"]],
    "customers": [["customer_id", "name"], ["c1", "Customer One"]],
    "opening_stock": [
        ["item_id", "location_id", "lot", "quantity", "unit_cost", "expires"],
        ["steel", "wh", "C-17", "120.5", "1.18", "2027-03-01"],
        ["steel", "line-1-side", "C-17", "10", "1.18", "2027-03-01"],
        ["screw", "wh", "", "4000", "0.045", ""],
    ],
}


@pytest.fixture
def db(database_url) -> str:
    upgrade(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute("""INSERT INTO locations (location_id, name, kind, line) VALUES
                        ('wh', 'Main store', 'warehouse', NULL), ('line-1-side', 'Line 1', 'line_side', 'line-1')""")
    return database_url


def workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def csv_file(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return path


def run_import(url: str, path: Path):
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return import_file(session, path)
    finally:
        engine.dispose()


def drain(url: str) -> None:
    """Value every queued move (`valuation.drain`) in a session of its own."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            valuation.drain(session, running_cost)
    finally:
        engine.dispose()


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def tallies(report) -> dict[str, tuple[int, int, int, int]]:
    return {kind: (t.created, t.updated, t.unchanged, t.skipped) for kind, t in report.tallies.items()}


def test_a_good_workbook_is_imported_and_its_opening_stock_valued_at_its_cost(db, tmp_path):
    report = run_import(db, workbook(tmp_path / "master.xlsx", SHEETS))
    assert report.ok and report.notes == ()
    assert tallies(report) == {"items": (3, 0, 0, 0), "boms": (2, 0, 0, 0), "suppliers": (1, 0, 0, 0),
                               "customers": (1, 0, 0, 0), "opening_stock": (3, 0, 0, 0)}
    with psycopg.connect(db) as conn:
        assert conn.execute("""SELECT item_id, kind, shelf_life_days, standard_cost, valuation, safety_stock, reorder_quantity
                               FROM items ORDER BY item_id""").fetchall() == [
            ("bracket", "make", None, None, "moving_average", None, 0),
            ("screw", "buy", 730, D("0.05"), "moving_average", None, 1000),
            ("steel", "buy", None, D("1.2"), "fifo", 50, 500)]
        assert conn.execute("""SELECT component_item, quantity_per, scrap_factor, phantom, effective_from FROM bom_lines
                               WHERE parent_item = 'bracket' ORDER BY component_item""").fetchall() == [
            ("screw", 2, 0, False, date(2026, 1, 1)), ("steel", D("0.25"), D("0.02"), False, None)]
        assert conn.execute("SELECT * FROM suppliers").fetchall() == [("acme", "Acme Steel", "orders@acme.example")]
        assert conn.execute("SELECT * FROM customers").fetchall() == [("c1", "Customer One", None)]
        moves = conn.execute("""SELECT item_id, lot, from_location, to_location, quantity, unit_cost, reason, source_ref
                                FROM stock_moves ORDER BY id""").fetchall()
        assert moves[0] == ("steel", "C-17", None, "wh", D("120.5"), D("1.18"), "opening stock",
                            opening_stock_source_ref("steel", "wh", "C-17"))
        assert [(m[0], m[3], m[4]) for m in moves[1:]] == [("steel", "line-1-side", 10), ("screw", "wh", 4000)]
        assert conn.execute("SELECT expires::text FROM lots WHERE lot = 'C-17'").fetchone() == ("2027-03-01",)
        drain(db)
        # steel: 120.5 × 1.18 + 10 × 1.18 = 142.19 + 11.8 = 153.99; screw: 4000 × 0.045 = 180
        assert conn.execute("SELECT item_id, method, quantity, value FROM item_valuations ORDER BY item_id").fetchall() == [
            ("screw", "moving_average", 4000, 180), ("steel", "fifo", D("130.5"), D("153.99"))]


def test_reimporting_the_same_file_changes_nothing(db, tmp_path):
    path = workbook(tmp_path / "master.xlsx", SHEETS)
    run_import(db, path)
    before = counts(db)
    report = run_import(db, path)
    assert report.ok and report.notes == ()
    assert tallies(report) == {"items": (0, 0, 3, 0), "boms": (0, 0, 2, 0), "suppliers": (0, 0, 1, 0),
                               "customers": (0, 0, 1, 0), "opening_stock": (0, 0, 0, 3)}
    assert counts(db) == before


def test_a_changed_file_updates_master_data_and_says_why_stock_is_not_booked_again(db, tmp_path):
    run_import(db, workbook(tmp_path / "master.xlsx", SHEETS))
    drain(db)  # steel is now valued by FIFO
    changed = {kind: [list(row) for row in rows] for kind, rows in SHEETS.items()}
    changed["items"][2][6] = "moving_average"  # steel
    changed["boms"][1][2] = "0.3"  # bracket → steel
    changed["opening_stock"][1][3] = "125"  # steel at wh, lot C-17: booked as 120.5
    changed["opening_stock"].append(["screw", "line-1-side", "", "50", "0.045", ""])
    moves_before = counts(db)["stock_moves"]
    report = run_import(db, workbook(tmp_path / "changed.xlsx", changed))
    assert tallies(report) == {"items": (0, 1, 2, 0), "boms": (0, 1, 1, 0), "suppliers": (0, 0, 1, 0),
                               "customers": (0, 0, 1, 0), "opening_stock": (1, 0, 0, 3)}
    assert len(report.notes) == 2
    assert "valuation is now moving_average" in report.notes[0] and "fifo" in report.notes[0]
    assert "booked on" in report.notes[1] and "120.5 at 1.18" in report.notes[1] and "125 at 1.18" in report.notes[1]
    assert counts(db)["stock_moves"] == moves_before + 1
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT quantity_per FROM bom_lines WHERE component_item = 'steel'").fetchone() == (D("0.3"),)


def test_a_file_with_bad_rows_writes_nothing_and_lists_every_bad_row(db, tmp_path):
    bad = {kind: [list(row) for row in rows] for kind, rows in SHEETS.items()}
    bad["items"].append(["nut", "Nut", "bought", "pcs", "", "-1", "", "", ""])  # row 5: kind and standard_cost
    bad["items"].append(["screw", "Screw again", "buy", "pcs", "", "", "", "", ""])  # row 6: screw is on row 4
    bad["boms"].append(["steel", "bracket", "1", "", "", ""])  # row 4: closes bracket → steel → bracket
    bad["opening_stock"][3][1] = "yard"  # row 4: no such location
    bad["opening_stock"].append(["rivet", "wh", "", "1e3", "0.1", ""])  # row 5: unknown item, 1e3
    before = counts(db)
    report = run_import(db, workbook(tmp_path / "bad.xlsx", bad))
    assert counts(db) == before
    assert [(error.sheet, error.row, error.column) for error in report.errors] == [
        ("items", 5, "kind"), ("items", 5, "standard_cost"), ("items", 6, "item_id"),
        ("boms", 2, "component_item"), ("boms", 4, "component_item"),
        ("opening_stock", 4, "location_id"), ("opening_stock", 5, "quantity"), ("opening_stock", 5, "item_id")]
    assert str(report.errors[2]) == "items row 6, item_id: item_id screw is already on row 4"


def test_csv_files_one_kind_each(db, tmp_path):
    items = csv_file(tmp_path / "items.csv", SHEETS["items"])
    assert tallies(run_import(db, items))["items"] == (3, 0, 0, 0)
    stock = csv_file(tmp_path / "opening_stock.csv", SHEETS["opening_stock"])
    assert tallies(run_import(db, stock))["opening_stock"] == (3, 0, 0, 0)
    assert tallies(run_import(db, stock))["opening_stock"] == (0, 0, 0, 3)
    bad = csv_file(tmp_path / "customers.csv", [["customer_id", "name", "email"], ["c1", "", "not-an-address"], ["", "x", ""]])
    before = counts(db)
    assert [str(error) for error in run_import(db, bad).errors] == [
        "customers row 2, name: required, but empty", "customers row 2, email: 'not-an-address' is not an e-mail address",
        "customers row 3, customer_id: required, but empty"]
    assert counts(db) == before
    assert "not an Excel workbook" in str(run_import(db, csv_file(tmp_path / "items.xlsx", [["x"]])).errors[0])


def test_what_only_the_database_shows_is_refused_before_anything_is_written(db, tmp_path):
    run_import(db, workbook(tmp_path / "master.xlsx", SHEETS))
    with psycopg.connect(db) as conn:  # the API allows the same line twice
        conn.execute("INSERT INTO bom_lines (parent_item, component_item, quantity_per) VALUES ('bracket', 'steel', 1)")
    changed = {"items": SHEETS["items"] + [["nut", "Nut", "buy", "pcs"]], "boms": SHEETS["boms"],
               "opening_stock": [SHEETS["opening_stock"][0], ["steel", "wh", "C-18", "5", "1", "2027-01-01"],
                                 ["steel", "wh", "C-17b", "5", "1", "2027-01-01"]]}
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO lots (item_id, lot, expires) VALUES ('steel', 'C-18', '2030-01-01')")
    before = counts(db)
    report = run_import(db, workbook(tmp_path / "changed.xlsx", changed))
    assert [(error.sheet, error.column) for error in report.errors] == [("boms", "component_item"), ("opening_stock", "expires")]
    assert "holds 2 such lines" in report.errors[0].reason and "expires 2030-01-01, not 2027-01-01" in report.errors[1].reason
    assert counts(db) == before


def test_the_command_prints_a_summary_or_every_bad_row(db, tmp_path):
    runner = CliRunner()
    path = workbook(tmp_path / "master.xlsx", SHEETS)
    result = runner.invoke(app, ["import", str(path), "--database-url", db])
    assert result.exit_code == 0, result.output
    assert "items: 3 created, 0 updated, 0 unchanged, 0 skipped" in result.stdout
    assert "opening_stock: 3 created" in result.stdout
    again = runner.invoke(app, ["import", str(path), "--database-url", db])
    assert "opening_stock: 0 created, 0 updated, 0 unchanged, 3 skipped" in again.stdout

    bad = csv_file(tmp_path / "suppliers.csv", [["supplier_id", "name"], ["acme", ""], ["beta", "Beta"], ["", "Gamma"]])
    before = counts(db)
    result = runner.invoke(app, ["import", str(bad), "--database-url", db])
    assert result.exit_code == 1
    assert "nothing was imported; 2 problem(s)" in result.stderr
    assert "suppliers row 2, name: required, but empty" in result.stderr
    assert "suppliers row 4, supplier_id: required, but empty" in result.stderr
    assert counts(db) == before

    assert runner.invoke(app, ["import", str(tmp_path / "missing.csv"), "--database-url", db]).exit_code == 2
    help_text = runner.invoke(app, ["import", "--help"]).stdout
    assert "opening_stock" in help_text and "unit_cost" in help_text and "pydoc inventory.rules.importing" in help_text
