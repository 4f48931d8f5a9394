"""The one settings object, read once at start-up.

Values come, in order of precedence, from keyword arguments, environment variables
with the prefix ``PIVOTWATCH_`` (nested fields use ``__``, for example
``PIVOTWATCH_TOPICS__ALERTS=my.alerts``), a ``.env`` file, and the defaults below. A
YAML or JSON file named by ``PIVOTWATCH_CONFIG`` is read between the environment and
the defaults. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pivotwatch.errors import ConfigurationError

__all__ = ["CorrelationSettings", "KafkaSettings", "Settings", "TopicSettings", "load_settings"]

LEVELS = ("informational", "low", "medium", "high", "critical")


class TopicSettings(BaseModel):
    """Names of the Kafka topics; every one can be changed."""

    model_config = {"frozen": True}

    cloudtrail: str = "pivotwatch.raw.cloudtrail"
    gcp_audit: str = "pivotwatch.raw.gcp-audit"
    falco: str = "pivotwatch.raw.falco"
    inventory: str = "pivotwatch.raw.inventory"
    events: str = "pivotwatch.events"
    alerts: str = "pivotwatch.alerts"
    dead_letter: str = "pivotwatch.dead-letter"
    partitions: int = Field(default=4, ge=1, description="partitions of topics that pivotwatch creates")
    replication_factor: int = Field(default=1, ge=1)

    def raw_topics(self) -> dict[str, str]:
        """Return the raw topic of each source, by source name."""
        return {
            "cloudtrail": self.cloudtrail,
            "gcp_audit": self.gcp_audit,
            "falco": self.falco,
            "inventory": self.inventory,
        }


class KafkaSettings(BaseModel):
    """How to reach the broker."""

    model_config = {"frozen": True}

    bootstrap: str = Field(default="localhost:9092", description="host:port[,host:port...]")
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    client_id: str = "pivotwatch"


class CorrelationSettings(BaseModel):
    """Windows, caps and silencing used by the correlator."""

    model_config = {"frozen": True}

    allowed_lateness_seconds: float = Field(default=1800.0, ge=0)
    window_seconds: float = Field(default=86400.0, gt=0)
    transient_window_seconds: float = Field(default=3600.0, gt=0)
    max_nodes_per_key: int = Field(default=50_000, ge=100)
    max_edges_per_key: int = Field(default=200_000, ge=100)
    min_single_stage_level: str = Field(
        default="low", description="single-stage alerts below this rule level are not published"
    )
    cluster_accounts: dict[str, str] = Field(
        default_factory=dict, description="Kubernetes cluster or host name -> AWS account or GCP project"
    )
    default_account: str | None = Field(
        default=None, description="correlation key of runtime records whose account cannot be resolved"
    )
    rule_paths: list[Path] = Field(
        default_factory=list, description="extra folders or files of Sigma rules, loaded after the bundled pack"
    )
    bundled_rules: bool = True

    @field_validator("min_single_stage_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value not in LEVELS:
            raise ValueError(f"min_single_stage_level {value!r} is not one of {', '.join(LEVELS)}")
        return value

    @property
    def allowed_lateness(self) -> timedelta:
        return timedelta(seconds=self.allowed_lateness_seconds)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    @property
    def transient_window(self) -> timedelta:
        return timedelta(seconds=self.transient_window_seconds)


class WorkerSettings(BaseModel):
    """The faust worker."""

    model_config = {"frozen": True}

    app_id: str = "pivotwatch"
    data_dir: Path = Path(".pivotwatch-data")
    batch_size: int = Field(default=500, ge=1, description="records taken from a raw topic at once")
    batch_seconds: float = Field(default=0.2, gt=0, description="longest wait to fill a batch")
    metrics_port: int | None = Field(default=None, description="port of the /metrics endpoint; none to disable")
    session_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Kafka consumer group session timeout, in seconds"
    )
    heartbeat_interval_seconds: float = Field(
        default=3.0, gt=0, description="Kafka consumer group heartbeat interval, in seconds"
    )


def _config_file_source() -> dict[str, Any]:
    path = os.environ.get("PIVOTWATCH_CONFIG")
    if not path:
        return {}
    file = Path(path)
    try:
        text = file.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"cannot read PIVOTWATCH_CONFIG file {file}: {error}") from error
    data = orjson.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigurationError(f"PIVOTWATCH_CONFIG file {file} must contain a mapping at the top level")
    return data


class Settings(BaseSettings):
    """All pivotwatch settings."""

    model_config = SettingsConfigDict(
        env_prefix="PIVOTWATCH_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    worker: WorkerSettings = WorkerSettings()
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_settings = InitSettingsSource(settings_cls, init_kwargs=_config_file_source())
        return init_settings, env_settings, dotenv_settings, file_settings, file_secret_settings


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, raising ConfigurationError with the invalid value on failure."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(f"invalid settings: {error}") from error
