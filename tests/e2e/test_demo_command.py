"""`mes demo`, the README's first command, as a user runs it: a process, a reckoning, a summary file."""

import json
import os
import subprocess
import sys

import pytest

from mes.plant import DEMO_PLANT
from tests.e2e.conftest import plant_on_free_ports, write_plant

pytestmark = pytest.mark.slow


def test_demo_prints_and_writes_recorded_equal_to_ground_truth(database_url, mqtt_url, tmp_path):
    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), tmp_path, source=DEMO_PLANT)
    summary = tmp_path / "summary.json"
    env = {**os.environ, "MES_DATABASE_URL": database_url, "MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file),
           "MES_DATA_DIR": str(tmp_path / "var")}
    result = subprocess.run([sys.executable, "-m", "mes", "demo", "--duration", "8", "--no-live", "--summary-json", str(summary)],
                            env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Every count is exact." in result.stdout
    machines = json.loads(summary.read_text())["machines"]
    assert set(machines) == {"press-01", "press-02", "welder-01", "packer-01"}
    for entry in machines.values():
        assert entry["recorded"] == entry["ground_truth"]
        assert set(entry["recorded"]) == {"good", "scrap", "energy_wh"}
        assert entry["recorded"]["good"] > 0
