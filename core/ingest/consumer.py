"""MQTT → ingest service. At-least-once from the broker, exactly-once into the database.

paho's network thread only queues messages; one worker thread forms batches, commits each through
the IngestService, and only then acknowledges the batch's messages (manual PUBACK, persistent
session). A core that dies before a commit gets the same messages again from the broker; one that
dies after a commit but before the PUBACK gets duplicates, which the sequencing rule skips. After the
PUBACKs it tells each edge heard from how far its messages are committed (`EdgeAck`, retained on the
edge's ack topic): the edge keeps every message until then, so a broker that loses what it had
acknowledged loses nothing.

With several cores on one plant (`partition`: core.ingest.partition, core.rules.partition) a core has one
session per edge it leases, with that edge's client id (the same whichever core owns it), subscribed to the
edge's status topic and its machines' data topics: order per edge holds on any broker, and an edge handed
over resumes its broker session with what arrived meanwhile. Leases change only between batches.
"""

from __future__ import annotations

import collections
import gc
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import paho.mqtt.client as paho
from sqlalchemy.exc import OperationalError

from core.ingest.metrics import IngestMetrics
from core.ingest.partition import EdgeLeases, LeaseLost
from core.ingest.plan import Incoming, IngestLimits, MachineInfo
from core.ingest.service import IngestService
from core.rules.partition import rebalance
from kernel.logs import get_logger
from kernel.mqtt import MqttTarget, connect, new_client, parse_mqtt_url
from kernel.payload import DATA_SUBSCRIPTION, STATUS_SUBSCRIPTION, EdgeAck, ack_topic, data_topic, status_topic

log = get_logger("core.consumer")


@dataclass(frozen=True, slots=True)
class _Delivery:
    incoming: Incoming
    mid: int
    qos: int
    session: _Session  # the one that delivered it, and acknowledges it
    connection: int  # a mid is only meaningful on the connection that delivered it


