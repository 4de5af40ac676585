from pathlib import Path

import pytest
from pydantic import ValidationError

from kernel.plant import DEMO_PLANT, load_plant, parse_plant
from kernel.settings import Settings


def test_a_config_file_sets_values_and_environment_variables_win(tmp_path: Path, monkeypatch):
    config = tmp_path / "mes.yaml"
    config.write_text("mqtt_url: mqtt://broker.plant:1883\nbatch_max_messages: 200\nlog_format: json\n")
    monkeypatch.setenv("MES_CONFIG", str(config))
    monkeypatch.setenv("MES_BATCH_MAX_MESSAGES", "900")
    settings = Settings()
    assert (settings.mqtt_url, settings.batch_max_messages, settings.log_format) == ("mqtt://broker.plant:1883", 900, "json")


def test_secret_files_set_values_over_the_config_file_and_environment_variables_win(tmp_path: Path, monkeypatch):
    """A container's /run/secrets or systemd's credentials directory: one file per setting, its content the value."""
    secrets_dir, config = tmp_path / "secrets", tmp_path / "mes.yaml"
    secrets_dir.mkdir()
    (secrets_dir / "mes_database_url").write_text("postgresql://mes:from-secret@db/mes\n")
    (secrets_dir / "mes_mqtt_url").write_text("mqtt://from-secret:1883")
    config.write_text("database_url: postgresql://mes@from-file/mes\nmqtt_url: mqtt://from-file:1883\n")
    monkeypatch.setenv("MES_SECRETS_DIR", str(secrets_dir))
    monkeypatch.setenv("MES_CONFIG", str(config))
    monkeypatch.setenv("MES_MQTT_URL", "mqtt://from-env:1883")
    settings = Settings()
    assert settings.database_url == "postgresql://mes:from-secret@db/mes"
    assert settings.mqtt_url == "mqtt://from-env:1883"


def test_an_unknown_setting_in_the_file_is_an_error(tmp_path: Path, monkeypatch):
    config = tmp_path / "mes.yaml"
    config.write_text("databse_url: postgresql://typo\n")
    monkeypatch.setenv("MES_CONFIG", str(config))
    with pytest.raises(ValidationError, match="databse_url"):
        Settings()


def test_the_demo_plant_resolves_every_machine_with_a_source_and_counter_specs():
    plant = load_plant(DEMO_PLANT)
    assert [m.path for m in plant.machines][0] == ("acme-works", "stamping", "line-1", "press-01")
    modbus = [m for m in plant.machines if m.protocol == "modbus"]
    assert sorted(m.source.device_id for m in modbus) == [1, 2]  # numbered among Modbus machines
    # Counts wrap at the machine's counter width; a float kWh meter never wraps (64 bits).
    assert all(spec.width == m.counter_width for m in plant.machines for c, spec in m.counters.items() if c != "energy_wh")
    assert {m.id: m.counters["energy_wh"].width for m in plant.machines} == {
        "press-01": 64, "press-02": 64, "welder-01": 32, "packer-01": 32}
    # The demo meets real-PLC types: signed INT counters (which wrap early in a run) and kWh meters.
    press = plant.machine("press-01").source
    assert {press.nodes[c].type for c in ("good", "scrap")} == {"int16"} and plant.machine("press-01").counter_start > 2**15 - 60
    assert press.nodes["energy_wh"].type == "float64" and press.nodes["energy_wh"].scale == 1000
    meter = plant.machine("press-02").source.registers["energy_wh"]
    assert (meter.table, meter.type, meter.scale) == ("input", "float32", 1000)


def test_plant_errors_name_the_problem():
    machine = {"id": "m1", "protocol": "modbus", "ideal_cycle_s": 1}
    with pytest.raises(ValueError, match="repeated: m1"):
        parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [machine, machine]}]}]})
    with pytest.raises(ValueError, match="does not fit in 16 bits"):
        parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
            {**machine, "counter_width": 16, "counter_start": 70000}]}]}]})
