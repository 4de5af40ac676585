"""The built-in live board: `/board` (the page, plain HTML/JS/CSS from dashboards/static/), `/board/data` (one
snapshot as JSON) and `/board/events` (server-sent events: a snapshot at once, then every few seconds);
`/board/planner` is the planner page, its data in `dashboards.api.planner`.

What each figure means: `dashboards.services.board`. Counts are integers; rates, ratios and percentages are
decimal strings (percent to 0.1, rates to whole units per hour, half-even), never floats.
"""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

from kernel.http import Db
from mes.api.masterdata import ConnectionOut, connection_out
from mes.rules.oee import Oee
from dashboards.rules.board import Figures
from dashboards.services import board as service

router = APIRouter(tags=["board"])

PAGE = Path(__file__).resolve().parent.parent / "static"
_ASSETS = {"board.js": "text/javascript", "planner.js": "text/javascript", "common.js": "text/javascript",
           "board.css": "text/css"}
_NO_CACHE = {"Cache-Control": "no-cache"}  # a new release shows at the next reload of a TV left on for weeks
# What a state looks like on the board: the CSS class of its colour.
_COLOUR = {"running": "running", "fault": "fault", "idle": "waiting", "blocked": "waiting", "starved": "waiting",
           "setup": "setup", "planned_stop": "planned"}
_TENTH, _UNIT = Decimal("0.1"), Decimal(1)
RECONNECT_MS = 3000
SHARED_FOR_S = 1.0  # event streams within this of each other send the same snapshot


class OeeOut(BaseModel):
    oee: str | None = Field(description="percent, e.g. \"72.4\"; null without planned busy time")
    availability: str | None
    performance: str | None
    quality: str | None


class FiguresOut(BaseModel):
    good: int
    scrap: int
    rate_per_hour: str | None = Field(description="good units per hour, whole units")
    oee: OeeOut


class StateOut(BaseModel):
    name: str = Field(description="running, idle, fault, blocked, starved, setup, planned_stop, offline or unknown")
    category: str = Field(description="running, stopped, planned or offline")
    colour: str = Field(description="CSS class of the state's colour: state-running, state-fault, state-waiting, "
                                    "state-setup, state-planned or state-offline")
    fault_code: int | None
    since: datetime | None


class WorkOrderOut(BaseModel):
    work_order_id: str
    quantity: int
    good: int
    scrap: int
    percent_complete: str
    projected_finish: datetime | None


class AlertOut(BaseModel):
    severity: str
    kind: str
    subject: str
    detail: str
    raised_at: datetime


class TileOut(BaseModel):
    machine_id: str
    line: str
    state: StateOut
    figures: FiguresOut
    work_order: WorkOrderOut | None
    alerts: list[AlertOut]
    connection: ConnectionOut | None = Field(default=None, description="how its edge reaches the machine, as on "
                                             "/machines; null: no edge has reported it yet")


class LineOut(BaseModel):
    line: str
    area: str
    figures: FiguresOut
    machines: list[TileOut]


class PeriodOut(BaseModel):
    kind: str = Field(description="shift (the current shift) or day (no shift now: since midnight in the calendar's timezone)")
    name: str | None
    start: datetime


class ReviewOut(BaseModel):
    dead_letters: int
    quarantined_steps: int
    oldest: datetime | None


class BoardOut(BaseModel):
    site: str
    generated_at: datetime
    period: PeriodOut
    figures: FiguresOut
    lines: list[LineOut]
    alerts: list[AlertOut] = Field(description=f"the newest open alerts, at most {service.ALERTS_SHOWN}")
    open_alerts: int
    review: ReviewOut = Field(description="what waits for review: dead letters and quarantined counter steps (/review/...)")


def _tenths(value: Decimal) -> str:
    return str(value.quantize(_TENTH, ROUND_HALF_EVEN))


def _percent(ratio: Decimal | None) -> str | None:
    return None if ratio is None else _tenths(ratio * 100)


def _oee(measures: Oee) -> OeeOut:
    return OeeOut(oee=_percent(measures.oee), availability=_percent(measures.availability),
                  performance=_percent(measures.performance), quality=_percent(measures.quality))


def _figures(figures: Figures) -> FiguresOut:
    rate = figures.rate_per_hour
    return FiguresOut(good=figures.good, scrap=figures.scrap, oee=_oee(figures.measures),
                      rate_per_hour=None if rate is None else str(rate.quantize(_UNIT, ROUND_HALF_EVEN)))


