"""Persistent MQTT sessions a test leaves behind on a shared broker."""

from __future__ import annotations

import threading

from kernel.mqtt import new_client, parse_mqtt_url


def forget_session(mqtt_url: str, client_id: str) -> None:
    """Connect once with a clean session: the broker drops the persistent session of `client_id`
    (its subscription would otherwise keep queueing every later test's or benchmark's messages)."""
    target = parse_mqtt_url(mqtt_url)
    client = new_client(target, client_id, persistent=False)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(target.host, target.port)
    client.loop_start()
    connected.wait(10)
    client.disconnect()
    client.loop_stop()
