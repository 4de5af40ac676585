"""The live board in headless Chromium while `mes demo` produces: the tiles show what the database holds
and follow production. Screenshot: pytest's tmp path; also docs/board.png with MES_UPDATE_SCREENSHOT=1.

Drives the system Chromium (Debian package `chromium`) through Playwright: no browser download.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from kernel.embedded.broker import free_port
from kernel.plant import DEMO_PLANT
from tests.e2e.conftest import plant_on_free_ports, write_plant

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "board.png"
MACHINES = {"press-01", "press-02", "welder-01", "packer-01"}
# A sample is committed well within this after it was taken (edge flush 200 ms, core batch 50 ms), so a
# snapshot taken at G holds every interval that ended by G - INGEST_LAG.
INGEST_LAG = timedelta(seconds=10)
# What the page shows: the snapshot it rendered and, read in the same instant, each tile's numbers.
SHOWN = """() => ({
    snapshot: window.board.snapshot,
    link: window.board.link,
    tiles: Object.fromEntries([...document.querySelectorAll("[data-machine]")].map(
        (tile) => [tile.dataset.machine, [Number(tile.dataset.good), Number(tile.dataset.scrap)]])),
})"""
ALL_TILES = "() => window.board.snapshot !== null && document.querySelectorAll('[data-machine]').length === 4"
MORE_GOOD = "(before) => [...document.querySelectorAll('[data-machine]')].reduce((sum, t) => sum + Number(t.dataset.good), 0) > before"


def _kiosk_key(log: Path) -> str | None:
    """The read-only key `mes demo` prints in the board's URL."""
    found = re.search(r"/board#key=(\S+)", log.read_text(errors="replace"))
    return found.group(1) if found else None


def _board_data(base: str, log: Path) -> dict | None:
    key = _kiosk_key(log)
    if key is None:
        return None  # not serving yet
    try:
        request = urllib.request.Request(f"{base}/board/data", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except OSError:
        return None  # not serving yet


def _tiles(snapshot: dict) -> dict[str, dict]:
    return {tile["machine_id"]: tile for line in snapshot["lines"] for tile in line["machines"]}


def _wait_until_every_machine_made_something(base: str, demo: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert demo.poll() is None, f"the demo exited with {demo.returncode}:\n{log.read_text()[-3000:]}"
        snapshot = _board_data(base, log)
        if snapshot and all(tile["figures"]["good"] > 0 for tile in _tiles(snapshot).values()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no production on the board within 120 s:\n{log.read_text()[-3000:]}")


def _recorded(database_url: str, snapshot: dict) -> dict[str, tuple[int, int, int, int]]:
    """Per machine: good and scrap that ended in the snapshot's period by its instant, and by that instant - INGEST_LAG."""
    start, at = datetime.fromisoformat(snapshot["period"]["start"]), datetime.fromisoformat(snapshot["generated_at"])
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT m.machine_id,
                      coalesce(sum(p.good) FILTER (WHERE p.end_ts <= %(at)s), 0), coalesce(sum(p.scrap) FILTER (WHERE p.end_ts <= %(at)s), 0),
                      coalesce(sum(p.good) FILTER (WHERE p.end_ts <= %(lagged)s), 0),
                      coalesce(sum(p.scrap) FILTER (WHERE p.end_ts <= %(lagged)s), 0)
               FROM machines m LEFT JOIN production_intervals p ON p.machine_id = m.machine_id AND p.end_ts >= %(start)s
               GROUP BY m.machine_id""", {"start": start, "at": at, "lagged": at - INGEST_LAG}).fetchall()
    return {machine: tuple(map(int, sums)) for machine, *sums in rows}


def _check(shown: dict, database_url: str) -> dict[str, tuple[int, int]]:
    """The tiles show the page's snapshot, and the snapshot holds what the database does; the tiles' numbers."""
    snapshot = shown["snapshot"]
    assert shown["tiles"] == {machine: [tile["figures"]["good"], tile["figures"]["scrap"]]
                              for machine, tile in _tiles(snapshot).items()}
    recorded = _recorded(database_url, snapshot)
    assert set(shown["tiles"]) == set(recorded) == MACHINES
    for machine, (good, scrap) in shown["tiles"].items():
        good_by_then, scrap_by_then, good_before, scrap_before = recorded[machine]
        assert good_before <= good <= good_by_then and scrap_before <= scrap <= scrap_by_then, (machine, good, scrap, recorded[machine])
    return {machine: tuple(numbers) for machine, numbers in shown["tiles"].items()}


def _check_phone_polling_and_stale_warning(browser, base: str, key: str) -> None:
    """On a phone: one column; without server-sent events it polls; when updates stop it says so; when
    the events work again it goes back to them."""
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.clock.install()
    phone.route("**/board/events", lambda route: route.abort())
    phone.goto(f"{base}/board")  # no key yet: the page asks for one
    phone.wait_for_selector("#key-form", state="visible")
    phone.fill("#key", key)
    phone.click("#key-form button")
    phone.wait_for_function(ALL_TILES)
    assert phone.evaluate("window.board.link") == "polling"
    lefts = phone.evaluate("[...document.querySelectorAll('[data-machine]')].map((tile) => tile.getBoundingClientRect().left)")
    assert len(set(lefts)) == 1, f"one column on a phone, not tiles at {lefts}"
    assert phone.is_hidden("#stale")
    phone.route("**/board/data", lambda route: route.abort())
    phone.clock.fast_forward(15_000)
    phone.wait_for_selector("#stale", state="visible")
    assert phone.text_content("#stale").startswith("No update for")
    phone.unroute("**/board/events")
    phone.unroute("**/board/data")
    phone.clock.fast_forward(30_000)  # the events are tried again: back to live, no longer stale
    phone.wait_for_function("window.board.link === 'live'")
    phone.wait_for_selector("#stale", state="hidden")
    phone.close()


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (Debian: apt-get install chromium); the board's browser "
                                             "test drives the system Chromium through Playwright")
def test_the_board_shows_what_the_database_holds_and_follows_production(database_url, mqtt_url, tmp_path):
    from playwright.sync_api import sync_playwright

    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), tmp_path, source=DEMO_PLANT)
    port, log = free_port(), tmp_path / "demo.log"
    env = {**os.environ, "MES_DATABASE_URL": database_url, "MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file),
           "MES_DATA_DIR": str(tmp_path / "var")}
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        demo = subprocess.Popen([sys.executable, "-m", "app", "demo", "--duration", "40", "--no-live", "--board-port", str(port)],
                                env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_until_every_machine_made_something(base, demo, log)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/board#key={_kiosk_key(log)}")
            page.wait_for_function(ALL_TILES)
            assert "key=" not in page.url, "the key leaves the address bar once kept"
            first = _check(page.evaluate(SHOWN), database_url)

            page.wait_for_function(MORE_GOOD, arg=sum(good for good, _ in first.values()), timeout=30_000)
            shown = page.evaluate(SHOWN)
            later = _check(shown, database_url)
            assert all(later[machine][0] >= first[machine][0] for machine in MACHINES)
            assert shown["link"] == "live", "the page follows the server-sent events"
            assert page.text_content("#updated").startswith("updated ")

            page.screenshot(path=tmp_path / "board.png")
            _check_phone_polling_and_stale_warning(browser, base, _kiosk_key(log))
            browser.close()
        if os.environ.get("MES_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(tmp_path / "board.png", SCREENSHOT)
    finally:
        demo.send_signal(signal.SIGINT)  # the demo shuts its plant down as on Ctrl-C
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
