"""Our simulators set up as real PLCs are, read by the real edge into the real core: an OPC UA server
that requires Basic256Sha256 SignAndEncrypt and a user (the password from an environment variable), and
restarts that move the namespace index. Recorded good / scrap / Wh = ground truth exactly, and no log
line of the whole run carries the password."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from app.plantrun import MesProcess, PlantRun
from core.queries import counter_values
from kernel.embedded.broker import free_port
from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import status_topic
from kernel.plant import Plant, parse_plant
from tests.e2e.test_spine import assert_exact, produce, query

pytestmark = pytest.mark.slow

SECRET = "Pl4nt-s3cret-n0t-for-logs"
PASSWORD_ENV = "MES_TEST_SIMULATED_PLC_PASSWORD"
S7_NAMESPACE = "urn:test:s7-1500"


def plant_document(tmp_path: Path, edge_id: str) -> dict:
    """Two OPC UA endpoints: the plant's (NoSecurity, UInt32 counters) and an S7-like one that asks for
    SignAndEncrypt and a user, with signed INT and DINT counters (both wrap early) under numeric NodeIds,
    a Double kWh meter and a UInt64 Wh meter. Its URL carries the credentials too, which must be as
    absent from the logs as the password."""
    secured = f"opc.tcp://edge:{SECRET}@127.0.0.1:{free_port()}/s7/"
    certificates = tmp_path / "opcua"
    security = {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "certificate": str(certificates / "edge-cert.der"),
                "private_key": str(certificates / "edge-key.pem"),
                # the simulator makes this file on its first run, before the edge connects
                "trusted_server_certificates": [str(certificates / "server-cert.der")],
                "user": "edge", "password_env": PASSWORD_ENV}
    return {
        "site": "secured-works",
        "edge_id": edge_id,
        "endpoints": {"opcua": f"opc.tcp://127.0.0.1:{free_port()}/open-mes/", "modbus_port": free_port()},
        "areas": [{"id": "press-shop", "lines": [{"id": "line-1", "machines": [
            {"id": "s7-secured", "protocol": "opcua", "ideal_cycle_s": "0.25", "counter_width": 16, "counter_start": 32755,
             "simulation": {"scrap_rate": "0.1", "energy_wh_per_cycle": 7, "idle_power_w": 900, "mtbf_s": 6, "mttr_s": 2,
                            "seed": 11, "server_certificate": str(certificates / "server-cert.der"),
                            "server_private_key": str(certificates / "server-key.pem")},
             "source": {
                 "protocol": "opcua", "endpoint": secured, "namespace": S7_NAMESPACE,
                 "nodes": {"good": {"node": f"nsu={S7_NAMESPACE};i=1001", "type": "int16"},
                           "scrap": {"node": 1002, "type": "int16"},
                           "energy_wh": {"node": f"nsu={S7_NAMESPACE};s=Energy.kWh", "type": "float64", "scale": 1000},
                           "state": "state", "fault": "fault"},
                 "security": security}},
            {"id": "s7-dint", "protocol": "opcua", "ideal_cycle_s": "0.3", "counter_width": 32, "counter_start": 2**31 - 6,
             "simulation": {"scrap_rate": "0.1", "energy_wh_per_cycle": 2, "idle_power_w": 300, "seed": 13,
                            "server_certificate": str(certificates / "server-cert.der"),
                            "server_private_key": str(certificates / "server-key.pem")},
             "source": {
                 "protocol": "opcua", "endpoint": secured, "namespace": S7_NAMESPACE,
                 "nodes": {"good": {"node": 2001, "type": "int32"}, "scrap": {"node": 2002, "type": "int32"},
                           "energy_wh": {"node": f"nsu={S7_NAMESPACE};i=2003", "type": "uint64"}},
                 "security": security}},
            {"id": "plain-32", "protocol": "opcua", "ideal_cycle_s": "0.2", "counter_width": 32, "counter_start": 2**32 - 8,
             "simulation": {"scrap_rate": "0.05", "energy_wh_per_cycle": 3, "idle_power_w": 400, "mtbf_s": 8, "mttr_s": 2,
                            "seed": 12}},
        ]}]}],
    }


def secured_plant(tmp_path: Path, edge_id: str) -> tuple[Plant, Path]:
    document = plant_document(tmp_path, edge_id)
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(document))
    return parse_plant(document), plant_file


class EdgeStatuses:
    """Every retained status message of one edge, with the instant it arrived (monotonic)."""

    def __init__(self, mqtt_url: str, edge_id: str) -> None:
        self._lock = threading.Lock()
        self.received: list[tuple[float, dict]] = []
        target = parse_mqtt_url(mqtt_url)
        self.client = new_client(target, client_id=f"test-status-{uuid.uuid4().hex[:8]}", persistent=False)
        self.client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(status_topic(edge_id), qos=1)
        self.client.on_message = self._on_message
        connect(self.client, target)

    def _on_message(self, _client: object, _userdata: object, message) -> None:
        with self._lock:
            self.received.append((time.monotonic(), json.loads(message.payload)))

    def of(self, machine_id: str, since: float = 0.0, until: float = float("inf")) -> list[str]:
        """The machine's status in each online status message that arrived between `since` and `until`."""
        with self._lock:
            return [payload["connections"][machine_id]["status"] for at, payload in self.received
                    if since <= at <= until and payload.get("online") and machine_id in payload.get("connections", {})]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def committed(database_url: str, machine_id: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return counter_values(conn).get(machine_id, {})


def test_a_sign_and_encrypt_server_with_a_user_counts_exactly_and_no_log_line_carries_the_password(
        database_url, mqtt_url, tmp_path, monkeypatch, capfd, caplog):
    """Real `mes edge` and `mes core` processes (logging at DEBUG). Midway the secured server restarts with
    its namespace one index higher: the edge comes back over SignAndEncrypt (the server keeps the
    certificate it made on its first run, which the edge pins) and reads the new index."""
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    caplog.set_level(logging.INFO)
    plant, plant_file = secured_plant(tmp_path, f"edge-secured-{uuid.uuid4().hex[:6]}")
    secured = plant.machine("s7-secured").source.endpoint
    debug = {"MES_LOG_LEVEL": "DEBUG"}
    core = MesProcess.core(database_url, mqtt_url, plant_file, tmp_path / "core.log")
    edge = MesProcess.edge(mqtt_url, plant_file, tmp_path / "edge-state", tmp_path / "edge.log")
    core.env |= debug
    edge.env |= debug
    restarted: list[float] = []

    async def during(plant_run: PlantRun) -> None:
        await plant_run.wait_for(lambda: committed(plant_run.database_url, "s7-secured").get("good", 0) >= 2**15
                                 and committed(plant_run.database_url, "s7-dint").get("good", 0) >= 2**31, 60,
                                 "the Int16 and Int32 counters past their wrap (32767 -> -32768, 2^31-1 -> -2^31)")
        server = plant_run.simulated.opcua_server(secured)
        await plant_run.simulated.restart_opcua(secured, down_s=1)
        back = time.monotonic()
        before = committed(plant_run.database_url, "s7-secured")["good"]
        await plant_run.wait_for(lambda: committed(plant_run.database_url, "s7-secured")["good"] != before, 60,
                                 "counting over SignAndEncrypt again after the restart")
        restarted.append(time.monotonic() - back)
        assert server.namespaces_ahead  # the restart moved the namespace
        await plant_run.wait_for(lambda: plant_run.simulated.ground_truth()["s7-secured"]["faults"] >= 1, 60, "a fault")

    comparison = produce(plant, database_url, mqtt_url, tmp_path, during, core=core, edge_process=edge)
    assert_exact(comparison)
    # (the Int16 wrap 32767 -> -32768 is one ordinary step of the unsigned value the edge sends: waited for above)
    rollovers = {m for (m,) in query(database_url, "SELECT DISTINCT machine_id FROM counter_events WHERE kind = 'rollover'")}
    assert "plain-32" in rollovers
    assert comparison["s7-secured"]["ground_truth"]["energy_wh"] % 1000, "the kWh meter moved in fractions of a kWh"

    captured = capfd.readouterr()
    edge_log = (tmp_path / "edge.log").read_text(errors="replace")
    logs = {"edge": edge_log, "core": (tmp_path / "core.log").read_text(errors="replace"),
            "simulators and test (stdout, stderr)": captured.out + captured.err, "library records": caplog.text}
    leaked = [name for name, text in logs.items() if SECRET in text or f"edge:{SECRET}@" in text]
    assert not leaked, f"the password is in the {leaked} log"
    assert "edge:***@127.0.0.1" in edge_log, "the secured endpoint is named in the edge's log, redacted"
    assert "opcua.server_certificate_created" in logs["simulators and test (stdout, stderr)"]
    print(f"counting over SignAndEncrypt resumed {restarted[0]:.1f} s after the secured server's return")


def test_an_opcua_restart_that_moves_the_namespace_index_resumes_counting_and_never_shows_ok_meanwhile(
        database_url, mqtt_url, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    edge_id = f"edge-restart-{uuid.uuid4().hex[:6]}"
    plant, _ = secured_plant(tmp_path, edge_id)
    statuses = EdgeStatuses(mqtt_url, edge_id)
    outages: list[dict] = []

    async def during(plant_run: PlantRun) -> None:
        simulated = plant_run.simulated
        for round_ in range(2):  # the index moves twice: 2 -> 3 -> 4
            await plant_run.wait_for(lambda: statuses.of("plain-32")[-1:] == ["ok"], 60, "plain-32 ok")
            stopped = time.monotonic()
            await simulated.stop_opcua()
            await plant_run.wait_for(lambda: statuses.of("plain-32")[-1:] == ["unreachable"], 60,
                                     "the edge's status to show plain-32 unreachable")
            before = committed(plant_run.database_url, "plain-32")["good"]
            await asyncio.sleep(1)  # production goes on unseen
            simulated.opcua.move_namespaces()
            await simulated.start_opcua()
            back = time.monotonic()
            # from the edge's noticing (an `ok` published before it did is no claim about the outage) to the return
            since_stop = statuses.of("plain-32", since=stopped, until=back)
            meanwhile = since_stop[since_stop.index("unreachable"):]
            await plant_run.wait_for(lambda before=before: committed(plant_run.database_url, "plain-32")["good"] != before, 60,
                                     "counting to resume after the namespace moved")
            outages.append({"round": round_ + 1, "resumed_after_s": round(time.monotonic() - back, 1),
                            "namespaces_ahead": len(simulated.opcua.namespaces_ahead), "statuses_meanwhile": meanwhile})
            assert meanwhile and "ok" not in meanwhile, meanwhile
            assert set(meanwhile) <= {"unreachable", "bad_config"}
            # the other endpoint went on all the while
            assert "ok" == statuses.of("s7-secured")[-1]

    try:
        comparison = produce(plant, database_url, mqtt_url, tmp_path, during, edge_options={"flush_ms": 50})
    finally:
        statuses.close()
    for outage in outages:
        print(f"namespace-moving restart {outage['round']}: counting resumed {outage['resumed_after_s']} s after the "
              f"server's return; edge status meanwhile {sorted(set(outage['statuses_meanwhile']))}")
    assert len(outages) == 2
    assert_exact(comparison)
