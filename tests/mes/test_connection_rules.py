"""What a machine's connection shows (mes.rules.connections): the edge's report, unreachable while the
edge is offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mes.rules.connections import EdgeNow, ReportedConnection, shown_connection

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WRONG_NODE = ReportedConnection("bad_config", "nsu=urn:plc;i=9999: BadNodeIdUnknown", T0, {"bad_config": 2}, "e1", 4, T0)


def test_while_the_edge_is_online_or_unheard_of_the_report_shows_as_it_is():
    for edge in (EdgeNow(True, 4, T0), None):
        shown = shown_connection(WRONG_NODE, edge)
        assert (shown.status, shown.detail, shown.since, shown.edge_online) == ("bad_config", WRONG_NODE.detail, T0, True)
        assert shown.unusable == {"bad_config": 2} and shown.reported_status == "bad_config"


def test_an_offline_edge_leaves_its_machines_unreachable_never_ok():
    gone = T0 + timedelta(minutes=5)
    ok = WRONG_NODE._replace(status="ok", detail="")
    for edge in (EdgeNow(False, 4, gone), EdgeNow(False, 5, gone), EdgeNow(False, None, gone)):
        shown = shown_connection(ok, edge)
        assert (shown.status, shown.since, shown.edge_online, shown.reported_status) == ("unreachable", gone, False, "ok")
        assert shown.detail == "edge e1 offline; it last reported ok"
    assert shown_connection(WRONG_NODE, EdgeNow(False, 4, gone)).detail == (
        "edge e1 offline; it last reported bad_config: nsu=urn:plc;i=9999: BadNodeIdUnknown")


def test_a_late_offline_status_of_an_earlier_run_hides_nothing():
    shown = shown_connection(WRONG_NODE, EdgeNow(False, 3, T0 + timedelta(minutes=5)))
    assert (shown.status, shown.edge_online) == ("bad_config", True)
