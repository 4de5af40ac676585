"""Valuation: the worked sequences of docs/valuation.md for both methods, then the acceptance as properties.

Acceptance: worked sequences (receipts at different costs, issues, a dip below zero, the true-up) for
moving average and FIFO, derived by hand; Σ value of the entries = value on hand for random sequences.
"""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.valuation import (
    EntryKind,
    Issue,
    ItemValuation,
    Layer,
    Receipt,
    ValuationMethod,
    ValuedEntry,
    post,
    replay,
)

D = Decimal
AVERAGE, FIFO = ValuationMethod.MOVING_AVERAGE, ValuationMethod.FIFO
RECEIPT, ISSUE, TRUE_UP = EntryKind.RECEIPT, EntryKind.ISSUE, EntryKind.TRUE_UP

# The sequence of docs/valuation.md: two receipts at different costs, an issue, an issue that dips to -20,
# and the receipt that covers the dip and trues it up.
DOC_SEQUENCE = [Receipt(100, D("2.00")), Receipt(50, D("2.60")), Issue(120), Issue(50), Receipt(40, D("3.00"))]


def steps(method, events, fallback_cost=0):
    """The entries each event books, and the state after it."""
    state, booked = ItemValuation(method), []
    for event in events:
        state, entries = post(state, event, fallback_cost)
        booked.append((entries, state))
    return booked


def test_moving_average_worked_sequence():
    """Derived by hand (docs/valuation.md, first table):

    1. receipt 100 @ 2.00 into empty stock: +200.00; the average takes the incoming cost, 2.00.
    2. receipt 50 @ 2.60: +130.00; stock 150 worth 330.00; average 330.00 / 150 = 2.20.
    3. issue 120 at the average: -120 × 2.20 = -264.00; stock 30 worth 66.00.
    4. issue 50 with 30 on hand: the 30 take the whole 66.00 left; the 20 beyond stock are priced at the
       last known cost 2.20: -44.00, owed as a shortfall of 20 at 2.20. Stock -20 worth -44.00.
    5. receipt 40 @ 3.00: +120.00. Its first 20 cover the shortfall: they were issued at 44.00 and cost
       20 × 3.00 = 60.00, true-up 44.00 - 60.00 = -16.00. Stock 20 worth -44 + 120 - 16 = 60.00, average 3.00
       (a receipt into negative stock takes the incoming cost).
    """
    (r1, s1), (r2, s2), (i1, s3), (i2, s4), (r3, s5) = steps(AVERAGE, DOC_SEQUENCE)
    assert r1 == (ValuedEntry(RECEIPT, D(100), D("200"), D("2.00")),)
    assert s1 == ItemValuation(AVERAGE, D(100), D("200"), D("2.00"))
    assert r2 == (ValuedEntry(RECEIPT, D(50), D("130"), D("2.60")),)
    assert s2 == ItemValuation(AVERAGE, D(150), D("330"), D("2.20"))
    assert i1 == (ValuedEntry(ISSUE, D(-120), D("-264"), D("2.20")),)
    assert s3 == ItemValuation(AVERAGE, D(30), D("66"), D("2.20"))
    assert i2 == (ValuedEntry(ISSUE, D(-30), D("-66"), D("2.20")), ValuedEntry(ISSUE, D(-20), D("-44"), D("2.20")))
    assert s4 == ItemValuation(AVERAGE, D(-20), D("-44"), D("2.20"), shortfall=[Layer(D(20), D("2.20"), D("44"))])
    assert r3 == (ValuedEntry(RECEIPT, D(40), D("120"), D("3.00")), ValuedEntry(TRUE_UP, D(0), D("-16"), D("3.00"), D(20)))
    assert s5 == ItemValuation(AVERAGE, D(20), D("60"), D("3.00"))


