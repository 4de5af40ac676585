"""Edge leases on a real PostgreSQL: one owner per edge, the live cores seen, the batch guard as a fence."""

from __future__ import annotations

import threading

import psycopg
import pytest

from core.ingest.partition import GUARD_NAMESPACE, EdgeLeases, LeaseLost
from kernel.db.models import make_engine
from tests.support.processes import wait_until


@pytest.fixture
def two_cores(database_url):
    first, second = EdgeLeases(database_url), EdgeLeases(database_url)
    first.open()
    second.open()
    yield first, second
    first.close()
    second.close()


def test_an_edge_has_one_owner_and_every_core_sees_the_same_picture(two_cores):
    first, second = two_cores
    assert first.claim("e1") and second.claim("e2")
    assert not second.claim("e1")
    for core in two_cores:
        assert core.picture(["e1", "e2", "e3"]) == ({first.me, second.me}, {"e1": first.me, "e2": second.me})
    first.release("e1")
    assert second.claim("e1")


def test_a_core_whose_session_ends_leaves_its_edges_free(two_cores):
    first, second = two_cores
    assert first.claim("e1")
    first.close()  # as a kill -9 does: the session ends
    # the server ends the backend a moment after the client goes; until then it is still a core holding e1
    wait_until(lambda: second.picture(["e1"]) == ({second.me}, {}), 10, "the closed core's session gone, e1 free")
    assert second.claim("e1")


def test_the_guard_lets_only_the_leaseholder_write(database_url, two_cores):
    first, second = two_cores
    assert first.claim("e1")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            first.guard(connection, {"e1"})
        with pytest.raises(LeaseLost), engine.begin() as connection:
            second.guard(connection, {"e1"})
        with engine.begin() as connection:
            first.guard(connection, set())  # a batch of no edge: nothing to fence
    finally:
        engine.dispose()


def test_a_new_owner_reads_an_edge_only_after_the_old_owners_last_transaction_ended(database_url, two_cores):
    """The old owner's lease session ends while its batch's transaction is still open (a kill -9 between the two
    connections' ends): the new owner's reload waits on the edge's transaction lock until that batch ends."""
    old, new = two_cores
    assert old.claim("e1")
    engine = make_engine(database_url)
    in_flight = engine.connect()
    reloaded = threading.Event()
    try:
        in_flight.begin()
        old.guard(in_flight, {"e1"})
        old.close()
        assert new.claim("e1")

        def reload() -> None:
            with engine.begin() as connection:
                new.guard(connection, {"e1"})
            reloaded.set()

        thread = threading.Thread(target=reload, daemon=True)
        thread.start()
        wait_until(lambda: waiting_on_advisory_locks(database_url) == 1, 20, "the new owner waiting for the old batch")
        assert not reloaded.is_set()
        in_flight.rollback()
        thread.join(20)
        assert reloaded.is_set()
    finally:
        in_flight.close()
        engine.dispose()


def waiting_on_advisory_locks(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::int = %s AND NOT granted",
                            (GUARD_NAMESPACE,)).fetchone()[0]
