"""`mes`: one command for every process of the system. `mes --help`, `mes COMMAND --help`."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from core.cli import review_app
from app.access_cli import keys_app, users_app
from dashboards.cli import dashboards_app
from kernel.logs import configure_logging, get_logger
from kernel.settings import Settings

app = typer.Typer(
    help="Open MES: machine counts from OPC UA / Modbus PLCs to exact production records.\n\n"
    "Start with `mes demo`: a simulated plant, an edge agent, a broker, the core and a database, all on this machine.\n\n"
    "Configuration: defaults, then the YAML file named by MES_CONFIG, then MES_* variables "
    "(MES_DATABASE_URL, MES_MQTT_URL, MES_PLANT, MES_DATA_DIR, MES_LOG_LEVEL, MES_LOG_FORMAT=json; "
    "MES_MQTT_CA_FILE, MES_MQTT_CERT_FILE, MES_MQTT_KEY_FILE, MES_CORE_CLIENT_ID: docs/security.md).\n\n"
    "The API needs credentials: `mes keys create NAME --role ROLE` (an API key), `mes users create NAME --role ROLE` "
    "(a person with a password), or tokens of an identity provider (MES_OIDC_ISSUER, MES_OIDC_JWKS_URL).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # a frame's locals hold URLs with passwords (docs/security.md, Logs)
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
mqtt_app = typer.Typer(help="The plant's MQTT broker.", no_args_is_help=True)
app.add_typer(mqtt_app, name="mqtt")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(review_app, name="review")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

PlantOption = Annotated[Path | None, typer.Option("--plant", help="plant description YAML (default: MES_PLANT or the demo plant)")]
MetricsPortOption = Annotated[int | None, typer.Option(
    "--metrics-port", min=0, max=65535,
    help="serve Prometheus metrics at http://MES_METRICS_HOST:PORT/metrics (default: MES_METRICS_PORT; unset: not served)")]


def _settings(plant: Path | None = None, log_to_console: bool = True) -> Settings:
    # A SIGTERM ends a command as Ctrl-C does (its clean-ups run, exit code 130) until the command takes
    # over the stop signals itself (`_on_stop_signals`, `_run_until_signal`) once its service is running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    overrides = {"plant": plant} if plant else {}
    settings = Settings(**overrides)
    configure_logging(settings.log_level if log_to_console else "WARNING", settings.log_format)
    return settings


def _mqtt_url(settings: Settings, plant, edge_id: str | None = None) -> str:
    """The broker URL of the core (`edge_id` None) or of an edge; a password that cannot be read ends the
    command with what to fix (exit code 2), not a traceback."""
    from kernel.mqtt_access import mqtt_client_url

    try:
        return mqtt_client_url(settings, plant, edge_id)
    except ValueError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None


def _on_stop_signals(ask_to_stop) -> None:
    """SIGINT (Ctrl-C) and SIGTERM call `ask_to_stop`, which only asks: the service finishes what it has in
    hand, its clean-ups run and the command exits 0."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: ask_to_stop())


def _run_until_signal(coroutine_factory, on_signal=None) -> None:
    """Run an asyncio service until SIGINT/SIGTERM; `on_signal` asks it to finish (default: cancel it)."""

    async def main():
        task = asyncio.create_task(coroutine_factory())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal or task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())


@app.command()
def demo(
    duration: Annotated[float, typer.Option("--duration", help="seconds of production before the reckoning")] = 60,
    summary_json: Annotated[Path | None, typer.Option("--summary-json", help="also write the reckoning as JSON here")] = None,
    plant: PlantOption = None,
    live: Annotated[bool, typer.Option(help="show the live table while producing")] = True,
    keep_data: Annotated[bool, typer.Option("--keep-data", help="continue on the previous demo database instead of a fresh one")] = False,
    board_port: Annotated[int, typer.Option("--board-port", min=0, max=65535,
                                            help="serve the live board and the API on 127.0.0.1 at this port (0: don't)")] = 8765,
) -> None:
    """Run the demo plant end to end and compare what was recorded with what the simulators produced.

    Uses embedded PostgreSQL and an embedded broker unless MES_DATABASE_URL / MES_MQTT_URL are set.
    While it produces, the live board is at http://127.0.0.1:8765/board (the URL is printed at the start).
    Exits 0 when every machine's recorded good / scrap / Wh equals the simulator's ground truth, else 1.

    Ctrl-C (or SIGTERM) ends production early: the last counts are committed and the reckoning of what was
    produced until then is printed (a second Ctrl-C stops waiting for the last counts); exit code 130
    (143 after SIGTERM).
    """
    from app.demo import run_demo

    settings = _settings(plant, log_to_console=False)
    raise typer.Exit(run_demo(settings, duration, summary_json, live=live, fresh=not keep_data, board_port=board_port))


