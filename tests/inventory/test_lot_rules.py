"""Lot picking: FEFO then FIFO, and the negative-stock policies, by example and by property."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.lots import UNKNOWN_LOT, Allocation, LotBalance, NegativeStockPolicy, Pick, allocate, pick_order

D = Decimal
ALLOW, BLOCK = NegativeStockPolicy.ALLOW, NegativeStockPolicy.BLOCK
NOV_1 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)

FLOUR_LOTS = [  # listed out of order on purpose
    LotBalance("F-0512", D(15), date(2026, 12, 5), NOV_1),
    LotBalance("F-0488", D(20), date(2026, 12, 1), NOV_1 + timedelta(days=3)),
    LotBalance("F-0600", D(50), None, NOV_1 - timedelta(days=30)),
]


def test_soonest_expiry_first_then_lots_that_never_expire():
    assert [lot.lot for lot in pick_order(FLOUR_LOTS)] == ["F-0488", "F-0512", "F-0600"]


def test_same_expiry_goes_first_in_first_out_then_by_lot_id():
    expires = date(2026, 12, 1)
    lots = [LotBalance("B", D(1), expires, NOV_1), LotBalance("C", D(1), expires, NOV_1 - timedelta(hours=1)),
            LotBalance("A", D(1), expires, NOV_1)]
    assert [lot.lot for lot in pick_order(lots)] == ["C", "A", "B"]


def test_worked_example_30_6_kg_from_lots_expiring_1_then_5_december():
    # 120 loaves × 0.25 kg × 1.02 scrap = 30.6 kg
    assert allocate(D("30.6"), FLOUR_LOTS, ALLOW) == Allocation((Pick("F-0488", D(20)), Pick("F-0512", D("10.6"))), D(0), False)


def test_allow_consumes_the_shortage_from_the_unknown_lot():
    allocation = allocate(D(40), FLOUR_LOTS[:2], ALLOW)
    assert allocation == Allocation((Pick("F-0488", D(20)), Pick("F-0512", D(15)), Pick(UNKNOWN_LOT, D(5))), D(5), False)


def test_block_consumes_what_there_is_reports_the_shortage_and_holds():
    allocation = allocate(D(40), FLOUR_LOTS[:2], BLOCK)
    assert allocation == Allocation((Pick("F-0488", D(20)), Pick("F-0512", D(15))), D(5), True)


def test_empty_and_negative_lots_give_nothing():
    lots = [LotBalance("EMPTY", D(0), date(2026, 11, 20), NOV_1), LotBalance("OVERDRAWN", D(-3), date(2026, 11, 21), NOV_1),
            *FLOUR_LOTS]
    assert allocate(D(25), lots, BLOCK).picks == (Pick("F-0488", D(20)), Pick("F-0512", D(5)))


def test_no_stock_at_all():
    assert allocate(D("2.5"), [], ALLOW) == Allocation((Pick(UNKNOWN_LOT, D("2.5")),), D("2.5"), False)
    assert allocate(D("2.5"), [], BLOCK) == Allocation((), D("2.5"), True)


def test_policy_as_stored_text_is_accepted():
    assert allocate(D(40), FLOUR_LOTS[:2], "block").held


@pytest.mark.parametrize("need, lots, error", [
    (30.6, FLOUR_LOTS, TypeError),  # float refused
    (D(-1), FLOUR_LOTS, ValueError),
    (D(1), [FLOUR_LOTS[0], FLOUR_LOTS[0]], ValueError),  # same lot twice
])
def test_invalid_requests_are_refused(need, lots, error):
    with pytest.raises(error):
        allocate(need, lots, ALLOW)


# --- properties -------------------------------------------------------------------------------

balances = st.decimals(min_value=D(-5), max_value=D(100), places=3)
needs = st.decimals(min_value=D(0), max_value=D(400), places=4)


@st.composite
def lot_balances(draw):
    """Lots at one location; few distinct dates so that ties on expiry and receipt happen often."""
    ids = draw(st.lists(st.text("ABCDEF0123", min_size=1, max_size=4), unique=True, max_size=8))
    return [LotBalance(lot, draw(balances), draw(st.none() | st.sampled_from([date(2026, 12, d) for d in (1, 5, 9)])),
                       NOV_1 + timedelta(days=draw(st.integers(0, 3)))) for lot in ids]


@given(needs, lot_balances(), st.sampled_from(NegativeStockPolicy))
def test_picks_and_shortage_account_for_the_whole_need(need, lots, policy):
    allocation = allocate(need, lots, policy)
    picked = sum((pick.quantity for pick in allocation.picks), D(0))
    available = sum((lot.quantity for lot in lots if lot.quantity > 0), D(0))
    assert allocation.shortage == max(need - available, D(0))
    if policy is ALLOW:
        assert picked == need and not allocation.held
    else:
        assert picked + allocation.shortage == need and allocation.held == (allocation.shortage > 0)
        assert all(pick.lot is not UNKNOWN_LOT for pick in allocation.picks)


@given(needs, lot_balances(), st.sampled_from(NegativeStockPolicy))
def test_picks_follow_pick_order_and_never_exceed_a_lots_balance(need, lots, policy):
    allocation = allocate(need, lots, policy)
    balance = {lot.lot: lot.quantity for lot in lots}
    from_lots = [pick for pick in allocation.picks if pick.lot is not UNKNOWN_LOT]
    giving = [lot.lot for lot in pick_order(lots) if lot.quantity > 0]
    assert [pick.lot for pick in from_lots] == giving[:len(from_lots)]
    assert all(0 < pick.quantity <= balance[pick.lot] for pick in from_lots)
    # every lot but the last one picked is emptied: no later lot is touched while an earlier one holds stock
    assert all(pick.quantity == balance[pick.lot] for pick in from_lots[:-1])


@given(lot_balances(), st.sampled_from(NegativeStockPolicy))
def test_zero_need_picks_nothing(lots, policy):
    assert allocate(D(0), lots, policy) == Allocation((), D(0), False)


@given(lot_balances())
def test_pick_order_does_not_depend_on_the_order_lots_are_listed(lots):
    assert pick_order(lots) == pick_order(reversed(lots))
    dated = [lot.expires for lot in pick_order(lots) if lot.expires is not None]
    assert dated == sorted(dated)
    assert [lot.expires for lot in pick_order(lots)][len(dated):] == [None] * (len(lots) - len(dated))


def test_exact_beyond_the_default_28_digits():
    # 1234567890.5 - 1E-30 needs 40 significant digits: the default context would round the shortage
    lots = [LotBalance("DUST", D("1E-30"), None, NOV_1)]
    allocation = allocate(D("1234567890.5"), lots, ALLOW)
    assert allocation.shortage == D("1234567890.499999999999999999999999999999")
    assert sum((pick.quantity for pick in allocation.picks), D(0)) == D("1234567890.5")
