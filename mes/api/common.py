"""What every router shares: the database session of a request, id and quantity types, base models."""

from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=9)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _session(request: Request) -> Iterator[Session]:
    """One session per request: the services commit once, or nothing is written."""
    with request.app.state.sessions() as opened:
        yield opened


Db = Annotated[Session, Depends(_session)]
