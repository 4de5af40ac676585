"""Alerts end to end: real simulators, edge agent, broker, core and PostgreSQL.

A machine_down rule on one machine; a forced fault raises the alert, a supervisor acknowledges it
through the API, the end of the fault clears it. A webhook receiver that is down (its port not
listening) while all that happens, and started afterwards, still gets raised, acknowledged and
cleared exactly once each and in that order; an MQTT subscriber on mes/v1/alerts/# gets them too.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from kernel.embedded.broker import free_port
from kernel.mqtt import connect, new_client, parse_mqtt_url
from app.plantrun import PlantRun, ThreadCore
from mes.services.notifications import ALERT_SUBSCRIPTION
from tests.e2e.conftest import run
from tests.support.http import ok
from mes.rules.webhooks import networks
from tests.support.auth import as_admin, by

pytestmark = pytest.mark.slow

MACHINE = "mod16"  # no random failures in the test plant: only the forced fault stops it
EVENTS = ["raised", "acknowledged", "cleared"]


class DedupReceiver:
    """A webhook receiver as a real one should be: it keeps each key's first arrival and drops repeats.
    It answers 500 to the first acknowledgement after keeping it (processed, answer lost), so the sender
    must send it again."""

    def __init__(self) -> None:
        # Its port is held from the start, bound but not listening (a connection to it is refused, as to a receiver
        # that is down): a free port looked up now and bound later may meanwhile be some connection's own.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://localhost:{self.port}/alerts"  # a name, resolved by the sender at each attempt
        self.kept: list[dict] = []
        self.arrivals: list[tuple[str, str]] = []  # (Idempotency-Key, payload key) of every POST, repeats included
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrivals.append((self.headers["Idempotency-Key"], payload["key"]))
                first = payload["key"] not in {kept["key"] for kept in receiver.kept}
                if first:
                    receiver.kept.append(payload)
                self.send_response(500 if first and payload["event"] == "acknowledged" else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        self._server.socket.close()
        self._server.socket = self._socket
        self._server.server_activate()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        self._socket.close()


class AlertSubscriber:
    def __init__(self, mqtt_url: str) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.subscribed = threading.Event()
        self._target = parse_mqtt_url(mqtt_url)
        self._client = new_client(self._target, f"test-alert-subscriber-{free_port()}", persistent=False)
        self._client.on_connect = lambda client, *_: client.subscribe(ALERT_SUBSCRIPTION, qos=1)
        self._client.on_subscribe = lambda *_: self.subscribed.set()
        self._client.on_message = lambda _c, _u, message: self.messages.append((message.topic, json.loads(message.payload)))

    def start(self) -> None:
        connect(self._client, self._target)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def first_of_each_key(self) -> list[tuple[str, dict]]:
        seen: dict[str, tuple[str, dict]] = {}
        for topic, payload in self.messages:
            seen.setdefault(payload["key"], (topic, payload))
        return list(seen.values())


def query(url: str, sql: str, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_fault_is_alerted_acknowledged_and_cleared_and_each_receiver_gets_each_transition_once_in_order(
        plant, database_url, mqtt_url, tmp_path):
    receiver = DedupReceiver()
    subscriber = AlertSubscriber(mqtt_url)

    def alert_row(status_sql: str):
        rows = query(database_url, f"SELECT alert_id, status FROM alerts WHERE kind = 'machine_down' AND subject = %s AND {status_sql}",
                     MACHINE)
        return rows[0] if rows else None

    async def scenario():
        core = ThreadCore(database_url, mqtt_url, alert_every_s=0.5, webhook_allow_private=networks(["127.0.0.0/8"]))
        async with PlantRun(plant, database_url, mqtt_url, tmp_path, core=core) as plant_run:
            with TestClient(create_app(database_url)) as api:
                as_admin(api, database_url)
                ok(api.put(f"/alert-rules/{MACHINE}-down", json={
                    "kind": "machine_down", "severity": "critical", "scope": f"machine={MACHINE}", "minutes": "0.05",
                    "down_states": ["fault"]}))  # down for longer than 3 s
                ok(api.put("/webhooks/ops", json={"url": receiver.url}))  # nothing listens there yet
                subscriber.start()
                await asyncio.to_thread(subscriber.subscribed.wait, 10)
                plant_run.start_production()
                await asyncio.sleep(1)

                plant_run.simulated.model(MACHINE).force_fault(42, 9)
                faulted = datetime.now(UTC)
                await plant_run.wait_for(lambda: alert_row("status = 'active'") is not None, 15, "the machine_down alert raised")
                raised_after = datetime.now(UTC) - faulted
                alert_id, _ = alert_row("true")
                acknowledged = ok(by(api, "supervisor-ana").post(f"/alerts/{alert_id}/acknowledge", json={"who": "supervisor-ana", "note": "fitter sent"}))
                await plant_run.wait_for(lambda: alert_row("status = 'cleared'") is not None, 20, "the alert cleared")
                events = ok(api.get(f"/alerts/{alert_id}/events"))

                # the receiver was down all along: its first notification has failed and waits, the others behind it
                assert receiver.arrivals == []
                (raised_delivery,) = ok(api.get("/notifications", params={"target": "webhook:ops", "status": "pending"}))[-1:]
                assert raised_delivery["key"] == f"{alert_id}:raised" and raised_delivery["attempts"] >= 2
                assert "no answer from" in raised_delivery["last_error"]

                receiver.start()
                await plant_run.wait_for(lambda: len(receiver.kept) == 3, 30, "the receiver to get all three")
                await plant_run.wait_for(lambda: len(subscriber.first_of_each_key()) == 3, 10, "the subscriber to get all three")
                await plant_run.wait_for(lambda: not ok(api.get("/notifications", params={"status": "pending"})), 10,
                                         "the outbox delivered")
                return alert_id, raised_after, acknowledged, events

    try:
        alert_id, raised_after, acknowledged, events = run(scenario())
    finally:
        subscriber.stop()
        receiver.stop()

    assert 3 <= raised_after.total_seconds() < 9, f"raised after the rule's 3 s, while the fault held ({raised_after})"
    assert acknowledged["status"] == "acknowledged" and acknowledged["acknowledged_by"] == "supervisor-ana"
    assert [(e["event"], e["by"]) for e in events] == [("raised", None), ("acknowledged", "supervisor-ana"), ("cleared", None)]
    assert events[1]["note"] == "fitter sent" and events[1]["at"] == acknowledged["acknowledged_at"]
    assert events[2]["note"] == f"{MACHINE} is running"

    keys = [f"{alert_id}:{event}" for event in EVENTS]
    assert [payload["key"] for payload in receiver.kept] == keys, "each transition exactly once, in order"
    assert [payload["event"] for payload in receiver.kept] == EVENTS
    assert all(header == key for header, key in receiver.arrivals), "the Idempotency-Key header is the payload's key"
    assert receiver.arrivals.count((keys[1], keys[1])) == 2, "the acknowledgement answered 500 came again and was dropped"
    raised, acknowledged_note, cleared = receiver.kept
    assert raised["alert"]["status"] == "active" and raised["alert"]["severity"] == "critical"
    assert acknowledged_note["by"] == "supervisor-ana" and acknowledged_note["alert"]["status"] == "acknowledged"
    assert cleared["alert"]["status"] == "cleared" and cleared["alert"]["acknowledged_by"] == "supervisor-ana"

    mqtt = subscriber.first_of_each_key()
    assert [payload["key"] for _, payload in mqtt] == keys
    assert {topic for topic, _ in mqtt} == {"mes/v1/alerts/machine_down"}
    assert [payload for _, payload in mqtt] == receiver.kept, "MQTT and the webhook carry the same notification"
