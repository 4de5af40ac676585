"""The one reconnect policy: how long to wait before trying a lost connection again, and a retry loop
(tenacity) for sync and async code that follows it, with one log line per failed attempt.

Used by the PLC sources (edge/sources/base.py) and by the ingest's commit of a batch while the
database is unavailable. The protocol libraries' own reconnect loops stay off (see the sources):
one schedule, and every failed attempt reported in the same words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from kernel.logs import get_logger, redact_secrets

log = get_logger(__name__)

T = TypeVar("T")
ErrorTypes = type[BaseException] | tuple[type[BaseException], ...]


@dataclass(frozen=True, slots=True)
class Backoff:
    """The wait after failed attempt n: first_s * factor**(n-1), plus up to jitter_s so that many
    clients losing one server do not all come back at the same instant, never more than max_s."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 5.0
    jitter_s: float = 0.25

    def wait(self) -> wait_exponential_jitter:
        return wait_exponential_jitter(multiplier=self.first_s, exp_base=self.factor, max=self.max_s, jitter=self.jitter_s)


RECONNECT = Backoff()


def retry_sync(fn: Callable[[], T], *, what: str, on: ErrorTypes, before_retry: Callable[[], None] | None = None,
               backoff: Backoff = RECONNECT) -> T:
    """`fn()`, called again after each error of the types `on` until it returns; any other error
    propagates at once. `before_retry` runs after each wait, before the next attempt (reopen a
    connection the failure left broken). `what` names the work in the log lines."""
    before = _before_retry(before_retry) if before_retry is not None else None
    return Retrying(before=before, **_policy(what, on, backoff))(fn)


async def retry_async(fn: Callable[[], Awaitable[T]], *, what: str, on: ErrorTypes, backoff: Backoff = RECONNECT) -> T:
    """As `retry_sync`, awaiting `fn()`; a cancel ends the loop at once, even during a wait."""
    return await AsyncRetrying(**_policy(what, on, backoff))(fn)


def _policy(what: str, on: ErrorTypes, backoff: Backoff) -> dict[str, Any]:
    return {
        "retry": retry_if_exception_type(on),
        "wait": backoff.wait(),
        "before_sleep": _log_failed_attempt(what),
        "reraise": True,
    }


def _log_failed_attempt(what: str) -> Callable[[RetryCallState], None]:
    def log_it(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning("retrying", what=redact_secrets(what), attempt=state.attempt_number,
                    error=redact_secrets(f"{type(error).__name__}: {error}"),
                    retry_in_s=round(state.upcoming_sleep, 2))
    return log_it


def _before_retry(action: Callable[[], None]) -> Callable[[RetryCallState], None]:
    def before(state: RetryCallState) -> None:
        if state.attempt_number > 1:
            action()
    return before
