"""Stock alerts: safety stock, slow-moving, overdue sales orders, expiring lots, backflush shortages.

Worked cases derived by hand in the comments, then properties.
"""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.backflush import BackflushException
from inventory.rules.operations import OrderLine, SalesOrderStatus
from inventory.rules.stock_alerts import (
    DEMAND_REASONS,
    StockAlertKind as AlertKind,
    ItemActivity,
    LotStock,
    SafetyStockLevel,
    SalesOrderDue,
    StockAlert,
    backflush_shortage_alerts,
    expiring_lot_alerts,
    overdue_sales_order_alerts,
    safety_stock_alerts,
    slow_moving_alerts,
    suggested_purchase,
)

D = Decimal
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


# --- safety stock -----------------------------------------------------------------------------

def test_purchase_suggestions_reach_safety_stock_plus_reorder_quantity_in_whole_packs():
    levels = [SafetyStockLevel("FLOUR", D(100), D(50), D(25), D(25)),
              SafetyStockLevel("SALT", D(10), D(0), D(50), D(12)),
              SafetyStockLevel("SUGAR", D(20)),
              SafetyStockLevel("YEAST", D(5)),
              SafetyStockLevel("BAGS", D(10))]
    alerts = safety_stock_alerts(levels, available={"FLOUR": D(30), "SALT": D(8), "SUGAR": D(20), "BAGS": D(-4)},
                                 on_order={"FLOUR": D(20)}, in_transit={"FLOUR": D(10)})
    suggested = {alert.subject: alert.numbers["suggested_quantity"] for alert in alerts}
    # FLOUR: position 30 + 20 + 10 = 60 < 100; 100 + 50 − 60 = 90 ≥ minimum 25; packs of 25 → 4 × 25 = 100
    # SALT: 10 − 8 = 2 < minimum 50; packs of 12 → 5 × 12 = 60
    # SUGAR: exactly at safety stock, no alert. YEAST: nothing anywhere → 5. BAGS: −4 available → 14.
    assert suggested == {"BAGS": D(14), "FLOUR": D(100), "SALT": D(60), "YEAST": D(5)}
    flour = next(alert for alert in alerts if alert.subject == "FLOUR")
    assert flour == StockAlert(AlertKind.SAFETY_STOCK, "FLOUR",
                               "FLOUR: 60 available, on order and in transit is below the safety stock of 100; suggest buying 100",
                               {"available": D(30), "on_order": D(20), "in_transit": D(10), "position": D(60),
                                "safety_stock": D(100), "suggested_quantity": D(100)})
    assert [alert.subject for alert in alerts] == sorted(suggested)


def test_a_suggestion_names_the_items_suppliers_in_the_order_given():
    """The suppliers come ranked (`inventory.rules.performance.rank_suppliers`); an item without any is named alone."""
    alerts = safety_stock_alerts([SafetyStockLevel("FLOUR", D(10)), SafetyStockLevel("SALT", D(1))], {}, {},
                                 suppliers={"FLOUR": ["mill-b", "mill-a"]})
    assert [alert.detail.split("; ")[1] for alert in alerts] == ["suggest buying 10 from mill-b, mill-a (best score first)",
                                                               "suggest buying 1"]


def test_order_multiples_need_not_be_whole():
    assert suggested_purchase(SafetyStockLevel("HOPS", D(3), order_multiple=D("0.5")), D("0.7")) == D("2.5")  # 2.3 → 2.5


@pytest.mark.parametrize("level, position, error", [
    (SafetyStockLevel("X", D(-1)), D(0), ValueError),
    (SafetyStockLevel("X", D(10), order_multiple=D(0)), D(0), ValueError),
    (SafetyStockLevel("X", 10.0), D(0), TypeError),
    (SafetyStockLevel("X", D(10)), 1.5, TypeError),
])
def test_impossible_safety_stock_levels_are_refused(level, position, error):
    with pytest.raises(error):
        suggested_purchase(level, position)


# --- slow-moving ------------------------------------------------------------------------------

