"""Configuration: defaults, then an optional YAML file (`--config` or MES_CONFIG), then MES_* variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from kernel.plant import DEMO_PLANT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MES_", extra="forbid")

    database_url: str | None = Field(default=None, description="postgresql://… ; unset = embedded PostgreSQL")
    mqtt_url: str | None = Field(default=None, description="mqtt[s]://[user:pass@]host[:port] ; unset = embedded broker")
    # TLS (mqtts:// URLs): the CA that signed the broker's certificate (unset: the system's), and the
    # client's own certificate and key for a broker that requires one. Credentials: kernel/mqtt_access.py.
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    core_client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
                                       description="the core's MQTT client id; unset = derived from its database")
    plant: Path = Field(default=DEMO_PLANT, description="plant description (site/area/line/machine) YAML")
    data_dir: Path = Field(default=Path("var"), description="where embedded services, edge queues and epochs live")
    log_level: str = "INFO"
    log_format: str = Field(default="console", pattern="^(console|json)$")

    # core ingest
    batch_max_messages: int = Field(default=500, gt=0)
    batch_max_wait_ms: int = Field(default=50, gt=0)

    # downtime and alerts
    offline_after_s: int = Field(default=30, gt=0, description="no message from a machine for this long: offline")
    alert_every_s: float = Field(default=5.0, gt=0, description="how often the core evaluates the alert rules")

    # board rollups (oee_hourly, downtime_hourly)
    # Each round derives every machine's states for the hours it redoes: at 1,000 machines that is real CPU
    # beside ingest (docs/benchmarks.md), and the boards' current hour is computed live anyway.
    rollup_every_s: float = Field(default=60.0, gt=0, description="how often the core refreshes the recent hours' rollups")
    rollup_hours: int = Field(default=2, gt=0, description="how many recent hours each refresh recomputes")

    # edge
    edge_flush_ms: int = Field(default=200, gt=0)
    edge_queue_max: int = Field(default=200_000, gt=0)
    edge_heartbeat_s: int = Field(default=10, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("MES_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(config_file)))
        return tuple(sources)
