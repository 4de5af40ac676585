from hypothesis import given
from hypothesis import strategies as st

from core.rules.sequencing import (EdgeCursor, Ingested, Plausible, Verdict, judge_message, judge_reingested, may_have_key,
                                   prunable, raised_watermark)

SEEN = Ingested(None)
DEFAULT_GAP = Plausible().max_epoch_gap


def test_first_message_of_an_edge_is_accepted():
    assert judge_message(None, EdgeCursor(1, 1), None) == (Verdict.ACCEPT, "")


def test_next_seq_and_new_epoch_are_accepted():
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 11), None)[0] is Verdict.ACCEPT
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(4, 1), None)[0] is Verdict.ACCEPT


def test_redelivery_is_a_duplicate():
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 9), SEEN)[0] is Verdict.DUPLICATE
    assert judge_message(EdgeCursor(4, 1), EdgeCursor(3, 9), SEEN)[0] is Verdict.DUPLICATE


def test_regressions_are_rejected_with_a_reason():
    verdict, reason = judge_message(EdgeCursor(3, 10), EdgeCursor(3, 4), None)
    assert verdict is Verdict.REJECT and "seq regression" in reason
    verdict, reason = judge_message(EdgeCursor(3, 10), EdgeCursor(2, 50), None)
    assert verdict is Verdict.REJECT and "epoch regression" in reason


def test_a_reused_position_with_other_content_is_a_conflicting_duplicate():
    verdict, reason = judge_message(EdgeCursor(3, 10), EdgeCursor(3, 9), Ingested(b"old"), b"new")
    assert verdict is Verdict.REJECT and reason.startswith("conflicting duplicate") and "new epoch" in reason
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 9), Ingested(b"same"), b"same")[0] is Verdict.DUPLICATE
    # rows ingested before digests were recorded: a redelivery, as before
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 9), Ingested(None), b"new")[0] is Verdict.DUPLICATE


def test_a_position_far_beyond_the_cursor_is_rejected_not_adopted():
    top = 2**63 - 1
    for position, start in [(EdgeCursor(3, top), "seq too far ahead"), (EdgeCursor(top, 1), "epoch too far ahead"),
                            (EdgeCursor(4, top), "seq too far ahead")]:
        verdict, reason = judge_message(EdgeCursor(3, 10), position, None)
        assert verdict is Verdict.REJECT and reason.startswith(start), reason
    assert "the next epoch is 4" in judge_message(EdgeCursor(3, 10), EdgeCursor(top, 1), None)[1]
    limits = Plausible(max_seq_gap=100, max_epoch_gap=2)
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 110), None, plausible=limits)[0] is Verdict.ACCEPT
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 111), None, plausible=limits)[0] is Verdict.REJECT
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(5, 100), None, plausible=limits)[0] is Verdict.ACCEPT
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(6, 1), None, plausible=limits)[0] is Verdict.REJECT


def test_a_message_that_follows_one_not_ingested_is_held():
    verdict, reason = judge_message(EdgeCursor(3, 10), EdgeCursor(3, 12), None, follows=EdgeCursor(3, 11))
    assert verdict is Verdict.HOLD and "publishes again" in reason
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 12), None, follows=EdgeCursor(3, 10))[0] is Verdict.ACCEPT
    # a gap the edge itself declares (it restarted its chain from what the core acknowledged)
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(4, 1), None, follows=EdgeCursor(2, 7))[0] is Verdict.ACCEPT
    assert judge_message(None, EdgeCursor(3, 12), None, follows=EdgeCursor(3, 11))[0] is Verdict.ACCEPT


@given(st.lists(st.booleans(), min_size=1, max_size=60), st.data())
def test_a_chain_with_lost_messages_ingests_every_message_once_in_order_after_resends(lost, data):
    """An edge publishes a chain; the broker loses some messages; on every hold the edge publishes
    again everything after the cursor, from there. In the end every message is ingested once, in order."""
    chain = [EdgeCursor(1, seq) for seq in range(1, len(lost) + 1)]
    cursor, ingested = EdgeCursor(1, 0), []
    attempts = [(position, previous, lose) for position, previous, lose in zip(chain, [cursor, *chain], lost, strict=False)]
    while attempts:
        resend_from = None
        for position, previous, lose in attempts:
            if lose:
                continue
            earlier = SEEN if position in ingested else None
            verdict, _ = judge_message(cursor, position, earlier, follows=previous)
            if verdict is Verdict.ACCEPT:
                ingested.append(position)
                cursor = position
            elif verdict is Verdict.HOLD:
                resend_from = cursor
                break
        if resend_from is None and len(ingested) == len(chain):
            break
        remaining = [p for p in chain if p > cursor]
        attempts = [(p, q, data.draw(st.booleans()) and data.draw(st.booleans()))
                    for p, q in zip(remaining, [cursor, *remaining], strict=False)]
    assert ingested == chain


