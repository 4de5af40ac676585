"""Each machine's connection status and the readings that could not be used, as the edge's retained
status message reports them (kernel.payload.MachineConnection).

Nothing is dropped in silence: every unusable reading is counted per machine and reason, and logged,
the same failure of the same signal at most once per LOG_EVERY_S (with how many were not logged). Each
change of a machine to a status but `ok` is counted too (the edge's metrics, edge/metrics.py).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kernel.logs import get_logger
from kernel.payload import ConnectionStatus, MachineConnection

log = get_logger(__name__)

LOG_EVERY_S = 60.0


@dataclass
class _Machine:
    status: ConnectionStatus = "unreachable"
    detail: str = "not connected yet"
    since: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    unusable: Counter[str] = field(default_factory=Counter)
    # times a failure was reported (a status but `ok`, or another reason for it): repeats of one failure count once
    faults: Counter[str] = field(default_factory=Counter)
    # Readings last arrived at (monotonic); a polled machine with none for a while is stale.
    last_value_at: float | None = None


class Health:
    def __init__(self, machine_ids: Iterable[str], source: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._machines = {machine_id: _Machine() for machine_id in machine_ids}
        self._source = source
        self._clock = clock
        self._last_logged: dict[tuple[str, str, str], float] = {}
        self._not_logged: Counter[tuple[str, str, str]] = Counter()
        self.changes = 0  # grows with every status change: the agent republishes its status then

    def set(self, machine_id: str, status: ConnectionStatus, detail: str = "") -> None:
        machine = self._machines[machine_id]
        if (machine.status, machine.detail) == (status, detail):
            return
        log_at = log.info if status == "ok" else log.warning
        log_at("source.machine_status", source=self._source, machine=machine_id, status=status, detail=detail,
               was=machine.status)
        if status != "ok":
            machine.faults[status] += 1
        machine.status, machine.detail, machine.since = status, detail, datetime.now(timezone.utc)
        self.changes += 1

    def set_all(self, status: ConnectionStatus, detail: str = "") -> None:
        for machine_id in self._machines:
            self.set(machine_id, status, detail)

    def status(self, machine_id: str) -> ConnectionStatus:
        return self._machines[machine_id].status

    def faults(self, machine_id: str) -> dict[ConnectionStatus, int]:
        """Per status but `ok`, how many failures (a failed connection or read, a refused address) were
        reported for the machine, each repeat of the same one counted once: for the edge's metrics."""
        return dict(self._machines[machine_id].faults)  # type: ignore[arg-type]

    def value_arrived(self, machine_id: str) -> None:
        self._machines[machine_id].last_value_at = self._clock()

    def unusable(self, machine_id: str, signal: str, reason: str, detail: str) -> None:
        self._machines[machine_id].unusable[reason] += 1
        key = (machine_id, signal, reason)
        now = self._clock()
        last = self._last_logged.get(key)
        if last is not None and now - last < LOG_EVERY_S:
            self._not_logged[key] += 1
            return
        self._last_logged[key] = now
        log.warning("source.reading_unusable", source=self._source, machine=machine_id, signal=signal, reason=reason,
                    detail=detail, not_logged_since_last=self._not_logged.pop(key, 0))

    def snapshot(self, stale_after_s: dict[str, float] | None = None) -> dict[str, MachineConnection]:
        """Each machine's connection; one marked `ok` whose values stopped for longer than its entry in
        `stale_after_s` shows `stale`."""
        now = self._clock()
        report = {}
        for machine_id, machine in self._machines.items():
            status, detail = machine.status, machine.detail
            limit = (stale_after_s or {}).get(machine_id)
            if status == "ok" and limit is not None and machine.last_value_at is not None and now - machine.last_value_at > limit:
                status, detail = "stale", f"no value for {now - machine.last_value_at:.0f} s"
            report[machine_id] = MachineConnection(status=status, detail=detail, since=machine.since,
                                                   unusable=dict(machine.unusable))
        return report