def test_slow_moving_counts_from_the_last_issue_or_else_the_first_receipt():
    activity = [
        ItemActivity("A", D(5), NOW - timedelta(days=90), NOW - timedelta(days=400)),  # exactly 90 days: flagged
        ItemActivity("B", D(5), NOW - timedelta(days=90) + timedelta(seconds=1), None),  # a second short of 90
        ItemActivity("C", D(5), None, NOW - timedelta(days=10)),  # received last week
        ItemActivity("D", D(5), None, NOW - timedelta(days=100, hours=23)),  # 100 whole days
        ItemActivity("E", D(5), None, None),
        ItemActivity("F", D(0), NOW - timedelta(days=365), None),  # nothing on hand
    ]
    assert slow_moving_alerts(activity, NOW) == [
        StockAlert(AlertKind.SLOW_MOVING, "A", "A: 5 on hand, last issued 90 days ago", {"on_hand": D(5), "idle_days": D(90)}),
        StockAlert(AlertKind.SLOW_MOVING, "D", "D: 5 on hand, received, never issued, 100 days ago",
                   {"on_hand": D(5), "idle_days": D(100)}),
        StockAlert(AlertKind.SLOW_MOVING, "E", "E: 5 on hand and no issue or receipt on record", {"on_hand": D(5)}),
    ]
    assert [alert.subject for alert in slow_moving_alerts(activity, NOW, days=10)] == ["A", "B", "C", "D", "E"]


def test_only_demand_counts_as_an_issue():
    assert DEMAND_REASONS == {"shipment", "backflush"}


def test_slow_moving_refuses_naive_times_and_a_zero_day_window():
    with pytest.raises(ValueError, match="time zone"):
        slow_moving_alerts([], NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="time zone"):
        slow_moving_alerts([ItemActivity("A", D(1), datetime(2026, 1, 1), None)], NOW)
    with pytest.raises(ValueError, match="at least 1"):
        slow_moving_alerts([], NOW, days=0)
    with pytest.raises(TypeError):
        slow_moving_alerts([], NOW, days=90.0)


# --- overdue sales orders ---------------------------------------------------------------------

BREAD_120 = OrderLine("1", "BREAD", D(120), D(100))
ROLLS_40 = OrderLine("2", "ROLLS", D(40), D(40))


def test_an_order_is_overdue_48_hours_after_due_with_something_left_to_ship():
    orders = [
        SalesOrderDue("SO-1", SalesOrderStatus.PARTIALLY_SHIPPED, NOW - timedelta(hours=48), [BREAD_120, ROLLS_40]),
        SalesOrderDue("SO-2", SalesOrderStatus.OPEN, NOW - timedelta(hours=47, minutes=59), [BREAD_120]),
        SalesOrderDue("SO-3", SalesOrderStatus.OPEN, NOW - timedelta(hours=71, minutes=59), [BREAD_120]),  # 71 whole hours
        SalesOrderDue("SO-4", SalesOrderStatus.SHIPPED, NOW - timedelta(days=9), [BREAD_120]),
        SalesOrderDue("SO-5", SalesOrderStatus.CANCELLED, NOW - timedelta(days=9), [BREAD_120]),
        SalesOrderDue("SO-6", SalesOrderStatus.CLOSED, NOW - timedelta(days=9), [BREAD_120]),
        SalesOrderDue("SO-7", SalesOrderStatus.OPEN, NOW - timedelta(days=9), [ROLLS_40]),  # all shipped, status behind
    ]
    assert overdue_sales_order_alerts(orders, NOW) == [
        StockAlert(AlertKind.OVERDUE_SALES_ORDER, "SO-1", "sales order SO-1: 20 of BREAD not shipped, 48 hours after due",
                   {"hours_late": D(48), "lines_outstanding": D(1)}),
        StockAlert(AlertKind.OVERDUE_SALES_ORDER, "SO-3", "sales order SO-3: 20 of BREAD not shipped, 71 hours after due",
                   {"hours_late": D(71), "lines_outstanding": D(1)}),
    ]
    assert [alert.subject for alert in overdue_sales_order_alerts(orders, NOW, hours=0)] == ["SO-1", "SO-2", "SO-3"]


