from hypothesis import given
from hypothesis import strategies as st

from core.rules.sequencing import EdgeCursor, Verdict, judge_message, needs_lookup


def test_first_message_of_an_edge_is_accepted():
    assert judge_message(None, EdgeCursor(1, 1), False) == (Verdict.ACCEPT, "")


def test_next_seq_and_new_epoch_are_accepted():
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 11), False)[0] is Verdict.ACCEPT
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(4, 1), False)[0] is Verdict.ACCEPT


def test_redelivery_is_a_duplicate():
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 9), True)[0] is Verdict.DUPLICATE
    assert judge_message(EdgeCursor(4, 1), EdgeCursor(3, 9), True)[0] is Verdict.DUPLICATE


def test_regressions_are_rejected_with_a_reason():
    verdict, reason = judge_message(EdgeCursor(3, 10), EdgeCursor(3, 4), False)
    assert verdict is Verdict.REJECT and "seq regression" in reason
    verdict, reason = judge_message(EdgeCursor(3, 10), EdgeCursor(2, 50), False)
    assert verdict is Verdict.REJECT and "epoch regression" in reason


def test_lookup_is_needed_only_at_or_below_the_cursor():
    assert not needs_lookup(None, EdgeCursor(1, 1))
    assert not needs_lookup(EdgeCursor(1, 5), EdgeCursor(1, 6))
    assert needs_lookup(EdgeCursor(1, 5), EdgeCursor(1, 5))


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 20)), min_size=1, max_size=80))
def test_any_redelivery_pattern_ingests_each_message_at_most_once_and_in_order(deliveries):
    cursor, ingested = None, []
    for epoch, seq in deliveries:
        position = EdgeCursor(epoch, seq)
        verdict, _ = judge_message(cursor, position, position in ingested)
        if verdict is Verdict.ACCEPT:
            ingested.append(position)
            cursor = position
    assert len(set(ingested)) == len(ingested)
    assert ingested == sorted(ingested)


@given(st.lists(st.integers(1, 5), min_size=1, max_size=50))
def test_in_order_delivery_with_repeats_ingests_every_message(repeats):
    cursor, ingested = None, []
    for seq, times in enumerate(repeats, start=1):
        for _ in range(times):
            position = EdgeCursor(1, seq)
            verdict, _ = judge_message(cursor, position, position in ingested)
            if verdict is Verdict.ACCEPT:
                ingested.append(position)
                cursor = position
    assert len(ingested) == len(repeats)
