"""MQTT as an attacker on the plant network would try it, against real brokers, a real core and PostgreSQL.

The plant: edge-1 reads m1, edge-2 reads m2. The embedded broker is configured from it (each edge may
publish only its own machines' data and its own status; the core reads them); a broker that lets
anyone publish anything stands for a plant broker configured without those grants, where the core's
own check (core/rules/assignment.py) is what refuses a foreign edge.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml

from app.core_process import AnotherCoreRuns, CoreProcess, default_client_id
from app.plantrun import MesProcess, ThreadCore
from core.ingest.consumer import CoreConsumer
from core.queries import recorded_totals
from core.service import prepare_database
from kernel.embedded.broker import BrokerTls, EmbeddedBroker, find_mosquitto, free_port, port_accepts
from kernel.mqtt import MqttTarget, new_client, parse_mqtt_url, with_options
from kernel.payload import STATUS_SUBSCRIPTION, data_topic, status_topic
from kernel.plant import Plant, parse_plant
from tests.e2e.conftest import TEST_PLANT, plant_on_free_ports
from tests.e2e.test_spine import assert_exact, produce
from tests.support.certificates import CertificateAuthority
from tests.support.processes import wait_until

PLANT = yaml.safe_load("""
site: sec
edge_id: edge-1
areas:
  - id: a
    lines:
      - id: l
        machines:
          - {id: m1, protocol: modbus, ideal_cycle_s: 0.025}
          - {id: m2, protocol: modbus, ideal_cycle_s: 0.025, edge_id: edge-2}
""")
BROKER_KINDS = ["mosquitto", "amqtt"]
AMQTT_HAS_NO_GRANTS = pytest.mark.xfail(
    strict=True, reason="the amqtt fallback checks passwords, not topic grants (kernel/embedded/broker.py)")
WITH_GRANTS = ["mosquitto", pytest.param("amqtt", marks=AMQTT_HAS_NO_GRANTS)]
CORE = "mes-core"


@pytest.fixture
def plant() -> Plant:
    return parse_plant(PLANT)


def plant_broker(tmp_path: Path, plant: Plant, kind: str, **options) -> EmbeddedBroker:
    if kind == "mosquitto" and find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    return EmbeddedBroker(tmp_path / "broker", prefer=kind, plant=plant, **options)


def data(edge: str, seq: int, machine: str, good: int) -> bytes:
    sample = {"ts": datetime.now(UTC).isoformat(), "signal": "good", "value": good}
    return json.dumps({"v": 1, "edge_id": edge, "epoch": 1, "seq": seq, "machine": machine, "samples": [sample]}).encode()


def status(edge: str, online: bool, machines: list[str]) -> bytes:
    return json.dumps({"v": 1, "edge_id": edge, "online": online, "epoch": 1, "machines": machines}).encode()


def connection_result(target: MqttTarget) -> str:
    """What the broker answers a client's CONNECT ("Success", or why not), TLS failures included."""
    client = new_client(target, f"probe-{uuid.uuid4().hex[:8]}", persistent=False)
    answered = threading.Event()
    result: list[str] = []

    def on_connect(_client, _userdata, _flags, reason, _properties):
        result.append(str(reason))
        answered.set()

    def on_disconnect(_client, _userdata, _flags, reason, _properties):
        result.append(f"disconnected: {reason}")
        answered.set()

    client.on_connect, client.on_disconnect = on_connect, on_disconnect
    try:
        client.connect(target.host, target.port)
    except OSError as error:  # ssl.SSLError included: a handshake the broker refused
        return f"refused: {error}"
    client.loop_start()
    try:
        answered.wait(10)
        return result[0] if result else "no answer"
    finally:
        client.disconnect()
        client.loop_stop()


def publish(target: MqttTarget, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK: by then it has routed or dropped the message."""
    client = new_client(target, f"pub-{uuid.uuid4().hex[:8]}", persistent=False)
    client.connect(target.host, target.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


class Received:
    """A subscriber (as the core's identity) that keeps what it gets, by topic."""

    def __init__(self, target: MqttTarget, *filters: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._client = new_client(target, f"sub-{uuid.uuid4().hex[:8]}", persistent=False)
        subscribed = threading.Event()
        self._client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload, m.retain))
        self._client.connect(target.host, target.port)
        self._client.loop_start()
        assert subscribed.wait(10), "subscribed"

    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.messages]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class RunningConsumer:
    """The core's ingest consumer on its own thread."""

    def __init__(self, database_url: str, mqtt_url: str) -> None:
        self.consumer = CoreConsumer(database_url, mqtt_url, client_id=f"core-{uuid.uuid4().hex[:8]}", batch_max_wait_ms=10)
        self._thread = threading.Thread(target=self.consumer.run, daemon=True)
        self._thread.start()
        wait_until(self.consumer.connected, 20, "the core connected")

    def stop(self) -> None:
        self.consumer.stop()
        self._thread.join(timeout=30)


