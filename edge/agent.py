"""The edge agent: PLC readings in, MQTT data messages out, nothing lost while the broker is away.

Flow: sources -> SampleBuffer (report by exception + periodic snapshot) -> every flush_ms one
message per machine -> DiskQueue (SQLite) -> publisher (QoS 1, strictly in queue order, each message
naming the one published before it) -> the row is deleted only when the core's acknowledgment (its
retained `EdgeAck` on the edge's ack topic) says it committed it; confirmed rows are deleted together, at
most every CONFIRM_EVERY_S. The broker's PUBACK only frees room in flight (IN_FLIGHT_MAX messages). When the core sets a message aside because it follows one the core never got (a broker
that lost its state), the ack asks for a resend and the publisher starts again after the ack's position.

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
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from edge.buffer import SampleBuffer, samples_json
from edge.epoch import next_epoch
from edge.metrics import edge_families
from edge.queue import DEFAULT_MAX_BYTES, QUEUE_FILE, DiskQueue, OutgoingMessage, compact_messages
from edge.sources import Reading, Source, build_sources
from kernel.logs import get_logger
from kernel.metrics import Collected, MetricsServer
from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import EdgeAck, EdgeStatus, MachineConnection, ack_topic, data_topic, status_topic
from kernel.plant import Machine, Plant

log = get_logger(__name__)

T = TypeVar("T")
# Messages held in memory while the disk is full, at most (compacted first): a bounded backlog.
MEMORY_BACKLOG_MAX = 10_000

# Messages handed to paho and not yet PUBACKed, at most (paho is told the same: more would only sit in its
# memory). Large, so that a flush of every machine's message goes out at once rather than one PUBACK round
# trip per hundred; the publisher refills when a quarter of it is free, not at every PUBACK.
IN_FLIGHT_MAX = 1000
REFILL_AT = IN_FLIGHT_MAX // 4
# The core acks after each of its commits, several times a second: the rows it confirmed are deleted at
# most this often, in one transaction (one fsync) for all of them. A row kept a little longer is never lost.
CONFIRM_EVERY_S = 0.5


@dataclass
class EdgeMetrics:
    """Cumulative counters (the edge never computes deltas) and current gauges."""

    epoch: int = 0
    connected: bool = False
    readings_total: int = 0
    enqueued_total: int = 0
    published_total: int = 0  # messages PUBACKed by the broker during this run
    confirmed_total: int = 0  # messages the core confirmed committed during this run
    dropped_total: int = 0  # messages dropped by the queue bound before the broker had them, over every run
    dropped_delivered_total: int = 0  # dropped by the bound while only the broker held them, over every run
    compacted_total: int = 0  # queued rows merged away by compaction at the bound, over every run
    resends: int = 0  # times the core asked for the messages after its position again
    reconnects_total: int = 0  # connections to the broker after the first, during this run
    disk_full: bool = False  # the disk queue refuses writes: new messages wait in memory
    held_in_memory: int = 0
    queue_depth: int = 0
    queue_bytes: int = 0
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
        queue_max_bytes: int = DEFAULT_MAX_BYTES,
        heartbeat_s: int = 10,
        stats_every_s: int = 30,
        stop_drain_s: float = 2.0,
        metrics_host: str = "127.0.0.1",
        metrics_port: int | None = None,
    ) -> None:
        """`metrics_port`: serve the edge's metrics there while it runs (0: a free port, `metrics_server.port`;
        None: not served)."""
        self.edge_id = edge_id or plant.edge_id
        # by default the machines the plant file assigns to this edge: the core refuses any other's data
        self.machines = select_machines(plant, machine_ids) if machine_ids is not None else plant.machines_of(self.edge_id)
        if not self.machines:
            raise ValueError(f"the edge agent needs at least one machine (none is assigned to edge {self.edge_id!r})")
        self.state_dir = Path(state_dir)
        self.flush_s = flush_ms / 1000
        self.heartbeat_s = heartbeat_s
        self.stats_every_s = stats_every_s
        self.stop_drain_s = stop_drain_s
        self.queue_max, self.queue_max_bytes = queue_max, queue_max_bytes
        self.metrics = EdgeMetrics()
        self.registry = CollectorRegistry()
        self.registry.register(Collected(lambda: edge_families(self)))
        self.metrics_server = MetricsServer(self.registry, metrics_host, metrics_port) if metrics_port is not None else None
        self._broker_connections = 0
        self.sources: list[Source] = []
        self._target = parse_mqtt_url(mqtt_url)
        self._topics = {m.id: data_topic(m.site, m.area, m.line, m.id) for m in self.machines}
        self._buffer = SampleBuffer()
        self._seq = 0
        self._stopping = asyncio.Event()
        self._wake_publisher = asyncio.Event()
        self._in_flight: dict[int, int] = {}  # paho mid -> queue row id
        self._handed_over_through = 0  # highest queue row id given to paho
        self._pubacked = False  # a PUBACK arrived since the start or the last resend
        self._more_queued = True  # the queue may hold rows after _handed_over_through
        self._next_confirm_at = 0.0  # loop time
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._follows: tuple[int, int] | None = None  # position of the message published last
        self._acks: list[EdgeAck] = []
        self._unsaved: list[OutgoingMessage] = []  # what the disk refused, oldest first
        self.memory_max = max(1, min(queue_max, MEMORY_BACKLOG_MAX))
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
        self._queue = await self._db(DiskQueue, self.state_dir / QUEUE_FILE, self.queue_max, self.queue_max_bytes)
        # Rows left by an earlier run reach the broker late by definition.
        await self._db(self._queue.mark_all_historical)
        self._follows = await self._db(self._queue.confirmed, self.edge_id)
        self._refresh_queue_metrics()
        log.info("edge.starting", edge_id=self.edge_id, epoch=self.metrics.epoch, machines=list(self._topics),
                 leftover_messages=self.metrics.queue_depth)
        workers: list[asyncio.Task[None]] = []
        try:
            if self.metrics_server is not None:
                self.metrics_server.start()
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
                            machines=list(self._topics), connections=self._published_connections,
                            disk_full=self.metrics.disk_full)
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
        compacted_before = self.metrics.compacted_total
        waiting = self._unsaved + messages
        try:
            dropped = await self._db(self._queue.enqueue, waiting, handed_over_through=self._handed_over_through,
                                     delivered_through=self._delivered_through())
        except sqlite3.OperationalError as error:  # the disk is full (or failing): hold them in memory
            self._hold_in_memory(waiting, error)
            return
        if self._unsaved:
            log.warning("edge.disk_writable_again", saved_from_memory=len(self._unsaved))
            self._unsaved = []
            self._set_disk_full(False)
        self.metrics.enqueued_total += len(messages)
        self._more_queued = True
        self._refresh_queue_metrics()
        if self.metrics.compacted_total > compacted_before:
            log.warning("edge.queue_full_compacted", rows_removed=self.metrics.compacted_total - compacted_before,
                        queue_depth=self.metrics.queue_depth, queue_max=self.queue_max)
        if dropped:
            log.warning("edge.queue_full_dropped_oldest", dropped=dropped, queue_max=self.queue_max)
        self._wake_publisher.set()

    def _hold_in_memory(self, messages: list[OutgoingMessage], error: Exception) -> None:
        """What the disk refused waits in memory, compacted as the queue would, within the queue's bound."""
        held = messages if len(messages) <= self.memory_max else compact_messages(messages)
        if len(held) > self.memory_max:
            log.error("edge.memory_backlog_full_dropped_oldest", dropped=len(held) - self.memory_max)
            held = held[-self.memory_max:]
        if not self.metrics.disk_full:
            log.error("edge.disk_full", error=str(error), holding_in_memory=len(held),
                      hint="free space in the edge's state directory; it recovers by itself")
        self._unsaved = held
        self.metrics.held_in_memory = len(held)
        self._set_disk_full(True)

    def _set_disk_full(self, full: bool) -> None:
        if full != self.metrics.disk_full:
            self.metrics.disk_full = full
            self.metrics.held_in_memory = len(self._unsaved)
            if self.metrics.connected:
                self._publish_status()

    # --- queue -> broker ----------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        while True:
            await self._wake_publisher.wait()
            self._wake_publisher.clear()
            if self._connection_dropped:
                self._connection_dropped = False
                await self._db(self._queue.mark_all_historical)
            if self._acks and (self._loop.time() >= self._next_confirm_at or self._stopping.is_set()
                               or any(ack.resend for ack in self._acks)):
                await self._apply_acks()
                self._next_confirm_at = self._loop.time() + CONFIRM_EVERY_S
            room = IN_FLIGHT_MAX - len(self._in_flight)
            if not self.metrics.connected or not self._more_queued or room < REFILL_AT:
                continue
            rows = await self._db(self._queue.peek, self._handed_over_through, room)
            self._more_queued = len(rows) == room
            for row in rows:
                info = self._client.publish(row.topic, row.payload(self._follows), qos=1)
                # Recorded before the next await: the PUBACK callback reaches the loop only after this.
                self._in_flight[info.mid] = row.id
                self._handed_over_through = row.id
                self._follows = row.position
            self.metrics.in_flight = len(self._in_flight)

    def _delivered_through(self) -> int:
        """The highest queue row id up to which the broker PUBACKed every row (0: none since the start or the
        last resend). Worked out when a flush needs it, not at every PUBACK."""
        if not self._pubacked:
            return 0
        return min(self._in_flight.values(), default=self._handed_over_through + 1) - 1

    async def _apply_acks(self) -> None:
        acks, self._acks = self._acks, []
        newest = max(acks, key=lambda ack: (ack.epoch, ack.seq))
        self.metrics.confirmed_total += await self._db(self._queue.confirm, self.edge_id, newest.epoch, newest.seq)
        self._refresh_queue_metrics()
        if any(ack.resend for ack in acks):
            # The core lacks a message after its position: publish again everything it has not
            # confirmed, as following that position (what the core has); duplicates are skipped there.
            self.metrics.resends += 1
            log.info("edge.resending", after_epoch=newest.epoch, after_seq=newest.seq, queued=self.metrics.queue_depth)
            self._handed_over_through = 0
            self._pubacked = False
            self._more_queued = True
            self._follows = (newest.epoch, newest.seq)

    # --- paho callbacks (network thread) and their loop-side halves ----------------------------

    def _start_mqtt(self) -> paho.Client:
        client = new_client(self._target, client_id=f"edge-{self.edge_id}", persistent=False, max_in_flight=IN_FLIGHT_MAX)
        offline = EdgeStatus(edge_id=self.edge_id, online=False, epoch=self.metrics.epoch)
        client.will_set(status_topic(self.edge_id), offline.model_dump_json(), qos=1, retain=True)
        client.on_connect = lambda _c, _u, _f, reason, _p: self._from_paho(self._on_connected, reason.is_failure, str(reason))
        client.on_disconnect = lambda _c, _u, _f, reason, _p: self._from_paho(self._on_disconnected, str(reason))
        client.on_publish = lambda _c, _u, mid, _r, _p: self._from_paho(self._on_puback, mid)
        client.on_message = lambda _c, _u, message: self._from_paho(self._on_ack_message, message.payload)
        connect(client, self._target)
        return client

    def _from_paho(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop already closed during shutdown; nothing is waiting for this event

    def _on_connected(self, refused: bool, reason: str) -> None:
        if refused:  # paho tries again; wrong credentials stay wrong, so say so each time
            log.warning("edge.mqtt_refused", broker=self._target.address, reason=reason)
            return
        self.metrics.connected = True
        self._broker_connections += 1
        self.metrics.reconnects_total = self._broker_connections - 1
        self._publish_status()
        self._client.subscribe(ack_topic(self.edge_id), qos=1)
        log.info("edge.mqtt_connected", broker=self._target.address)
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
        self.metrics.published_total += 1
        self._pubacked = True
        self.metrics.in_flight = len(self._in_flight)
        if self._more_queued:
            self._wake_publisher.set()

    def _on_ack_message(self, payload: bytes) -> None:
        try:
            ack = EdgeAck.model_validate_json(payload)
        except ValidationError as error:
            log.warning("edge.ack_unreadable", error=str(error.errors()[0]["msg"]))
            return
        if ack.edge_id == self.edge_id:
            self._acks.append(ack)
            if ack.resend or self._stopping.is_set() or self._loop.time() >= self._next_confirm_at:
                self._wake_publisher.set()
            elif self._confirm_timer is None:
                self._confirm_timer = self._loop.call_at(self._next_confirm_at, self._confirm_due)

    def _confirm_due(self) -> None:
        self._confirm_timer = None
        self._wake_publisher.set()

    # --- housekeeping -------------------------------------------------------------------------

    async def _log_stats(self) -> None:
        log.info("edge.stats", **asdict(self.metrics),
                 sources_connected=sum(s.connected for s in self.sources), sources=len(self.sources),
                 machines_not_ok=sorted(m for m, c in self._connections().items() if c.status != "ok"))

    def _refresh_queue_metrics(self) -> None:
        self.metrics.queue_depth = self._queue.depth()
        self.metrics.queue_bytes = self._queue.size_bytes()
        self.metrics.dropped_total = self._queue.dropped_total
        self.metrics.dropped_delivered_total = self._queue.dropped_delivered_total
        self.metrics.compacted_total = self._queue.compacted_total

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
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        self._wake_publisher.set()  # stopping: confirm what the core acked without waiting for the timer
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
            if self.metrics_server is not None:
                self.metrics_server.stop()
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
