"""Grafana's macro and variable expansion, checked against the outputs Grafana's own tests expect
(pkg/tsdb/grafana-postgresql-datasource/macros_test.go) and the SQL data sources' quoting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards.grafana.macros import MacroError, Variable, expand, format_interval, parse_interval

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
TO = FROM + timedelta(minutes=5)


def grafana(sql: str, **options) -> str:
    return expand(sql, time_from=options.pop("time_from", FROM), time_to=options.pop("time_to", TO), **options)


@pytest.mark.parametrize(("sql", "expected"), [
    ("select $__time(time_column)", 'select time_column AS "time"'),
    ("select min($__time(time_column))", 'select min(time_column AS "time")'),
    ("select $__timeEpoch(time_column)", 'select extract(epoch from time_column) as "time"'),
    ("WHERE $__timeFilter(time_column)", "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"),
    ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
    ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
    ("SELECT $__timeGroup(time_column,'5m'), value", 'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value'),
    ("SELECT $__timeGroup(time_column,'5m') as time, value", "SELECT floor(extract(epoch from time_column)/300)*300 as time, value"),
    ("SELECT $__timeGroup(time_column,'5m')", "SELECT floor(extract(epoch from time_column)/300)*300"),
    ("SELECT $__timeGroupAlias(time_column,'5m')", 'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"'),
    ("$__timeGroup(time_column , '5m')", "floor(extract(epoch from time_column)/300)*300"),
    ("$__timeGroup(c, '12d')", "floor(extract(epoch from c)/1.0368e+06)*1.0368e+06"),
    ("$__timeGroup(c, '20ms')", "floor(extract(epoch from c)/0.02)*0.02"),
    ("select $__unixEpochFilter(time)", f"select time >= {int(FROM.timestamp())} AND time <= {int(TO.timestamp())}"),
    ("select $__unixEpochNanoFilter(time)",
     f"select time >= {int(FROM.timestamp()) * 10**9} AND time <= {int(TO.timestamp()) * 10**9}"),
    ("select $__unixEpochNanoFrom()", f"select {int(FROM.timestamp()) * 10**9}"),
    ("SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')", "SELECT floor((time_column+time_adjustment)/300)*300"),
    ("SELECT $__unixEpochGroupAlias(t,'5m')", 'SELECT floor((t)/300)*300 AS "time"'),
    ("select $__unixEpochFrom(), $__unixEpochTo()", f"select {int(FROM.timestamp())}, {int(TO.timestamp())}"),
])
def test_macros_expand_as_grafana_documents(sql, expected):
    assert grafana(sql) == expected


@pytest.mark.parametrize(("sql", "expected"), [
    ("GROUP BY $__timeGroup(time_column,'5m')", "GROUP BY time_bucket('300.000s',time_column)"),
    ("GROUP BY $__timeGroup(time_column , '12d')", "GROUP BY time_bucket('1036800.000s',time_column)"),
    ("GROUP BY $__timeGroup(time_column , '20ms')", "GROUP BY time_bucket('0.020s',time_column)"),
])
def test_time_group_uses_time_bucket_with_timescaledb(sql, expected):
    assert grafana(sql, timescaledb=True) == expected


def test_times_before_1970_and_fractions_print_as_go_does():
    start, end = datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC), datetime(1980, 2, 3, 8, 0, 0, 500_000, tzinfo=UTC)
    assert (grafana("WHERE $__timeFilter(c)", time_from=start, time_to=end)
            == "WHERE c BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'")
    # Go's Unix() counts whole seconds down, also before 1970
    assert grafana("$__unixEpochFilter(c)", time_from=start, time_to=end) == "c >= -312915600 AND c <= 318412800"


def test_interval_macros_come_from_the_query_interval():
    sql = "SELECT $__interval_ms, '$__interval', $__timeGroup(ts, $__interval)"
    assert grafana(sql, interval=timedelta(minutes=10)) == "SELECT 600000, '10m', floor(extract(epoch from ts)/600)*600"
    assert [format_interval(timedelta(seconds=s)) for s in (0.0005, 0.25, 30, 90, 7200, 86400 * 3, 86400 * 400)] == [
        "1ms", "250ms", "30s", "1m", "2h", "3d", "1y"]


def test_variables_are_quoted_as_the_sql_data_sources_do():
    many = Variable(("line-1", "O'Brien line"))
    one_of_many = Variable(("line-1",))
    single = Variable(("it's",), quoted=False)
    variables = {"line": many, "one": one_of_many, "single": single}
    assert grafana("line IN ($line)", variables=variables) == "line IN ('line-1','O''Brien line')"
    assert grafana("line IN (${one})", variables=variables) == "line IN ('line-1')"
    assert grafana("x = '$single'", variables=variables) == "x = 'it''s'"
    assert grafana("[[line]]|${line:csv}|${line:raw}", variables=variables) == (
        "'line-1','O''Brien line'|line-1,O'Brien line|line-1,O'Brien line")
    assert grafana("${single:sqlstring}", variables=variables) == "'it''s'"
    assert grafana("${line:singlequote}", variables=variables) == "'line-1','O\\'Brien line'"
    assert grafana("$unknown stays, $__timeFrom()", variables=variables) == "$unknown stays, '2018-04-12T18:00:00Z'"
    assert grafana("$__from-$__to") == f"{int(FROM.timestamp()) * 1000}-{int(TO.timestamp()) * 1000}"


def test_what_grafana_refuses_is_refused():
    with pytest.raises(MacroError, match="unknown macro"):
        grafana("SELECT $__nonsense(x)")
    with pytest.raises(MacroError, match="needs time column and interval"):
        grafana("SELECT $__timeGroup(x)")
    with pytest.raises(MacroError, match="error parsing interval"):
        grafana("SELECT $__timeGroup(x, 'soon')")
    with pytest.raises(MacroError, match="missing time column"):
        grafana("WHERE $__timeFilter()")
    with pytest.raises(MacroError, match="unsupported variable format"):
        grafana("${line:json}", variables={"line": Variable(("a",))})
    with pytest.raises(ValueError, match="timezone-aware"):
        expand("SELECT 1", time_from=datetime(2020, 1, 1), time_to=TO)


def test_intervals_parse_like_grafana():
    assert [parse_interval(text) for text in ("5m", "'1h'", "2d", "1w", "1h30m", "20ms", "1.5s")] == [
        300, 3600, 172800, 604800, 5400, Decimal("0.02"), Decimal("1.5")]


instants = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


@given(instants, instants)
def test_time_filter_bounds_read_back_as_the_same_instants(first, second):
    start, end = sorted((first, second))
    expanded = grafana("$__timeFilter(c)", time_from=start, time_to=end)
    low, high = expanded.removeprefix("c BETWEEN ").split(" AND ")
    assert (datetime.fromisoformat(low.strip("'")), datetime.fromisoformat(high.strip("'"))) == (start, end)


@given(st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(days=3000)))
def test_interval_text_never_exceeds_the_interval_and_is_stable(interval):
    text = format_interval(interval)
    if not text.endswith("y"):
        assert timedelta(seconds=float(parse_interval(text))) <= interval
        assert format_interval(timedelta(seconds=float(parse_interval(text)))) == text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
                min_size=1, max_size=5))
def test_quoted_values_reach_postgresql_unchanged(postgres_server_url, values):
    variables = {"v": Variable(tuple(values))}
    with psycopg.connect(postgres_server_url) as connection:
        for sql in ("SELECT ARRAY[$v]::text[]", "SELECT ARRAY[${v:sqlstring}]::text[]"):
            assert connection.execute(grafana(sql, variables=variables)).fetchone()[0] == values
