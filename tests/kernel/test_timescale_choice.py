"""Which schema `mes db upgrade` makes: TimescaleDB only where the server can create the extension."""

from kernel.db.migrations.ddl import timescale_choice


def test_timescale_where_it_is_installed_and_preloaded():
    assert timescale_choice(True, "timescaledb") == (True, None)
    assert timescale_choice(True, 'pg_stat_statements, "timescaledb"') == (True, None)


def test_plain_postgresql_where_it_is_not_installed():
    assert timescale_choice(False, "") == (False, None)
    assert timescale_choice(False, "timescaledb") == (False, None)


def test_installed_but_not_preloaded_falls_back_to_plain_postgresql_and_says_what_to_set():
    use, warning = timescale_choice(True, "pg_stat_statements")
    assert not use
    assert "shared_preload_libraries = 'timescaledb'" in warning and "restart" in warning
