"""Grafana dashboard JSON as plain dicts: panels, SQL targets, variables, layout. No I/O.

Every panel reads the one PostgreSQL data source by uid, so a board works unchanged whether it was
pushed through the HTTP API or provisioned from files. Panels are declared without positions;
`dashboard` lays them out left to right in rows of 24 grid units and numbers them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "mes-postgres"
DATASOURCE_NAME = "Open MES PostgreSQL"
DATASOURCE = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
FOLDER_UID = "open-mes"
FOLDER_TITLE = "Open MES"
TAGS = ["open-mes"]
SCHEMA_VERSION = 39
GRID_WIDTH = 24

# Grafana's SQL result formats: time_series needs a `time` column sorted ascending (long results are
# pivoted to one series per label value); table keeps the rows as they are.
TIME_SERIES = "time_series"
TABLE = "table"


def target(sql: str, result_format: str, ref_id: str = "A") -> dict:
    """A raw-SQL query of the MES data source."""
    return {"refId": ref_id, "datasource": DATASOURCE, "editorMode": "code", "format": result_format,
            "rawQuery": True, "rawSql": sql.strip()}


def panel(kind: str, title: str, sql: str, result_format: str, *, width: int, height: int, description: str = "",
          defaults: Mapping | None = None, overrides: Sequence[dict] = (), options: Mapping | None = None,
          transformations: Sequence[dict] = ()) -> dict:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(sql, result_format)],
        "fieldConfig": {"defaults": dict(defaults or {}), "overrides": list(overrides)},
        "options": dict(options or {}),
        "transformations": list(transformations),
        "gridPos": {"h": height, "w": width},
    }


def timeseries(title: str, sql: str, *, unit: str = "short", bars: bool = False, description: str = "",
               width: int = 12, height: int = 8, overrides: Sequence[dict] = ()) -> dict:
    """A time series: the query returns `time` ascending, numeric value columns, optional string labels."""
    style = {"drawStyle": "bars", "fillOpacity": 80, "barAlignment": -1} if bars else {"drawStyle": "line", "fillOpacity": 10}
    return panel("timeseries", title, sql, TIME_SERIES, width=width, height=height, description=description,
                 defaults={"unit": unit, "custom": {**style, "lineWidth": 1, "spanNulls": False}}, overrides=overrides,
                 options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                          "tooltip": {"mode": "multi", "sort": "none"}})


def stat(title: str, sql: str, *, unit: str = "short", decimals: int | None = None, description: str = "",
         width: int = 6, height: int = 4, thresholds: Sequence[tuple[float | None, str]] = ((None, "blue"),)) -> dict:
    """One row of numbers, one big value per column."""
    defaults = {"unit": unit, "thresholds": _thresholds(thresholds), "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return panel("stat", title, sql, TABLE, width=width, height=height, description=description, defaults=defaults,
                 options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "none", "textMode": "value_and_name",
                          "orientation": "auto", "justifyMode": "auto"})


def table(title: str, sql: str, columns: Sequence[str], *, description: str = "", width: int = 12, height: int = 8,
          overrides: Sequence[dict] = ()) -> dict:
    """A table of the query's rows; `columns` are the query's columns in display order."""
    return panel("table", title, sql, TABLE, width=width, height=height, description=description,
                 defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}}}, overrides=overrides,
                 options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
                 transformations=[{"id": "organize", "options": {
                     "indexByName": {column: index for index, column in enumerate(columns)},
                     "excludeByName": {}, "renameByName": {}}}])


def barchart(title: str, sql: str, *, unit: str = "short", stacked: bool = False, horizontal: bool = True,
             description: str = "", width: int = 12, height: int = 8) -> dict:
    """Bars per category: the query's first column is the (string) category, the others numbers."""
    return panel("barchart", title, sql, TABLE, width=width, height=height, description=description,
                 defaults={"unit": unit, "custom": {"fillOpacity": 80, "lineWidth": 1}},
                 options={"orientation": "horizontal" if horizontal else "vertical", "stacking": "normal" if stacked else "none",
                          "showValue": "auto", "xTickLabelRotation": 0, "barWidth": 0.8, "groupWidth": 0.7,
                          "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}})


def state_timeline(title: str, sql: str, states: Mapping[int, tuple[str, str]], *, unknown: str = "unknown",
                   description: str = "", width: int = 24, height: int = 6) -> dict:
    """Coloured bands per series: the query returns `time` ascending and numeric codes, mapped to
    names and colours here (`states`: code → (name, colour); NULL → `unknown`)."""
    mapping = {str(code): {"text": name, "color": colour, "index": index} for index, (code, (name, colour)) in enumerate(states.items())}
    return panel("state-timeline", title, sql, TIME_SERIES, width=width, height=height, description=description,
                 defaults={"color": {"mode": "thresholds"}, "thresholds": _thresholds(((None, "text"),)),
                           "mappings": [{"type": "value", "options": mapping},
                                        {"type": "special", "options": {"match": "null", "result": {"text": unknown, "color": "text"}}}],
                           "custom": {"fillOpacity": 80, "lineWidth": 0}},
                 options={"mergeValues": True, "showValue": "never", "alignValue": "left", "rowHeight": 0.9,
                          "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}})


def row(title: str, repeat: str | None = None) -> dict:
    """A row header; with `repeat` the row and the panels under it repeat once per value of that variable."""
    header = {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"h": 1, "w": GRID_WIDTH}}
    if repeat:
        header["repeat"] = repeat
    return header


def query_variable(name: str, label: str, sql: str) -> dict:
    """A multi-value variable with "All" (selected at first), its options from a SQL query (first column)."""
    return {"type": "query", "name": name, "label": label, "datasource": DATASOURCE, "query": sql, "definition": sql,
            "refresh": 1, "multi": True, "includeAll": True, "sort": 1, "options": [], "hide": 0,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


def override(matcher: str, name: str, properties: Mapping[str, object]) -> dict:
    """Field properties (e.g. {"unit": "percent", "custom.width": 80}) for the fields a matcher selects
    (`byName` a column, `byRegexp` series names)."""
    return {"matcher": {"id": matcher, "options": name},
            "properties": [{"id": key, "value": value} for key, value in properties.items()]}


def dashboard(uid: str, title: str, description: str, panels: Sequence[dict], variables: Sequence[dict] = (),
              refresh: str = "30s", time_from: str = "now-6h") -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": TAGS, "asDropdown": True, "title": "Open MES boards", "includeVars": False,
                   "keepTime": True}],
        "templating": {"list": list(variables)},
        "panels": list(_laid_out(panels)),
    }


def board_json(board: Mapping) -> str:
    """The board as the JSON file Grafana provisions: stable key order, UTF-8, a final newline."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def panels_of(board: Mapping) -> Iterator[tuple[dict | None, dict]]:
    """Every panel that queries, with the row it sits under (None above the first row)."""
    current_row = None
    for item in board["panels"]:
        if item["type"] == "row":
            current_row = item
            yield from ((current_row, child) for child in item["panels"])
        else:
            yield current_row, item


def _laid_out(panels: Sequence[dict]) -> Iterator[dict]:
    x = y = line_height = 0
    for number, item in enumerate(panels, start=1):
        width, height = item["gridPos"]["w"], item["gridPos"]["h"]
        if item["type"] == "row" or x + width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        yield {**item, "id": number, "gridPos": {"h": height, "w": width, "x": x, "y": y}}
        x, line_height = x + width, max(line_height, height)
        if item["type"] == "row":
            x, y, line_height = 0, y + height, 0


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dict:
    return {"mode": "absolute", "steps": [{"value": value, "color": colour} for value, colour in steps]}
