"""Configuration: defaults, then an optional YAML file (`--config` or MES_CONFIG), then MES_* variables."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from kernel.plant import DEMO_PLANT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MES_", extra="forbid")

    database_url: str | None = Field(default=None, description="postgresql://… ; unset = embedded PostgreSQL")
    mqtt_url: str | None = Field(default=None, description="mqtt://[user:pass@]host[:port] ; unset = embedded broker")
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

    # the API's callers (docs/security.md): local users and API keys always; tokens of an identity provider when set
    oidc_issuer: str | None = Field(default=None, description="the identity provider's issuer (the tokens' `iss`)")
    oidc_jwks_url: str | None = Field(default=None, description="where the identity provider publishes its signing keys")
    oidc_audience: str | None = Field(default=None, description="the `aud` the tokens must carry; unset: not checked")
    oidc_roles_claim: str = Field(default="roles", description="the claim with the MES roles; dotted for nested claims")
    oidc_name_claim: str = Field(default="preferred_username", description="the claim audit rows record (else `sub`)")
    api_max_body_bytes: int = Field(default=1_048_576, gt=0, description="larger request bodies are refused with 413")
    api_max_period_days: int = Field(default=400, gt=0, description="longer report periods are refused with 422")

    # webhooks (mes/services/notifications.py): public hosts only, unless a private range is allowed here
    webhook_allow_private: Annotated[list[str], NoDecode] = Field(
        default=[], description="CIDR ranges webhooks may reach although private, loopback or link-local, comma-separated "
                                "(e.g. 10.1.0.0/16,127.0.0.0/8)")

    # edge
    edge_flush_ms: int = Field(default=200, gt=0)
    edge_queue_max: int = Field(default=200_000, gt=0)
    edge_heartbeat_s: int = Field(default=10, gt=0)

    @field_validator("webhook_allow_private", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("webhook_allow_private")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(cidr, strict=False)) for cidr in value]

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
