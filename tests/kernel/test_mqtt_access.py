"""The plant's MQTT identities, their passwords and grants, the Mosquitto files, and mqtt(s) URLs."""

from __future__ import annotations

import base64
import hashlib

import pytest

from kernel.mqtt import parse_mqtt_url, with_options
from kernel.mqtt_access import (
    MOSQUITTO_HASH_ITERATIONS,
    client_credentials,
    core_grants,
    edge_grants,
    mosquitto_acl,
    mosquitto_password_line,
    plant_grants,
    plant_users,
)
from kernel.plant import parse_plant

MACHINES = [{"id": "m1", "protocol": "modbus", "ideal_cycle_s": 1},
            {"id": "m2", "protocol": "modbus", "ideal_cycle_s": 1, "edge_id": "edge-2"}]


def plant(**extra):
    return parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": MACHINES}]}], **extra})


def test_machines_belong_to_the_plants_edge_unless_they_name_their_own():
    loaded = plant()
    assert [(m.id, m.edge_id) for m in loaded.machines] == [("m1", "edge-1"), ("m2", "edge-2")]
    assert [m.id for m in loaded.machines_of("edge-2")] == ["m2"]
    assert [(e.id, e.login) for e in loaded.edge_identities()] == [("edge-1", "edge-1"), ("edge-2", "edge-2")]


def test_identities_take_their_passwords_from_a_variable_or_a_file_never_the_plant_file(tmp_path, monkeypatch):
    (tmp_path / "edge-2.password").write_text("from-a-file\n")
    monkeypatch.setenv("CORE_MQTT_PASSWORD", "from-the-environment")
    loaded = plant(mqtt={"core": {"username": "core-a", "password_env": "CORE_MQTT_PASSWORD"},
                         "edges": [{"id": "edge-2", "username": "line-2", "password_file": str(tmp_path / "edge-2.password")}]})
    assert client_credentials(loaded) == ("core-a", "from-the-environment")
    assert client_credentials(loaded, "edge-2") == ("line-2", "from-a-file")
    assert client_credentials(loaded, "edge-1") == ("edge-1", None), "no source: no password (a broker of ours makes one)"
    users = {user.username: user for user in plant_users(loaded)}
    assert users["core-a"].password == "from-the-environment" and users["line-2"].password == "from-a-file"
    assert len(users["edge-1"].password) >= 20, "generated"
    monkeypatch.delenv("CORE_MQTT_PASSWORD")
    with pytest.raises(ValueError, match="environment variable CORE_MQTT_PASSWORD is not set"):
        client_credentials(loaded)
    with pytest.raises(ValueError, match="password_env or password_file, not both"):
        plant(mqtt={"core": {"password_env": "A", "password_file": "b"}})
    with pytest.raises(ValueError, match="unique"):
        plant(mqtt={"edges": [{"id": "edge-2", "username": "mes-core"}]})
    with pytest.raises(ValueError):
        plant(mqtt={"core": {"password": "in clear"}})


def test_each_edge_may_write_its_own_machines_and_status_and_the_core_reads_them_all():
    loaded = plant()
    assert [(g.topic, g.access) for g in edge_grants(loaded, "edge-2")] == [
        ("mes/v1/s/a/l/m2/data", "write"), ("mes/v1/edge/edge-2/status", "write"), ("mes/v1/edge/edge-2/ack", "read")]
    assert [(g.topic, g.access) for g in core_grants()] == [
        ("mes/v1/+/+/+/+/data", "read"), ("mes/v1/edge/+/status", "read"), ("mes/v1/edge/+/ack", "write"),
        ("mes/v1/alerts/#", "write")]
    acl = mosquitto_acl(plant_grants(loaded))
    assert ("user edge-2\ntopic write mes/v1/s/a/l/m2/data\ntopic write mes/v1/edge/edge-2/status\n"
            "topic read mes/v1/edge/edge-2/ack\n") in acl
    assert "topic read mes/v1/+/+/+/+/data" in acl


def test_password_lines_are_mosquittos_own_format():
    """PBKDF2-SHA512 as mosquitto_passwd writes it (that Mosquitto accepts them: tests/security/test_mqtt.py)."""
    salt = bytes(range(12))
    line = mosquitto_password_line("edge-1", "secret", salt)
    username, rest = line.split(":", 1)
    _, version, iterations, salt_b64, digest_b64 = rest.split("$")
    assert (username, version, int(iterations)) == ("edge-1", "7", MOSQUITTO_HASH_ITERATIONS)
    assert base64.b64decode(salt_b64) == salt
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"secret", salt, MOSQUITTO_HASH_ITERATIONS)


def test_mqtts_urls_carry_their_tls_files_and_the_settings_complete_them():
    target = parse_mqtt_url("mqtts://broker.plant")
    assert (target.tls, target.port, target.ca_file) == (True, 8883, None)
    url = with_options("mqtts://broker.plant", username="edge-1", password="p@ss:/word", ca_file="/etc/ca.pem",
                       cert_file="/etc/edge.crt", key_file="/etc/edge.key")
    completed = parse_mqtt_url(url)
    assert (completed.username, completed.password) == ("edge-1", "p@ss:/word")
    assert (completed.ca_file, completed.cert_file, completed.key_file) == ("/etc/ca.pem", "/etc/edge.crt", "/etc/edge.key")
    assert completed.address == "mqtts://broker.plant:8883" and "word" not in completed.address
    own = parse_mqtt_url(with_options("mqtt://mine:pw@h:1", username="edge-1", password="other"))
    assert (own.username, own.password, own.tls) == ("mine", "pw", False), "the URL's own credentials stand"
    with pytest.raises(ValueError, match="with mqtts://"):
        parse_mqtt_url("mqtt://h:1?ca_file=/x")
    with pytest.raises(ValueError) as refused:
        parse_mqtt_url("http://user:hunter2@h")
    assert "hunter2" not in str(refused.value)