def test_a_naive_due_time_is_refused():
    with pytest.raises(ValueError, match="due time of sales order SO-1"):
        overdue_sales_order_alerts([SalesOrderDue("SO-1", SalesOrderStatus.OPEN, datetime(2026, 11, 1), [BREAD_120])], NOW)


# --- lots expiring ----------------------------------------------------------------------------

def test_lots_expire_from_their_expiry_date_on_in_the_plants_time_zone():
    # 23:30 on 30 November in UTC−5 is already 1 December in UTC: the plant's today is 30 November.
    now = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    lots = [LotStock("MILK", "M-1", "COLD", D(10), date(2026, 11, 30)),  # expired today
            LotStock("MILK", "M-0", "COLD", D(4), date(2026, 11, 29)),
            LotStock("MILK", "M-2", "COLD", D(6), date(2026, 12, 1)),  # 1 day left
            LotStock("MILK", "M-2", "LS-1", D(1), date(2026, 12, 1)),  # same lot, another place
            LotStock("MILK", "M-3", "COLD", D(6), date(2026, 12, 30)),  # 30 days: warned
            LotStock("MILK", "M-4", "COLD", D(6), date(2026, 12, 31)),  # 31 days: not yet
            LotStock("SALT", "S-1", "WH", D(6), None),
            LotStock("MILK", "M-5", "COLD", D(0), date(2026, 11, 1))]  # none left
    alerts = expiring_lot_alerts(lots, now)
    assert [(a.kind, a.subject, a.numbers) for a in alerts] == [
        (AlertKind.LOT_EXPIRED, "MILK/M-0@COLD", {"quantity": D(4), "days_expired": D(1)}),
        (AlertKind.LOT_EXPIRED, "MILK/M-1@COLD", {"quantity": D(10), "days_expired": D(0)}),
        (AlertKind.LOT_EXPIRING, "MILK/M-2@COLD", {"quantity": D(6), "days_left": D(1)}),
        (AlertKind.LOT_EXPIRING, "MILK/M-2@LS-1", {"quantity": D(1), "days_left": D(1)}),
        (AlertKind.LOT_EXPIRING, "MILK/M-3@COLD", {"quantity": D(6), "days_left": D(30)}),
    ]
    assert alerts[2].detail == "6 of MILK lot M-2 at COLD expires on 2026-12-01, in 1 day"
    assert alerts[0].detail == "4 of MILK lot M-0 at COLD expired on 2026-11-29"
    assert [a.subject for a in expiring_lot_alerts(lots, now, days=0)] == ["MILK/M-0@COLD", "MILK/M-1@COLD"]


# --- backflush shortages ----------------------------------------------------------------------

def shortage(work_order, item, location, quantity, kind):
    return BackflushException(NOW, "m-1", work_order, item, location, quantity, kind, "short")


def test_open_shortages_are_summed_per_item_and_location_leaving_configuration_faults_out():
    exceptions = [shortage("WO-2", "steel", "LS-1", D(2), "shortage"),
                  shortage("WO-1", "steel", "LS-1", D("1.5"), "blocked"),
                  shortage("WO-2", "steel", "LS-1", D("0.5"), "shortage"),
                  shortage("WO-1", "screw", None, D(10), "no_location"),
                  shortage("WO-3", "screw", "LS-2", D(3), "shortage")]
    # steel at LS-1: 2 + 0.5 = 2.5 consumed from an unknown lot, 1.5 not consumed, 4 in all
    assert backflush_shortage_alerts(exceptions) == [
        StockAlert(AlertKind.STOCK_SHORTAGE, "screw@LS-2",
                   "3 of screw short at LS-2 (3 consumed from an unknown lot, 0 not consumed); work orders WO-3",
                   {"quantity": D(3), "consumed_short": D(3), "not_consumed": D(0), "exceptions": D(1)}),
        StockAlert(AlertKind.STOCK_SHORTAGE, "steel@LS-1",
                   "4.0 of steel short at LS-1 (2.5 consumed from an unknown lot, 1.5 not consumed); work orders WO-1, WO-2",
                   {"quantity": D(4), "consumed_short": D("2.5"), "not_consumed": D("1.5"), "exceptions": D(3)}),
    ]