def test_a_message_that_follows_a_dead_letter_of_record_in_its_place_is_not_held():
    cursor = EdgeCursor(3, 10)
    assert judge_message(cursor, EdgeCursor(3, 12), None, follows=EdgeCursor(3, 11),
                         dead_lettered=EdgeCursor(3, 11))[0] is Verdict.ACCEPT
    assert judge_message(cursor, EdgeCursor(3, 13), None, follows=EdgeCursor(3, 12),
                         dead_lettered=EdgeCursor(3, 11))[0] is Verdict.HOLD, "12 is neither ingested nor of record"


def test_without_a_cursor_any_position_is_plausible():
    assert judge_message(None, EdgeCursor(2**63 - 1, 2**63 - 1), None)[0] is Verdict.ACCEPT


def test_a_position_ingested_beyond_the_cursor_is_a_duplicate_and_one_following_it_is_not_held():
    """A dead letter re-ingested after review lies beyond its edge's cursor (it never moves it)."""
    cursor = EdgeCursor(1, 5)
    assert judge_message(cursor, EdgeCursor(1, 7), Ingested(None))[0] is Verdict.DUPLICATE
    assert judge_message(None, EdgeCursor(1, 7), Ingested(None))[0] is Verdict.DUPLICATE
    assert judge_message(cursor, EdgeCursor(1, 8), None, follows=EdgeCursor(1, 7), follows_ingested=True)[0] is Verdict.ACCEPT


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 20)), min_size=1, max_size=80))
def test_any_redelivery_pattern_ingests_each_message_at_most_once_and_in_order(deliveries):
    cursor, ingested = None, []
    for epoch, seq in deliveries:
        position = EdgeCursor(epoch, seq)
        verdict, _ = judge_message(cursor, position, SEEN if position in ingested else None)
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
            verdict, _ = judge_message(cursor, position, SEEN if position in ingested else None)
            if verdict is Verdict.ACCEPT:
                ingested.append(position)
                cursor = position
    assert len(ingested) == len(repeats)


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 20)), min_size=1, max_size=60),
       st.lists(st.tuples(st.integers(1, 60), st.integers(1, 2**63 - 1), st.integers(1, 2**63 - 1)), max_size=5))
def test_forged_far_positions_never_stop_the_real_sequence(real, forged):
    """Real in-order traffic with forged far positions slipped in after its first message: every real
    message is accepted, no forged one."""
    deliveries = [("real", EdgeCursor(epoch, seq)) for epoch, seq in sorted(set(real))]
    for index, epoch_ahead, seq in sorted(forged, reverse=True):
        deliveries.insert(index, ("forged", EdgeCursor(3 + DEFAULT_GAP + epoch_ahead, seq)))  # epochs ≤ 3 are real
    cursor, accepted = None, []
    for _, position in deliveries:
        verdict, _ = judge_message(cursor, position, None)
        if verdict is Verdict.ACCEPT:
            accepted.append(position)
            cursor = position
    assert accepted == [position for source, position in deliveries if source == "real"]


# Keys the retention job drops (core.services.retention): what an edge's messages count must not change.

def test_below_the_key_watermark_a_position_without_its_key_is_a_duplicate():
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 4), None, pruned=EdgeCursor(3, 6)) == (Verdict.DUPLICATE, "")
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 7), None, pruned=EdgeCursor(3, 6))[0] is Verdict.REJECT
    # a key still kept judges as before
    assert judge_message(EdgeCursor(3, 10), EdgeCursor(3, 4), Ingested(b"a"), b"b", pruned=EdgeCursor(3, 6))[0] is Verdict.REJECT


def test_a_dead_letter_below_the_key_watermark_is_not_taken_in_again():
    verdict, reason = judge_reingested(None, b"x", EdgeCursor(3, 6), EdgeCursor(3, 5))
    assert verdict is Verdict.REJECT and "MES_RETENTION_MESSAGES_DAYS" in reason
    assert judge_reingested(None, b"x", EdgeCursor(3, 6), EdgeCursor(3, 7))[0] is Verdict.ACCEPT
    assert judge_reingested(None, b"x")[0] is Verdict.ACCEPT