def test_fifo_worked_sequence():
    """Derived by hand (docs/valuation.md, second table):

    1. receipt 100 @ 2.00: layer A = 100 @ 2.00 worth 200.00.
    2. receipt 50 @ 2.60: layer B = 50 @ 2.60 worth 130.00; stock 150 worth 330.00.
    3. issue 120: all of A (-200.00) then 20 of B (-20 × 2.60 = -52.00); B keeps 30 worth 78.00.
    4. issue 50: the rest of B (-78.00); the 20 beyond stock at the last known cost, the latest receipt's
       2.60: -52.00, owed as a shortfall of 20 at 2.60. Stock -20 worth -52.00.
    5. receipt 40 @ 3.00: +120.00; its first 20 cover the shortfall, issued at 52.00, costing 60.00: true-up
       -8.00. The other 20 form layer C = 20 @ 3.00 worth 120.00 - 60.00 = 60.00. Stock 20 worth 60.00.
    """
    (r1, s1), (r2, s2), (i1, s3), (i2, s4), (r3, s5) = steps(FIFO, DOC_SEQUENCE)
    a, b = Layer(D(100), D("2.00"), D("200")), Layer(D(50), D("2.60"), D("130"))
    assert r1 == (ValuedEntry(RECEIPT, D(100), D("200"), D("2.00")),)
    assert s1 == ItemValuation(FIFO, D(100), D("200"), D("2.00"), [a])
    assert r2 == (ValuedEntry(RECEIPT, D(50), D("130"), D("2.60")),)
    assert s2 == ItemValuation(FIFO, D(150), D("330"), D("2.60"), [a, b])
    assert i1 == (ValuedEntry(ISSUE, D(-100), D("-200"), D("2.00")), ValuedEntry(ISSUE, D(-20), D("-52"), D("2.60")))
    assert s3 == ItemValuation(FIFO, D(30), D("78"), D("2.60"), [Layer(D(30), D("2.60"), D("78"))])
    assert i2 == (ValuedEntry(ISSUE, D(-30), D("-78"), D("2.60")), ValuedEntry(ISSUE, D(-20), D("-52"), D("2.60")))
    assert s4 == ItemValuation(FIFO, D(-20), D("-52"), D("2.60"), shortfall=[Layer(D(20), D("2.60"), D("52"))])
    assert r3 == (ValuedEntry(RECEIPT, D(40), D("120"), D("3.00")), ValuedEntry(TRUE_UP, D(0), D("-8"), D("3.00"), D(20)))
    assert s5 == ItemValuation(FIFO, D(20), D("60"), D("3.00"), [Layer(D(20), D("3.00"), D("60"))])


def test_both_methods_charge_the_same_in_total_and_differ_only_in_timing():
    """Receipts 200 + 130 + 120 = 450 in, 20 @ 3.00 = 60 left: 390 charged either way.
    Moving average: 264 + 66 + 44 + 16; FIFO: 200 + 52 + 78 + 52 + 8."""
    for method in ValuationMethod:
        state, entries = replay(ItemValuation(method), DOC_SEQUENCE)
        assert sum(entry.value for entry in entries if entry.kind is not RECEIPT) == D(-390)
        assert state.value == D(60)


def test_moving_average_rounds_each_issue_and_the_last_issue_takes_what_is_left():
    """1 @ 1.00 and 2 @ 1.50: 3 worth 4.00, average 4/3 = 1.333333 (6 places, half even).
    Issues of 1: 1.333333, 1.333333, then the last unit takes the 1.333334 left, so stock ends at exactly 0."""
    events = [Receipt(1, D("1.00")), Receipt(2, D("1.50")), Issue(1), Issue(1), Issue(1)]
    state, entries = replay(ItemValuation(AVERAGE), events)
    assert [entry.value for entry in entries] == [D("1"), D("3"), D("-1.333333"), D("-1.333333"), D("-1.333334")]
    assert all(entry.unit_cost == D("1.333333") for entry in entries[2:])
    assert state == ItemValuation(AVERAGE, D(0), D(0), D("1.333333"))


