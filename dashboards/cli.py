"""`mes dashboards`: install the Grafana boards through Grafana's API, or write them as files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dashboards.grafana.panels import FOLDER_TITLE, FOLDER_UID, board_json

dashboards_app = typer.Typer(
    help="Grafana boards: line, plant overview, planner, inventory, system health (uids mes-line, mes-plant, mes-planner, "
    "mes-inventory, mes-system).\n\n"
    "`mes dashboards push` installs them in a running Grafana through its HTTP API; `mes dashboards export` writes "
    "them as JSON files for file provisioning (deploy/grafana/). The boards read the MES PostgreSQL database "
    "through one data source, uid `mes-postgres`; the system health board reads Prometheus, uid `mes-prometheus`. Full guide: docs/dashboards.md.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@dashboards_app.command("push")
def push_command(
    grafana_url: Annotated[str, typer.Option("--grafana-url", envvar="GRAFANA_URL",
                                             help="Grafana's base URL, e.g. http://localhost:3000")],
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="GRAFANA_TOKEN",
                                                help="a service account token with the Editor role (or Admin to create the data source)")] = None,
    user: Annotated[str | None, typer.Option("--user", envvar="GRAFANA_USER", help="basic auth user, instead of a token")] = None,
    password: Annotated[str | None, typer.Option("--password", envvar="GRAFANA_PASSWORD", help="basic auth password")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="the MES database as GRAFANA reaches it: postgresql://user:password@host:5432/mes?sslmode=require "
                               "(default: MES_DATABASE_URL). Prefer a read-only role.")] = None,
    timescaledb: Annotated[bool, typer.Option(help="tell Grafana the database has TimescaleDB (only changes $__timeGroup)")] = False,
    folder: Annotated[str, typer.Option("--folder", help="title of the folder the boards go in (uid open-mes)")] = FOLDER_TITLE,
    force_datasource: Annotated[bool, typer.Option(
        "--force-datasource", help="rewrite the data source even if it looks the same (e.g. after a password change)")] = False,
    prometheus_url: Annotated[str | None, typer.Option(
        "--prometheus-url", envvar="PROMETHEUS_URL",
        help="the Prometheus that scrapes the MES processes, as Grafana reaches it (e.g. http://prometheus:9090): "
             "also installs its data source, uid mes-prometheus, which the system health board reads")] = None,
) -> None:
    """Create or update the PostgreSQL data source, the folder and every board in Grafana, by uid.

    Safe to re-run: what already matches is left alone, so a second run changes nothing. Prints, per
    object, **created**, **updated** or **unchanged**. Exits 1 when Grafana refuses a request.

    Credentials: `--api-key` (or GRAFANA_TOKEN), or `--user` and `--password`, or in the URL
    (http://admin:admin@localhost:3000).
    """
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException
    from niquests.exceptions import RequestException

    from dashboards.grafana.boards import every_board
    from dashboards.grafana.push import datasource_for, push
    from dashboards.grafana.system import prometheus_datasource
    from kernel.settings import Settings

    if api_key and (user or password):
        raise typer.BadParameter("give either --api-key or --user/--password, not both")
    if bool(user) != bool(password):
        raise typer.BadParameter("--user and --password go together")
    database_url = database_url or Settings().database_url
    if not database_url:
        raise typer.BadParameter("give --database-url (or set MES_DATABASE_URL): the embedded database is not reachable "
                                 "from Grafana", param_hint="--database-url")
    try:
        datasource = datasource_for(database_url, timescaledb=timescaledb)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--database-url") from None
    api = GrafanaApi.from_url(grafana_url, credential=api_key or ((user, password) if user else None))
    try:
        outcomes = push(api, datasource, every_board(), folder_uid=FOLDER_UID, folder_title=folder, force_datasource=force_datasource,
                        extra_datasources=[prometheus_datasource(prometheus_url)] if prometheus_url else [])
    except (GrafanaException, RequestException) as error:
        typer.echo(f"Grafana at {grafana_url} refused or did not answer: {error}", err=True)
        raise typer.Exit(1) from None
    for outcome in outcomes:
        typer.echo(str(outcome))


@dashboards_app.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="where to write <uid>.json, e.g. deploy/grafana/dashboards",
                                              file_okay=False)],
) -> None:
    """Write every board as Grafana dashboard JSON, one file per board named after its uid.

    This regenerates deploy/grafana/dashboards/ after a board changes (a test keeps those files equal to
    the builders' output). Files of boards that no longer exist are not removed.
    """
    from dashboards.grafana.boards import every_board

    directory.mkdir(parents=True, exist_ok=True)
    for board in every_board():
        path = directory / f"{board['uid']}.json"
        path.write_text(board_json(board), encoding="utf-8")
        typer.echo(f"wrote {path}")
