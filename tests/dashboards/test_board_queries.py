"""Every panel query of every board, run as Grafana would run it against a database the demo plant
filled: macros and variables expanded as Grafana expands them, the result's shape checked against what
the panel type needs. The boards are walked, so a new panel is covered without touching this file."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.postgres import types as postgres_types
from sqlalchemy.orm import Session

from core.queries import recorded_totals
from mes.rules.states import Contact, StateChange, derive_intervals
from dashboards.grafana.boards import STATES, boards
from dashboards.grafana.panels import TABLE, TIME_SERIES, panels_of
from dashboards.grafana.macros import Variable, expand
from kernel.embedded.postgres import create_database, drop_database
from kernel.db.models import make_engine
from kernel.plant import DEMO_PLANT
from kernel.signals import MachineState
from mes.rules.oee import OeeTotals, measure
from mes.services.connections import machine_connections
from mes.services.rollups import refresh
from tests.e2e.conftest import plant_on_free_ports, write_plant

pytestmark = pytest.mark.slow

NUMBERS = {"int2", "int4", "int8", "numeric", "float4", "float8"}
TEXTS = {"text", "varchar", "bpchar", "name"}
RANGE = timedelta(hours=6)  # Grafana's "Last 6 hours"
INTERVAL = timedelta(seconds=30)  # what Grafana derives for 6 h on a panel ~700 px wide
# Panels that must show something after a demo run: an empty result would prove little.
KEY_PANELS = {
    "mes-line": {"Machine states", "OEE", "Good and scrap per hour against target", "Running work orders", "OEE per hour",
                 "Downtime pareto", "Energy per good unit"},
    "mes-plant": {"Plant OEE", "Output", "Lines", "Machines now", "Good per hour by line", "Downtime by line"},
    "mes-planner": {"Work orders", "Completion of open orders", "Critical components", "Finished goods in stock"},
    "mes-inventory": {"Inventory value", "Inventory value over time", "Value by item", "Aging", "Turnover"},
}
BOARDS = boards()
PANELS = [(board, row, panel) for board in BOARDS for row, panel in panels_of(board)]


@pytest.fixture(scope="module")
def demo_database(postgres_server_url, mqtt_url, tmp_path_factory):
    """One database the demo plant produced into for 8 s, with its rollups refreshed."""
    name = f"t_dashboards_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    directory = tmp_path_factory.mktemp("dashboards-demo")
    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), directory, source=DEMO_PLANT)
    env = {**os.environ, "MES_DATABASE_URL": url, "MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file),
           "MES_DATA_DIR": str(directory / "var")}
    result = subprocess.run([sys.executable, "-m", "app", "demo", "--duration", "8", "--no-live"], env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    engine = make_engine(url)
    with Session(engine) as session:
        refresh(session, datetime.now(UTC) - RANGE)
        session.commit()
    engine.dispose()
    try:
        yield url
    finally:
        drop_database(postgres_server_url, name)


@pytest.fixture(scope="module")
def connection(demo_database):
    with psycopg.connect(demo_database, autocommit=True) as connection:
        yield connection


@pytest.mark.parametrize(("board", "row", "panel"), PANELS, ids=[f"{b['uid']}/{p['title']}" for b, _, p in PANELS])
def test_every_panel_query_runs_and_has_the_shape_its_panel_needs(connection, board, row, panel):
    now = datetime.now(UTC)
    variables = chosen_variables(connection, board, now)
    repeat = row.get("repeat") if row else None
    # A repeated row runs its panels once per value of its variable, each with that one value.
    scopes = [{repeat: Variable((value,))} for value in variables[repeat].values] if repeat else [{}]
    for scope in scopes:
        for query in panel["targets"]:
            sql = expand(query["rawSql"], time_from=now - RANGE, time_to=now, interval=INTERVAL, variables=variables | scope)
            assert "$" not in sql, f"unexpanded reference left in:\n{sql}"
            cursor = connection.execute(sql)
            columns = [(column.name, postgres_types.get(column.type_code).name) for column in cursor.description]
            rows = cursor.fetchall()
            check_shape(panel, query["format"], columns, rows)
            if panel["title"] in KEY_PANELS.get(board["uid"], ()):
                numbers = [index for index, (_, type_name) in enumerate(columns) if type_name in NUMBERS]
                assert any(row[index] is not None for row in rows for index in numbers), (
                    f"{panel['title']} {scope} shows no number on the demo data")


def test_the_output_panel_shows_what_was_recorded(connection):
    plant = next(board for board in BOARDS if board["uid"] == "mes-plant")
    output = next(panel for _, panel in panels_of(plant) if panel["title"] == "Output")
    now = datetime.now(UTC)
    sql = expand(output["targets"][0]["rawSql"], time_from=now - RANGE, time_to=now, variables=chosen_variables(connection, plant, now))
    good, scrap, _ = connection.execute(sql).fetchone()
    recorded = recorded_totals(connection).values()
    assert (good, scrap) == (sum(m["good"] for m in recorded), sum(m["scrap"] for m in recorded)) != (0, 0)


def test_the_machines_panel_shows_each_connection_as_machines_does(connection, demo_database):
    plant = next(board for board in BOARDS if board["uid"] == "mes-plant")
    panel = next(panel for _, panel in panels_of(plant) if panel["title"] == "Machines now")
    now = datetime.now(UTC)
    sql = expand(panel["targets"][0]["rawSql"], time_from=now - RANGE, time_to=now, variables=chosen_variables(connection, plant, now))
    cursor = connection.execute(sql)
    names = [column.name for column in cursor.description]
    shown_by_panel = {row["machine"]: (row["connection"], row["connection detail"]) for row in (dict(zip(names, r, strict=True)) for r in cursor)}
    engine = make_engine(demo_database)
    with Session(engine) as session:
        shown = {machine: (c.status, c.detail) for machine, c in machine_connections(session).items()}
    engine.dispose()
    assert shown, "the demo's edge reported its machines' connections"
    assert shown_by_panel == {machine: shown.get(machine, (None, None)) for machine in shown_by_panel}


def test_the_oee_panel_agrees_with_the_oee_rule(connection):
    plant = next(board for board in BOARDS if board["uid"] == "mes-plant")
    panel = next(panel for _, panel in panels_of(plant) if panel["title"] == "Plant OEE")
    now = datetime.now(UTC)
    sql = expand(panel["targets"][0]["rawSql"], time_from=now - RANGE, time_to=now, variables=chosen_variables(connection, plant, now))
    shown = connection.execute(sql).fetchone()
    run, stopped, ideal, total, good = connection.execute(
        "SELECT sum(run_s), sum(stopped_s), sum(ideal_s), sum(total), sum(good) FROM oee_hourly").fetchone()
    rule = measure(OeeTotals(run_time=timedelta(seconds=float(run)), stopped_time=timedelta(seconds=float(stopped)),
                             ideal_seconds=ideal, total=int(total), good=int(good)))
    expected = (rule.availability, rule.performance, rule.quality, rule.oee)
    assert None not in expected
    assert all(abs(got - want) < Decimal("1e-9") for got, want in zip(shown, expected, strict=True)), (shown, expected)


# (state, fault) the machine goes to at each instant, and whether its sample listed the fault before the state
reports = st.lists(st.tuples(st.sampled_from(sorted(MachineState.NAMES)), st.sampled_from([0, 301, 302]), st.booleans()),
                   min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(reports)
def test_the_state_timeline_resolves_a_sample_s_two_rows_as_the_state_rule_does(connection, steps):
    """The rows the ingest writes when a sample changes both codes (one row per signal, in the sample's
    order) read back as the state rule reads them; the one case SQL cannot resolve without recursion,
    two such instants in a row swapping the same two states, shows unknown rather than a wrong state."""
    start = datetime(2030, 1, 7, 8, tzinfo=UTC)
    rows, instants, before = [], [], (None, None)
    for index, (state, fault, fault_first) in enumerate(steps):
        ts = start + timedelta(seconds=10 * index)
        if (state, fault) == before:
            continue
        signals = [("fault", fault), ("state", state)] if fault_first else [("state", state), ("fault", fault)]
        codes = before
        for signal, value in signals:
            updated = (value, codes[1]) if signal == "state" else (codes[0], value)
            if updated != codes:
                rows.append(StateChange(ts, *updated))
            codes = updated
        before = codes
        instants.append(ts)
    until = instants[-1] + timedelta(seconds=1)
    rule = derive_intervals("prop-m", rows, [Contact(ts, True) for ts in instants], until, timedelta(days=1))
    names = {name: code for code, name in MachineState.NAMES.items()}
    expected = [names.get(next(i.state for i in rule if i.start <= ts < i.end)) for ts in instants]

    line = next(board for board in BOARDS if board["uid"] == "mes-line")
    timeline = next(panel for _, panel in panels_of(line) if panel["type"] == "state-timeline")
    variables = {"site": Variable(("prop-site",)), "line": Variable(("prop-line",)), "machine": Variable(("prop-m",))}
    sql = expand(timeline["targets"][0]["rawSql"], time_from=start - timedelta(hours=1), time_to=until, variables=variables)
    with connection.transaction(force_rollback=True):
        connection.execute("INSERT INTO machines (machine_id, site, area, line, protocol, ideal_cycle_s) "
                           "VALUES ('prop-m', 'prop-site', 'a', 'prop-line', 'opcua', 1)")
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO machine_states VALUES ('prop-m', %s, %s, %s, 'e', 1, 1)", rows)
        shown = [state for _, _, state in connection.execute(sql).fetchall()]

    two_row_instants = {row.ts for row in rows if sum(other.ts == row.ts for other in rows) > 1}
    for index, (got, want) in enumerate(zip(shown, expected, strict=True)):
        after_two_rows = index > 0 and instants[index - 1] in two_row_instants and instants[index] in two_row_instants
        assert got == want or (got is None and after_two_rows), (index, shown, expected, rows)


def chosen_variables(connection, board, now) -> dict[str, Variable]:
    """Each variable set to "All" of its options, options queried in order as Grafana does (a variable
    may depend on the ones before it)."""
    chosen: dict[str, Variable] = {}
    for variable in board["templating"]["list"]:
        sql = expand(variable["query"], time_from=now - RANGE, time_to=now, variables=chosen)
        options = tuple(str(value) for value, *_ in connection.execute(sql).fetchall())
        assert options, f"variable {variable['name']} of {board['uid']} has no options on the demo data"
        chosen[variable["name"]] = Variable(options, quoted=variable["multi"] or variable["includeAll"])
    return chosen


def check_shape(panel: dict, result_format: str, columns: list[tuple[str, str]], rows: list[tuple]) -> None:
    kind = panel["type"]
    expected_format = TIME_SERIES if kind in ("timeseries", "state-timeline") else TABLE
    assert result_format == expected_format, f"{kind} panel {panel['title']!r} needs format {expected_format}"
    names = [name for name, _ in columns]
    assert len(set(names)) == len(names), f"duplicate column names in {panel['title']}: {names}"
    if kind in ("timeseries", "state-timeline"):
        check_time_series(panel, columns, rows)
    elif kind in ("stat", "gauge", "bargauge"):
        assert len(rows) == 1, f"{panel['title']}: a {kind} wants one row, got {len(rows)}"
        assert all(type_name in NUMBERS for _, type_name in columns), f"{panel['title']}: {columns} are not all numbers"
    elif kind == "table":
        organize = next(t for t in panel["transformations"] if t["id"] == "organize")
        assert names == list(organize["options"]["indexByName"]), f"{panel['title']}: columns {names}"
        for override in panel["fieldConfig"]["overrides"]:
            if override["matcher"]["id"] == "byName":
                assert override["matcher"]["options"] in names, f"{panel['title']}: override of a missing column"
    elif kind == "barchart":
        assert columns[0][1] in TEXTS, f"{panel['title']}: the first column must be the category text"
        assert len(columns) > 1 and all(type_name in NUMBERS for _, type_name in columns[1:]), columns
    else:
        pytest.fail(f"no shape rule for panel type {kind}: add one here")
    for row in rows:
        for (name, type_name), value in zip(columns, row, strict=True):
            if type_name in NUMBERS:
                assert value is None or isinstance(value, int | Decimal | float), (name, value)


def check_time_series(panel: dict, columns: list[tuple[str, str]], rows: list[tuple]) -> None:
    names = [name for name, _ in columns]
    assert "time" in names and dict(columns)["time"] == "timestamptz", f"{panel['title']}: needs a timestamptz `time` column"
    values = [(name, type_name) for name, type_name in columns if name != "time" and type_name not in TEXTS]
    assert values and all(type_name in NUMBERS for _, type_name in values), f"{panel['title']}: value columns {columns}"
    times = [row[names.index("time")] for row in rows]
    assert times == sorted(times), f"{panel['title']}: time must ascend (Grafana refuses to pivot otherwise)"
    if panel["type"] == "state-timeline":
        codes = {row[names.index(name)] for row in rows for name, _ in values}
        assert codes <= set(STATES) | {None}, f"{panel['title']}: codes without a value mapping: {codes - set(STATES)}"
