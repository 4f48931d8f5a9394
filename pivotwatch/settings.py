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

__all__ = [
    "AwsSettings",
    "ConnectorSettings",
    "CorrelationSettings",
    "DeliverySettings",
    "FalcoHttpSettings",
    "InventorySettings",
    "KafkaSettings",
    "OutputSettings",
    "PubSubSettings",
    "Settings",
    "SqsQueueSettings",
    "TopicSettings",
    "load_settings",
]

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
    partitions: int = Field(
        default=4, ge=1, description="partitions of topics that pivotwatch creates"
    )
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
    max_future_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="records whose event time is further ahead of the worker's clock than "
        "this, in seconds, go to the dead-letter topic",
    )
    transient_window_seconds: float = Field(default=3600.0, gt=0)
    max_nodes_per_key: int = Field(default=50_000, ge=100)
    max_edges_per_key: int = Field(default=200_000, ge=100)
    min_single_stage_level: str = Field(
        default="low", description="single-stage alerts below this rule level are not published"
    )
    cluster_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="Kubernetes cluster or host name -> AWS account or GCP project",
    )
    default_account: str | None = Field(
        default=None,
        description="correlation key of runtime records whose account cannot be resolved",
    )
    rule_paths: list[Path] = Field(
        default_factory=list,
        description="extra folders or files of Sigma rules, loaded after the bundled pack",
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
    batch_size: int = Field(
        default=2000, ge=1, description="records taken from a raw topic at once"
    )
    batch_seconds: float = Field(default=0.2, gt=0, description="longest wait to fill a batch")
    metrics_port: int | None = Field(
        default=None, description="port of the /metrics endpoint; none to disable"
    )
    metrics_address: str = Field(
        default="127.0.0.1",
        description="address the /metrics endpoint listens on; 0.0.0.0 to serve other hosts",
    )
    max_message_bytes: int = Field(
        default=900_000,
        ge=10_000,
        description="largest events-topic message the worker sends, in bytes; keep it below "
        "the broker's message.max.bytes (1 MiB by default)",
    )
    session_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Kafka consumer group session timeout, in seconds"
    )
    heartbeat_interval_seconds: float = Field(
        default=3.0, gt=0, description="Kafka consumer group heartbeat interval, in seconds"
    )


class DeliverySettings(BaseModel):
    """Timeouts and retries of the connectors' deliveries to Kafka."""

    model_config = {"frozen": True}

    delivery_timeout_seconds: float = Field(
        default=120.0,
        gt=1,
        description="maximum wait for Kafka to acknowledge one record before the source "
        "message is released for redelivery, in seconds",
    )
    connect_timeout_seconds: float = Field(
        default=30.0, gt=0, description="longest wait for the first broker connection, in seconds"
    )
    retry_initial_seconds: float = Field(
        default=1.0,
        gt=0,
        description="first pause after a failure, in seconds; doubles per failure",
    )
    retry_max_seconds: float = Field(
        default=60.0, gt=0, description="maximum pause between retries, in seconds"
    )


class AwsSettings(BaseModel):
    """Region and endpoint of the AWS connectors; credentials come from boto3's standard chain."""

    model_config = {"frozen": True}

    region: str | None = Field(
        default=None, description="AWS region of the queues; none means boto3's default chain"
    )
    endpoint_url: str | None = Field(
        default=None,
        description="URL that replaces every AWS service endpoint (a VPC endpoint, or a local "
        "test server); none means the public endpoints",
    )
    max_attempts: int = Field(
        default=5, ge=1, description="attempts of one AWS API call, botocore's standard retry mode"
    )


class SqsQueueSettings(BaseModel):
    """One SQS queue that a connector long-polls."""

    model_config = {"frozen": True}

    queue_url: str | None = Field(default=None, description="URL of the SQS queue")
    wait_seconds: int = Field(
        default=20, ge=0, le=20, description="long-poll wait of one ReceiveMessage call, in seconds"
    )
    max_messages: int = Field(
        default=10, ge=1, le=10, description="messages taken by one ReceiveMessage call"
    )
    visibility_timeout_seconds: int = Field(
        default=300,
        ge=2,
        le=43200,
        description="how long a received message stays hidden from other consumers, in "
        "seconds; extended while its objects are still being read",
    )
    concurrency: int = Field(
        default=8, ge=1, description="messages processed and S3 objects downloaded at once"
    )
    max_object_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024,
        description="largest S3 object read, after decompression, in bytes",
    )


class PubSubSettings(BaseModel):
    """The Pub/Sub subscription of GCP audit logs that a Log Router sink feeds."""

    model_config = {"frozen": True}

    subscription: str | None = Field(
        default=None, description="subscription path: projects/<project>/subscriptions/<name>"
    )
    max_messages: int = Field(
        default=1000, ge=1, description="flow control: most messages held unacknowledged at once"
    )
    max_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024,
        description="flow control: most bytes of messages held unacknowledged at once",
    )
    concurrency: int = Field(default=8, ge=1, description="threads that run the message callback")


