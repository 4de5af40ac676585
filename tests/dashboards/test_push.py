"""`mes dashboards push` against a stand-in of Grafana's HTTP API (no Grafana server runs here)."""

from __future__ import annotations

import copy

import pytest
from grafana_client import GrafanaApi
from typer.testing import CliRunner

from dashboards.grafana.boards import every_board as boards
from dashboards.cli import dashboards_app
from dashboards.grafana.panels import DATASOURCE_TYPE, DATASOURCE_UID, FOLDER_UID
from dashboards.grafana.push import datasource_for, push
from dashboards.grafana.system import PROMETHEUS_UID
from tests.dashboards.fake_grafana import FakeGrafana

DATABASE_URL = "postgresql://grafana_reader:s3cret@db.plant.local:5433/mes?sslmode=require"
UIDS = {"mes-line", "mes-plant", "mes-planner", "mes-inventory", "mes-system"}


@pytest.fixture
def grafana():
    with FakeGrafana() as fake:
        yield fake


def run_push(grafana: FakeGrafana, *extra: str):
    arguments = ["push", "--grafana-url", grafana.url, "--api-key", "glsa_token", "--database-url", DATABASE_URL, *extra]
    return CliRunner().invoke(dashboards_app, arguments)


def api(grafana: FakeGrafana) -> GrafanaApi:
    return GrafanaApi.from_url(grafana.url, credential="glsa_token")


def test_first_push_creates_everything_and_the_second_writes_nothing(grafana):
    first = run_push(grafana)
    assert first.exit_code == 0, first.output
    assert first.output.count(": created") == 2 + len(UIDS)
    assert sorted((r.method, r.path) for r in grafana.writes()) == sorted(
        [("POST", "/api/datasources"), ("POST", "/api/folders")] + [("POST", "/api/dashboards/db")] * len(UIDS))
    assert set(grafana.dashboards) == UIDS
    for board in boards():
        saved = grafana.dashboards[board["uid"]]
        assert saved["folderUid"] == FOLDER_UID
        assert {k: v for k, v in saved["dashboard"].items() if k not in ("id", "version")} == board
        assert saved["dashboard"]["version"] == 1
    source = grafana.datasources[DATASOURCE_UID]
    assert source["type"] == DATASOURCE_TYPE and source["url"] == "db.plant.local:5433"
    assert source["user"] == "grafana_reader" and source["secure"] == {"password": "s3cret"}
    assert source["jsonData"]["database"] == "mes" and source["jsonData"]["sslmode"] == "require"

    writes_before = len(grafana.writes())
    second = run_push(grafana)
    assert second.exit_code == 0, second.output
    assert len(grafana.writes()) == writes_before, "a second push must not write anything"
    lines = second.output.strip().splitlines()
    assert len(lines) == 2 + len(UIDS) and all(line.endswith(": unchanged") for line in lines), second.output


def test_a_prometheus_url_also_installs_the_data_source_the_system_board_reads(grafana):
    result = run_push(grafana, "--prometheus-url", "http://prometheus.plant.local:9090")
    assert result.exit_code == 0, result.output
    source = grafana.datasources[PROMETHEUS_UID]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus.plant.local:9090"
    system = grafana.dashboards["mes-system"]["dashboard"]
    assert {target["datasource"]["uid"] for panel in system["panels"] for target in panel.get("targets", [])} == {PROMETHEUS_UID}
    again = run_push(grafana, "--prometheus-url", "http://prometheus.plant.local:9090")
    assert again.output.count(": unchanged") == 3 + len(UIDS), again.output


def test_a_changed_board_is_updated_by_uid_not_duplicated(grafana):
    source = datasource_for(DATABASE_URL)
    push(api(grafana), source, boards())
    first_id = grafana.dashboards["mes-line"]["dashboard"]["id"]
    changed = copy.deepcopy(boards())
    line = next(board for board in changed if board["uid"] == "mes-line")
    line["panels"] = line["panels"][:-1]
    line["title"] = "Open MES · Line (trimmed)"
    before = len(grafana.writes())

    outcomes = {outcome.uid: outcome.action for outcome in push(api(grafana), source, changed)}

    assert outcomes == {DATASOURCE_UID: "unchanged", FOLDER_UID: "unchanged", "mes-line": "updated",
                        "mes-plant": "unchanged", "mes-planner": "unchanged", "mes-inventory": "unchanged",
                        "mes-system": "unchanged"}
    assert [(r.method, r.path) for r in grafana.writes()[before:]] == [("POST", "/api/dashboards/db")]
    assert set(grafana.dashboards) == UIDS
    saved = grafana.dashboards["mes-line"]["dashboard"]
    assert (saved["id"], saved["version"], saved["title"]) == (first_id, 2, "Open MES · Line (trimmed)")
    assert len(saved["panels"]) == len(line["panels"])


def test_a_moved_database_updates_the_data_source_in_place(grafana):
    push(api(grafana), datasource_for(DATABASE_URL), boards())
    before = len(grafana.writes())

    moved = datasource_for(DATABASE_URL.replace("db.plant.local:5433", "db2.plant.local:5432"))
    outcomes = push(api(grafana), moved, boards())

    assert [(o.kind, o.action) for o in outcomes if o.action != "unchanged"] == [("datasource", "updated")]
    assert [(r.method, r.path) for r in grafana.writes()[before:]] == [("PUT", f"/api/datasources/uid/{DATASOURCE_UID}")]
    assert grafana.datasources[DATASOURCE_UID]["url"] == "db2.plant.local:5432"
    assert grafana.datasources[DATASOURCE_UID]["version"] == 2


def test_a_refusal_exits_1_and_says_so(grafana):
    result = CliRunner().invoke(dashboards_app, ["push", "--grafana-url", grafana.url, "--database-url", DATABASE_URL])
    assert result.exit_code == 1
    assert "refused" in result.output and "Unauthorized" in result.output
    assert grafana.writes() == []


def test_the_datasource_follows_the_database_url():
    socket = datasource_for("postgresql://postgres@/mes_demo?host=%2Ftmp%2Fpg&port=5544")
    assert socket["url"] == "/tmp/pg:5544" and socket["user"] == "postgres" and "secureJsonData" not in socket
    assert socket["jsonData"]["database"] == "mes_demo" and socket["jsonData"]["sslmode"] == "disable"
    with pytest.raises(ValueError, match="no database"):
        datasource_for("postgresql://u:p@host:5432/")
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        datasource_for("mysql://u:p@host/mes")
