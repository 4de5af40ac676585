"""The live board: its snapshot (service, at a fixed instant) and its HTTP endpoints, on one seeded database.

Seeded, relative to the instant T0 the module starts at: a 24-hour shift that began at S (a half hour,
2.5 to 3.5 hours before T0), so the board's period is [S, now); an `oee_hourly` rollup row for press-01's
first whole hour H = S + 30 min, and the ingest's rows (states, messages, production) written directly:
  press-01  running from before S, in fault 7 for the last 5 minutes, heard every 10 s up to T0;
            WO-1 (2,000 units) running on it since S: 220 units at S + 10 min, 1,100 in the rolled-up
            hour, 110 eight minutes before T0 (good + scrap)
  press-02  running, last heard 10 minutes before T0: offline
  line-2    never heard of: unknown
Connections: press-01's edge reports a wrong node (bad_config); press-02's was ok when its edge, edge-9,
went offline (unreachable since then); welder-01's was never reported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from mes.rules.states import Category
from core.service import prepare_database
from dashboards.api import board as board_api
from app.api import create_app
from kernel.embedded.postgres import create_database, drop_database
from inventory.models import Item
from kernel.db.models import make_engine
from kernel.plant import DEMO_PLANT, load_plant
from mes.rules.oee import OeeTotals, measure
from mes.rules.shifts import ShiftCalendar, ShiftPattern, Window
from dashboards.rules import board
from dashboards.services import board as board_service
from mes.services import workorders
from mes.services.downtime import ShiftSpec, set_calendar
from tests.support.http import ok
from tests.support.auth import as_admin

RUNNING, FAULT = 1, 3
EVERY = timedelta(seconds=10)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
# press-01's rolled-up hour: 50 min run, 10 min breakdown, 1,100 units at the 0.25 s ideal cycle
ROLLED_UP = OeeTotals(HOUR, timedelta(0), timedelta(0), 50 * MINUTE, 10 * MINUTE, 10 * MINUTE, timedelta(0), 1, 0,
                      Decimal("275"), 1100, 1000, Decimal(100))


@dataclass(frozen=True)
class Plant:
    url: str
    t0: datetime
    start: datetime  # S: the shift's start
    hour: datetime  # H: the rolled-up hour
    press_02_last_heard: datetime


class Ingest:
    """Writes what the core's ingest would, for edge-1."""

    def __init__(self, conn: psycopg.Connection):
        self.conn, self.seq = conn, 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def state(self, machine: str, ts: datetime, state: int, fault: int = 0) -> None:
        self.conn.execute("INSERT INTO machine_states VALUES (%s, %s, %s, %s, 'edge-1', 1, %s)", (machine, ts, state, fault, self._next()))

    def heard(self, machine: str, start: datetime, end: datetime) -> datetime:
        """A message every 10 s in [start, end); the last one's time."""
        times = [start + n * EVERY for n in range((end - start) // EVERY + 1) if start + n * EVERY < end]
        with self.conn.cursor() as cur:
            cur.executemany("INSERT INTO ingested_messages VALUES ('edge-1', 1, %s, %s, %s, false, 1)",
                            [(self._next(), machine, ts) for ts in times])
        return times[-1]

    def made(self, machine: str, end: datetime, good: int, scrap: int, work_order: str) -> None:
        seq = self._next()
        self.conn.execute("INSERT INTO production_intervals VALUES (%s, %s, %s, %s, %s, 10, 'edge-1', 1, %s)",
                          (machine, end - timedelta(seconds=1), end, good, scrap, seq))
        self.conn.execute("INSERT INTO production_attributions VALUES ('edge-1', 1, %s, %s, %s, %s, %s, 10, %s, %s)",
                          (seq, machine, work_order, good, scrap, end - timedelta(seconds=1), end))


def _seed(url: str, t0: datetime) -> Plant:
    start = t0.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2, minutes=30)
    hour = start + timedelta(minutes=30)
    engine = make_engine(url)
    with Session(engine) as session:
        set_calendar(session, "UTC", [ShiftSpec("all day", range(7), start.time(), start.time())])
        session.add(Item(item_id="bracket", name="Bracket", kind="make", uom="pcs"))
        session.commit()
        workorders.create_work_order(session, "WO-1", "bracket", 2000)
        workorders.act(session, "WO-1", "release", now=start - MINUTE)
        workorders.act(session, "WO-1", "start", machine_id="press-01", now=start)
    engine.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        ingest = Ingest(conn)
        for machine in ("press-01", "press-02"):
            ingest.state(machine, start - MINUTE, RUNNING)
        ingest.state("press-01", t0 - 5 * MINUTE, FAULT, 7)
        ingest.heard("press-01", start - MINUTE, t0)
        last_heard = ingest.heard("press-02", start - MINUTE, t0 - 10 * MINUTE)
        ingest.made("press-01", start + 10 * MINUTE, 200, 20, "WO-1")
        ingest.made("press-01", hour + 20 * MINUTE, 1000, 100, "WO-1")
        ingest.made("press-01", t0 - 8 * MINUTE, 100, 10, "WO-1")
        conn.execute("""INSERT INTO oee_hourly VALUES ('press-01', %s, 3600, 0, 0, 3000, 600, 600, 0, 1, 0, 275, 1100, 1000, 100, %s)""",
                     (hour, t0))
        conn.execute("""INSERT INTO machine_connections VALUES
                        ('press-01', 'bad_config', 'ns=2;s=press-01.scrap: BadNodeIdUnknown', %s, '{"bad_status": 3}',
                         'edge-1', 1, %s, %s),
                        ('press-02', 'ok', '', %s, '{}', 'edge-9', 3, %s, %s)""",
                     (t0 - 6 * MINUTE, t0 - MINUTE, t0 - MINUTE, start, t0 - 20 * MINUTE, t0 - 20 * MINUTE))
        conn.execute("INSERT INTO edge_status VALUES ('edge-9', false, 3, '{}', %s)", (t0 - 11 * MINUTE,))
        conn.execute("""INSERT INTO alerts (kind, subject, severity, status, raised_at, detail) VALUES
                        ('machine_down', 'press-01', 'critical', 'active', %s, 'fault for 4 min'),
                        ('stock_shortage', 'steel at line-1-side', 'warning', 'active', %s, 'short 5 kg')""",
                     (t0 - 4 * MINUTE, t0 - 20 * MINUTE))
    return Plant(url, t0, start, hour, last_heard)


@pytest.fixture(scope="module")
def plant(postgres_server_url) -> Plant:
    name = f"t_board_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    prepare_database(url, load_plant(DEMO_PLANT))
    yield _seed(url, datetime.now(UTC))
    drop_database(postgres_server_url, name)


@pytest.fixture(scope="module")
def api(plant) -> TestClient:
    with TestClient(create_app(plant.url)) as client:
        as_admin(client, plant.url)
        yield client


def _tiles(snapshot: board_service.Board) -> dict[str, board_service.Tile]:
    return {tile.machine_id: tile for line in snapshot.lines for tile in line.tiles}


# --- the snapshot at T0 ---------------------------------------------------------------------------------


def test_snapshot_figures_come_from_rollups_live_spans_and_the_ingested_rows(plant):
    engine = make_engine(plant.url)
    with Session(engine) as session:
        snapshot = board_service.snapshot(session, now=plant.t0)
    engine.dispose()
    t0, start, hour = plant.t0, plant.start, plant.hour
    assert snapshot.site == "acme-works" and snapshot.generated_at == t0
    assert snapshot.period == board.Period("shift", "all day", start)
    assert [(line.area, line.line, [tile.machine_id for tile in line.tiles]) for line in snapshot.lines] == [
        ("stamping", "line-1", ["press-01", "press-02"]), ("assembly", "line-2", ["packer-01", "welder-01"])]
    tiles = _tiles(snapshot)

    press = tiles["press-01"]
    assert (press.state, press.category, press.fault_code, press.since) == ("fault", Category.STOPPED, 7, t0 - 5 * MINUTE)
    assert (press.figures.good, press.figures.scrap) == (1300, 130)
    assert press.figures.rate_per_hour == 400  # 100 good in the last 15 minutes
    # live: [S, H) all running, 220 units; [H + 1 h, T0) running, then the 5-minute breakdown, 110 units
    tail = t0 - (hour + HOUR)
    head = OeeTotals(hour - start, run_time=hour - start, ideal_seconds=Decimal("55"), total=220, good=200, energy_wh=Decimal(10))
    last = OeeTotals(tail, run_time=tail - 5 * MINUTE, stopped_time=5 * MINUTE, breakdown_time=5 * MINUTE, failures=1,
                     ideal_seconds=Decimal("27.5"), total=110, good=100, energy_wh=Decimal(10))
    assert press.figures.totals == head + ROLLED_UP + last
    assert press.figures.measures == measure(head + ROLLED_UP + last)
    assert press.figures.measures.quality == Decimal(1300) / Decimal(1430)
    order = press.work_order
    assert (order.work_order_id, order.quantity, order.progress.good, order.progress.percent_complete) == ("WO-1", 2000, 1300, 65)
    assert order.progress.projected_finish == t0 + timedelta(minutes=70)  # 700 left at 100 per 10 minutes
    assert [(alert.kind, alert.subject) for alert in press.alerts] == [("machine_down", "press-01")]

    silent = tiles["press-02"]
    assert (silent.state, silent.category, silent.since) == ("offline", Category.OFFLINE, plant.press_02_last_heard + timedelta(seconds=30))
    assert (silent.figures.good, silent.figures.rate_per_hour, silent.work_order, silent.alerts) == (0, None, None, [])
    unknown = tiles["welder-01"]
    assert (unknown.state, unknown.category, unknown.since, unknown.figures.measures.oee) == ("unknown", Category.OFFLINE, None, None)

    line_1 = snapshot.lines[0].figures
    assert line_1 == board.Figures.summed([press.figures, silent.figures])
    assert (snapshot.figures.good, snapshot.figures.scrap, snapshot.figures.rate_per_hour) == (1300, 130, 400)
    assert snapshot.figures.totals == line_1.totals + snapshot.lines[1].figures.totals
    assert snapshot.open_alerts == 2 and [alert.kind for alert in snapshot.alerts] == ["machine_down", "stock_shortage"]


# --- pure helpers ------------------------------------------------------------------------------------------

ORIGIN = datetime(2026, 11, 17, tzinfo=UTC)


@given(st.integers(0, 600), st.integers(0, 600), st.sets(st.integers(0, 12), max_size=8))
def test_live_spans_and_rolled_up_hours_cover_the_period_once(start_min, length_min, hour_numbers):
    start = ORIGIN + timedelta(minutes=start_min)
    now = start + timedelta(minutes=length_min)
    hours = {ORIGIN + n * HOUR for n in hour_numbers if start <= ORIGIN + n * HOUR and ORIGIN + (n + 1) * HOUR <= now}
    pieces = sorted([*board.live_spans(start, now, hours), *(Window(hour, hour + HOUR) for hour in hours)])
    assert all(piece.start < piece.end for piece in pieces)
    assert all(earlier.end == later.start for earlier, later in zip(pieces, pieces[1:], strict=False))
    assert (pieces[0].start, pieces[-1].end) == (start, now) if pieces else start == now


def test_the_period_is_the_current_shift_else_the_local_day():
    berlin = ZoneInfo("Europe/Berlin")
    early = ShiftPattern("early", frozenset(range(5)), time(6), time(14))
    tuesday_noon = datetime(2026, 11, 17, 12, tzinfo=berlin)
    calendar = ShiftCalendar(berlin, (early,))
    assert board.board_period(calendar, tuesday_noon) == board.Period("shift", "early", datetime(2026, 11, 17, 5, tzinfo=UTC))
    local_midnight = datetime.combine(date(2026, 11, 17), time(0), berlin)
    assert board.board_period(calendar, tuesday_noon + 4 * HOUR) == board.Period("day", None, local_midnight)
    assert board.board_period(ShiftCalendar(UTC, ()), ORIGIN + 5 * HOUR) == board.Period("day", None, ORIGIN)


def test_the_rate_is_per_hour_over_the_span_and_absent_without_one():
    assert board.rate_per_hour(100, ORIGIN, ORIGIN + 15 * MINUTE) == 400
    assert board.rate_per_hour(1, ORIGIN, ORIGIN + 7 * MINUTE) == Decimal(60) / Decimal(7)
    assert board.rate_per_hour(0, ORIGIN, ORIGIN + MINUTE) == 0
    assert board.rate_per_hour(5, None, ORIGIN) is None and board.rate_per_hour(5, ORIGIN, ORIGIN) is None


# --- HTTP (the clock's now: a few seconds after T0) ------------------------------------------------------


def test_board_data_has_plant_lines_and_machine_tiles(api, plant):
    data = ok(api.get("/board/data"))
    assert data["site"] == "acme-works" and data["open_alerts"] == 2
    assert data["period"] == {"kind": "shift", "name": "all day", "start": plant.start.isoformat().replace("+00:00", "Z")}
    assert [line["line"] for line in data["lines"]] == ["line-1", "line-2"]
    tiles = {tile["machine_id"]: tile for line in data["lines"] for tile in line["machines"]}
    press = tiles["press-01"]
    assert (press["figures"]["good"], press["figures"]["scrap"], press["figures"]["rate_per_hour"]) == (1300, 130, "400")
    assert press["figures"]["oee"]["quality"] == "90.9"  # 1,300 / 1,430
    assert all(press["figures"]["oee"][ratio] is not None for ratio in ("oee", "availability", "performance"))
    assert {key: press["work_order"][key] for key in ("work_order_id", "quantity", "good", "percent_complete")} == {
        "work_order_id": "WO-1", "quantity": 2000, "good": 1300, "percent_complete": "65.0"}
    assert [alert["kind"] for alert in press["alerts"]] == ["machine_down"]
    assert tiles["press-02"]["state"] == {"name": "offline", "category": "offline", "colour": "state-offline", "fault_code": None,
                                          "since": (plant.press_02_last_heard + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")}
    welder = tiles["welder-01"]
    assert (welder["state"]["name"], welder["state"]["colour"], welder["figures"]["rate_per_hour"]) == ("unknown", "state-offline", None)
    assert welder["figures"]["oee"] == {"oee": None, "availability": None, "performance": None, "quality": None}
    assert (data["figures"]["good"], data["figures"]["scrap"]) == (1300, 130)
    assert [alert["subject"] for alert in data["alerts"]] == ["press-01", "steel at line-1-side"]


def test_each_tile_carries_its_machines_connection_as_machines_shows_it(api, plant):
    tiles = {tile["machine_id"]: tile for line in ok(api.get("/board/data"))["lines"] for tile in line["machines"]}
    wrong_node = tiles["press-01"]["connection"]
    assert (wrong_node["status"], wrong_node["detail"], wrong_node["edge_online"]) == (
        "bad_config", "ns=2;s=press-01.scrap: BadNodeIdUnknown", True)
    assert wrong_node["unusable"] == {"bad_status": 3} and wrong_node["edge_id"] == "edge-1"
    edge_offline = tiles["press-02"]["connection"]
    assert (edge_offline["status"], edge_offline["reported_status"], edge_offline["edge_online"]) == ("unreachable", "ok", False)
    assert edge_offline["detail"] == "edge edge-9 offline; it last reported ok"
    assert edge_offline["since"] == (plant.t0 - 11 * MINUTE).isoformat().replace("+00:00", "Z"), "since the edge went offline"
    assert tiles["welder-01"]["connection"] is None, "never reported"
    machines = {machine["machine_id"]: machine["connection"] for machine in ok(api.get("/machines"))}
    assert {machine: machines[machine] for machine in tiles} == {machine: tile["connection"] for machine, tile in tiles.items()}
    assert ok(api.patch("/machines/press-01", json={"work_centre_id": None}))["connection"] == wrong_node


@pytest.mark.skipif(shutil.which("node") is None, reason="no `node` on PATH: the page's tiles are rendered by Node")
def test_the_page_shows_the_connection_as_a_badge_beside_the_state_and_the_detail_when_not_ok(api, tmp_path):
    snapshot = tmp_path / "board.json"
    snapshot.write_text(api.get("/board/data").text)
    rendered = subprocess.run(["node", str(Path(__file__).parent / "render_tiles.js"), str(snapshot)], capture_output=True,
                              text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    shown = json.loads(rendered.stdout)
    wrong_node = shown["press-01"]
    assert {key: wrong_node[key] for key in ("attribute", "badge", "badge_class", "title")} == {
        "attribute": "bad_config", "badge": "PLC bad config", "badge_class": "connection conn-bad_config",
        "title": "bad_config: ns=2;s=press-01.scrap: BadNodeIdUnknown"}
    assert wrong_node["detail"].startswith("ns=2;s=press-01.scrap: BadNodeIdUnknown (since "), "the detail on the tile too"
    assert (shown["press-02"]["badge"], shown["press-02"]["attribute"]) == ("PLC unreachable", "unreachable")
    assert shown["press-02"]["detail"].startswith("edge edge-9 offline; it last reported ok")
    assert shown["welder-01"] == {"attribute": "", "badge": None, "title": None, "badge_class": None, "detail": None}


def test_board_serves_the_page_and_its_assets(api):
    page = api.get("/board")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/board/common.js" in page.text and "/board/board.js" in page.text and "/board/board.css" in page.text
    shared, script, style = api.get("/board/common.js"), api.get("/board/board.js"), api.get("/board/board.css")
    assert script.status_code == shared.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "/board/events" in script.text and "/board/data" in script.text and "Authorization" in shared.text
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert api.get("/board/index.html").status_code == 404


def test_board_events_send_a_snapshot_at_once(api):
    with api.stream("GET", "/board/events") as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        event = next(line for line in lines if line.startswith("event:"))
        data = next(lines)
    assert event == "event: snapshot"
    snapshot = json.loads(data.removeprefix("data: "))
    tiles = {tile["machine_id"]: tile for line in snapshot["lines"] for tile in line["machines"]}
    assert (tiles["press-01"]["figures"]["good"], snapshot["open_alerts"]) == (1300, 2)


def first_snapshot(api) -> dict:
    with api.stream("GET", "/board/events") as response:
        data = next(line for line in response.iter_lines() if line.startswith("data:"))
    return json.loads(data.removeprefix("data: "))


def test_event_streams_share_one_snapshot_per_round(api, monkeypatch):
    monkeypatch.setattr(board_api, "SHARED_FOR_S", 3600)
    assert first_snapshot(api)["generated_at"] == first_snapshot(api)["generated_at"], "the second viewer got the first's"
    monkeypatch.setattr(board_api, "SHARED_FOR_S", 0)
    assert first_snapshot(api)["generated_at"] != first_snapshot(api)["generated_at"]
