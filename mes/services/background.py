"""Work the core does beside ingest, each job in a thread and database connection of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable

from mes.logs import get_logger

log = get_logger("mes.background")


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
        while not self._stop.is_set():
            try:
                self.job()
            except Exception:
                log.exception("background round failed; tried again next round", job=self.name)
            self._stop.wait(self.every_s)