@pytest.mark.parametrize("method", ValuationMethod)
def test_issue_before_any_receipt_uses_the_fallback_and_a_small_receipt_trues_up_only_what_it_covers(method):
    """Fallback (standard) cost 1.50, the same under both methods since nothing is on hand:

    1. issue 10, no cost ever known: -10 × 1.50 = -15.00, owed 10 @ 1.50.
    2. receipt 4 @ 2.00: +8.00; covers 4 of the shortfall, issued at 4 × 1.50 = 6.00, costing 8.00: true-up
       -2.00. Still owed 6 @ 1.50 worth 9.00; stock -6 worth -9.00; last known cost now 2.00.
    3. issue 5: beyond stock at 2.00: -10.00, owed behind the older shortfall. Stock -11 worth -19.00.
    4. receipt 20 @ 2.50: +50.00; covers all 11 owed (issued at 9.00 + 10.00 = 19.00, costing 27.50): true-up
       -8.50. Stock 9 worth -19.00 + 50.00 - 8.50 = 22.50, at 2.50.
    """
    events = [Issue(10), Receipt(4, D("2.00")), Issue(5), Receipt(20, D("2.50"))]
    (i1, s1), (r1, s2), (i2, s3), (r2, s4) = steps(method, events, fallback_cost=D("1.50"))
    assert i1 == (ValuedEntry(ISSUE, D(-10), D("-15"), D("1.50")),)
    assert s1.shortfall == (Layer(D(10), D("1.50"), D(15)),) and s1.last_known_cost is None
    assert r1 == (ValuedEntry(RECEIPT, D(4), D(8), D("2.00")), ValuedEntry(TRUE_UP, D(0), D(-2), D("2.00"), D(4)))
    assert (s2.quantity, s2.value, s2.last_known_cost) == (D(-6), D(-9), D("2.00"))
    assert i2 == (ValuedEntry(ISSUE, D(-5), D(-10), D("2.00")),)
    assert s3.shortfall == (Layer(D(6), D("1.50"), D(9)), Layer(D(5), D("2.00"), D(10)))
    assert r2 == (ValuedEntry(RECEIPT, D(20), D(50), D("2.50")), ValuedEntry(TRUE_UP, D(0), D("-8.5"), D("2.50"), D(11)))
    layers = [Layer(D(9), D("2.50"), D("22.5"))] if method is FIFO else []
    assert s4 == ItemValuation(method, D(9), D("22.5"), D("2.50"), layers)


@pytest.mark.parametrize("method", ValuationMethod)
def test_receipt_at_the_provisional_cost_needs_no_true_up(method):
    # 10 @ 2.00, issue 15: 5 owed at 2.00; receipt 5 @ 2.00 covers them at what they were issued at
    state, entries = replay(ItemValuation(method), [Receipt(10, D(2)), Issue(15), Receipt(5, D(2))])
    assert [entry.kind for entry in entries] == [RECEIPT, ISSUE, ISSUE, RECEIPT]
    assert state == ItemValuation(method, D(0), D(0), D(2))


@pytest.mark.parametrize("method", ValuationMethod)
def test_a_partial_take_never_takes_more_than_is_left(method):
    """5 @ 0.0000005 is worth 0.0000025 → 0.000002 (half even). Issue 3: 0.0000015 → 0.000002, leaving 2 worth 0.
    Issue 1.5: 0.00000075 would round to 0.000001, more than the 0 left: it takes 0."""
    state, entries = replay(ItemValuation(method), [Receipt(5, D("0.0000005")), Issue(3), Issue(D("1.5"))])
    assert [entry.value for entry in entries] == [D("0.000002"), D("-0.000002"), D(0)]
    assert (state.quantity, state.value) == (D("0.5"), D(0))


def test_quantities_are_exact_beyond_28_digits():
    # 1234567890.5 received, 1E-30 issued: 40 significant digits left on hand
    state, _ = replay(ItemValuation(FIFO), [Receipt(D("1234567890.5"), D(1)), Issue(D("1E-30"))])
    assert state.quantity == D("1234567890.499999999999999999999999999999")
    assert state.value == D("1234567890.5")  # the 1E-30 issued is worth 0 at 6 places


@pytest.mark.parametrize("event, error", [
    (Receipt(2.5, D(1)), TypeError),  # a float quantity is refused, never converted
    (Receipt(D(1), 1.2), TypeError),
    (Receipt(D(0), D(1)), ValueError),
    (Receipt(D(1), D(-1)), ValueError),
    (Issue(D(-1)), ValueError),
    (Issue(D("NaN")), ValueError),
    ((D(1), D(1)), TypeError),  # not an event
])
def test_invalid_events_are_refused(event, error):
    with pytest.raises(error):
        post(ItemValuation(FIFO), event)


@pytest.mark.parametrize("fields", [
    {"method": "lifo"},
    {"method": "fifo", "quantity": D(5), "value": D(10), "last_known_cost": D(2)},  # layers do not add up
    {"method": "moving_average", "quantity": D(5), "value": D(10), "last_known_cost": D(2), "layers": [[5, 2, 10]]},
    {"method": "moving_average", "quantity": D(0), "value": D(1)},  # worth something with nothing on hand
    {"method": "moving_average", "quantity": D(5), "value": D(10)},  # on hand at an unknown cost
    {"method": "fifo", "quantity": D(-2), "value": D(-4), "shortfall": [[1, 2, 2]]},  # owes less than it is short
    {"method": "fifo", "quantity": D(1), "value": D(2), "last_known_cost": D(2), "layers": [[1, 2, 2]],
     "shortfall": [[1, 2, 2]]},
    {"method": "fifo", "quantity": D(1), "value": D(2), "last_known_cost": D(2), "layers": [[1, 2]]},
    {"method": "fifo", "quantity": D(1), "value": 2.0, "last_known_cost": D(2), "layers": [[1, 2, 2]]},
])
def test_a_stored_state_that_does_not_add_up_is_refused(fields):
    with pytest.raises((ValueError, TypeError)):
        ItemValuation(**fields)


