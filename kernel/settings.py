"""Configuration: defaults, then an optional YAML file (`--config` or MES_CONFIG), then secret files (a directory
named by MES_SECRETS_DIR, one file per setting: `mes_database_url` holds MES_DATABASE_URL), then MES_* variables.

The secret files let a container or a service manager hand over a URL with its password without putting it in
the environment of every process (`docker compose` mounts its secrets in /run/secrets, systemd's
LoadCredential= in $CREDENTIALS_DIRECTORY)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import (BaseSettings, NoDecode, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict,
                               YamlConfigSettingsSource)

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
    core_partition: str = Field(default="plant", pattern="^(plant|edges)$",
                                description="plant: one core ingests the whole plant; edges: several cores share its edges")
    plant: Path = Field(default=DEMO_PLANT, description="plant description (site/area/line/machine) YAML")
    data_dir: Path = Field(default=Path("var"), description="where embedded services, edge queues and epochs live")
    log_level: str = "INFO"
    log_format: str = Field(default="console", pattern="^(console|json)$")

    # metrics (docs/metrics.md): `mes core` and `mes edge` serve Prometheus metrics on a port of their own when set
    metrics_host: str = Field(default="127.0.0.1", description="address the metrics of `mes core` / `mes edge` listen on")
    metrics_port: int | None = Field(default=None, ge=0, le=65535,
                                     description="port of the metrics of `mes core` / `mes edge`; unset = not served")

    # core ingest
    batch_max_messages: int = Field(default=500, gt=0)
    batch_max_wait_ms: int = Field(default=50, gt=0)
    clock_skew_s: int = Field(default=300, gt=0, le=86_400 * 366,
                              description="a sample stamped further than this ahead of the core's clock is placed at "
                                          "its receipt and flagged (ingested_messages.clock_ahead_s)")
    max_payload_bytes: int = Field(default=1024 * 1024, ge=1024, le=256 * 1024 * 1024,
                                   description="a larger MQTT payload is a dead letter (its first 64 KiB kept)")
    max_samples: int = Field(default=10_000, gt=0, le=1_000_000, description="a message with more samples is a dead letter")
    ingest_max_pending: int = Field(default=5_000, gt=0, le=1_000_000,
                                    description="deliveries the core holds in memory; beyond, it leaves them on the broker "
                                                "until it has caught up (the database was away)")
    ingest_max_pending_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024, le=16 * 1024**3,
                                          description="the same bound in payload bytes")
    seq_max_gap: int = Field(default=1_000_000, gt=0, le=2**62,
                             description="a message more than this many seq ahead of its edge's last one is a dead letter")
    epoch_max_gap: int = Field(default=100_000_000, gt=0, le=2**62,
                               description="a message more than this many epochs ahead of its edge's last one is a dead letter")

    # downtime and alerts
    offline_after_s: int = Field(default=30, gt=0, description="no message from a machine for this long: offline")
    alert_every_s: float = Field(default=5.0, gt=0, description="how often the core evaluates the alert rules")
    review_alert_after_s: int = Field(default=3600, gt=0, le=366 * 86_400,
                                      description="a dead letter or quarantined step waiting longer raises review_waiting")

    # board rollups (oee_hourly, downtime_hourly)
    # Each round derives every machine's states for the hours it redoes: at 1,000 machines that is real CPU
    # beside ingest (docs/benchmarks.md), and the boards' current hour is computed live anyway.
    rollup_every_s: float = Field(default=60.0, gt=0, description="how often the core refreshes the recent hours' rollups")
    rollup_hours: int = Field(default=2, gt=0, description="how many recent hours each refresh recomputes")

    # retention (docs/deploy.md "Retention"): what may go by age; counts, costs and the stock ledger are kept forever
    retention_samples_days: int = Field(default=90, ge=0, le=36_600,
                                        description="raw samples are kept this many whole days (0: forever)")
    retention_messages_days: int = Field(default=90, ge=0, le=36_600,
                                         description="ingested-message keys, the machines' communication record, are kept "
                                                     "this many whole days (0: forever); downtime is derived that far back")
    retention_every_s: float = Field(default=3600.0, gt=0, description="how often the core's retention job runs")

    # the live plan (docs/planning.md "The live plan"): net change from the marks every change leaves, and a full
    # regeneration on a schedule (a running order's projected finish moves with time, not only with its counts)
    plan_every_s: float = Field(default=0.01, gt=0, description="the pause between the core's planner's rounds (each "
                                "waits for a change's notification first, at most 1 s)")
    plan_regenerate_every_s: float = Field(default=3600.0, gt=0,
                                           description="how often the core's planner regenerates the whole live plan")

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
    edge_queue_max: int = Field(default=200_000, gt=0, description="rows in the edge's disk queue before it compacts")
    edge_queue_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0, description="the same bound in bytes of samples")
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
        config_file, secrets_dir = os.environ.get("MES_CONFIG"), os.environ.get("MES_SECRETS_DIR")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if secrets_dir:
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir))
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(config_file)))
        return tuple(sources)