def rows(database_url: str, sql: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("kind", BROKER_KINDS)
def test_the_embedded_broker_refuses_anonymous_clients_and_wrong_passwords(tmp_path, plant, kind):
    with plant_broker(tmp_path, plant, kind) as broker:
        edge = broker.target_for("edge-1")
        assert connection_result(replace(edge, username=None, password=None)) != "Success"
        assert connection_result(replace(edge, password="guessed")) != "Success"
        assert connection_result(replace(edge, username="intruder")) != "Success"
        assert connection_result(edge) == "Success"
        assert connection_result(broker.target_for(CORE)) == "Success"


@pytest.mark.parametrize("kind", WITH_GRANTS)
def test_an_edge_may_publish_only_its_own_machines_data_and_its_own_status(tmp_path, plant, kind):
    with plant_broker(tmp_path, plant, kind) as broker:
        core = Received(broker.target_for(CORE), "mes/v1/+/+/+/+/data", STATUS_SUBSCRIPTION)
        edge_2 = broker.target_for("edge-2")
        m1, m2 = data_topic("sec", "a", "l", "m1"), data_topic("sec", "a", "l", "m2")
        publish(edge_2, m1, data("edge-2", 1, "m1", 10))  # another edge's machine
        publish(edge_2, status_topic("edge-1"), status("edge-1", False, []), retain=True)  # another edge's status
        publish(edge_2, "mes/v1/alerts/fake", b"{}")  # what only the core publishes
        publish(edge_2, m2, data("edge-2", 2, "m2", 10))  # its own: the last thing it sent
        publish(edge_2, status_topic("edge-2"), status("edge-2", True, ["m2"]))
        wait_until(lambda: status_topic("edge-2") in core.topics(), 10, "the edge's own status reached the core")
        core.close()
        assert core.topics() == [m2, status_topic("edge-2")], "only its own machine's data and its own status got through"


def test_an_edge_publishing_for_another_edges_machine_is_dead_lettered_and_nothing_counted(database_url, broker, plant):
    """A broker without per-edge grants (here: one all-access user) delivers anything; the core refuses it."""
    prepare_database(database_url, plant)
    core = RunningConsumer(database_url, broker.url)
    try:
        target = broker.target
        m1 = data_topic("sec", "a", "l", "m1")
        publish(target, m1, data("edge-1", 1, "m1", 10))
        publish(target, m1, data("edge-1", 2, "m1", 15))
        publish(target, m1, data("edge-2", 1, "m1", 500))  # edge-2 reports edge-1's machine
        publish(target, status_topic("edge-2"), status("edge-2", False, ["m1", "m2"]))  # and announces it as its own
        wait_until(lambda: len(rows(database_url, "SELECT 1 FROM dead_letters")) == 2, 20, "two dead letters")
        reasons = [reason for (reason,) in rows(database_url, "SELECT reason FROM dead_letters ORDER BY id")]
        assert all(reason.startswith("edge not assigned") for reason in reasons), reasons
        assert "m1" in reasons[0] and "edge-1" in reasons[0] and "edge-2" in reasons[0]
        publish(target, m1, data("edge-1", 3, "m1", 17))
        wait_until(lambda: len(rows(database_url, "SELECT 1 FROM ingested_messages")) == 3, 20, "edge-1's messages ingested")
    finally:
        core.stop()
    with psycopg.connect(database_url) as conn:
        assert recorded_totals(conn)["m1"]["good"] == 7, "edge-1's 10 → 15 → 17; edge-2's 500 counted nowhere"
    assert rows(database_url, "SELECT DISTINCT edge_id FROM ingested_messages") == [("edge-1",)]
    assert rows(database_url, "SELECT edge_id FROM edge_cursors") == [("edge-1",)], "edge-2's cursor never moved"
    assert rows(database_url, "SELECT count(*) FROM edge_status_events") == [(0,)], "the foreign status fed no downtime"


@pytest.mark.parametrize("kind", WITH_GRANTS)
def test_a_fake_retained_status_from_a_foreign_identity_is_ignored(database_url, tmp_path, plant, kind):
    prepare_database(database_url, plant)
    with plant_broker(tmp_path, plant, kind) as broker:
        core = RunningConsumer(database_url, broker.url_for(CORE))
        try:
            publish(broker.target_for("edge-1"), status_topic("edge-1"), status("edge-1", True, ["m1"]), retain=True)
            wait_until(lambda: rows(database_url, "SELECT online FROM edge_status") == [(True,)], 20, "edge-1 online")
            # edge-2 says edge-1 went offline, retained for whoever subscribes later; then says something of its own
            publish(broker.target_for("edge-2"), status_topic("edge-1"), status("edge-1", False, ["m1"]), retain=True)
            publish(broker.target_for("edge-2"), status_topic("edge-2"), status("edge-2", True, ["m2"]))
            wait_until(lambda: len(rows(database_url, "SELECT 1 FROM edge_status")) == 2, 20, "edge-2's own status")
        finally:
            core.stop()
        assert rows(database_url, "SELECT edge_id, online FROM edge_status ORDER BY edge_id") == [("edge-1", True), ("edge-2", True)]
        assert rows(database_url, "SELECT count(*) FROM edge_status_events WHERE edge_id = 'edge-1' AND NOT online") == [(0,)]
        later = Received(broker.target_for(CORE), status_topic("edge-1"))  # what a core starting now would get
        wait_until(lambda: later.messages, 10, "the retained status of edge-1")
        later.close()
        assert json.loads(later.messages[0][1])["online"] is True, "the retained status is still edge-1's own"


def test_mqtts_with_a_listener_that_requires_client_certificates(tmp_path, plant):
    ca = CertificateAuthority(tmp_path / "pki")
    server = ca.issue("127.0.0.1", server=True)
    with plant_broker(tmp_path, plant, "mosquitto", tls=BrokerTls(ca.ca_file, server.cert_file, server.key_file)) as broker:
        edge = broker.target_for("edge-1")
        assert broker.url.startswith("mqtts://")
        assert connection_result(edge) != "Success", "no client certificate: refused"
        assert connection_result(replace(edge, ca_file=None)) != "Success", "a broker certificate from an unknown CA: refused"
        stranger = CertificateAuthority(tmp_path / "other-pki", "another CA").issue("edge-1", server=False)
        assert connection_result(replace(edge, cert_file=str(stranger.cert_file), key_file=str(stranger.key_file))) != "Success"

        def with_certificate(username: str) -> MqttTarget:
            issued = ca.issue(username, server=False)
            # the way the settings give them: MES_MQTT_CA_FILE, MES_MQTT_CERT_FILE, MES_MQTT_KEY_FILE
            return parse_mqtt_url(with_options(broker.url_for(username), ca_file=str(ca.ca_file),
                                               cert_file=str(issued.cert_file), key_file=str(issued.key_file)))

        edge, core_target = with_certificate("edge-1"), with_certificate(CORE)
        assert connection_result(edge) == "Success"
        core = Received(core_target, "mes/v1/+/+/+/+/data")
        publish(edge, data_topic("sec", "a", "l", "m1"), data("edge-1", 1, "m1", 10))
        wait_until(lambda: core.messages, 10, "the edge's message over TLS reached the core")
        core.close()


def test_a_second_core_with_the_same_client_id_refuses_to_start(database_url, broker, plant, tmp_path):
    prepare_database(database_url, plant)
    first = ThreadCore(database_url, broker.url, client_id="plant-a-core")
    first.start()
    try:
        wait_until(lambda: first.process.consumer.connected(), 30, "the first core connected")
        plant_file = tmp_path / "plant.yaml"
        plant_file.write_text(yaml.safe_dump(PLANT))
        env = {**os.environ, "MES_DATABASE_URL": database_url, "MES_MQTT_URL": broker.url, "MES_PLANT": str(plant_file),
               "MES_CORE_CLIENT_ID": "plant-a-core", "MES_LOG_FORMAT": "json"}
        second = subprocess.run([sys.executable, "-m", "app", "core"], env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, second.stdout + second.stderr
        assert "another core runs with MQTT client id 'plant-a-core' on this database" in second.stdout + second.stderr
        # the first one kept its session and goes on
        publish(broker.target, data_topic("sec", "a", "l", "m1"), data("edge-1", 1, "m1", 10))
        wait_until(lambda: rows(database_url, "SELECT count(*) FROM ingested_messages") == [(1,)], 20, "the first core ingests")
        assert first.process.consumer.connects() == 1, "never reconnected: nobody took its session"
        with pytest.raises(AnotherCoreRuns, match="MES_CORE_PARTITION=edges"):  # nor may a core sharing edges
            CoreProcess(database_url, broker.url, client_id="plant-a-core", partition="edges").run()
    finally:
        first.stop()
    again = ThreadCore(database_url, broker.url, client_id="plant-a-core")  # once it stopped, the id is free again
    again.start()
    try:
        wait_until(lambda: again.process.consumer.connected(), 30, "a core with the id connects again")
        again.raise_if_failed()
    finally:
        again.stop()


def test_the_default_client_id_follows_the_database_without_its_credentials():
    one = default_client_id("postgresql://mes:secret@db:5432/plant_a")
    assert one == default_client_id("postgresql://other:password@db:5432/plant_a"), "the same database, the same id"
    assert one != default_client_id("postgresql://mes:secret@db:5432/plant_b")
    assert one != default_client_id("postgresql://mes:secret@db2:5432/plant_a")
    assert one.startswith("mes-core-plant_a-") and "secret" not in one


@pytest.mark.parametrize("tls", [False, True], ids=["mqtt", "mqtts"])
def test_mes_edge_connects_as_the_identity_the_plant_file_names(tmp_path, plant, tls):
    """The command's path: MES_MQTT_URL without credentials, the password read from the file the plant names;
    with mqtts, the CA and the client certificate from MES_MQTT_CA_FILE, MES_MQTT_CERT_FILE, MES_MQTT_KEY_FILE."""
    (tmp_path / "edge-1.password").write_text("edge-1-secret\n")
    document = {**PLANT, "mqtt": {"edges": [{"id": "edge-1", "password_file": str(tmp_path / "edge-1.password")}]}}
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(document))
    env = {"MES_PLANT": str(plant_file), "MES_DATA_DIR": str(tmp_path / "var")}
    options = {}
    if tls:
        ca = CertificateAuthority(tmp_path / "pki")
        server, client = ca.issue("127.0.0.1", server=True), ca.issue("edge-1", server=False)
        options["tls"] = BrokerTls(ca.ca_file, server.cert_file, server.key_file)
        env |= {"MES_MQTT_CA_FILE": str(ca.ca_file), "MES_MQTT_CERT_FILE": str(client.cert_file),
                "MES_MQTT_KEY_FILE": str(client.key_file)}
    with plant_broker(tmp_path, parse_plant(document), "mosquitto", **options) as broker:
        assert broker.target_for("edge-1").password == "edge-1-secret"
        env["MES_MQTT_URL"] = f"{'mqtts' if tls else 'mqtt'}://127.0.0.1:{broker.port}"
        core_target = broker.target_for(CORE)
        if tls:
            issued = ca.issue(CORE, server=False)
            core_target = replace(core_target, cert_file=str(issued.cert_file), key_file=str(issued.key_file))
        core = Received(core_target, status_topic("edge-1"))
        edge = MesProcess(["edge"], env, tmp_path / "edge.log")
        edge.start()
        try:
            wait_until(lambda: core.messages or edge.raise_if_failed(), 30, "the edge's status, published as edge-1")
        finally:
            edge.stop()
            core.close()
        assert json.loads(core.messages[0][1])["machines"] == ["m1"], "it reads the machines assigned to it, only"


@pytest.mark.parametrize("grants", ["dynsec", "files"])
def test_the_printed_grants_give_a_production_mosquitto_the_same_grants(tmp_path, plant, grants):
    """As docs/security.md and docs/deploy.md say: `mes mqtt acl --dynsec` run against a Mosquitto with the dynamic
    security plugin, or `mes mqtt acl` and `mes mqtt passwd` written where a plain Mosquitto's `acl_file` and
    `password_file` point."""
    plugin = next(iter(sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so"))), None)
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    if grants == "dynsec" and (plugin is None or shutil.which("mosquitto_ctrl") is None):
        pytest.skip("mosquitto's dynamic security plugin is not installed")
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    identities = {"core": {"password_file": str(secrets_dir / "core")},
                  "edges": [{"id": edge, "password_file": str(secrets_dir / edge)} for edge in ("edge-1", "edge-2")]}
    for name in ("core", "edge-1", "edge-2"):
        (secrets_dir / name).write_text(f"{name}-password\n")
    document = {**PLANT, "mqtt": identities}
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(document))

    def mes_mqtt(*arguments: str) -> str:
        return subprocess.run([sys.executable, "-m", "app", "mqtt", *arguments, "--plant", str(plant_file)],
                              check=True, capture_output=True, text=True).stdout

    port = free_port()
    if grants == "dynsec":
        subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(tmp_path / "dynsec.json"), "admin", "admin-password"],
                       check=True, capture_output=True)
        access = [f"plugin {plugin}", f"plugin_opt_config_file {tmp_path / 'dynsec.json'}"]
    else:
        (tmp_path / "mosquitto.acl").write_text(mes_mqtt("acl"))
        (tmp_path / "mosquitto.passwd").write_text(mes_mqtt("passwd"))
        assert "password" not in (tmp_path / "mosquitto.passwd").read_text(), "hashes only"
        access = [f"acl_file {tmp_path / 'mosquitto.acl'}", f"password_file {tmp_path / 'mosquitto.passwd'}"]
    (tmp_path / "mosquitto.conf").write_text("\n".join([
        f"listener {port} 127.0.0.1", "per_listener_settings false", "allow_anonymous false", *access,
        f"user {pwd.getpwuid(os.geteuid()).pw_name}", ""]))
    broker = subprocess.Popen([find_mosquitto(), "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_accepts("127.0.0.1", port), 10, "mosquitto listening")
        if grants == "dynsec":
            subprocess.run(["sh", "-c", mes_mqtt("acl", "--dynsec"), "sh", "-h", "127.0.0.1", "-p", str(port), "-u", "admin",
                            "-P", "admin-password"], check=True, capture_output=True, timeout=60)

        def target(username: str) -> MqttTarget:
            return MqttTarget("127.0.0.1", port, username, (secrets_dir / ("core" if username == CORE else username)).read_text().strip())

        assert connection_result(MqttTarget("127.0.0.1", port)) != "Success", "anonymous"
        assert connection_result(MqttTarget("127.0.0.1", port, "edge-1", "edge-2-password")) != "Success", "a wrong password"
        core = Received(target(CORE), "mes/v1/+/+/+/+/data", STATUS_SUBSCRIPTION)
        m1, m2 = data_topic("sec", "a", "l", "m1"), data_topic("sec", "a", "l", "m2")
        publish(target("edge-2"), m1, data("edge-2", 1, "m1", 10))
        publish(target("edge-2"), status_topic("edge-1"), status("edge-1", False, []), retain=True)
        publish(target("edge-1"), m1, data("edge-1", 1, "m1", 10))
        publish(target("edge-2"), m2, data("edge-2", 2, "m2", 10))
        wait_until(lambda: m2 in core.topics(), 10, "edge-2's own machine's data reached the core")
        core.close()
        assert sorted(core.topics()) == [m1, m2], "edge-2's publication on m1 and edge-1's status never got through"
        assert all(json.loads(payload)["edge_id"] == ("edge-1" if topic == m1 else "edge-2") for topic, payload, _ in core.messages)
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_the_password_file_needs_a_password_source_for_every_identity(tmp_path):
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump({**PLANT, "mqtt": {"edges": [{"id": "edge-1", "password_env": "NOPE_UNSET"}]}}))
    result = subprocess.run([sys.executable, "-m", "app", "mqtt", "passwd", "--plant", str(plant_file)],
                            capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "NOPE_UNSET"})
    assert result.returncode != 0 and "NOPE_UNSET" in result.stderr, result.stderr


