"""Alert notifications: the outbox, the webhooks it delivers to, and the sender that empties it.

Outbox. Every alert event (raised, acknowledged, cleared) gets, in the transaction that records it,
one `notification_deliveries` row per target: 'mqtt' always, and 'webhook:<id>' for each webhook
active at that moment (`enqueue`, called by `mes.services.alerts.store`, so the engine, the
inventory alerts and acknowledgements all notify). A notification is therefore never lost to a crash
between recording and sending, and never sent for an event that was rolled back.

Sender. `NotificationSender` is a job of the core (`kernel.jobs`, a thread with its own database
connection and MQTT client). Each round (twice a second) it takes, per target, the oldest undelivered
row; if it is due it sends it and, on success, the next one, until one fails or is not due. A target
thus receives its notifications one at a time, oldest first: raised before acknowledged before
cleared, and a failed one holds back the later ones of that target rather than letting them overtake
it. The payload is `mes.rules.alerts.notification(transition)`, rebuilt from `alert_events` and
`alerts` at each attempt: the alert as it was right after that event (an alert moves
active → acknowledged → cleared once each, so its stored row tells that exactly), identical on every
retry.
- MQTT: topic `mes/v1/alerts/<kind>` (subscribe `mes/v1/alerts/#`), QoS 1, not retained; delivered
  when the broker's PUBACK arrives within `timeout_s`. While the client is not connected the MQTT
  target is not attempted at all (no attempt counted, no back-off piling up).
- Webhook: HTTP POST of the JSON payload with an `Idempotency-Key: <key>` header; a 2xx answer is
  delivered, anything else (another status, a redirect, no answer within `timeout_s`) is a failed
  attempt, retried at `mes.rules.alerts.next_attempt` (1 s doubling to every 5 minutes), never given
  up. Redirects are not followed: a POST silently turned into a GET would pass for delivered.
  Only to public hosts (mes.rules.webhooks): the host is resolved at each attempt, every address it
  resolves to must be public or in a range the plant allowed (`allow_private`, MES_WEBHOOK_ALLOW_PRIVATE),
  and the request goes to the address checked, not to a second resolution (DNS rebinding), and never
  through an HTTP proxy of the environment. A refused address is a failed attempt with its reason.
Exactly once per transition for a receiver = at least once delivery + the key (`<alert id>:<event>`)
in the payload and the header, by which the receiver drops repeats (a receiver that processed a
notification but answered late or with an error gets it again).

Ambiguity, stated: a deactivated webhook's undelivered rows stay in the outbox, unattempted; they
are sent, in order, if the webhook is activated again. Events recorded while it was inactive were
never queued for it. A URL changed with PUT applies to the rows still undelivered.
Ambiguity, stated: order is guaranteed per alert (its events are written by transactions that lock
its row, so their outbox rows are created in event order); notifications of different alerts
written by concurrent transactions may reach a receiver in either order.
Ambiguity, stated: one sender at a time sends (a session advisory lock on its connection): a
second core started by mistake waits rather than sending everything twice.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from ipaddress import ip_address
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from kernel.db.models import make_engine

from kernel.logs import get_logger
from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import TOPIC_ROOT
from mes.rules.webhooks import Network, refusal
from mes.rules.alerts import Alert, AlertEvent, AlertKind, AlertStatus, Transition, next_attempt, notification
from kernel.rules.refusals import NotFound

log = get_logger("mes.notifications")

ALERT_TOPIC_ROOT = f"{TOPIC_ROOT}/alerts"
ALERT_SUBSCRIPTION = f"{ALERT_TOPIC_ROOT}/#"
MQTT_TARGET = "mqtt"
WEBHOOK_TARGET_PREFIX = "webhook:"
_SENDER_LOCK = 0x6D65_732D_6E6F_7469  # "mes-noti": one sender per database
_ERROR_LIMIT = 500  # characters of a failure kept in last_error


def alert_topic(kind: AlertKind | str) -> str:
    return f"{ALERT_TOPIC_ROOT}/{AlertKind(kind).value}"


def webhook_target(webhook_id: str) -> str:
    return f"{WEBHOOK_TARGET_PREFIX}{webhook_id}"


# --- outbox ---------------------------------------------------------------------------------------------


def enqueue(session: Session, transitions: Iterable[Transition]) -> None:
    """One delivery per target for each stored transition's event, in the caller's transaction (no commit).

    An event is found by (alert id, event): an alert has each event at most once."""
    keys = [(t.alert.alert_id, t.event.value) for t in transitions]
    if not keys:
        return
    session.execute(text(
        """INSERT INTO notification_deliveries (alert_event_id, target)
           SELECT e.id, t.target
           FROM unnest(CAST(:alerts AS bigint[]), CAST(:events AS text[])) WITH ORDINALITY AS k(alert_id, event, n)
           JOIN alert_events e ON e.alert_id = k.alert_id AND e.event = k.event
           CROSS JOIN (SELECT 0 AS n, :mqtt AS target
                       UNION ALL SELECT 1, :prefix || webhook_id FROM webhooks WHERE active) AS t
           ORDER BY k.n, t.n, t.target
           ON CONFLICT (alert_event_id, target) DO NOTHING"""),
        {"alerts": [int(alert_id) for alert_id, _ in keys], "events": [event for _, event in keys],
         "mqtt": MQTT_TARGET, "prefix": WEBHOOK_TARGET_PREFIX})


_DELIVERY_COLUMNS = """d.id, d.alert_event_id, a.alert_id, e.event, a.kind, a.subject, d.target, d.attempts,
                       d.next_attempt_at, d.delivered_at, d.last_error"""


def list_deliveries(session: Session, *, status: str | None = None, target: str | None = None, limit: int = 500) -> list[dict]:
    """The outbox, newest first. status: 'pending' (not delivered yet) or 'delivered'; None for both."""
    rows = session.execute(text(
        f"""SELECT {_DELIVERY_COLUMNS}
            FROM notification_deliveries d JOIN alert_events e ON e.id = d.alert_event_id JOIN alerts a ON a.alert_id = e.alert_id
            WHERE (CAST(:status AS text) IS NULL OR (d.delivered_at IS NULL) = (:status = 'pending'))
              AND (CAST(:target AS text) IS NULL OR d.target = :target)
            ORDER BY d.id DESC LIMIT :limit"""), {"status": status, "target": target, "limit": limit})
    return [{**row._mapping, "key": f"{row.alert_id}:{row.event}"} for row in rows]


# --- webhooks -------------------------------------------------------------------------------------------


def checked_url(url: str, allowed: tuple[Network, ...] = ()) -> str:
    """An http(s) URL with a host that is not an address a webhook may not reach (a name is resolved and
    checked at send time); ValueError with a message otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a webhook URL must start with http:// or https:// and name a host, not {url!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"the port of webhook URL {url!r} is not a number from 0 to 65535") from None
    try:
        ip_address(parts.hostname.split("%", 1)[0])
    except ValueError:
        return url.strip()  # a name
    refused = refusal(parts.hostname, allowed)
    if refused:
        raise ValueError(refused)
    return url.strip()


