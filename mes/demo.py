"""`mes demo`: the demo plant end to end on this machine, with a live view and an exact reckoning."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from decimal import Decimal
from pathlib import Path

import psycopg
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from core.queries import (
    dead_letter_count,
    live_states,
    open_alert_rows,
    pending_quarantine,
    recorded_totals,
    running_work_orders,
)
from mes import demo_orders
from mes.plant import COUNTERS, MachineState, Plant, load_plant
from mes.plantrun import PlantRun, exact
from mes.runtime import broker, database
from mes.settings import Settings

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
    with psycopg.connect(database_url) as conn:
        return (recorded_totals(conn), live_states(conn), running_work_orders(conn), dead_letter_count(conn),
                pending_quarantine(conn), open_alert_rows(conn))


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


async def _run(plant: Plant, settings: Settings, duration_s: float, live: bool, fresh: bool) -> dict:
    state_dir = settings.data_dir / "demo"
    if fresh:
        shutil.rmtree(state_dir, ignore_errors=True)
    with database(settings, "mes_demo", fresh=fresh) as database_url, broker(settings) as mqtt_url:
        run = PlantRun(plant, database_url, mqtt_url, state_dir,
                       edge_options={"flush_ms": settings.edge_flush_ms, "heartbeat_s": settings.edge_heartbeat_s})
        console.print(f"[bold]Starting[/] simulators, broker, core and edge agent for {len(plant.machines)} machines …")
        async with run:
            if fresh:
                await asyncio.to_thread(demo_orders.seed, database_url)
            run.start_production()
            progress = Progress(TextColumn("producing"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                                TimeRemainingColumn())
            task = progress.add_task("run", total=duration_s)
            started = time.monotonic()
            with Live(console=console, refresh_per_second=2, transient=False, auto_refresh=False) as view:
                while (elapsed := time.monotonic() - started) < duration_s:
                    progress.update(task, completed=elapsed)
                    if live:
                        snapshot = await asyncio.to_thread(_snapshot, database_url)
                        view.update(Group(progress, _live_view(run, *snapshot)), refresh=True)
                    await asyncio.sleep(min(1.0, duration_s - elapsed))
                progress.update(task, completed=duration_s)
            console.print("[bold]Stopping production[/]; waiting for the last counts to be committed …")
            await run.drain()
            return {"machines": run.comparison(), **await asyncio.to_thread(demo_orders.reckoning, database_url)}


def run_demo(settings: Settings, duration_s: float, summary_json: Path | None, live: bool = True, fresh: bool = True) -> bool:
    plant = load_plant(settings.plant)
    summary = asyncio.run(_run(plant, settings, duration_s, live, fresh))
    console.print(_reckoning(summary["machines"]))
    console.print(_order_tables(summary))
    ok = exact(summary["machines"]) and demo_orders.exact(summary)
    console.print("[bold green]Every count is exact: machines, work orders, components.[/]" if ok
                  else "[bold red]Recorded counts differ from ground truth.[/]")
    if summary_json:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    return ok
