"""The edge agent: PLC readings in, MQTT data messages out, nothing lost while the broker is away.

Flow: sources -> SampleBuffer (report by exception + periodic snapshot) -> every flush_ms one
message per machine -> DiskQueue (SQLite) -> publisher (QoS 1, strictly in queue order) -> the row
is deleted only when paho reports the broker's PUBACK for it.

Threads: paho runs its own network thread; its callbacks only hand the event to the event loop
with `call_soon_threadsafe`. SQLite runs on one dedicated worker thread, so fsyncs never stall the
sources and every queue operation happens in submission order.

Historical: a message is published with `historical: true` when it did not go out promptly:
enqueued while the broker was unreachable, still waiting in the queue when the connection dropped,
or left in the queue by an earlier run. Messages already handed to paho when the connection drops
are retransmitted by paho after the reconnect exactly as first sent (historical false).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho

from edge.buffer import SampleBuffer, samples_json
from edge.epoch import next_epoch
from edge.queue import QUEUE_FILE, DiskQueue, OutgoingMessage
from edge.sources import Reading, Source, build_sources
from kernel.logs import get_logger
from kernel.mqtt import MAX_IN_FLIGHT, connect, new_client, parse_mqtt_url
from kernel.payload import EdgeStatus, MachineConnection, data_topic, status_topic
from kernel.plant import Machine, Plant

log = get_logger(__name__)

T = TypeVar("T")

# paho is told the same limit in kernel.mqtt.new_client; more would only sit in paho's memory.


@dataclass
class EdgeMetrics:
    """Cumulative counters (the edge never computes deltas) and current gauges."""

    epoch: int = 0
    connected: bool = False
    readings_total: int = 0
    enqueued_total: int = 0
    published_total: int = 0  # messages PUBACKed by the broker during this run
    dropped_total: int = 0  # messages dropped by the queue bound, over every run (persisted)
    queue_depth: int = 0
    in_flight: int = 0


def select_machines(plant: Plant, machine_ids: set[str] | None) -> tuple[Machine, ...]:
    if machine_ids is None:
        return plant.machines
    unknown = machine_ids - {m.id for m in plant.machines}
    if unknown:
        raise ValueError(f"machines not in the plant: {', '.join(sorted(unknown))}")
    return tuple(m for m in plant.machines if m.id in machine_ids)


class EdgeAgent:
    def __init__(
        self,
        plant: Plant,
        mqtt_url: str,
        state_dir: Path,
        *,
        edge_id: str | None = None,
        machine_ids: set[str] | None = None,
        flush_ms: int = 200,
        queue_max: int = 200_000,
        heartbeat_s: int = 10,
        stats_every_s: int = 30,
        stop_drain_s: float = 2.0,
    ) -> None:
        self.machines = select_machines(plant, machine_ids)
        if not self.machines:
            raise ValueError("the edge agent needs at least one machine")
        self.edge_id = edge_id or plant.edge_id
        self.state_dir = Path(state_dir)
        self.flush_s = flush_ms / 1000
        self.heartbeat_s = heartbeat_s
        self.stats_every_s = stats_every_s
        self.stop_drain_s = stop_drain_s
        self.queue_max = queue_max
        self.metrics = EdgeMetrics()
        self.sources: list[Source] = []
        self._target = parse_mqtt_url(mqtt_url)
        self._topics = {m.id: data_topic(m.site, m.area, m.line, m.id) for m in self.machines}
        self._buffer = SampleBuffer()
        self._seq = 0
        self._stopping = asyncio.Event()
        self._wake_publisher = asyncio.Event()
        self._in_flight: dict[int, int] = {}  # paho mid -> queue row id
        self._acked_rows: list[int] = []
        self._handed_over_through = 0  # highest queue row id given to paho
        self._connection_dropped = False
        self._published_connections: dict[str, MachineConnection] = {}
        self._published_changes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: DiskQueue | None = None
        self._db_thread: ThreadPoolExecutor | None = None
        self._client: paho.Client | None = None

    def stop(self) -> None:
        """Ask `run` to finish (call on the event loop's thread)."""
        self._stopping.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.metrics.epoch = next_epoch(self.state_dir)
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"edge-queue-{self.edge_id}")
        self._queue = await self._db(DiskQueue, self.state_dir / QUEUE_FILE, self.queue_max)
        # Rows left by an earlier run reach the broker late by definition.
        await self._db(self._queue.mark_all_historical)
        self._refresh_queue_metrics()
        log.info("edge.starting", edge_id=self.edge_id, epoch=self.metrics.epoch, machines=list(self._topics),
                 leftover_messages=self.metrics.queue_depth)
        workers: list[asyncio.Task[None]] = []
        try:
            self._client = self._start_mqtt()
            self.sources = build_sources(self.machines)
            for source in self.sources:
                await source.start(self._on_reading)
            workers = [
                asyncio.create_task(self._every(self.flush_s, self._flush), name="edge flush"),
                asyncio.create_task(self._every(self.heartbeat_s, self._heartbeat), name="edge heartbeat"),
                asyncio.create_task(self._every(self.stats_every_s, self._log_stats), name="edge stats"),
                asyncio.create_task(self._publish_forever(), name="edge publisher"),
            ]
            stopping = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait([stopping, *workers], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            for task in done:
                if task is not stopping:
                    task.result()  # a worker died: raise its error after the clean-up below
        finally:
            await self._shut_down(workers)

    # --- readings -> messages ---------------------------------------------------------------

    def _on_reading(self, reading: Reading) -> None:
        self.metrics.readings_total += 1
        self._buffer.observe(reading)

    async def _heartbeat(self) -> None:
        self._buffer.snapshot()
        # Also what changes without an event: a polled machine turning stale, the unusable counts.
        if self.metrics.connected and self._connections() != self._published_connections:
            self._publish_status()

    def _connections(self) -> dict[str, MachineConnection]:
        connections: dict[str, MachineConnection] = {}
        for source in self.sources:
            connections |= source.health.snapshot(source.stale_after_s())
        return connections

    def _publish_status(self) -> None:
        """The retained online status, with each machine's connection."""
        self._published_connections = self._connections()
        self._published_changes = sum(source.health.changes for source in self.sources)
        online = EdgeStatus(edge_id=self.edge_id, online=True, epoch=self.metrics.epoch, ts=datetime.now(timezone.utc),
                            machines=list(self._topics), connections=self._published_connections)
        self._client.publish(status_topic(self.edge_id), online.model_dump_json(), qos=1, retain=True)

    async def _flush(self) -> None:
        if self.metrics.connected and sum(source.health.changes for source in self.sources) != self._published_changes:
            self._publish_status()
        pending = self._buffer.drain()
        if not pending:
            return
        historical = not self.metrics.connected
        messages = []
        for machine_id, samples in pending.items():
            self._seq += 1
            messages.append(OutgoingMessage(
                topic=self._topics[machine_id], edge_id=self.edge_id, machine=machine_id,
                epoch=self.metrics.epoch, seq=self._seq, samples_json=samples_json(samples), historical=historical,
            ))
        dropped = await self._db(self._queue.enqueue, messages, handed_over_through=self._handed_over_through)
        self.metrics.enqueued_total += len(messages)
        if dropped:
            log.warning("edge.queue_full_dropped_oldest", dropped=dropped, queue_max=self.queue_max)
        self._refresh_queue_metrics()
        self._wake_publisher.set()

    # --- queue -> broker ----------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        while True:
            await self._wake_publisher.wait()
            self._wake_publisher.clear()
            if self._connection_dropped:
                self._connection_dropped = False
                await self._db(self._queue.mark_all_historical)
            if self._acked_rows:
                acked, self._acked_rows = self._acked_rows, []
                await self._db(self._queue.remove, acked)
                self.metrics.published_total += len(acked)
                self._refresh_queue_metrics()
            room = MAX_IN_FLIGHT - len(self._in_flight)
            if not self.metrics.connected or room <= 0:
                continue
            for row in await self._db(self._queue.peek, self._handed_over_through, room):
                info = self._client.publish(row.topic, row.payload(), qos=1)
                # Recorded before the next await: the PUBACK callback reaches the loop only after this.
                self._in_flight[info.mid] = row.id
                self._handed_over_through = row.id
            self.metrics.in_flight = len(self._in_flight)

    # --- paho callbacks (network thread) and their loop-side halves ----------------------------

    def _start_mqtt(self) -> paho.Client:
        client = new_client(self._target, client_id=f"edge-{self.edge_id}", persistent=False)
        offline = EdgeStatus(edge_id=self.edge_id, online=False, epoch=self.metrics.epoch)
        client.will_set(status_topic(self.edge_id), offline.model_dump_json(), qos=1, retain=True)
        client.on_connect = lambda _c, _u, _f, reason, _p: self._from_paho(self._on_connected, not reason.is_failure)
        client.on_disconnect = lambda _c, _u, _f, reason, _p: self._from_paho(self._on_disconnected, str(reason))
        client.on_publish = lambda _c, _u, mid, _r, _p: self._from_paho(self._on_puback, mid)
        connect(client, self._target)
        return client

    def _from_paho(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop already closed during shutdown; nothing is waiting for this event

    def _on_connected(self, accepted: bool) -> None:
        if not accepted:
            return
        self.metrics.connected = True
        self._publish_status()
        log.info("edge.mqtt_connected", broker=f"{self._target.host}:{self._target.port}")
        self._wake_publisher.set()

    def _on_disconnected(self, reason: str) -> None:
        if self.metrics.connected:
            log.warning("edge.mqtt_disconnected", reason=reason)
        self.metrics.connected = False
        self._connection_dropped = True
        self._wake_publisher.set()

    def _on_puback(self, mid: int) -> None:
        row_id = self._in_flight.pop(mid, None)
        if row_id is None:
            return  # the status message, or a mid from before a reconnect already settled
        self._acked_rows.append(row_id)
        self.metrics.in_flight = len(self._in_flight)
        self._wake_publisher.set()

    # --- housekeeping -------------------------------------------------------------------------

    async def _log_stats(self) -> None:
        log.info("edge.stats", **asdict(self.metrics),
                 sources_connected=sum(s.connected for s in self.sources), sources=len(self.sources),
                 machines_not_ok=sorted(m for m, c in self._connections().items() if c.status != "ok"))

    def _refresh_queue_metrics(self) -> None:
        self.metrics.queue_depth = self._queue.depth()
        self.metrics.dropped_total = self._queue.dropped_total

    async def _every(self, period_s: float, action: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(period_s)
            await action()

    async def _db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._loop.run_in_executor(self._db_thread, functools.partial(function, *args, **kwargs))

    async def _drain(self, publisher: asyncio.Task[None]) -> None:
        """Give the publisher a moment to deliver what is queued, so a clean stop leaves little behind."""
        deadline = self._loop.time() + self.stop_drain_s
        while self.metrics.connected and not publisher.done() and self._loop.time() < deadline:
            if self.metrics.queue_depth == 0 and not self._in_flight:
                return
            await asyncio.sleep(0.05)

    async def _shut_down(self, workers: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*(source.stop() for source in self.sources), return_exceptions=True)
        publisher = workers[-1] if workers else None
        for task in workers[:-1]:
            task.cancel()
        await asyncio.gather(*workers[:-1], return_exceptions=True)
        try:
            await self._flush()  # what the sources produced last still goes to disk
            if publisher is not None:
                await self._drain(publisher)
        finally:
            if publisher is not None:
                publisher.cancel()
                await asyncio.gather(publisher, return_exceptions=True)
            self._stop_mqtt()
            await self._db(self._queue.close)
            self._db_thread.shutdown(wait=True)
            await self._log_stats()
            log.info("edge.stopped", edge_id=self.edge_id, epoch=self.metrics.epoch)

    def _stop_mqtt(self) -> None:
        client = self._client
        if client is None:
            return
        if self.metrics.connected:
            offline = EdgeStatus(edge_id=self.edge_id, online=False, epoch=self.metrics.epoch, ts=datetime.now(timezone.utc))
            info = client.publish(status_topic(self.edge_id), offline.model_dump_json(), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError) as exc:
                log.warning("edge.offline_status_not_sent", error=repr(exc))
        client.disconnect()
        client.loop_stop()
        self.metrics.connected = False