def _work_order(order: service.RunningOrder | None) -> WorkOrderOut | None:
    if order is None:
        return None
    progress = order.progress
    return WorkOrderOut(work_order_id=order.work_order_id, quantity=order.quantity, good=progress.good, scrap=progress.scrap,
                        percent_complete=_tenths(progress.percent_complete), projected_finish=progress.projected_finish)


def _tile(tile: service.Tile) -> TileOut:
    colour = _COLOUR.get(tile.state, "offline")
    return TileOut(machine_id=tile.machine_id, line=tile.line, figures=_figures(tile.figures), work_order=_work_order(tile.work_order),
                   state=StateOut(name=tile.state, category=tile.category.value, colour=f"state-{colour}",
                                  fault_code=tile.fault_code, since=tile.since),
                   alerts=[AlertOut(**alert._asdict()) for alert in tile.alerts],
                   connection=connection_out(tile.connection))


def board_out(board: service.Board) -> BoardOut:
    return BoardOut(site=board.site, generated_at=board.generated_at, period=PeriodOut(**board.period._asdict()),
                    figures=_figures(board.figures), open_alerts=board.open_alerts, review=ReviewOut(**board.review._asdict()),
                    lines=[LineOut(line=line.line, area=line.area, figures=_figures(line.figures),
                                   machines=[_tile(tile) for tile in line.tiles]) for line in board.lines],
                    alerts=[AlertOut(**alert._asdict()) for alert in board.alerts])


@router.get("/board", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(PAGE / "index.html", media_type="text/html", headers=_NO_CACHE)


@router.get("/board/planner", include_in_schema=False)
def planner_page() -> FileResponse:
    """The planner page (its data: `dashboards.api.planner`); before `/board/{asset}`, which would take the path."""
    return FileResponse(PAGE / "planner.html", media_type="text/html", headers=_NO_CACHE)


@router.get("/board/data", response_model=BoardOut)
def data(db: Db) -> BoardOut:
    """The board's snapshot now: plant → lines → machine tiles, plant totals, open alerts."""
    return board_out(service.snapshot(db))


def _snapshot_json(sessions: sessionmaker) -> str:
    with sessions() as session:
        return board_out(service.snapshot(session)).model_dump_json()


@dataclass
class _SharedSnapshot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    body: str | None = None
    taken: float = 0.0


async def _shared_snapshot_json(app: FastAPI) -> str:
    """The snapshot every open stream sends: one taken within the last SHARED_FOR_S, else a new one. Ten
    TVs on the board cost the database one snapshot per round, not ten."""
    if not hasattr(app.state, "board_snapshot"):  # made on first use, in the server's event loop
        app.state.board_snapshot = _SharedSnapshot()
    shared = app.state.board_snapshot
    async with shared.lock:
        if shared.body is None or time.monotonic() - shared.taken >= SHARED_FOR_S:
            shared.body = await run_in_threadpool(_snapshot_json, app.state.sessions)
            shared.taken = time.monotonic()
        return shared.body


@router.get("/board/events", response_class=StreamingResponse)
async def events(request: Request, every_s: Annotated[float, Query(ge=0.5, le=60, description="seconds between snapshots")] = 2
                 ) -> StreamingResponse:
    """Server-sent events: `snapshot` events (data: the JSON of /board/data), one at once, then one every `every_s`."""

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RECONNECT_MS}\n\n"
        ending = _streams_end(request.app)
        while not ending.is_set():
            body = await _shared_snapshot_json(request.app)
            yield f"event: snapshot\ndata: {body}\n\n"
            with suppress(TimeoutError):
                await asyncio.wait_for(ending.wait(), every_s)

    # no-transform: a proxy must not buffer or compress the stream
    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache, no-transform"})


def _streams_end(app: FastAPI) -> asyncio.Event:
    """Set when the open event streams are to end; made on first use, in the server's event loop."""
    if not hasattr(app.state, "board_streams_end"):
        app.state.board_streams_end = asyncio.Event()
    return app.state.board_streams_end


def end_event_streams(app: FastAPI) -> None:
    """End every open /board/events stream, so that a stopping server need not wait for its clients to leave.

    Call it in the server's event loop; browsers reconnect (or poll) when the server is back.
    """
    _streams_end(app).set()


@router.get("/board/{asset}", include_in_schema=False)
def asset(asset: str) -> FileResponse:
    if asset not in _ASSETS:  # only these files: never a path outside mes/board
        raise HTTPException(404, f"no {asset!r} on the board")
    return FileResponse(PAGE / asset, media_type=_ASSETS[asset], headers=_NO_CACHE)