@app.command()
def simulate(
    plant: PlantOption = None,
    duration: Annotated[float | None, typer.Option(help="seconds to run (default: until Ctrl-C)")] = None,
    opcua_restart_every: Annotated[float | None, typer.Option(
        help="restart every OPC UA server this often (seconds), each time with its namespaces at a higher index, "
             "as a PLC whose project gained a library; production goes on meanwhile", min=1)] = None,
) -> None:
    """Serve the plant's simulated PLCs (OPC UA and Modbus TCP servers) and produce.

    OPC UA security is what the machines' `source.security` asks of the edge (docs/plant-file.md).
    Ctrl-C or SIGTERM stops it; exit code 0.
    """
    from kernel.plant import load_plant
    from simulators.service import run_simulator

    settings = _settings(plant)
    try:
        _run_until_signal(lambda: run_simulator(load_plant(settings.plant), duration, opcua_restart_every_s=opcua_restart_every))
    except LookupError as error:  # an OPC UA user's password that cannot be read: what to fix, not a traceback
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def edge(
    plant: PlantOption = None,
    machines: Annotated[str | None, typer.Option(help="comma-separated machine ids (default: those the plant file "
                                                                   "assigns to the edge)")] = None,
    edge_id: Annotated[str | None, typer.Option(help="edge id (default: the plant file's edge_id)")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="epoch and disk queue (default: DATA_DIR/edge-<id>)")] = None,
    metrics_port: MetricsPortOption = None,
) -> None:
    """Read the machines' counters and states and publish them over MQTT, buffering on disk while the broker is away.

    Broker: MES_MQTT_URL (default mqtt://127.0.0.1:1883; mqtts:// with MES_MQTT_CA_FILE, MES_MQTT_CERT_FILE,
    MES_MQTT_KEY_FILE), as the edge's identity in the plant file (`mqtt.edges`: username, password_env or
    password_file). It reads the machines the plant file assigns to it unless --machines names others.
    Ctrl-C or SIGTERM stops it cleanly (what is not yet published stays in the disk queue); exit code 0.
    """
    from edge.agent import EdgeAgent
    from kernel.plant import load_plant

    settings = _settings(plant)
    loaded = load_plant(settings.plant)
    identity = edge_id or loaded.edge_id
    foreign = sorted(set(machines.split(",")) - {m.id for m in loaded.machines_of(identity)}) if machines else []
    if foreign:
        get_logger("mes.edge").warning(
            "machines not assigned to this edge: the core refuses their data (edge not assigned) unless the plant "
            "file says `edge_id: <this edge>` for them", edge_id=identity, machines=foreign)
    agent = EdgeAgent(
        loaded, _mqtt_url(settings, loaded, identity), state_dir or settings.data_dir / f"edge-{identity}",
        edge_id=identity, machine_ids=set(machines.split(",")) if machines else None,
        flush_ms=settings.edge_flush_ms, queue_max=settings.edge_queue_max, queue_max_bytes=settings.edge_queue_max_bytes, heartbeat_s=settings.edge_heartbeat_s,
        metrics_host=settings.metrics_host, metrics_port=metrics_port if metrics_port is not None else settings.metrics_port,
    )

    _run_until_signal(agent.run, on_signal=agent.stop)


