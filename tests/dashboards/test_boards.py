"""The boards as Grafana JSON: stable uids, one data source by uid, rollups only, a sound layout, and the
committed provisioning files equal to what the builders produce."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dashboards.grafana.boards import boards, every_board
from dashboards.cli import dashboards_app
from dashboards.grafana.panels import (
    DATASOURCE,
    DATASOURCE_NAME,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FOLDER_TITLE,
    FOLDER_UID,
    GRID_WIDTH,
    board_json,
    panels_of,
)
from dashboards.grafana.system import PROMETHEUS, PROMETHEUS_NAME, PROMETHEUS_TYPE, PROMETHEUS_UID, system_board

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
BOARDS = boards()
EVERY_BOARD = every_board()


def test_the_boards_keep_their_uids_and_titles():
    assert [board["uid"] for board in EVERY_BOARD] == ["mes-plant", "mes-line", "mes-planner", "mes-inventory", "mes-system"]
    assert len({board["title"] for board in EVERY_BOARD}) == len(EVERY_BOARD)
    assert EVERY_BOARD[-1]["title"] == "Open MES · System health"


def test_the_system_board_reads_only_prometheus_by_uid():
    for _, panel in panels_of(system_board()):
        assert panel["datasource"] == PROMETHEUS and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == PROMETHEUS, panel["title"]
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr


@pytest.mark.parametrize("board", BOARDS, ids=lambda board: board["uid"])
def test_every_query_uses_the_mes_datasource_by_uid_and_never_raw_samples(board):
    queries = [variable["query"] for variable in board["templating"]["list"]]
    assert all(variable["datasource"] == DATASOURCE for variable in board["templating"]["list"])
    for _, panel in panels_of(board):
        assert panel["datasource"] == DATASOURCE
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["rawQuery"] is True
            queries.append(target["rawSql"])
    for sql in queries:
        assert not re.search(r"\bsamples\b", sql), f"reads raw samples:\n{sql}"


@pytest.mark.parametrize("board", EVERY_BOARD, ids=lambda board: board["uid"])
def test_panels_are_numbered_once_and_laid_out_without_overlap(board):
    ids = [item["id"] for item in board["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for item in board["panels"]:
        grid = item["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= GRID_WIDTH
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{item['title']} overlaps another panel"
        taken |= cells


def test_the_line_board_repeats_one_section_per_line_and_filters_by_site_line_machine():
    line = next(board for board in BOARDS if board["uid"] == "mes-line")
    assert [variable["name"] for variable in line["templating"]["list"]] == ["site", "line", "machine"]
    assert all("FROM machines" in variable["query"] for variable in line["templating"]["list"])
    rows = [item for item in line["panels"] if item["type"] == "row"]
    assert [row.get("repeat") for row in rows] == ["line"]
    for _, panel in panels_of(line):
        assert "($line)" in panel["targets"][0]["rawSql"], f"{panel['title']} ignores the line of its section"


def test_committed_dashboard_files_are_the_builders_output():
    committed = {path.name: path.read_text(encoding="utf-8") for path in (DEPLOY / "dashboards").glob("*.json")}
    assert committed == {f"{board['uid']}.json": board_json(board) for board in EVERY_BOARD}, (
        "deploy/grafana/dashboards is stale: run `mes dashboards export deploy/grafana/dashboards`")


def test_export_writes_one_file_per_board(tmp_path):
    result = CliRunner().invoke(dashboards_app, ["export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(f"{board['uid']}.json" for board in EVERY_BOARD)


def test_provisioning_files_name_the_same_datasource_and_folder():
    sources = yaml.safe_load((DEPLOY / "provisioning" / "datasources" / "open-mes.yaml").read_text())["datasources"]
    assert [(s["uid"], s["type"], s["name"]) for s in sources] == [(DATASOURCE_UID, DATASOURCE_TYPE, DATASOURCE_NAME),
                                                                   (PROMETHEUS_UID, PROMETHEUS_TYPE, PROMETHEUS_NAME)]
    providers = yaml.safe_load((DEPLOY / "provisioning" / "dashboards" / "open-mes.yaml").read_text())["providers"]
    assert [(p["folderUid"], p["folder"], p["type"]) for p in providers] == [(FOLDER_UID, FOLDER_TITLE, "file")]