class FalcoHttpSettings(BaseModel):
    """The HTTP receiver of Falco's http_output and falcosidekick's webhook output."""

    model_config = {"frozen": True}

    host: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=2802, ge=0, le=65535, description="listen port; 0 picks a free one")
    path: str = Field(default="/", description="URL path that accepts alerts")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest request body accepted, in bytes"
    )
    tls_certfile: Path | None = Field(default=None, description="server certificate chain (PEM)")
    tls_keyfile: Path | None = Field(default=None, description="private key of tls_certfile (PEM)")
    tls_client_cafile: Path | None = Field(
        default=None,
        description="CA bundle (PEM); when set, every client must present a certificate it signed",
    )
    bearer_token: SecretStr | None = Field(
        default=None, description="token that clients send as 'Authorization: Bearer <token>'"
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="accept requests without client certificate or token; off unless set",
    )


class InventorySettings(BaseModel):
    """Inventory pollers; each runs only when its section is configured."""

    model_config = {"frozen": True}

    interval_seconds: float = Field(
        default=300.0, ge=1, description="pause between two complete inventory polls, in seconds"
    )
    aws_regions: list[str] = Field(
        default_factory=list, description="EC2 regions to list; empty turns the EC2 poller off"
    )
    gcp_projects: list[str] = Field(
        default_factory=list, description="GCP projects whose GCE instances are listed"
    )
    gce_endpoint: str = Field(
        default="https://compute.googleapis.com",
        description="base URL of the Compute Engine API",
    )
    kubernetes_api_url: str | None = Field(
        default=None, description="Kubernetes API server URL; none turns the pod poller off"
    )
    kubernetes_token_file: Path | None = Field(
        default=None, description="file holding the bearer token for the Kubernetes API"
    )
    kubernetes_ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the API server's certificate"
    )
    kubernetes_page_size: int = Field(
        default=500, ge=1, description="objects per Kubernetes list page"
    )


class ConnectorSettings(BaseModel):
    """The live connectors run by ``pivotwatch connect``."""

    model_config = {"frozen": True}

    delivery: DeliverySettings = DeliverySettings()
    aws: AwsSettings = AwsSettings()
    cloudtrail_sqs: SqsQueueSettings = SqsQueueSettings()
    eventbridge_sqs: SqsQueueSettings = SqsQueueSettings()
    pubsub: PubSubSettings = PubSubSettings()
    falco_http: FalcoHttpSettings = FalcoHttpSettings()
    inventory: InventorySettings = InventorySettings()
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "port of the connector's /metrics endpoint; 0 picks a free port. Unset, "
            "`pivotwatch connect` uses the connector's default: cloudtrail-sqs 9401, "
            "eventbridge-sqs 9402, gcp-pubsub 9403, falco-http 9404, inventory 9405"
        ),
    )
    metrics_address: str = Field(
        default="127.0.0.1",
        description=(
            "address the connector's /metrics endpoint listens on; 0.0.0.0 to serve other hosts"
        ),
    )


class OutputSettings(BaseModel):
    """The exporters that read the alert topic: ``pivotwatch export ocsf`` and ``export securityhub``."""

    model_config = {"frozen": True}

    ocsf_topic: str = Field(
        default="pivotwatch.findings.ocsf",
        description="topic that `export ocsf` writes OCSF Detection Findings to",
    )
    export_group_prefix: str = Field(
        default="pivotwatch-export",
        description="consumer groups of the exporters: <prefix>-ocsf, <prefix>-securityhub",
    )
    securityhub_region: str | None = Field(
        default=None,
        description="AWS region of Security Hub; none to use the AWS SDK's default region",
    )
    securityhub_account_id: str | None = Field(
        default=None,
        description="AWS account that owns the custom product; none to ask STS for the caller's account",
    )
    securityhub_endpoint_url: str | None = Field(
        default=None,
        description="Security Hub endpoint URL instead of the AWS one, such as a local test server",
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
    try:
        data = orjson.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as error:
        kind = "JSON" if file.suffix == ".json" else "YAML"
        raise ConfigurationError(
            f"PIVOTWATCH_CONFIG file {file} is not valid {kind}: {error}; fix the file, or "
            "unset PIVOTWATCH_CONFIG"
        ) from error
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"PIVOTWATCH_CONFIG file {file} must contain a mapping at the top level"
        )
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
    connectors: ConnectorSettings = ConnectorSettings()
    outputs: OutputSettings = OutputSettings()
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
    from pydantic_settings import SettingsError

    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(f"invalid settings: {error}") from error
    except SettingsError as error:
        # pydantic-settings raises this for a PIVOTWATCH_* variable that is not valid JSON
        # where a list or mapping is expected.
        raise ConfigurationError(
            f"invalid settings: {error} (a PIVOTWATCH_* variable for a list or mapping "
            'must hold JSON, for example PIVOTWATCH_CORRELATION__CLUSTER_ACCOUNTS=\'{"prod": '
            '"111122223333"}\')'
        ) from error
