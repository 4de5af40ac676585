"""The board's planner page in headless Chromium, served by a real uvicorn on the seeded database of
tests/planning/test_kpis_api.py: its lists show what `/board/planner/data` holds, the ATP look-up shows what
`/planning/atp/{item}` answers, a refused look-up says why, and so does a plan that cannot be made. Screenshot: pytest's tmp path; also
docs/planner.png with MES_UPDATE_SCREENSHOT=1.

Drives the system Chromium (Debian package `chromium`) through Playwright: no browser download.
"""

import os
import shutil
from pathlib import Path

import psycopg
import pytest

from app.demo import BoardServer
from kernel.embedded.broker import free_port
from tests.e2e.test_board_browser import CHROMIUM
from tests.planning.test_kpis_api import seed
from tests.support.http import ok

pytestmark = pytest.mark.slow

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "planner.png"
TABLE_ROWS = """(id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((row) => [...row.cells].map((c) => c.textContent))"""


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (Debian: apt-get install chromium)")
def test_the_planner_page_shows_the_plan_and_looks_up_atp(api, database_url, tmp_path):
    from playwright.sync_api import sync_playwright

    seed(api)
    with BoardServer(database_url, free_port()) as server:
        base = server.url.removesuffix("/board")
        _, viewer_key = server.demo_keys()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/board/planner#key={viewer_key}")
            page.wait_for_function("window.planner.snapshot !== null")
            assert "key=" not in page.url
            snapshot = page.evaluate("window.planner.snapshot")

            at_risk = page.evaluate(TABLE_ROWS, "at-risk")
            assert [row[0] for row in at_risk] == [r["demand_id"] for r in snapshot["at_risk"]] and "SO-4/1" in at_risk[-1] + at_risk[0]
            shortages = page.evaluate(TABLE_ROWS, "shortages")
            screw = next(row for row in shortages if row[0] == "screw" and row[1] != "below safety stock")
            assert screw[5].startswith("planned:widget:") and screw[5].endswith(", SO-5/1")
            assert [row[0] for row in page.evaluate(TABLE_ROWS, "to-firm")] == [o["id"] for o in snapshot["to_firm"]]
            assert [row[0] for row in page.evaluate(TABLE_ROWS, "suppliers")] == ["zeta", "acme"]
            assert page.evaluate(TABLE_ROWS, "forecasts") == [["steel", "10", "8", "75.00 %", "25.00 %"]]
            assert page.text_content("#kpi-figures").startswith("0.00 %on time vs due")

            page.fill("#atp-item", "steel")
            page.click("#atp-form button")
            page.wait_for_function("window.planner.atp !== null")
            expected = ok(api.get("/planning/atp/steel?bucket=day&buckets=14"))["buckets"]
            assert [row[0] for row in page.evaluate(TABLE_ROWS, "atp")] == [b["start"] for b in expected]
            assert [row[4] for row in page.evaluate(TABLE_ROWS, "atp")] == [b["cumulative_atp"] for b in expected]
            page.screenshot(path=tmp_path / "planner.png", full_page=True)

            page.fill("#atp-item", "NOPE")
            page.click("#atp-form button")
            page.wait_for_selector("#atp-error", state="visible")
            assert "NOPE" in page.text_content("#atp-error") and page.is_hidden("#atp")

            with psycopg.connect(database_url) as conn:  # a plan that cannot be made is said on the page
                conn.execute("DELETE FROM item_planning WHERE item_id = 'screw'")
            page.reload()
            page.wait_for_selector("#stale", state="visible")
            assert page.text_content("#stale").startswith("The plan cannot be made:") and "screw" in page.text_content("#stale")
            browser.close()
    if os.environ.get("MES_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "planner.png", SCREENSHOT)
