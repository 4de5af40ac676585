"""The one MQTT adapter: URL parsing and paho client construction shared by the edge and the core.

MQTT 3.1.1 on purpose: both brokers we ship with (Mosquitto, and amqtt as the pip-only fallback)
keep persistent sessions with it, and amqtt speaks nothing newer.

A URL says everything a client needs: `mqtt://` or `mqtts://` (TLS), the credentials, and for TLS the
files as query parameters (`?ca_file=…&cert_file=…&key_file=…`), so that one string travels from the
settings to every client. A URL's password is a secret: log `MqttTarget.address`, never the URL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


# QoS 1 messages a client may have awaiting PUBACK unless it asks for more (the edge's publisher does).
MAX_IN_FLIGHT = 100


PLAIN_PORT, TLS_PORT = 1883, 8883
TLS_FILES = ("ca_file", "cert_file", "key_file")


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # none: the system's trusted CAs
    cert_file: str | None = None  # the client's certificate, for a broker that requires one
    key_file: str | None = None

    @property
    def url(self) -> str:
        auth = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@" if self.username else ""
        files = {name: getattr(self, name) for name in TLS_FILES if getattr(self, name)}
        query = f"?{urlencode(files)}" if files else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}{query}"

    @property
    def address(self) -> str:
        """What may be logged: scheme, host and port, no credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """`mqtt[s]://[user[:password]@]host[:port][?ca_file=…&cert_file=…&key_file=…]` (port 1883, or 8883
    for mqtts, when omitted; TLS files only with mqtts)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
        # not the URL itself: it may carry a password
        raise ValueError(f"not an MQTT URL (expected mqtt[s]://[user:password@]host[:port]; scheme {parts.scheme!r}, "
                         f"host {parts.hostname!r})")
    tls = parts.scheme in ("mqtts", "ssl")
    query = parse_qs(parts.query, strict_parsing=False)
    unknown = set(query) - set(TLS_FILES)
    if unknown or (query and not tls):
        raise ValueError(f"an MQTT URL's only parameters are {', '.join(TLS_FILES)}, with mqtts:// "
                         f"(got {', '.join(sorted(query))})")
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (TLS_PORT if tls else PLAIN_PORT),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        **{name: query[name][-1] for name in TLS_FILES if name in query},
    )


def with_options(url: str, *, username: str | None = None, password: str | None = None, ca_file: str | None = None,
                 cert_file: str | None = None, key_file: str | None = None) -> str:
    """`url` completed with what it does not say itself: credentials, and TLS files for an mqtts:// URL."""
    target = parse_mqtt_url(url)
    if target.username is None and username is not None:
        target = replace(target, username=username, password=password)
    if target.tls:
        given = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
        target = replace(target, **{name: getattr(target, name) or value for name, value in given.items()})
    return target.url


def new_client(target: MqttTarget, client_id: str, *, persistent: bool, manual_ack: bool = False,
               max_in_flight: int = MAX_IN_FLIGHT) -> paho.Client:
    """A paho client ready to `connect(target)`.

    persistent: the broker keeps the session (subscriptions and unacknowledged QoS 1 messages)
    while the client is away. manual_ack: PUBACK is sent only when the caller calls `client.ack`.
    """
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=paho.MQTTv311,
        manual_ack=manual_ack,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(ca_certs=target.ca_file, certfile=target.cert_file, keyfile=target.key_file)
    # paho keeps its own outgoing queue in memory; durability is the edge's disk queue, not this.
    client.max_inflight_messages_set(max_in_flight)
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    return client


def connect(client: paho.Client, target: MqttTarget, keepalive: int = 15) -> None:
    """Start connecting in the background; paho's loop reconnects by itself after a drop."""
    client.connect_async(target.host, target.port, keepalive=keepalive)
    client.loop_start()
