"""`mes demo`: the demo plant end to end on this machine, with a live view and an exact reckoning.

While the plant produces, the API and its live board (/board) are served on 127.0.0.1 (`--board-port`)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import uvicorn
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


from core.queries import dead_letter_count, live_states, pending_quarantine, recorded_totals
from kernel.auth import Role, create_key
from kernel.db.models import session_on
from mes.services import alerts
from mes.services.workorders import running_orders
from app import demo_orders, demo_plan
from app.api import create_app
from dashboards.api.board import end_event_streams
from kernel.signals import COUNTERS, MachineState
from kernel.plant import Plant, load_plant
from app.core_process import core_options
from app.plantrun import PlantRun, ThreadCore, exact
from kernel.runtime import broker, database
from kernel.settings import Settings

console = Console(stderr=False)


def _live_view(run: PlantRun, recorded: dict, states: dict, orders: dict, dead: int, pending: int, alerts: list) -> Group:
    board = Table(title="open alerts", expand=False, show_header=False) if alerts else None
    for severity, kind, subject, detail, raised_at in alerts:
        colour = {"critical": "red", "warning": "yellow"}.get(severity, "cyan")
        board.add_row(f"[{colour}]{severity}[/]", f"{raised_at:%H:%M:%S}", kind, subject, detail)
    return Group(_live_table(run, recorded, states, orders, dead, pending), board or "[green]no open alerts[/]")


def _live_table(run: PlantRun, recorded: dict, states: dict, orders: dict, dead: int, pending: int) -> Table:
    truth = run.simulated.ground_truth()
    table = Table(title=f"{run.plant.site} — recorded / simulator ground truth", expand=False)
    for column in ("line", "machine", "proto", "state", "work order", "good", "scrap", "energy Wh"):
        table.add_column(column, justify="right" if column in ("good", "scrap", "energy Wh") else "left")
    for machine in run.plant.machines:
        state_code, fault = states.get(machine.id, (None, None))
        state = MachineState.NAMES.get(state_code, "—") + (f" #{fault}" if fault else "")
        style = {"running": "green", "fault": "red"}.get(MachineState.NAMES.get(state_code, ""), "yellow")
        cells = []
        for counter in COUNTERS:
            got, want = recorded.get(machine.id, {}).get(counter, 0), truth[machine.id][counter]
            cells.append(f"{got:,} / {want:,}")
        number, good, quantity = orders.get(machine.id, ("—", 0, 0))
        order = f"{number} {100 * good / quantity:.0f} %" if quantity else number
        table.add_row(machine.line, machine.id, machine.protocol, f"[{style}]{state}[/]", order, *cells)
    edge = run.edge.metrics if run.edge else None
    table.caption = (f"edge queue {edge.queue_depth if edge else 0} · published {edge.published_total if edge else 0} · "
                     f"dead letters {dead} · quarantined {pending}")
    return table


def _snapshot(database_url: str) -> tuple[dict, dict, dict, int, int, list]:
    with psycopg.connect(database_url) as conn, session_on(database_url) as session:
        return (recorded_totals(conn), live_states(conn), running_orders(session), dead_letter_count(conn),
                pending_quarantine(conn), alerts.newest_open(session))



def _reckoning(comparison: dict) -> Table:
    table = Table(title="Recorded vs ground truth")
    table.add_column("machine")
    for counter in COUNTERS:
        table.add_column(f"{counter} recorded", justify="right")
        table.add_column("truth", justify="right")
    table.add_column("exact")
    for machine_id, entry in comparison.items():
        row = []
        for counter in COUNTERS:
            row += [f"{entry['recorded'][counter]:,}", f"{entry['ground_truth'][counter]:,}"]
        ok = entry["recorded"] == entry["ground_truth"]
        table.add_row(machine_id, *row, "[green]yes[/]" if ok else "[red]NO[/]")
    return table


def _order_tables(orders: dict) -> Group:
    made = Table(title="Work orders")
    for column in ("work order", "good", "scrap", "% complete", "finished goods on hand", "actual cost", "per good unit"):
        made.add_column(column, justify="left" if column == "work order" else "right")
    for number, entry in orders["work_orders"].items():
        made.add_row(number, f"{entry['good']:,}", f"{entry['scrap']:,}", f"{Decimal(entry['percent_complete']):.1f}",
                     entry["finished_goods_on_hand"], f"{Decimal(entry['cost']):,.2f}",
                     "-" if entry["unit_cost"] is None else f"{Decimal(entry['unit_cost']):.4f}")
    used = Table(title="Components backflushed vs (good + scrap) × BOM")
    for column in ("component", "consumed", "expected", "exact"):
        used.add_column(column, justify="left" if column == "component" else "right")
    for item, entry in orders["components"].items():
        ok = Decimal(entry["consumed"]) == Decimal(entry["expected"])
        used.add_row(item, entry["consumed"], entry["expected"], "[green]yes[/]" if ok else "[red]NO[/]")
    return Group(made, used)


def _plan_tables(plan: dict | None) -> Group | str:
    """Per sales-order line its promise; per item its projection when the plan was made and after production."""
    if plan is None:
        return "[yellow]No plan: the demo's data were kept from an earlier run (--keep-data), so none was seeded.[/]"
    firmed = ", ".join(f"{entry['work_order_id'] or entry['purchase_order_id']} {entry['quantity']} {entry['item_id']}"
                       for entry in plan["firmed"])
    promised = Table(title=f"Sales orders, each promised before it was entered (plan run {plan['run_id']})",
                     caption=f"firmed, pegged to {', '.join(plan['firm'])}: {firmed or 'nothing to firm'}")
    for column in ("sales order", "item", "quantity", "due", "promised", "by"):
        promised.add_column(column, justify="right" if column == "quantity" else "left")
    for line in plan["promises"]:
        late = line["promised"] is None or line["promised"] > line["due"]
        promised.add_row(f"{line['so_id']}/{line['line']}", line["item_id"], line["quantity"], line["due"],
                         f"[yellow]{line['promised'] or 'cannot'}[/]" if late else line["promised"], line["source"])
    projected = Table(title="Plan per item, before → after production (the machines' counts move it)",
                      caption="a good unit adds to on hand what it takes from its work order's remaining quantity, so a made "
                              "item's projection holds; scrap consumes components its order still needs, so theirs falls")
    for column in ("item", "on hand", "projected end of today", "projected end of horizon"):
        projected.add_column(column, justify="left" if column == "item" else "right")
    for item, entry in plan["items"].items():
        before, after = entry["before"], entry["after"] or {}
        projected.add_row(item, *(_moved(before[key], after.get(key)) for key in ("on_hand", "projected_first", "projected_last")))
    return Group(promised, projected)


def _moved(before: str, after: str | None) -> str:
    if after is None or Decimal(after) == Decimal(before):
        return before
    return f"{before} → [bold]{after}[/]"


def _alert_table(alerts: list[dict]) -> Table | str:
    """The alerts of the run: each raised while its condition held, cleared once it no longer did."""
    if not alerts:
        return "[green]No alert was raised during the run.[/]"
    table = Table(title=f"Alerts during the run: {len(alerts)} raised, "
                        f"{sum(a['status'] == 'cleared' for a in alerts)} cleared, {sum(a['status'] != 'cleared' for a in alerts)} open")
    for column in ("raised", "kind", "subject", "severity", "lasted"):
        table.add_column(column, justify="right" if column == "lasted" else "left")
    for alert in alerts:
        raised = datetime.fromisoformat(alert["raised_at"])
        lasted = (f"{(datetime.fromisoformat(alert['cleared_at']) - raised).total_seconds():.0f} s" if alert["cleared_at"]
                  else "[yellow]still open[/]")
        table.add_row(f"{raised.astimezone():%H:%M:%S}", alert["kind"], alert["subject"], alert["severity"], lasted)
    return table


class _Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM while the demo runs: the first ends production early, and the reckoning
    of what was produced until then follows; a second one stops waiting for the last counts."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.first = asyncio.Event()
        self.again = asyncio.Event()

    def listen(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.signal is None:
            self.signal = sig
            self.first.set()
        else:
            self.again.set()


async def _run(plant: Plant, settings: Settings, duration_s: float, live: bool, fresh: bool, board_port: int,
               interrupts: _Interrupts) -> dict:
    interrupts.listen()
    state_dir = settings.data_dir / "demo"
    if fresh:
        shutil.rmtree(state_dir, ignore_errors=True)
    with database(settings, "mes_demo", fresh=fresh) as database_url, broker(settings, plant) as mqtt:
        run = PlantRun(plant, database_url, mqtt.core, state_dir, core=ThreadCore(database_url, mqtt.core, **core_options(settings)),
                       edge_mqtt_urls=mqtt.edges,
                       edge_options={"flush_ms": settings.edge_flush_ms, "heartbeat_s": settings.edge_heartbeat_s})
        console.print(f"[bold]Starting[/] simulators, broker, core and edge agent for {len(plant.machines)} machines …")
        async with run:
            planned = None
            if fresh:
                await asyncio.to_thread(demo_orders.seed, database_url)
                console.print("[bold]Planning[/]: promising and entering the sales orders, making a plan, firming part of it …")
                planned = await asyncio.to_thread(demo_plan.seed, database_url, datetime.now(UTC))
            with _served_board(database_url, board_port):
                return await _produce(run, database_url, duration_s, live, interrupts, planned)


async def _produce(run: PlantRun, database_url: str, duration_s: float, live: bool, interrupts: _Interrupts,
                   planned: dict | None) -> dict:
    run.start_production()
    console.print(f"[bold]Producing[/] for {duration_s:g} s (Ctrl-C ends production early, with the reckoning) …")
    progress = Progress(TextColumn("producing"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                        TimeRemainingColumn())
    task = progress.add_task("run", total=duration_s)
    started = time.monotonic()
    with Live(console=console, refresh_per_second=2, transient=False, auto_refresh=False) as view:
        while (elapsed := time.monotonic() - started) < duration_s and not interrupts.first.is_set():
            progress.update(task, completed=elapsed)
            if live:
                snapshot = await asyncio.to_thread(_snapshot, database_url)
                view.update(Group(progress, _live_view(run, *snapshot)), refresh=True)
            await _unless(interrupts.first, asyncio.sleep(min(1.0, duration_s - elapsed)))
        progress.update(task, completed=min(elapsed, duration_s))
    if interrupts.first.is_set():
        console.print(f"[bold]Interrupted[/] after {elapsed:.0f} s: stopping production; waiting for the last counts to be "
                      "committed (Ctrl-C again: don't wait) …")
    else:
        console.print("[bold]Stopping production[/]; waiting for the last counts to be committed …")
    if not await _unless(interrupts.again, run.drain()):  # production stopped all the same: drain's first step
        console.print("[yellow]Not waiting for the last counts: the reckoning shows what was committed so far.[/]")
    plan = None if planned is None else await asyncio.to_thread(demo_plan.reckoning, database_url, planned, datetime.now(UTC))
    return {"machines": run.comparison(), **await asyncio.to_thread(demo_orders.reckoning, database_url),
            "alerts": await asyncio.to_thread(_alert_history, database_url), "planning": plan}


async def _unless(event: asyncio.Event, work: Coroutine) -> bool:
    """Await `work` unless `event` is set first, which cancels it; whether it finished."""
    task = asyncio.ensure_future(work)
    waiting = asyncio.ensure_future(event.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
        return False
    task.result()  # its failure, if it failed
    return True


def _alert_history(database_url: str) -> list[dict]:
    with session_on(database_url) as session:
        return alerts.history(session)


class BoardServer:
    """The API, and with it the live board, served by uvicorn in a background thread while the demo runs."""

    def __init__(self, database_url: str, port: int, host: str = "127.0.0.1"):
        self.url = f"http://{host}:{port}/board"
        self._socket = socket.create_server((host, port))  # OSError here, at once, when the port is taken
        self._app = create_app(database_url)
        self._server = uvicorn.Server(uvicorn.Config(self._app, log_config=None, access_log=False))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="mes-board", daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._serving.set()
        await self._server.serve(sockets=[self._socket])

    async def _stop(self) -> None:
        end_event_streams(self._app)  # an open board would otherwise hold the shutdown for ever
        self._server.should_exit = True

    def demo_keys(self) -> tuple[str, str]:
        """New tokens of an admin key and of a read-only kiosk key for this run."""
        with self._app.state.sessions() as db:
            return (create_key(db, "demo-admin", [Role.admin], "mes demo")[1],
                    create_key(db, "demo-board", [Role.viewer], "mes demo")[1])

    def __enter__(self) -> BoardServer:
        self._thread.start()
        self._serving.wait()
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result()
        self._thread.join()
        self._socket.close()
        self._app.state.sessions.kw["bind"].dispose()


@contextmanager
def _served_board(database_url: str, port: int) -> Iterator[None]:
    """The board while the plant produces; port 0: none."""
    if not port:
        yield
        return
    try:
        server = BoardServer(database_url, port)
    except OSError as error:
        console.print(f"[yellow]The live board is not served: 127.0.0.1:{port} is not available ({error.strerror}); "
                      "choose another port with --board-port.[/]")
        yield
        return
    with server:
        admin, kiosk = server.demo_keys()
        # soft_wrap: a key broken over two lines could not be copied
        console.print(f"[bold]Live board:[/] {server.url}#key={kiosk}  (a read-only kiosk key, kept by the browser)",
                      soft_wrap=True)
        console.print(f"[bold]Admin API key:[/] {admin}  (the API: {server.url.removesuffix('/board')}/docs, "
                      "as `Authorization: Bearer <key>`)", soft_wrap=True)
        yield


def run_demo(settings: Settings, duration_s: float, summary_json: Path | None, *, board_port: int, live: bool = True,
             fresh: bool = True) -> int:
    """The demo; the board is served at `board_port` (0: not served). Returns the exit code: 0 when every
    count is exact, 1 when not, 128 + the signal's number when a signal ended production early."""
    plant = load_plant(settings.plant)
    interrupts = _Interrupts()
    summary = asyncio.run(_run(plant, settings, duration_s, live, fresh, board_port, interrupts))
    console.print(_reckoning(summary["machines"]))
    console.print(_order_tables(summary))
    console.print(_plan_tables(summary["planning"]))
    console.print(_alert_table(summary["alerts"]))
    ok = exact(summary["machines"]) and demo_orders.exact(summary)
    console.print("[bold green]Every count is exact: machines, work orders, components.[/]" if ok
                  else "[bold red]Recorded counts differ from ground truth.[/]")
    if interrupts.signal is not None:
        console.print(f"[bold yellow]Ended early by {interrupts.signal.name}:[/] the reckoning covers what was produced until then.")
    if summary_json:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    if interrupts.signal is not None:
        return 128 + interrupts.signal
    return 0 if ok else 1
