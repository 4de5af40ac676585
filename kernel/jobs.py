"""Work the core does beside ingest, each job in a thread and database connection of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from kernel.logs import get_logger

log = get_logger("mes.background")


class Event(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Periodic:
    """Runs `job` at once and then every `every_s` seconds until stop(). A failure, whatever it is, is
    logged and the next round tries again: the work it was doing stays where it was (queued, or stale
    for one more round)."""

    def __init__(self, name: str, every_s: float, job: Callable[[], None]):
        self.name, self.every_s, self.job = name, every_s, job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60) -> None:
        """Returns after the round in hand."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _run(self) -> None:
        repeat(self.job, self.every_s, self._stop, self.name)


def repeat(job: Callable[[], None], every_s: float, stop: Event, name: str) -> None:
    """Run `job` at once and then every `every_s` seconds until `stop` is set (a thread's or a process's
    event). A failure, whatever it is, is logged and the next round tries again."""
    while not stop.is_set():
        try:
            job()
        except Exception:
            log.exception("background round failed; tried again next round", job=name)
        stop.wait(every_s)