def test_the_watermark_only_rises_and_keys_beyond_the_cursor_are_kept():
    assert raised_watermark(None, None) is None
    assert raised_watermark(EdgeCursor(2, 5), None) == EdgeCursor(2, 5)
    assert raised_watermark(EdgeCursor(2, 5), EdgeCursor(1, 9)) == EdgeCursor(2, 5)
    assert raised_watermark(EdgeCursor(2, 5), EdgeCursor(3, 1)) == EdgeCursor(3, 1)
    assert prunable(EdgeCursor(3, 10), EdgeCursor(3, 10)) and not prunable(EdgeCursor(3, 11), EdgeCursor(3, 10))
    assert not prunable(EdgeCursor(1, 1), None)


def test_only_a_position_at_or_below_the_cursor_or_a_taken_in_dead_letter_can_have_a_key():
    assert may_have_key(EdgeCursor(3, 10), EdgeCursor(3, 10), None)
    assert not may_have_key(EdgeCursor(3, 11), EdgeCursor(3, 10), None)
    assert may_have_key(EdgeCursor(3, 11), EdgeCursor(3, 10), EdgeCursor(3, 12))
    assert may_have_key(EdgeCursor(1, 1), None, EdgeCursor(2, 1)) and not may_have_key(EdgeCursor(1, 1), None, None)


_position = st.builds(EdgeCursor, st.integers(1, 3), st.integers(1, 8))
# an edge's deliveries: a position, its content, and whether it is a dead letter taken in again (review)
_delivery = st.tuples(_position, st.sampled_from([b"a", b"b"]), st.booleans())


class _Core:
    """A core's keys and cursor for one edge, judging deliveries with the rule as plan_batch does; `looks_up`: only
    where a key can be (core.ingest.store.find_ingested), else everywhere."""

    def __init__(self, looks_up: bool = True) -> None:
        self.cursor: EdgeCursor | None = None
        self.ahead: EdgeCursor | None = None
        self.keys: dict[EdgeCursor, bytes] = {}
        self.pruned: EdgeCursor | None = None
        self.counted: list[EdgeCursor] = []
        self.looks_up = looks_up

    def deliver(self, position: EdgeCursor, digest: bytes, reingest: bool) -> Verdict:
        found = position in self.keys and (not self.looks_up or may_have_key(position, self.cursor, self.ahead))
        earlier = Ingested(self.keys[position]) if found else None
        if reingest:
            verdict, _ = judge_reingested(earlier, digest, self.pruned, position)
        else:
            verdict, _ = judge_message(self.cursor, position, earlier, digest, pruned=self.pruned)
        if verdict is Verdict.ACCEPT:
            self.keys[position] = digest
            self.counted.append(position)
            if reingest:
                self.ahead = max(self.ahead or position, position)
            else:
                self.cursor = position
        return verdict

    def prune(self, keys: set[EdgeCursor]) -> None:
        """What the retention job does: drops the prunable ones of `keys`, the watermark raised to the furthest."""
        dropped = {key for key in keys if key in self.keys and prunable(key, self.cursor)}
        self.pruned = raised_watermark(self.pruned, max(dropped, default=None))
        for key in dropped:
            del self.keys[key]


@given(st.lists(st.one_of(_delivery, st.sets(_position, max_size=6)), max_size=40))
def test_dropping_keys_counts_nothing_twice_and_drops_nothing_new(steps):
    """Against a core that keeps every key and looks each up: the same messages are counted, except that a dead letter taken in
    again below the watermark is refused (it might have counted twice), and a redelivery below it is a
    duplicate where the full record might have told a conflict or a regression: neither counts either way."""
    pruning, keeping = _Core(looks_up=True), _Core(looks_up=False)
    for step in steps:
        if isinstance(step, set):
            pruning.prune(step)
            continue
        position, digest, reingest = step
        verdict = pruning.deliver(position, digest, reingest)
        reference = keeping.deliver(position, digest, reingest) if verdict is Verdict.ACCEPT or not reingest else None
        if verdict is Verdict.ACCEPT:
            assert reference is Verdict.ACCEPT
        elif not reingest:
            assert reference is not Verdict.ACCEPT, "a new message was dropped"
    assert pruning.counted == keeping.counted
    assert len(set(pruning.counted)) == len(pruning.counted), "a position counted twice"
