"""Waiting for a NOTIFY (kernel/db/notify.py) on a real PostgreSQL."""

from __future__ import annotations

import psycopg

from kernel.db.notify import Notifications


def test_a_wait_returns_at_a_notification_committed_after_listening_and_times_out_without(database_url):
    notifications = Notifications(database_url, "planning_marks")
    try:
        notifications.listen()
        assert notifications.wait(0.05) is False
        with psycopg.connect(database_url) as conn:  # committed at the end of the block
            conn.execute("SELECT pg_notify('planning_marks', '')")
            conn.execute("SELECT pg_notify('planning_marks', 'another')")
        assert notifications.wait(30) is True
        assert notifications.wait(0.05) is False, "every pending notification was taken by the first wait"
    finally:
        notifications.close()


def test_an_unreachable_database_makes_a_wait_take_its_timeout_and_say_to_look():
    notifications = Notifications("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", "planning_marks")
    assert notifications.wait(0.1) is True
    notifications.close()