@app.command()
def core(plant: PlantOption = None, metrics_port: MetricsPortOption = None) -> None:
    """Consume machine data from MQTT and commit exact production records to the database.

    Migrates the schema and registers the plant's machines first. Database: MES_DATABASE_URL
    (default: the embedded PostgreSQL in DATA_DIR). Broker: MES_MQTT_URL (default mqtt://127.0.0.1:1883;
    mqtts:// with MES_MQTT_CA_FILE, MES_MQTT_CERT_FILE, MES_MQTT_KEY_FILE), as the core's identity in the plant
    file (`mqtt.core`), with the client id MES_CORE_CLIENT_ID (default derived from the database). A second
    core with the same client id on the same database refuses to start (exit code 1), unless every core of the plant
    runs with MES_CORE_PARTITION=edges: they then share the plant's edges, each edge ingested by one of them at a
    time, and a core that dies hands its edges to the others (docs/deploy.md). Beside ingest it runs the core's jobs
    (with several cores, one of them does): alert rounds, notifications, stock valuation and, in a child
    process that ends with it, the board rollups.
    Ctrl-C or SIGTERM stops it cleanly: the batch in hand is committed and acknowledged, every job
    finishes its round in hand, the child process is stopped; exit code 0.
    """
    from app.core_process import AnotherCoreRuns, CoreProcess, core_options
    from core.service import prepare_database
    from kernel.plant import load_plant
    from kernel.runtime import database

    settings = _settings(plant)
    log = get_logger("mes.core")
    loaded = load_plant(settings.plant)
    mqtt_url = _mqtt_url(settings, loaded)
    with database(settings) as database_url:
        prepare_database(database_url, loaded)
        options = core_options(settings)
        if metrics_port is not None:
            options["metrics_port"] = metrics_port
        core = CoreProcess(database_url, mqtt_url, **options)
        _on_stop_signals(core.stop)
        log.info("core running", client_id=core.client_id, partition=settings.core_partition)
        try:
            core.run()
        except AnotherCoreRuns as refused:
            log.error("core refused to start", reason=str(refused))
            raise typer.Exit(1) from None
        log.info("core stopped", **vars(core.consumer.service.totals))


@app.command()
def api(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    plant: PlantOption = None,
) -> None:
    """Serve the HTTP API: master data, work orders and dispatch, stock. OpenAPI docs at /docs.

    Migrates the schema and registers the plant's machines first. Database: MES_DATABASE_URL
    (default: the embedded PostgreSQL in DATA_DIR).
    Ctrl-C or SIGTERM stops it after the requests in hand; exit code 0.
    """
    import uvicorn

    from core.service import prepare_database
    from app.api import create_app
    from kernel.plant import load_plant
    from kernel.runtime import database

    settings = _settings(plant)
    with database(settings) as database_url:
        prepare_database(database_url, load_plant(settings.plant))
        # uvicorn handles the stop signals while it serves, then raises the one it got again, for the
        # handlers it found: these, so that the command ends as asked rather than as interrupted
        _on_stop_signals(lambda: None)
        uvicorn.run(create_app(database_url), host=host, port=port, log_level=settings.log_level.lower())


@mqtt_app.command("acl")
def mqtt_acl(
    plant: PlantOption = None,
    dynsec: Annotated[bool, typer.Option("--dynsec", help="as mosquitto_ctrl commands for the dynamic security plugin")] = False,
) -> None:
    """Print what each MQTT identity of the plant may publish and read, for the plant's own broker.

    Each edge: its own machines' data topics and its own status topic (write). The core: every data and
    status topic (read), the alert notifications (write). Default: a Mosquitto `acl_file`; --dynsec: a shell
    script of `mosquitto_ctrl dynsec` commands (its arguments: mosquitto_ctrl's connection options).
    docs/security.md explains both, and EMQX.
    """
    from kernel.mqtt_access import dynsec_script, mosquitto_acl, plant_grants
    from kernel.plant import load_plant

    loaded = load_plant(_settings(plant, log_to_console=False).plant)
    typer.echo(dynsec_script(loaded) if dynsec else mosquitto_acl(plant_grants(loaded)), nl=False)