@pytest.mark.slow
def test_two_edges_with_identities_of_their_own_count_exactly_through_a_broker_with_grants(database_url, tmp_path):
    """The whole plant, its line-b read by a second edge: each edge as itself, the core as itself, Mosquitto
    configured from the plant file; every count exact, each machine's messages from its own edge only."""
    document = yaml.safe_load(TEST_PLANT.read_text())
    for machine in document["areas"][0]["lines"][1]["machines"]:
        machine["edge_id"] = "edge-u"
    (tmp_path / "plant.yaml").write_text(yaml.safe_dump(document))
    two_edges = plant_on_free_ports(tmp_path / "plant.yaml")
    with plant_broker(tmp_path, two_edges, "mosquitto") as broker:
        urls = {edge: broker.url_for(edge) for edge in ("edge-t", "edge-u")}

        async def during(plant_run):
            await asyncio.sleep(6)

        core = ThreadCore(database_url, broker.url_for(CORE))
        assert_exact(produce(two_edges, database_url, broker.url_for(CORE), tmp_path, during, core=core, edge_mqtt_urls=urls))
    assert sorted(rows(database_url, "SELECT DISTINCT machine_id, edge_id FROM ingested_messages")) == [
        ("mod16", "edge-t"), ("mod32", "edge-u"), ("opc16", "edge-t"), ("opc32", "edge-u")]
    assert rows(database_url, "SELECT count(*) FROM dead_letters") == [(0,)]