# --- properties -------------------------------------------------------------------------------

quantities = st.decimals(min_value=D("0.001"), max_value=D(300), places=3)
# ordinary costs, and costs below the 6th place so that rounding (and the clamp) is exercised
costs = st.decimals(min_value=D(0), max_value=D(50), places=4) | st.decimals(min_value=D(0), max_value=D("0.00001"), places=9)
events = st.lists(st.one_of(st.builds(Receipt, quantities, costs), st.builds(Issue, quantities)), max_size=25)
methods = st.sampled_from(ValuationMethod)
fallbacks = st.decimals(min_value=D(0), max_value=D(50), places=2)


@given(methods, events, fallbacks)
def test_entries_add_up_to_what_is_on_hand_at_every_step(method, sequence, fallback_cost):
    state, quantity, value = ItemValuation(method), D(0), D(0)
    for event in sequence:
        state, entries = post(state, event, fallback_cost)
        quantity += sum(entry.quantity for entry in entries)
        value += sum(entry.value for entry in entries)
        assert (state.quantity, state.value) == (quantity, value)
        assert sum(entry.quantity for entry in entries) == (event.quantity if isinstance(event, Receipt) else -event.quantity)
        assert all(entry.value == entry.value.quantize(D("0.000001")) for entry in entries)  # values are at 6 places
        if state.quantity == 0:
            assert state.value == 0  # emptied stock leaves no rounding residue
        if state.quantity >= 0:
            assert state.value >= 0


@given(methods, events, events, fallbacks)
def test_replay_resumes_from_a_stored_state(method, first, then, fallback_cost):
    whole = replay(ItemValuation(method), first + then, fallback_cost)
    stored = replay(ItemValuation(method), first, fallback_cost)
    resumed = replay(ItemValuation(**stored.state.as_fields()), then, fallback_cost)
    assert resumed.state == whole.state
    assert stored.entries + resumed.entries == whole.entries


@given(methods, events, fallbacks, fallbacks)
def test_once_the_shortfall_is_covered_the_provisional_cost_leaves_no_trace(method, sequence, fallback, other_fallback):
    # the fallback only prices issues before the first receipt; receipts covering them true them up
    state = replay(ItemValuation(method), sequence, fallback).state
    if state.quantity >= 0:
        assert replay(ItemValuation(method), sequence, other_fallback).state == state


@given(events)
def test_fifo_layers_on_hand_are_the_tails_of_the_latest_receipts(sequence):
    state = replay(ItemValuation(FIFO), sequence).state
    receipts = [event for event in sequence if isinstance(event, Receipt)]
    latest = receipts[len(receipts) - len(state.layers):]
    assert [layer.unit_cost for layer in state.layers] == [receipt.unit_cost for receipt in latest]
    assert [layer.quantity for layer in state.layers[1:]] == [receipt.quantity for receipt in latest[1:]]
    assert all(layer.quantity <= receipt.quantity for layer, receipt in zip(state.layers, latest, strict=True))


@given(methods, st.lists(st.one_of(st.builds(Receipt, st.integers(1, 50), st.just(D(0))), st.builds(Issue, st.integers(1, 50))), max_size=25),
       st.decimals(min_value=D(0), max_value=D(50), places=2))
def test_one_cost_throughout_prices_everything_at_it_and_needs_no_true_up(method, sequence, cost):
    sequence = [Receipt(event.quantity, cost) if isinstance(event, Receipt) else event for event in sequence]
    state, entries = replay(ItemValuation(method), sequence, fallback_cost=cost)
    assert all(entry.kind is not TRUE_UP and entry.unit_cost == cost for entry in entries)
    assert state.value == state.quantity * cost


@given(events)
def test_both_methods_agree_on_quantity_and_on_the_total_charged_once_stock_is_back_to_zero(sequence):
    average, fifo = (replay(ItemValuation(method), sequence) for method in ValuationMethod)
    assert average.state.quantity == fifo.state.quantity
    if fifo.state.quantity == 0:
        charged = [sum(entry.value for entry in posting.entries if entry.kind is not RECEIPT) for posting in (average, fifo)]
        assert charged[0] == charged[1]
