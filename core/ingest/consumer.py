"""MQTT → ingest service. At-least-once from the broker, exactly-once into the database.

paho's network thread only queues messages; one worker thread forms batches, commits each through
the IngestService, and only then acknowledges the batch's messages (manual PUBACK, persistent
session). A core that dies before a commit gets the same messages again from the broker; one that
dies after a commit but before the PUBACK gets duplicates, which the sequencing rule skips. After the
PUBACKs it tells each edge heard from how far its messages are committed (`EdgeAck`, retained on the
edge's ack topic): the edge keeps every message until then, so a broker that loses what it had
acknowledged loses nothing.
"""

from __future__ import annotations

import gc
import collections
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as paho

from core.ingest.metrics import IngestMetrics
from core.ingest.plan import Incoming, IngestLimits
from core.ingest.service import IngestService
from kernel.logs import get_logger
from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import DATA_SUBSCRIPTION, STATUS_SUBSCRIPTION, ack_topic

log = get_logger("core.consumer")


@dataclass(frozen=True, slots=True)
class _Delivery:
    incoming: Incoming
    mid: int
    qos: int
    connection: int  # a mid is only meaningful on the connection that delivered it


class _Pending:
    """The deliveries waiting for ingest, bounded in number and in bytes: `put` waits for room."""

    def __init__(self, max_count: int, max_bytes: int):
        self.max_count, self.max_bytes = max_count, max_bytes
        self._items: collections.deque[_Delivery] = collections.deque()
        self._bytes = 0
        self._room = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def full_for(self, delivery: _Delivery) -> bool:
        # one delivery larger than the byte bound still passes alone, so nothing waits for ever
        return len(self._items) >= self.max_count or (
            bool(self._items) and self._bytes + len(delivery.incoming.payload) > self.max_bytes)

    def put(self, delivery: _Delivery, stop: threading.Event) -> bool:
        """False when `stop` was set while it waited (the delivery is then left to the broker)."""
        with self._room:
            while self.full_for(delivery):
                if stop.is_set():
                    return False
                self._room.wait(0.5)
            self._items.append(delivery)
            self._bytes += len(delivery.incoming.payload)
            self._room.notify_all()
            return True

    def get(self, timeout: float) -> _Delivery | None:
        with self._room:
            if not self._items:
                self._room.wait(timeout)
            if not self._items:
                return None
            delivery = self._items.popleft()
            self._bytes -= len(delivery.incoming.payload)
            self._room.notify_all()
            return delivery


class CoreConsumer:
    def __init__(self, database_url: str, mqtt_url: str, *, client_id: str = "mes-core",
                 batch_max_messages: int = 500, batch_max_wait_ms: int = 50, status_every_s: float = 10.0,
                 limits: IngestLimits = IngestLimits(), max_pending: int = 5_000,
                 max_pending_bytes: int = 64 * 1024 * 1024, on_commit=None, metrics: IngestMetrics | None = None):
        """`max_pending` and `max_pending_bytes`: deliveries held in memory at most; beyond, paho's network
        thread waits for room,
        so the broker keeps the rest (it stops sending once its window to the core is full, and its
        persistent session holds them even if it drops the connection meanwhile). `metrics`: told of each
        committed batch."""
        self.service = IngestService(database_url, on_commit=on_commit, limits=limits, metrics=metrics)
        self.max_pending = max_pending
        self.most_pending = 0  # the high-water mark of deliveries held, for the logs and tests
        self.waited_for_room = 0  # deliveries that had to wait for room
        self.batch_max_messages = batch_max_messages
        self.batch_max_wait_s = batch_max_wait_ms / 1000
        self.status_every_s = status_every_s
        self._deliveries = _Pending(max_pending, max_pending_bytes)
        self._connection = 0
        self._connected = threading.Event()
        self._stop = threading.Event()
        target = parse_mqtt_url(mqtt_url)
        self._client = new_client(target, client_id, persistent=True, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._target = target

    @property
    def connections(self) -> int:
        """Connections made to the broker: the first, then one per reconnect."""
        return self._connection

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> tuple[int, int]:
        """Deliveries held in memory waiting for ingest, and their payloads' bytes."""
        return len(self._deliveries), self._deliveries.size_bytes

    # paho's thread -------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("broker refused the connection", reason=str(reason_code))
            return
        self._connection += 1
        client.subscribe([(DATA_SUBSCRIPTION, 1), (STATUS_SUBSCRIPTION, 1)])
        self._connected.set()
        log.info("connected to broker", session_present=flags.session_present, broker=f"{self._target.host}:{self._target.port}")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("broker connection lost; reconnecting", reason=str(reason_code))

    def _on_message(self, client, userdata, message: paho.MQTTMessage):
        delivery = _Delivery(Incoming(message.topic, message.payload, datetime.now(UTC)), message.mid, message.qos,
                             self._connection)
        if self._deliveries.full_for(delivery):
            if not self.waited_for_room:
                log.warning("ingest is behind (the database is slow or away); the broker keeps what does not fit",
                            max_pending=self.max_pending)
            self.waited_for_room += 1
        if self._deliveries.put(delivery, self._stop):
            self.most_pending = max(self.most_pending, len(self._deliveries))

    # worker ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume until stop(); returns after the batch in hand is committed and acknowledged."""
        # Every sample makes a few short-lived objects; with the default thresholds the cyclic
        # collector ran often enough to take ~40 % of parse + plan (docs/benchmarks.md). Objects
        # alive now (registry, state, imports) are moved out of its way for good.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        connect(self._client, self._target)
        next_status = time.monotonic() + self.status_every_s
        try:
            while not self._stop.is_set():
                batch = self._next_batch()
                if batch:
                    self.service.ingest([delivery.incoming for delivery in batch])
                    self._acknowledge(batch)
                    self._tell_edges()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.status_every_s
                    log.info("ingest", backlog=len(self._deliveries), **vars(self.service.totals))
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            self.service.close()

    def _next_batch(self) -> list[_Delivery]:
        first = self._deliveries.get(timeout=0.2)
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_max_wait_s
        while len(batch) < self.batch_max_messages:
            delivery = self._deliveries.get(timeout=max(0.0, deadline - time.monotonic()))
            if delivery is None:
                break
            batch.append(delivery)
        return batch

    def _tell_edges(self) -> None:
        """Each edge heard from learns how far it is committed (retained: it also learns after a restart)."""
        for ack in self.service.take_acknowledgments():
            self._client.publish(ack_topic(ack.edge_id), ack.model_dump_json(), qos=1, retain=True)

    def _acknowledge(self, batch: list[_Delivery]) -> None:
        for delivery in batch:
            if delivery.qos > 0 and delivery.connection == self._connection and self._connected.is_set():
                self._client.ack(delivery.mid, delivery.qos)