@mqtt_app.command("passwd")
def mqtt_passwd(plant: PlantOption = None) -> None:
    """Print a Mosquitto password file for the plant's own broker: the core's and every edge's user, each with the
    password its `password_env` / `password_file` names, hashed as `mosquitto_passwd` does (PBKDF2-SHA512).

    The passwords themselves are never printed. Write it where the broker's `password_file` points, beside the
    ACL file of `mes mqtt acl`, and reload the broker (docs/deploy.md)."""
    from kernel.mqtt_access import mosquitto_password_file
    from kernel.plant import load_plant

    loaded = load_plant(_settings(plant, log_to_console=False).plant)
    try:
        typer.echo(mosquitto_password_file(loaded), nl=False)
    except ValueError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="an .xlsx / .xlsm workbook, or a .csv file named after its kind (items.csv)",
                                         exists=True, dir_okay=False, readable=True)],
    database_url: Annotated[str | None, typer.Option("--database-url", help="postgresql://… (default: MES_DATABASE_URL, "
                                                     "else the embedded PostgreSQL in DATA_DIR)")] = None,
) -> None:
    """Import items, BOMs, suppliers, customers and opening stock with cost, all or nothing.

    **The file.** An Excel workbook with one sheet per kind, named `items`, `boms`, `suppliers`, `customers`,
    `opening_stock` (any of them, any order); or one CSV file (UTF-8, comma-separated) named after its kind,
    e.g. `items.csv`. Row 1 names the columns, in any order; optional ones may be left out. Rows are numbered
    as Excel shows them (the first data row is row 2).

    **Columns** (* required):

    - items: item_id*, name*, kind* (make | buy), uom*, shelf_life_days, standard_cost, valuation
      (moving_average | fifo), safety_stock, reorder_quantity
    - boms: parent_item*, component_item*, quantity_per*, scrap_factor, phantom (true/false),
      effective_from, effective_to (YYYY-MM-DD)
    - suppliers / customers: supplier_id* / customer_id*, name*, email
    - opening_stock: item_id*, location_id* (an existing location), lot, quantity*, unit_cost*, expires (needs a lot)

    Numbers in plain notation with a point (1234.5); money with at most 6 decimals. Every rule:
    `python -m pydoc inventory.rules.importing`.

    **Result.** Nothing is written unless every row is valid: otherwise every bad row is listed as
    "sheet row N, column: reason" and the exit code is 1. Re-importing a file changes nothing: items,
    suppliers, customers and BOM lines are updated to what the file says; opening stock already booked
    (same item, location and lot) is skipped, never booked twice. Migrates the schema first.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from kernel.db.migrations import upgrade
    from inventory.rules.importing import KINDS
    from kernel.db.models import session_on
    from kernel.runtime import database
    from kernel.rules.refusals import Conflict
    from inventory.services.importing import import_file

    settings = _settings(log_to_console=False)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    with database(settings) as url:
        upgrade(url)
        try:
            with session_on(url) as session:
                report = import_file(session, file)
        except (Conflict, SQLAlchemyError) as error:
            typer.echo(f"{file.name}: nothing was imported: {getattr(error, 'orig', None) or error}", err=True)
            raise typer.Exit(1) from None
    if not report.ok:
        typer.echo(f"{report.file}: nothing was imported; {len(report.errors)} problem(s):", err=True)
        for error in report.errors:
            typer.echo(f"  {error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{report.file}: imported")
    for kind in KINDS:
        tally = report.tallies[kind]
        counts = ", ".join(f"{getattr(tally, outcome)} {outcome}" for outcome in ("created", "updated", "unchanged", "skipped"))
        typer.echo(f"  {kind}: {counts}" if tally.total else f"  {kind}: none in the file")
    for note in report.notes:
        typer.echo(f"  note: {note}")


@app.command()
def plan(
    start: Annotated[datetime | None, typer.Option("--start", formats=["%Y-%m-%d"], help="first bucket's day (default: today, UTC)")] = None,
    bucket: Annotated[str, typer.Option("--bucket", help="day or week")] = "week",
    buckets: Annotated[int, typer.Option("--buckets", help="how many buckets (at most 366)")] = 12,
    database_url: Annotated[str | None, typer.Option("--database-url", help="postgresql://… (default: MES_DATABASE_URL, "
                                                     "else the embedded PostgreSQL in DATA_DIR)")] = None,
    regenerate: Annotated[bool, typer.Option("--regenerate", help="regenerate the maintained live plan (today, day "
                                             "buckets, 28 of them) in full, and print it; --start/--bucket/--buckets do not apply")] = False,
) -> None:
    """Print the live plan: planned orders to release and the exception messages (docs/planning.md).

    Computed from what is stored now (items' planning parameters, BOMs, stock, open purchase, sales and
    work orders with their counted good quantity, transfers in transit, forecasts); nothing is written, but
    with --regenerate, which replaces the maintained live plan the core's planner keeps up to date.
    A refusal (a BOM cycle, an item without lead time, too many buckets) is printed with exit code 1."""
    from datetime import UTC


    from kernel.db.models import session_on
    from kernel.rules.refusals import Refused
    from kernel.runtime import database
    from planning.services import live
    from planning.services.plans import live_plan, run_view

    settings = _settings(log_to_console=False)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    now = datetime.now(UTC)
    with database(settings) as url:
        try:
            with session_on(url) as session:
                if regenerate:
                    run = live.regenerate_live(session, now)
                    result = run_view(session, run.run_id, "live", run.horizon).plan
                else:
                    result = live_plan(session, start.date() if start else now.date(), bucket, buckets, now).plan  # type: ignore[arg-type]
        except Refused as error:
            typer.echo(f"no plan: {error}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"planned orders ({len(result.planned_orders)}):")
    for order in result.planned_orders:
        late = " (release past due)" if order.release_past_due else ""
        typer.echo(f"  {order.id}: {order.kind} {order.quantity} {order.item}, release {order.release}, "
                   f"receipt {order.receipt}{late}")
    typer.echo(f"exceptions ({len(result.exceptions)}):")
    for exception in result.exceptions:
        typer.echo(f"  {exception.kind}: {exception.message}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest version (TimescaleDB when the server has it)."""
    from kernel.db.migrations import upgrade
    from kernel.runtime import database

    settings = _settings()
    with database(settings) as database_url:
        upgrade(database_url)
    typer.echo("schema is up to date")


