"""`mes review`: what the ingest set aside for people — quarantined counter steps and dead letters."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

review_app = typer.Typer(
    help="Review what the ingest set aside: counter steps **quarantined** (a climb faster than the machine can make, "
    "a reading beyond the counter's width) and **dead letters** (messages it could not use, with the reason).\n\n"
    "`mes review waiting` says how much waits; `mes review quarantine` and `mes review dead-letters` list it (newest "
    "first, JSON lines); `mes review accept ID` counts a quarantined climb once (attributed, backflushed, costed), "
    "`mes review reingest ID` (or `--machine M`) takes dead letters in again once the plant file is fixed, "
    "`mes review reject ID` and `mes review dismiss ID` set things aside for good. Every decision records who and why. "
    "The same over HTTP: /review/... (docs/mqtt.md, section Review).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

By = Annotated[str, typer.Option("--by", help="who decides (recorded with the decision)")]
Why = Annotated[str, typer.Option("--reason", help="why (recorded with the decision)")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=1000, help="at most this many, newest first")]
BeforeId = Annotated[int | None, typer.Option("--before-id", help="page on: the last id of the page before")]


@contextmanager
def _session() -> Iterator[Session]:
    from kernel.db.models import session_on
    from kernel.runtime import database
    from kernel.settings import Settings

    with database(Settings()) as database_url, session_on(database_url) as session:
        yield session


def _print(rows: list[dict]) -> None:
    for row in rows:
        typer.echo(json.dumps(row, default=str))


def _decide(action: Callable[[Session], dict]) -> None:
    from kernel.rules.refusals import Refused

    with _session() as session:
        try:
            _print([action(session)])
        except Refused as refusal:
            typer.echo(f"refused: {refusal}", err=True)
            raise typer.Exit(1) from None


@review_app.command("waiting")
def waiting() -> None:
    """How much waits for review, and since when."""
    from mes.services.review_waiting import waiting as review_waiting

    with _session() as session:
        _print([review_waiting(session)])


@review_app.command("quarantine")
def quarantine(
    status: Annotated[str, typer.Option("--review", help="pending, accepted or rejected")] = "pending",
    machine: Annotated[str | None, typer.Option("--machine")] = None,
    counter: Annotated[str | None, typer.Option("--counter", help="good, scrap or energy_wh")] = None,
    limit: Limit = 100, before_id: BeforeId = None,
) -> None:
    """Quarantined counter steps, one JSON object per line."""
    from core.services import review

    with _session() as session:
        _print(review.quarantined_steps(session, review=status, machine_id=machine, counter=counter, before_id=before_id,
                                        limit=limit))


@review_app.command("dead-letters")
def dead_letters(
    status: Annotated[str, typer.Option("--review", help="pending, reingested or dismissed")] = "pending",
    reason: Annotated[str | None, typer.Option("--reason", help="a part of the reason, e.g. 'unknown machine'")] = None,
    edge: Annotated[str | None, typer.Option("--edge")] = None,
    machine: Annotated[str | None, typer.Option("--machine")] = None,
    limit: Limit = 100, before_id: BeforeId = None,
) -> None:
    """Dead letters with their reason and payload, one JSON object per line."""
    from core.services import review

    with _session() as session:
        _print(review.dead_letters(session, review=status, reason=reason, edge_id=edge, machine_id=machine,
                                   before_id=before_id, limit=limit))


@review_app.command("accept")
def accept(step_id: Annotated[int, typer.Argument(help="the quarantined step's id")], by: By, reason: Why) -> None:
    """Count a quarantined climb: once, attributed to the order running then, backflushed and costed."""
    from core.services import review

    _decide(lambda session: review.decide_step(session, step_id, accept=True, by=by, reason=reason))


@review_app.command("reject")
def reject(step_id: Annotated[int, typer.Argument(help="the quarantined step's id")], by: By, reason: Why) -> None:
    """Decide that a quarantined step counts nothing."""
    from core.services import review

    _decide(lambda session: review.decide_step(session, step_id, accept=False, by=by, reason=reason))


@review_app.command("dismiss")
def dismiss(letter_id: Annotated[int, typer.Argument(help="the dead letter's id")], by: By, reason: Why) -> None:
    """Set a dead letter aside for good."""
    from core.services import review

    _decide(lambda session: review.dismiss_dead_letter(session, letter_id, by=by, reason=reason))


@review_app.command("reingest")
def reingest(
    by: By, reason: Why,
    letter_id: Annotated[int | None, typer.Argument(help="the dead letter's id")] = None,
    machine: Annotated[str | None, typer.Option("--machine", help="every pending dead letter of this machine, in order")] = None,
) -> None:
    """Take dead letters in again once the plant file knows their machine: counted once, in (epoch, seq) order,
    unless their units could count twice (refused, with why)."""
    from core.services import review

    if (letter_id is None) == (machine is None):
        typer.echo("give a dead letter's id or --machine, not both", err=True)
        raise typer.Exit(2)
    if letter_id is not None:
        _decide(lambda session: review.reingest_dead_letter(session, letter_id, by=by, reason=reason))
    else:
        _decide(lambda session: review.reingest(session, machine_id=machine, by=by, reason=reason))
