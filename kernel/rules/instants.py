"""Instants: every rule takes aware datetimes; a naive one could be any of 24 instants."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

MICROSECOND = timedelta(microseconds=1)


def require_aware(ts: datetime, what: str) -> datetime:
    """`ts` itself; a naive datetime (or not a datetime) is refused, naming `what` it was meant to be."""
    if not isinstance(ts, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(ts).__name__}: {ts!r}")
    if ts.utcoffset() is None:
        raise ValueError(f"{what} must carry a time zone: {ts.isoformat()} could be any of 24 instants")
    return ts


def exact_seconds(duration: timedelta) -> Decimal:
    """`duration` in seconds, exactly (to its microsecond), for rules that compute with time."""
    return Decimal(duration // MICROSECOND).scaleb(-6)