@db_app.command("sql")
def db_sql(timescale: Annotated[bool, typer.Option(help="the TimescaleDB variant")] = False) -> None:
    """Print the schema as SQL (for review or for a DBA to apply by hand)."""
    from kernel.db.migrations import offline_sql

    sys.stdout.write(offline_sql(timescale))


@db_app.command("rollups")
def db_rollups(
    since: Annotated[datetime, typer.Option("--since", help="first hour to recompute, with its timezone (e.g. 2026-11-01T00:00:00+00:00)")],
    until: Annotated[datetime | None, typer.Option("--until", help="last instant to recompute (default: now)")] = None,
) -> None:
    """Recompute the board rollups (oee_hourly, downtime_hourly) from SINCE.

    The core keeps them fresh by itself: the last hours every minute, and back as far as any late data
    or late stop reason reached. Run this after changing which fault codes mean which reason (that
    re-reasons all history), or to rebuild a range. A day at a time, each in its own transaction, with
    progress; safe to re-run or to interrupt: each hour is replaced, never added to."""
    from datetime import UTC, timedelta

    from rich.progress import Progress
    from sqlalchemy.orm import Session

    from kernel.db.models import make_engine
    from kernel.runtime import database
    from mes.services.rollups import refresh

    if since.tzinfo is None or (until is not None and until.tzinfo is None):
        raise typer.BadParameter("give times with a timezone, e.g. 2026-11-01T00:00:00+00:00")
    until = until or datetime.now(UTC)
    since = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    starts = [since + n * day for n in range(max(1, -(-(until - since) // day)))]
    settings = _settings()
    hours = 0
    with database(settings) as database_url:
        engine = make_engine(database_url)
        try:
            with Progress() as progress:
                task = progress.add_task("recomputing rollups", total=len(starts))
                for start in starts:
                    with Session(engine) as session:
                        # up to the instant before the next day's first hour: each hour once
                        hours += refresh(session, start, min(start + day - timedelta(microseconds=1), until))
                        session.commit()
                    progress.advance(task)
        finally:
            engine.dispose()
    typer.echo(f"recomputed {hours} hour(s) of rollups")


def main() -> None:
    """The `mes` command: `app`, with a missing embedded extra told as a message and exit code 1, not a traceback."""
    try:
        app()
    except RuntimeError as error:
        # imported only now: kernel.embedded brings psycopg, which `mes --help` has no use for
        from kernel.embedded.extra import EmbeddedExtraMissing

        if not isinstance(error, EmbeddedExtraMissing):
            raise
        typer.echo(f"Error: {error}", err=True)
        raise SystemExit(1) from None
