"""Which report of a machine's connection is newer (core.rules.connections): worked cases, then a
property over arrival order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.rules.connections import Report, supersedes

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_nothing_known_yet_takes_any_report():
    assert supersedes(Report("e1", None, None, at(0)), None)


def test_a_later_run_of_the_same_edge_wins_whatever_the_clocks_say():
    stored = Report("e1", 2, at(100), at(100))
    assert supersedes(Report("e1", 3, at(0), at(50)), stored), "restarted with its clock set back, received late"
    assert not supersedes(Report("e1", 1, at(200), at(200)), stored), "the previous run's status, redelivered"


def test_within_a_run_the_edges_stamp_decides_not_the_arrival():
    stored = Report("e1", 2, at(100), at(100))
    assert not supersedes(Report("e1", 2, at(99), at(101)), stored)
    assert supersedes(Report("e1", 2, at(100), at(101)), stored), "the same status again: its counts may have grown"


def test_without_epoch_or_stamp_and_across_edges_the_later_receipt_wins():
    assert supersedes(Report("e1", None, None, at(2)), Report("e1", 2, at(100), at(1)))
    assert not supersedes(Report("e1", 2, None, at(0)), Report("e1", 2, at(100), at(1)))
    moved = Report("e2", 1, at(0), at(5))  # the plant file moved the machine to another edge
    assert supersedes(moved, Report("e1", 7, at(100), at(4)))
    assert not supersedes(moved, Report("e1", 7, at(100), at(6)))


@given(st.permutations([(epoch, stamp) for epoch in (1, 2, 3) for stamp in (0, 10, 20)]))
def test_whatever_the_arrival_order_the_edges_newest_report_is_kept(arrival):
    kept: Report | None = None
    for received, (epoch, stamp) in enumerate(arrival):
        report = Report("e1", epoch, at(stamp), at(1000 + received))
        if supersedes(report, kept):
            kept = report
    assert kept is not None and (kept.epoch, kept.reported_at) == (3, at(20))