_WEBHOOK_COLUMNS = "webhook_id, url, active, created_at"


def put_webhook(session: Session, webhook_id: str, url: str, active: bool = True, allowed: tuple[Network, ...] = ()) -> dict:
    """Create or replace a webhook. Alert events recorded from now on are queued for it while it is active."""
    row = session.execute(text(
        f"""INSERT INTO webhooks (webhook_id, url, active) VALUES (:id, :url, :active)
            ON CONFLICT (webhook_id) DO UPDATE SET url = EXCLUDED.url, active = EXCLUDED.active
            RETURNING {_WEBHOOK_COLUMNS}"""), {"id": webhook_id, "url": checked_url(url, allowed), "active": active}).one()
    session.commit()
    return dict(row._mapping)


def list_webhooks(session: Session) -> list[dict]:
    return [dict(row._mapping) for row in session.execute(text(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY webhook_id"))]


def deactivate_webhook(session: Session, webhook_id: str) -> dict:
    """Stop notifying a webhook: no new events are queued for it and its queued ones are not sent.
    The row stays, so the outbox keeps naming the receiver its past deliveries went to."""
    row = session.execute(text(f"UPDATE webhooks SET active = false WHERE webhook_id = :id RETURNING {_WEBHOOK_COLUMNS}"),
                          {"id": webhook_id}).first()
    if row is None:
        raise NotFound(f"webhook {webhook_id!r} does not exist")
    session.commit()
    return dict(row._mapping)


# --- sender ---------------------------------------------------------------------------------------------


class _Due(NamedTuple):
    delivery_id: int
    attempts: int
    transition: Transition
    now: datetime  # the database's clock: next_attempt_at is compared and scheduled on it alone


_HEAD = """
    SELECT d.id, d.attempts, d.next_attempt_at <= clock_timestamp(), clock_timestamp(), e.event, e.at, e.by, e.note,
           a.alert_id, a.kind, a.subject, a.rule_id, a.severity, a.status, a.raised_at, a.detail, a.value,
           a.acknowledged_by, a.acknowledged_at, a.cleared_at
    FROM notification_deliveries d JOIN alert_events e ON e.id = d.alert_event_id JOIN alerts a ON a.alert_id = e.alert_id
    WHERE d.target = :target AND d.delivered_at IS NULL
    ORDER BY d.id LIMIT 1"""


def _as_of_event(alert: Alert, event: AlertEvent) -> Alert:
    """The alert as it was right after `event`, from its row as it is now."""
    if event is AlertEvent.RAISED:
        return replace(alert, status=AlertStatus.ACTIVE, acknowledged_by=None, acknowledged_at=None, cleared_at=None)
    if event is AlertEvent.ACKNOWLEDGED:
        return replace(alert, status=AlertStatus.ACKNOWLEDGED, cleared_at=None)
    return alert


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args, **_kwargs):
        return None  # urllib then raises HTTPError with the 3xx status: a failed attempt


def _connect(addresses: tuple[str, ...], port: int, timeout: float | None) -> socket.socket:
    """A connection to the first of the checked addresses that answers."""
    failure: OSError = OSError("no address")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as error:
            failure = error
    raise failure


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the addresses that were checked, whatever the name resolves to now."""

    def __init__(self, *args, addresses: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As _PinnedHTTPConnection, with TLS verified against the URL's host name."""

    def __init__(self, *args, addresses: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = self._context.wrap_socket(_connect(self._addresses, self.port, self.timeout), server_hostname=self.host)


class _PinnedHTTP(urllib.request.HTTPHandler):
    def __init__(self, addresses: tuple[str, ...]):
        super().__init__()
        self._addresses = addresses

    def http_open(self, req):
        return self.do_open(functools.partial(_PinnedHTTPConnection, addresses=self._addresses), req)


class _PinnedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, addresses: tuple[str, ...]):
        super().__init__(context=ssl.create_default_context())
        self._addresses = addresses

    def https_open(self, req):
        return self.do_open(functools.partial(_PinnedHTTPSConnection, addresses=self._addresses), req, context=self._context)


def resolved_addresses(url: str, allowed: tuple[Network, ...]) -> tuple[str, ...]:
    """The addresses to send a webhook to: those the URL's host resolves to now, each checked; ValueError
    with the reason when one may not be reached or the name does not resolve."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"{parts.hostname} does not resolve: {error.strerror}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))
    for address in addresses:
        refused = refusal(address, allowed)
        if refused:
            raise ValueError(f"refused: {parts.hostname} resolves to {refused}")
    return addresses


class NotificationSender:
    """Delivers the outbox to MQTT and the webhooks; see the module docstring for the rules."""

    def __init__(self, database_url: str, mqtt_url: str | None, *, client_id: str = "mes-notifications",
                 timeout_s: float = 5.0, allow_private: tuple[Network, ...] = ()):
        """mqtt_url None: no MQTT client; the 'mqtt' rows wait (for a tool that sends webhooks only).
        allow_private: the ranges webhooks may reach although not public (MES_WEBHOOK_ALLOW_PRIVATE)."""
        self.allow_private = allow_private
        self.database_url = database_url
        self.timeout_s = timeout_s
        self._target = parse_mqtt_url(mqtt_url) if mqtt_url else None
        self._client = None
        self._client_id = client_id
        self._mqtt_connected = threading.Event()
        self._engine = make_engine(database_url)
        # one connection held across rounds: the advisory lock that makes this the plant's one sender lives on it
        self._conn: Connection | None = None
        self._holds_lock = False

    # the job ------------------------------------------------------------------------------------------
    def round(self) -> None:
        """Send what is due. A failure is logged and the next round starts on a new database connection."""
        if self._target is not None and self._client is None:
            self._client = new_client(self._target, self._client_id, persistent=False)
            self._client.on_connect = self._on_connect
            self._client.on_disconnect = lambda *_: self._mqtt_connected.clear()
            connect(self._client, self._target)
        try:
            self.send_due()
        except DBAPIError as error:
            log.warning("notification round failed; tried again shortly", error=str(error.orig))
            self._close()
        except Exception:  # the sender must outlive any one bad notification; the core goes on without it otherwise
            log.exception("notification round failed; tried again shortly")
            self._close()

    def close(self) -> None:
        """After the last round: what is undelivered stays in the outbox for the next start."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._close()
        self._engine.dispose()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("broker refused the notification sender", reason=str(reason_code))
        else:
            self._mqtt_connected.set()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except DBAPIError:
                pass
        self._conn, self._holds_lock = None, False

    # one round ----------------------------------------------------------------------------------------
    def send_due(self) -> int:
        """Send what is due now, per target oldest first; returns how many were delivered."""
        conn = self._connection()
        if not self._holds_lock:
            self._holds_lock = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _SENDER_LOCK}).scalar_one()
            if not self._holds_lock:
                return 0  # another sender is at work
        webhooks = {row.webhook_id: row.url for row in conn.execute(text("SELECT webhook_id, url FROM webhooks WHERE active"))}
        targets = list(conn.execute(text(
            "SELECT DISTINCT target FROM notification_deliveries WHERE delivered_at IS NULL ORDER BY target")).scalars())
        delivered = 0
        for target in targets:
            if target == MQTT_TARGET:
                if not self._mqtt_connected.is_set():
                    continue
                send = self._publish
            elif target.startswith(WEBHOOK_TARGET_PREFIX) and target.removeprefix(WEBHOOK_TARGET_PREFIX) in webhooks:
                url = webhooks[target.removeprefix(WEBHOOK_TARGET_PREFIX)]
                send = lambda due, url=url: self._post(url, due)  # noqa: E731
            else:
                continue  # an inactive or removed webhook
            while True:
                due = self._head(conn, target)
                if due is None:
                    break
                error = send(due)
                self._record(conn, due, error)
                if error is not None:
                    log.info("notification not delivered; retried later", target=target, key=f"{due.transition.alert.alert_id}:"
                             f"{due.transition.event.value}", attempts=due.attempts + 1, error=error)
                    break
                delivered += 1
        return delivered

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._holds_lock = False
        return self._conn

    def _head(self, conn: Connection, target: str) -> _Due | None:
        row = conn.execute(text(_HEAD), {"target": target}).first()
        if row is None or not row[2]:
            return None
        delivery_id, attempts, _, now, event, at, by, note, *alert = row
        event = AlertEvent(event)
        transition = Transition(event, _as_of_event(Alert(*alert), event), at, by, note or "")
        return _Due(delivery_id, attempts, transition, now)

    def _record(self, conn: Connection, due: _Due, error: str | None) -> None:
        if error is None:
            conn.execute(text("""UPDATE notification_deliveries SET attempts = attempts + 1, delivered_at = clock_timestamp(),
                                 last_error = NULL WHERE id = :id"""), {"id": due.delivery_id})
        else:
            conn.execute(text("""UPDATE notification_deliveries SET attempts = :attempts, next_attempt_at = :next,
                                 last_error = :error WHERE id = :id"""),
                         {"attempts": due.attempts + 1, "next": next_attempt(due.attempts + 1, due.now),
                          "error": error[:_ERROR_LIMIT], "id": due.delivery_id})

    # the two kinds of receiver: None = delivered, else why not ------------------------------------------
    def _publish(self, due: _Due) -> str | None:
        message = notification(due.transition)
        client = self._client
        if client is None:
            return "the MQTT client is stopped"
        info = client.publish(alert_topic(due.transition.alert.kind), json.dumps(message.payload), qos=1, retain=False)
        try:
            info.wait_for_publish(timeout=self.timeout_s)
        except (RuntimeError, ValueError) as error:
            return f"MQTT publish failed: {error}"
        return None if info.is_published() else f"no PUBACK from the broker within {self.timeout_s:g} s"

    def _post(self, url: str, due: _Due) -> str | None:
        message = notification(due.transition)
        try:
            addresses = resolved_addresses(url, self.allow_private)
        except ValueError as refused:
            return str(refused)
        pinned = _PinnedHTTPS(addresses) if urlsplit(url).scheme == "https" else _PinnedHTTP(addresses)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects, pinned)
        request = urllib.request.Request(
            url, data=json.dumps(message.payload).encode(), method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": message.key, "User-Agent": "open-mes"})
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            error.close()
            return f"HTTP {error.code} {error.reason}"
        except (urllib.error.URLError, OSError) as error:
            return f"no answer from {url}: {getattr(error, 'reason', error)}"
        return None if 200 <= status < 300 else f"HTTP {status}"
