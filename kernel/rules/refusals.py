"""Refusals: the one exception family rules and services raise when a request cannot be done.

Each kind has one meaning, and the application maps each to one HTTP status, in one place (app/api.py):

| refusal      | means                                                                  | HTTP |
|--------------|------------------------------------------------------------------------|------|
| `NotFound`   | something the request names does not exist                             | 404  |
| `Conflict`   | the request contradicts what is stored: a lifecycle step out of order, | 409  |
|              | a duplicate id, more than is on hand or on order, a BOM cycle          |      |
| `Invalid`    | the request itself is malformed beyond what its schema can say: an     | 422  |
|              | unknown time zone, an alert rule or tariff the rules cannot build      |      |

They are ValueErrors, so a pure rule's own ValueError can be re-raised as one (`as_conflict`) and
code that only knows "a bad value" still catches them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


class Refused(ValueError):
    """A request that cannot be done, with a message a person can act on."""


class NotFound(Refused):
    """Something named in the request does not exist (HTTP 404)."""


class Conflict(Refused):
    """The request contradicts what is stored (HTTP 409)."""


class Invalid(Refused):
    """The request is malformed (HTTP 422)."""


@contextmanager
def refused_as(kind: type[Refused], *errors: type[Exception]) -> Iterator[None]:
    """A rule's own refusal (ValueError, or `errors`) raised inside becomes `kind` with the rule's message;
    a refusal already classified passes through as it is."""
    caught: tuple[type[Exception], ...] = (ValueError, *errors)
    try:
        yield
    except Refused:
        raise
    except caught as error:
        raise kind(str(error)) from None


def as_conflict() -> AbstractContextManager[None]:
    """The block's rule refusals are 409s: the request contradicts what is stored."""
    return refused_as(Conflict)


def as_invalid() -> AbstractContextManager[None]:
    """The block's rule refusals (ValueError or TypeError) are 422s: the request is malformed."""
    return refused_as(Invalid, TypeError)
