"""The one MQTT adapter: URL parsing and paho client construction shared by the edge and the core.

MQTT 3.1.1 on purpose: both brokers we ship with (Mosquitto, and amqtt as the pip-only fallback)
keep persistent sessions with it, and amqtt speaks nothing newer.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


# QoS 1 messages a client may have awaiting PUBACK: the edge's publisher fills exactly this window.
MAX_IN_FLIGHT = 100


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f"{self.username}:{self.password}@" if self.username else ""
        return f"mqtt://{auth}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """`mqtt://[user[:password]@]host[:port]` (port 1883 when omitted)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"not an MQTT URL (expected mqtt://[user:password@]host[:port]): {url!r}")
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or 1883,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def new_client(target: MqttTarget, client_id: str, *, persistent: bool, manual_ack: bool = False) -> paho.Client:
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
    # paho keeps its own outgoing queue in memory; durability is the edge's disk queue, not this.
    client.max_inflight_messages_set(MAX_IN_FLIGHT)
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    return client


def connect(client: paho.Client, target: MqttTarget, keepalive: int = 15) -> None:
    """Start connecting in the background; paho's loop reconnects by itself after a drop."""
    client.connect_async(target.host, target.port, keepalive=keepalive)
    client.loop_start()