# --- properties -------------------------------------------------------------------------------

quantities = st.decimals(min_value=0, max_value=10**4, places=3)


@given(quantities, quantities, quantities, st.one_of(st.none(), st.decimals(min_value=D("0.001"), max_value=500, places=3)),
       st.decimals(min_value=-(10**4), max_value=10**4, places=3))
def test_a_suggestion_is_the_smallest_whole_pack_order_that_restores_the_target(safety, reorder, minimum, multiple, position):
    level = SafetyStockLevel("X", safety, reorder, minimum, multiple)
    suggested = suggested_purchase(level, position)
    if position >= safety:
        assert suggested == 0
        return
    need = max(safety + reorder - position, minimum)
    assert suggested >= need and position + suggested >= safety + reorder and suggested >= minimum
    if multiple is not None:
        assert suggested % multiple == 0 and suggested - multiple < need
    else:
        assert suggested == need


@given(st.lists(st.tuples(st.integers(-60, 60), quantities), max_size=12), st.integers(0, 45))
def test_every_lot_on_hand_within_the_window_gets_exactly_one_alert_of_the_right_kind(lots, days):
    today = NOW.date()
    stock = [LotStock("MILK", f"M-{i}", "COLD", quantity, today + timedelta(days=offset))
             for i, (offset, quantity) in enumerate(lots)]
    alerts = {alert.subject: alert for alert in expiring_lot_alerts(stock, NOW, days)}
    for lot in stock:
        alert = alerts.get(f"MILK/{lot.lot}@COLD")
        left = (lot.expires - today).days
        if lot.quantity <= 0 or left > days:
            assert alert is None
        else:
            assert alert.kind is (AlertKind.LOT_EXPIRED if left <= 0 else AlertKind.LOT_EXPIRING)
            assert alert.numbers["quantity"] == lot.quantity


exception_lists = st.lists(st.builds(shortage, st.sampled_from(["WO-1", "WO-2"]), st.sampled_from(["steel", "screw"]),
                                     st.sampled_from(["LS-1", "LS-2"]), st.decimals(min_value=D("0.001"), max_value=100, places=3),
                                     st.sampled_from(["shortage", "blocked", "no_location"])), max_size=15)


@given(exception_lists, st.randoms(use_true_random=False))
def test_shortage_totals_add_up_to_the_exceptions_in_any_order(exceptions, random):
    alerts = backflush_shortage_alerts(exceptions)
    assert sum(alert.numbers["quantity"] for alert in alerts) == \
        sum(e.quantity for e in exceptions if e.kind != "no_location")
    for alert in alerts:
        assert alert.numbers["quantity"] == alert.numbers["consumed_short"] + alert.numbers["not_consumed"]
    shuffled = list(exceptions)
    random.shuffle(shuffled)
    assert backflush_shortage_alerts(shuffled) == alerts


@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 400)), st.one_of(st.none(), st.integers(0, 400)), quantities),
                max_size=8), st.integers(0, 400))
def test_a_slow_moving_item_stays_slow_moving_as_time_passes_without_an_issue(items, later_hours):
    def ago(hours):
        return None if hours is None else NOW - timedelta(hours=hours)
    activity = [ItemActivity(f"I-{i}", quantity, ago(issued), ago(received)) for i, (issued, received, quantity) in enumerate(items)]
    now_flagged = {alert.subject for alert in slow_moving_alerts(activity, NOW, days=7)}
    later_flagged = {alert.subject for alert in slow_moving_alerts(activity, NOW + timedelta(hours=later_hours), days=7)}
    assert now_flagged <= later_flagged