class _Session:
    """One persistent MQTT session of the core: the whole plant's (one core a plant), or one edge's (edges
    partitioned across cores: `edge_id`). It subscribes to `topics` on every connect; deliveries go to `receive`."""

    def __init__(self, target: MqttTarget, client_id: str, topics: Iterable[str],
                 receive: Callable[[_Delivery], None], stop: threading.Event, edge_id: str | None = None):
        self.client_id, self.edge_id, self.topics = client_id, edge_id, frozenset(topics)
        self.connection = 0
        self.connected = threading.Event()
        self._target, self._receive, self._stop = target, receive, stop
        self._closing = threading.Event()
        self._client = new_client(target, client_id, persistent=True, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def open(self) -> None:
        connect(self._client, self._target)

    def closing(self) -> bool:
        return self._closing.is_set() or self._stop.is_set()

    def close(self) -> None:
        """The broker keeps the session (its subscriptions and what arrives meanwhile) for whoever resumes it."""
        self._closing.set()
        self._client.disconnect()
        self._client.loop_stop()

    def follow(self, topics: frozenset[str]) -> None:
        """Subscribe to `topics` from now on (the machines of an edge change when the plant file does)."""
        added, removed, self.topics = topics - self.topics, self.topics - topics, topics
        if self.connected.is_set():
            if added:
                self._client.subscribe([(topic, 1) for topic in sorted(added)])
            if removed:
                self._client.unsubscribe(sorted(removed))

    def acknowledge(self, delivery: _Delivery) -> None:
        if delivery.qos > 0 and delivery.connection == self.connection and self.connected.is_set():
            self._client.ack(delivery.mid, delivery.qos)

    def tell(self, ack: EdgeAck) -> None:
        """Retained: the edge also learns after a restart."""
        self._client.publish(ack_topic(ack.edge_id), ack.model_dump_json(), qos=1, retain=True)

    # paho's thread -------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("broker refused the connection", reason=str(reason_code), client_id=self.client_id)
            return
        self.connection += 1
        if self.topics:
            client.subscribe([(topic, 1) for topic in sorted(self.topics)])
        self.connected.set()
        log.info("connected to broker", session_present=flags.session_present, client_id=self.client_id,
                 broker=f"{self._target.host}:{self._target.port}")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self.closing() and reason_code.is_failure:
            log.warning("broker connection lost; reconnecting", reason=str(reason_code), client_id=self.client_id)

    def _on_message(self, client, userdata, message: paho.MQTTMessage):
        self._receive(_Delivery(Incoming(message.topic, message.payload, datetime.now(UTC)), message.mid,
                                message.qos, self, self.connection))


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

    def put(self, delivery: _Delivery) -> bool:
        """False when its session began closing while it waited (the delivery is then left to the broker)."""
        with self._room:
            while self.full_for(delivery):
                if delivery.session.closing():
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

    def discard(self, session: _Session) -> None:
        """Forget a closed session's deliveries: unacknowledged, they wait in its broker session for the next one."""
        with self._room:
            kept = [delivery for delivery in self._items if delivery.session is not session]
            self._items = collections.deque(kept)
            self._bytes = sum(len(delivery.incoming.payload) for delivery in kept)
            self._room.notify_all()


class CoreConsumer:
    def __init__(self, database_url: str, mqtt_url: str, *, client_id: str = "mes-core",
                 batch_max_messages: int = 500, batch_max_wait_ms: int = 50, status_every_s: float = 10.0,
                 limits: IngestLimits = IngestLimits(), max_pending: int = 5_000,
                 max_pending_bytes: int = 64 * 1024 * 1024, on_commit=None, metrics: IngestMetrics | None = None,
                 partition: EdgeLeases | None = None, rebalance_every_s: float = 2.0):
        """`max_pending` and `max_pending_bytes`: deliveries held in memory at most; beyond, paho's network
        thread waits for room,
        so the broker keeps the rest (it stops sending once its window to the core is full, and its
        persistent session holds them even if it drops the connection meanwhile). `metrics`: told of each
        committed batch.
        `partition`: several cores share the plant, this one ingests the edges it leases (core.ingest.partition),
        each on a session of the edge's own (`client_id` + `-edge-<id>`); every `rebalance_every_s` it looks
        whether to take or give up edges (core.rules.partition). None: one session for the whole plant."""
        self.service = IngestService(database_url, on_commit=on_commit, limits=limits, metrics=metrics)
        self.client_id = client_id
        self.max_pending = max_pending
        self.most_pending = 0  # the high-water mark of deliveries held, for the logs and tests
        self.waited_for_room = 0  # deliveries that had to wait for room
        self.batch_max_messages = batch_max_messages
        self.batch_max_wait_s = batch_max_wait_ms / 1000
        self.status_every_s = status_every_s
        self.partition = partition
        self.rebalance_every_s = rebalance_every_s
        self._deliveries = _Pending(max_pending, max_pending_bytes)
        self._stop = threading.Event()
        self._target = parse_mqtt_url(mqtt_url)
        # the plant's session (key None), or one per edge leased
        self._sessions: dict[str | None, _Session] = {}

    def connected(self) -> bool:
        """Every session of the core is connected to the broker (and there is one)."""
        sessions = list(self._sessions.values())
        return bool(sessions) and all(session.connected.is_set() for session in sessions)

    def connects(self) -> int:
        """How many times its sessions (those open now) have connected to the broker: 1 each, unless one lost its
        connection or another client took it over."""
        return sum(session.connection for session in self._sessions.values())

    def edges(self) -> set[str]:
        """The edges this core ingests now (with the whole plant's session: none in particular)."""
        return {edge for edge in self._sessions if edge is not None}

    def reconnects(self) -> int:
        """How many times its sessions (those open now) connected again after their first connection."""
        return sum(max(0, session.connection - 1) for session in self._sessions.values())

    @property
    def pending(self) -> tuple[int, int]:
        """Deliveries held in memory waiting for ingest, and their payloads' bytes."""
        return len(self._deliveries), self._deliveries.size_bytes

    # paho's thread -------------------------------------------------------------------------
    def _receive(self, delivery: _Delivery) -> None:
        if self._deliveries.full_for(delivery):
            if not self.waited_for_room:
                log.warning("ingest is behind (the database is slow or away); the broker keeps what does not fit",
                            max_pending=self.max_pending)
            self.waited_for_room += 1
        if self._deliveries.put(delivery):
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
        if self.partition is None:
            self._open(None, [DATA_SUBSCRIPTION, STATUS_SUBSCRIPTION])
        next_status = next_rebalance = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.partition is not None and time.monotonic() >= next_rebalance:
                    next_rebalance = time.monotonic() + self.rebalance_every_s
                    self._rebalance(self.partition)
                batch = self._next_batch()
                if batch:
                    self._ingest(batch)
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.status_every_s
                    log.info("ingest", backlog=len(self._deliveries), edges=len(self._sessions), **vars(self.service.totals))
        finally:
            for edge in list(self._sessions):
                self._close(edge)
            if self.partition is not None:
                self.partition.close()
            self.service.close()

    def _ingest(self, batch: list[_Delivery]) -> None:
        incoming = [delivery.incoming for delivery in batch]
        if self.partition is None:
            self.service.ingest(incoming)
        else:
            edges = {delivery.session.edge_id for delivery in batch if delivery.session.edge_id is not None}
            try:
                self.service.ingest(incoming, guard=partial(self.partition.guard, edges=edges))
            except LeaseLost as lost:
                # unacknowledged, the batch's messages wait in their broker sessions for whoever leases the edges
                log.warning("edge leases lost; giving up every edge", reason=str(lost))
                self._give_up_all()
                return
        for delivery in batch:
            delivery.session.acknowledge(delivery)
        self._tell_edges()

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
        """Each edge heard from learns how far it is committed."""
        for ack in self.service.take_acknowledgments():
            session = self._sessions.get(ack.edge_id) or self._sessions.get(None)
            if session is not None:
                session.tell(ack)

    # sessions -------------------------------------------------------------------------------
    def _open(self, edge_id: str | None, topics: Iterable[str]) -> None:
        client_id = self.client_id if edge_id is None else f"{self.client_id}-edge-{edge_id}"
        session = _Session(self._target, client_id, topics, self._receive, self._stop, edge_id)
        self._sessions[edge_id] = session
        session.open()

    def _close(self, edge_id: str | None) -> None:
        session = self._sessions.pop(edge_id)
        session.close()
        self._deliveries.discard(session)

    def _give_up_all(self) -> None:
        for edge in list(self._sessions):
            self._close(edge)
        if self.partition is not None:
            self.partition.close()  # its leases go with the session

    def _rebalance(self, partition: EdgeLeases) -> None:
        """Between batches: give up, then take edges as core.rules.partition says, and follow the machines' moves."""
        try:
            self.service.reload_registry()
            topics = edge_topics(self.service.registry)
            cores, owners = partition.picture(topics)
            for edge in self.edges() - {edge for edge, owner in owners.items() if owner == partition.me}:
                log.warning("an edge's lease is gone; giving it up", edge=edge)
                self._close(edge)
            for edge in self.edges() - set(topics):  # no machine of the plant is on it any more
                self._close(edge)
                partition.release(edge)
            decision = rebalance(topics, cores, owners, partition.me)
            for edge in decision.release:
                self._close(edge)  # first: once released, another core may resume its session
                partition.release(edge)
            claimed = [edge for edge in decision.claim if partition.claim(edge)]
            if claimed:
                # what the previous owners committed, read after their last transaction on these edges ended
                self.service.reload(guard=partial(partition.guard, edges=claimed))
            for edge in claimed:
                self._open(edge, topics[edge])
            for edge in self.edges():
                self._sessions[edge].follow(topics[edge])
        except OperationalError as error:
            log.warning("the database is unreachable; giving up every edge until it is back", error=str(error.orig))
            self._give_up_all()
            return
        except LeaseLost as lost:  # the lease session dropped between a claim and the reload
            log.warning("edge leases lost; giving up every edge", reason=str(lost))
            self._give_up_all()
            return
        if decision:
            log.info("edges rebalanced", claimed=claimed, released=list(decision.release),
                     edges=sorted(self.edges()), cores=len(cores))


def edge_topics(registry: Mapping[str, MachineInfo]) -> dict[str, frozenset[str]]:
    """Per edge: its status topic and the data topics of the machines the plant assigns to it. A machine assigned to
    no edge has no owner when edges are partitioned across cores: its messages are not read (docs/deploy.md)."""
    topics: dict[str, set[str]] = {}
    for machine, info in registry.items():
        if info.edge_id is not None:
            topics.setdefault(info.edge_id, {status_topic(info.edge_id)}).add(
                data_topic(info.site, info.area, info.line, machine))
    return {edge: frozenset(found) for edge, found in topics.items()}
