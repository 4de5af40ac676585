"""Inventory KPIs and their export: worked examples a controller would check by hand, then properties."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.rules.reports import (
    MONEY_QUANTUM,
    _divide,
    age_bucket_labels,
    aging_buckets,
    days_of_supply,
    inventory_turnover,
    margin_per_order,
    purchase_price_trend,
    to_csv_bytes,
    to_excel_bytes,
    value_by_location,
)

D = Decimal
NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
DEC_1 = NOV_1 + timedelta(days=30)


def day(n: float) -> datetime:
    return NOV_1 + timedelta(days=n)


def move(ts, item, quantity, value, source=None, target=None, reason="consume", lot=None):
    return dict(ts=ts, item_id=item, lot=lot, from_location=source, to_location=target, quantity=D(quantity), value=D(value),
                reason=reason)


def frame(rows, columns):
    return pd.DataFrame(rows, columns=columns)


MOVE_COLUMNS = ["ts", "item_id", "lot", "from_location", "to_location", "quantity", "value", "reason"]
ON_HAND_COLUMNS = ["item_id", "location_id", "lot", "quantity", "value", "received_at"]

# Flour at 1.00 a kg: 100 kg received before November, 60 kg consumed on day 10, 10 kg moved to the line on day 12.
FLOUR_MOVES = frame([
    move(day(-5), "FLOUR", 100, 100, target="WH", reason="receipt"),
    move(day(10), "FLOUR", 60, 60, source="WH"),
    move(day(12), "FLOUR", 10, 10, source="WH", target="LINE", reason="transfer"),
    move(day(31), "FLOUR", 40, 40, source="WH"),  # after the period: ignored
], MOVE_COLUMNS)


def rows(df: pd.DataFrame) -> list[tuple]:
    return list(df.itertuples(index=False, name=None))


# -- turnover ---------------------------------------------------------------------------------------------

def test_turnover_divides_the_value_issued_by_the_time_weighted_average_value():
    # 100 held for 10 days, then 40 for 20 days: (100×10 + 40×20) / 30 = 60; 60 issued / 60 = 1
    assert rows(inventory_turnover(FLOUR_MOVES, NOV_1, DEC_1)) == [("FLOUR", D(100), D(40), D("60.000000"), D(60), D("1.0000"))]


def test_turnover_by_location_sees_transfers_but_only_issues_count():
    # WH: 100×10 + 40×2 + 30×18 = 1620 → 54 average, 60 / 54 = 1.11111…; LINE: 10×18 = 180 → 6, nothing issued
    assert rows(inventory_turnover(FLOUR_MOVES, NOV_1, DEC_1, by=("location_id",))) == [
        ("LINE", D(0), D(10), D("6.000000"), D(0), D("0.0000")),
        ("WH", D(100), D(30), D("54.000000"), D(60), D("1.1111")),
    ]
    assert rows(inventory_turnover(FLOUR_MOVES, NOV_1, DEC_1, by=("location_id", "item_id")))[1][:2] == ("FLOUR", "WH")


def test_turnover_rounds_the_average_once_half_to_even():
    # 2 held for 1 of 3 days: 2/3 = 0.6666…
    moves = frame([move(day(0), "SALT", 2, 2, target="WH"), move(day(1), "SALT", 2, 2, source="WH")], MOVE_COLUMNS)
    assert rows(inventory_turnover(moves, NOV_1, day(3), by=())) == [(D(0), D(0), D("0.666667"), D(2), D("3.0000"))]


def test_issue_reasons_narrow_what_counts_as_issued_but_every_move_out_lowers_the_value():
    moves = frame([*FLOUR_MOVES.to_dict("records")[:1], move(day(10), "FLOUR", 60, 60, source="WH", reason="scrap")],
                  MOVE_COLUMNS)
    only_consumption = inventory_turnover(moves, NOV_1, DEC_1, issue_reasons={"consume"})
    assert rows(only_consumption) == [("FLOUR", D(100), D(40), D("60.000000"), D(0), D("0.0000"))]


def test_turnover_leaves_out_items_that_neither_held_stock_nor_moved_and_has_none_for_no_stock():
    moves = frame([
        move(day(-60), "OLD", 5, 5, target="WH"), move(day(-50), "OLD", 5, 5, source="WH"),  # gone before November
        move(day(5), "SHORT", 3, 6, source="WH"),  # consumed without stock: negative value
    ], MOVE_COLUMNS)
    assert rows(inventory_turnover(moves, NOV_1, DEC_1)) == [("SHORT", D(0), D(-6), D("-5.000000"), D(6), None)]


def test_turnover_of_no_moves_is_an_empty_frame_with_its_columns():
    result = inventory_turnover(FLOUR_MOVES.iloc[:0], NOV_1, DEC_1)
    assert result.empty and list(result.columns) == ["item_id", "opening_value", "closing_value", "average_value",
                                                     "issued_value", "turnover"]


def test_turnover_refuses_floats_naive_times_and_unknown_groupings():
    with pytest.raises(TypeError, match="moves.value"):
        inventory_turnover(FLOUR_MOVES.assign(value=[100.0, 60.0, 10.0, 40.0]), NOV_1, DEC_1)
    with pytest.raises(ValueError, match="time zone"):
        inventory_turnover(FLOUR_MOVES, NOV_1.replace(tzinfo=None), DEC_1)
    with pytest.raises(ValueError, match="time zone"):
        inventory_turnover(FLOUR_MOVES.assign(ts=FLOUR_MOVES["ts"].dt.tz_localize(None)), NOV_1, DEC_1)
    with pytest.raises(ValueError, match="grouped by"):
        inventory_turnover(FLOUR_MOVES, NOV_1, DEC_1, by=("lot",))
    with pytest.raises(ValueError, match="before it starts"):
        inventory_turnover(FLOUR_MOVES, DEC_1, NOV_1)
    with pytest.raises(ValueError, match="lacks the column"):
        inventory_turnover(FLOUR_MOVES.drop(columns="to_location"), NOV_1, DEC_1)


# -- days of supply ---------------------------------------------------------------------------------------

ON_HAND = frame([
    ("FLOUR", "WH", "F-1", D(30), D("30.00"), day(-5)),
    ("FLOUR", "LINE", None, D(-3), D("-3.00"), None),  # consumed beyond the records
    ("SUGAR", "WH", "S-1", D(8), D("12.00"), day(-100)),
], ON_HAND_COLUMNS)


def test_days_of_supply_is_on_hand_over_the_average_daily_issue():
    moves = frame([
        *FLOUR_MOVES.to_dict("records"),
        move(day(-1), "FLOUR", 999, 999, source="WH"),  # before the 30-day window
        move(DEC_1, "FLOUR", 999, 999, source="WH"),  # at as_of: not yet in the window
        move(day(0), "SALT", 3, 3, source="WH"),  # the window's first instant counts
    ], MOVE_COLUMNS)
    # FLOUR: 30 - 3 = 27 on hand; 60 issued in 30 days = 2 a day → 13.5 days. SUGAR: no issues. SALT: none on hand.
    assert rows(days_of_supply(ON_HAND, moves, DEC_1)) == [
        ("FLOUR", D(27), D(60), D("2.000000"), D("13.5000")),
        ("SALT", D(0), D(3), D("0.100000"), D("0.0000")),
        ("SUGAR", D(8), D(0), D("0.000000"), None),
    ]


def test_days_of_supply_over_a_shorter_window():
    # last 7 days before 1 December: nothing issued for flour (its issue was on day 10)
    assert rows(days_of_supply(ON_HAND, FLOUR_MOVES, DEC_1, days=7))[0] == ("FLOUR", D(27), D(0), D("0.000000"), None)
    with pytest.raises(ValueError, match="positive whole number"):
        days_of_supply(ON_HAND, FLOUR_MOVES, DEC_1, days=0)


# -- aging ------------------------------------------------------------------------------------------------

def lot_received(age: timedelta | None, quantity=1, item="FLOUR") -> tuple:
    return (item, "WH", f"L{age}", D(quantity), D(quantity) * 2, None if age is None else DEC_1 - age)


def test_age_is_whole_days_and_bounds_are_inclusive():
    on_hand = frame([
        lot_received(timedelta(0), 1), lot_received(timedelta(days=30, hours=23), 2), lot_received(timedelta(days=31), 4),
        lot_received(timedelta(days=90), 8), lot_received(timedelta(days=91), 16), lot_received(timedelta(days=181), 32),
        lot_received(timedelta(days=-2), 64),  # received "after" as_of: a clock ahead
        lot_received(None, -128),
    ], ON_HAND_COLUMNS)
    assert [(bucket, quantity) for _, bucket, quantity, _ in rows(aging_buckets(on_hand, DEC_1))] == [
        ("0-30", D(1 + 2 + 64)), ("31-60", D(4)), ("61-90", D(8)), ("91-180", D(16)), (">180", D(32)), ("unknown", D(-128)),
    ]


def test_custom_bounds_and_zero_rows_for_every_item():
    on_hand = frame([lot_received(timedelta(days=10), 3, "A"), lot_received(timedelta(days=3), 5, "B")], ON_HAND_COLUMNS)
    assert age_bucket_labels((7, 14)) == ["0-7", "8-14", ">14"]
    assert rows(aging_buckets(on_hand, DEC_1, bounds=(7, 14))) == [
        ("A", "0-7", D(0), D(0)), ("A", "8-14", D(3), D(6)), ("A", ">14", D(0), D(0)),
        ("B", "0-7", D(5), D(10)), ("B", "8-14", D(0), D(0)), ("B", ">14", D(0), D(0)),
    ]
    for bad in ((), (30, 30), (-1, 5), (7.5,)):
        with pytest.raises(ValueError, match="age bounds"):
            age_bucket_labels(bad)


on_hand_rows = st.lists(st.tuples(
    st.sampled_from(["FLOUR", "SUGAR", "SALT"]), st.sampled_from(["WH", "LINE-1", "LINE-2"]),
    st.decimals(min_value=-50, max_value=1000, places=3), st.decimals(min_value=-100, max_value=5000, places=6),
    st.one_of(st.none(), st.integers(min_value=-3, max_value=400)),
), max_size=25)


def on_hand_frame(generated) -> pd.DataFrame:
    return frame([(item, location, f"L{n}", quantity, value, None if age is None else DEC_1 - timedelta(days=age, hours=n % 24))
                  for n, (item, location, quantity, value, age) in enumerate(generated)], ON_HAND_COLUMNS)


@settings(max_examples=100)
@given(on_hand_rows, st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=5, unique=True).map(sorted))
def test_aging_buckets_partition_the_on_hand_quantity_and_value_exactly(generated, bounds):
    on_hand = on_hand_frame(generated)
    buckets = aging_buckets(on_hand, DEC_1, bounds)
    for item in on_hand["item_id"].unique():
        mine, held = buckets[buckets["item_id"] == item], on_hand[on_hand["item_id"] == item]
        assert sum(mine["quantity"], D(0)) == sum(held["quantity"], D(0))
        assert sum(mine["value"], D(0)) == sum(held["value"], D(0))
    assert set(buckets["bucket"]) <= {*age_bucket_labels(bounds), "unknown"}


# -- value by location ------------------------------------------------------------------------------------

def test_value_by_location():
    assert rows(value_by_location(ON_HAND)) == [("LINE", 1, D("-3.00")), ("WH", 2, D("42.00"))]


@settings(max_examples=100)
@given(on_hand_rows)
def test_value_by_location_sums_to_the_total_value(generated):
    on_hand = on_hand_frame(generated)
    assert sum(value_by_location(on_hand)["value"], D(0)) == sum(on_hand["value"], D(0))


# -- purchase price trend ---------------------------------------------------------------------------------

RECEIPT_COLUMNS = ["ts", "item_id", "supplier_id", "quantity", "unit_cost"]


def test_purchase_price_trend_weights_by_quantity_and_compares_with_the_previous_month_bought():
    receipts = frame([
        (datetime(2026, 10, 3, tzinfo=UTC), "FLOUR", "MILL", D(100), D("0.50")),
        (datetime(2026, 10, 20, tzinfo=UTC), "FLOUR", "MILL2", D(300), D("0.54")),
        (datetime(2026, 11, 5, tzinfo=UTC), "FLOUR", "MILL", D(200), D("0.60")),
        (datetime(2027, 1, 9, tzinfo=UTC), "FLOUR", "MILL", D(100), D("0.57")),
        (datetime(2026, 10, 9, tzinfo=UTC), "SALT", "MINE", D(1), D(1)),
        (datetime(2026, 10, 9, tzinfo=UTC), "SALT", "MINE", D(2), D(2)),
        (datetime(2027, 2, 1, tzinfo=UTC), "SALT", "MINE", D(1), D(9)),  # at the end of the period: left out
    ], RECEIPT_COLUMNS)
    # October: (100 × 0.50 + 300 × 0.54) / 400 = 212 / 400 = 0.53. November: 0.60, +0.07 = +13.2075…%.
    # January compares with November (no receipt in December): -0.03 = -5 %. Salt: 5 / 3 = 1.666667.
    assert rows(purchase_price_trend(receipts, datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC))) == [
        ("FLOUR", "2026-10", D(400), D("0.530000"), D("0.50"), D("0.54"), None, None, None),
        ("FLOUR", "2026-11", D(200), D("0.600000"), D("0.60"), D("0.60"), "2026-10", D("0.070000"), D("13.2075")),
        ("FLOUR", "2027-01", D(100), D("0.570000"), D("0.57"), D("0.57"), "2026-11", D("-0.030000"), D("-5.0000")),
        ("SALT", "2026-10", D(3), D("1.666667"), D(1), D(2), None, None, None),
    ]


def test_months_are_counted_in_the_plants_time_zone():
    receipts = frame([(datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "FLOUR", "MILL", D(1), D(1))], RECEIPT_COLUMNS)
    period = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert purchase_price_trend(receipts, *period)["month"].tolist() == ["2026-10"]
    assert purchase_price_trend(receipts, *period, tz=ZoneInfo("Europe/Berlin"))["month"].tolist() == ["2026-11"]


def test_a_receipt_without_quantity_is_refused():
    receipts = frame([(NOV_1, "FLOUR", "MILL", D(0), D(1))], RECEIPT_COLUMNS)
    with pytest.raises(ValueError, match="positive quantity"):
        purchase_price_trend(receipts, NOV_1, DEC_1)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=89), st.decimals(min_value="0.001", max_value=1000, places=3),
                          st.decimals(min_value=0, max_value=100, places=4)), min_size=1, max_size=20))
def test_the_weighted_average_lies_between_the_cheapest_and_dearest_receipt(generated):
    receipts = frame([(day(n), "FLOUR", "MILL", quantity, cost) for n, quantity, cost in generated], RECEIPT_COLUMNS)
    for _, _, _, average, cheapest, dearest, *_ in rows(purchase_price_trend(receipts, NOV_1, day(90))):
        assert cheapest <= average <= dearest


# -- margin per order -------------------------------------------------------------------------------------

SHIPMENT_COLUMNS = ["ts", "sales_order_id", "item_id", "quantity", "revenue", "cost"]


def test_margin_per_shipped_order():
    shipments = frame([
        (day(1), "SO-1", "BREAD", D(100), D("100.00"), D("60.00")),
        (day(2), "SO-1", "ROLLS", D(50), D("50.00"), D("45.00")),
        (day(3), "SO-2", "BREAD", D(1), D("0.00"), D("10.00")),  # a free sample
        (day(31), "SO-1", "BREAD", D(9), D("9.00"), D("1.00")),  # shipped in December
    ], SHIPMENT_COLUMNS)
    # SO-1: 150 - 105 = 45, 45 / 150 = 30 %
    assert rows(margin_per_order(shipments, NOV_1, DEC_1)) == [
        ("SO-1", D("150.00"), D("105.00"), D("45.00"), D("30.0000")),
        ("SO-2", D("0.00"), D("10.00"), D("-10.00"), None),
    ]


@settings(max_examples=100)
@given(st.lists(st.tuples(st.sampled_from(["SO-1", "SO-2", "SO-3"]), st.decimals(min_value=0, max_value=10**6, places=2),
                          st.decimals(min_value=0, max_value=10**6, places=2)), max_size=20))
def test_margins_add_up_to_revenue_less_cost(generated):
    shipments = frame([(day(1), order, "X", D(1), revenue, cost) for order, revenue, cost in generated], SHIPMENT_COLUMNS)
    margins = margin_per_order(shipments, NOV_1, DEC_1)
    assert sum(margins["margin"], D(0)) == sum((revenue - cost for _, revenue, cost in generated), D(0))


# -- properties of turnover -------------------------------------------------------------------------------

ledger = st.lists(st.tuples(
    st.integers(min_value=-20, max_value=40),  # day, some before and after November
    st.sampled_from(["FLOUR", "SUGAR"]),
    st.sampled_from([(None, "WH"), ("WH", None), ("WH", "LINE"), ("LINE", None), (None, "LINE")]),
    st.decimals(min_value="0.001", max_value=100, places=3),
), max_size=25)


def ledger_frame(generated) -> pd.DataFrame:
    return frame([move(day(n), item, quantity, quantity * 2, source, target) for n, item, (source, target), quantity in generated],
                 MOVE_COLUMNS)


@settings(max_examples=60)
@given(ledger, st.randoms(use_true_random=False))
def test_turnover_closes_the_books_and_does_not_depend_on_row_order(generated, random):
    moves = ledger_frame(generated)
    by_item = inventory_turnover(moves, NOV_1, DEC_1)
    for item, opening, closing, _, issued, _ in rows(by_item):
        during = moves[(moves["item_id"] == item) & (moves["ts"] >= NOV_1) & (moves["ts"] < DEC_1)]
        received = sum(during[during["from_location"].isna()]["value"], D(0))
        assert closing == opening + received - issued  # transfers move value, they do not create it
    plant = inventory_turnover(moves, NOV_1, DEC_1, by=())
    assert sum(by_item["issued_value"], D(0)) == (plant["issued_value"].iloc[0] if len(plant) else 0)
    shuffled = moves.sample(frac=1, random_state=random.randint(0, 2**31)).reset_index(drop=True)
    pd.testing.assert_frame_equal(inventory_turnover(shuffled, NOV_1, DEC_1), by_item)


@settings(max_examples=60)
@given(ledger)
def test_transfers_do_not_change_the_plants_turnover(generated):
    without_transfers = [entry for entry in generated if None in entry[2]]
    pd.testing.assert_frame_equal(inventory_turnover(ledger_frame(generated), NOV_1, DEC_1, by=()),
                                  inventory_turnover(ledger_frame(without_transfers), NOV_1, DEC_1, by=()))


@given(st.decimals(min_value=-10**9, max_value=10**9, places=6), st.decimals(min_value="0.000001", max_value=10**6, places=6))
def test_division_rounds_to_the_nearest_quantum(numerator, denominator):
    quotient = _divide(numerator, denominator, MONEY_QUANTUM)
    assert quotient.as_tuple().exponent == -6
    assert abs(Fraction(quotient) - Fraction(numerator) / Fraction(denominator)) <= Fraction(MONEY_QUANTUM) / 2


# -- export -----------------------------------------------------------------------------------------------

EXPORTED = pd.DataFrame({
    "item_id": ["FLOUR", "=HYPERLINK(\"http://x\")", None],
    "value": [D("0.100000"), D("1E+3"), D("-2.5")],
    "share": [D("33.3333"), None, D(0)],
    "at": [NOV_1, datetime(2026, 11, 1, 7, tzinfo=ZoneInfo("Europe/Berlin")), None],
    "on": [date(2026, 12, 1), None, None],
    "lots": [2, 0, 1],
}, dtype=object)


def test_csv_writes_decimals_exactly_and_defuses_formulas():
    content = to_csv_bytes(EXPORTED)
    assert content.startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(io.StringIO(content.decode("utf-8-sig")))) == [
        ["item_id", "value", "share", "at", "on", "lots"],
        ["FLOUR", "0.100000", "33.3333", "2026-11-01T00:00:00+00:00", "2026-12-01", "2"],
        ["'=HYPERLINK(\"http://x\")", "1000", "", "2026-11-01T07:00:00+01:00", "", "0"],
        ["", "-2.5", "0", "", "", "1"],
    ]


def test_csv_of_a_report_reads_back_to_the_same_decimals():
    report = days_of_supply(ON_HAND, FLOUR_MOVES, DEC_1)
    back = pd.read_csv(io.BytesIO(to_csv_bytes(report)), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert [D(text) for text in back["average_daily_issue"]] == list(report["average_daily_issue"])


def test_exports_refuse_floats_and_naive_times():
    with pytest.raises(TypeError, match="Decimal"):
        to_csv_bytes(pd.DataFrame({"value": [0.1]}))
    with pytest.raises(ValueError, match="time zone"):
        to_excel_bytes({"x": pd.DataFrame({"at": [datetime(2026, 11, 1)]}, dtype=object)})


def test_excel_holds_numbers_with_their_decimals_text_as_text_and_times_as_iso_text():
    workbook = openpyxl.load_workbook(io.BytesIO(to_excel_bytes({"stock": EXPORTED, "empty": EXPORTED.iloc[:0]})))
    assert workbook.sheetnames == ["stock", "empty"]
    sheet = workbook["stock"]
    assert [cell.value for cell in sheet[1]] == ["item_id", "value", "share", "at", "on", "lots"]
    flour, formula, blank = sheet[2], sheet[3], sheet[4]
    assert flour[1].value == pytest.approx(0.1) and flour[1].number_format == "#,##0.000000"
    assert flour[3].value == "2026-11-01T00:00:00+00:00" and flour[3].data_type == "s"
    assert flour[4].value.date() == date(2026, 12, 1) and flour[4].number_format == "yyyy-mm-dd"
    assert formula[0].value == "=HYPERLINK(\"http://x\")" and formula[0].data_type == "s"
    assert formula[1].value == 1000 and formula[1].number_format == "#,##0"
    assert formula[2].value is None and blank[0].value is None and blank[5].value == 1
    assert workbook["empty"].max_row == 1


def test_excel_sheet_names_must_suit_excel():
    with pytest.raises(ValueError, match="1 to 31"):
        to_excel_bytes({"x" * 32: EXPORTED})
    with pytest.raises(ValueError, match="twice"):
        to_excel_bytes({"Stock": EXPORTED, "stock": EXPORTED})
    with pytest.raises(ValueError, match="at least one"):
        to_excel_bytes({})
