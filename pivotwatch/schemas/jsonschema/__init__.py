"""JSON Schema files of pivotwatch's public topics, generated from the models.

``alert.schema.json`` describes one message of the alert topic. It is generated from
`pivotwatch.schemas.alert.Alert` by `alert_schema` and shipped in this package, so
consumers can validate alerts without importing pivotwatch. Regenerate it after any
change to the alert model::

    python -m pivotwatch.schemas.jsonschema

A test fails while the shipped file differs from what the model generates.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from pivotwatch.schemas.alert import SCHEMA_VERSION, Alert

__all__ = [
    "ALERT_SCHEMA_FILE",
    "ALERT_SCHEMA_ID",
    "FIELD_DESCRIPTIONS",
    "alert_schema",
    "alert_schema_path",
    "load_alert_schema",
    "render_alert_schema",
    "write_alert_schema",
]

ALERT_SCHEMA_FILE = "alert.schema.json"
ALERT_SCHEMA_ID = f"urn:pivotwatch:schema:alert:{SCHEMA_VERSION}"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

FIELD_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "Alert": {
        "alert_id": "Unique id of this alert revision.",
        "chain_id": "Stable id of the chain or single-stage alert; the Kafka message key.",
        "revision": (
            "1 for the first publication of a chain, then 2, 3, ... as evidence changes its score."
        ),
        "kind": "pivot_chain, single_stage or transient_exposure.",
        "title": "One line that a responder can act on.",
        "severity": "info, low, medium, high or critical.",
        "score": "Priority from 0 to 100; higher is more urgent.",
        "account": "AWS account id or GCP project id: the correlation key.",
        "entry": "The workload where the chain began.",
        "identities": "Cloud principals (ARNs, emails, Workload Identity subjects) in chain order.",
        "stages": "MITRE ATT&CK tactics, as short names, in chain order.",
        "techniques": "MITRE ATT&CK technique ids, such as T1552.005.",
        "evidence": "Source records that support the alert, in event-time order.",
        "first_seen": "Event time of the oldest evidence, RFC 3339 in UTC.",
        "last_seen": "Event time of the newest evidence, RFC 3339 in UTC.",
        "schema_version": "Version of this schema that the alert follows.",
        "rules": "Ids of the detection rules that matched the evidence.",
        "details": (
            "Kind-specific facts as strings, such as a transient exposure's change, revert and "
            "duration."
        ),
    },
    "Entry": {
        "cluster": "Kubernetes cluster name, or null where unknown.",
        "namespace": "Kubernetes namespace, or null where unknown.",
        "pod": "Pod name, or null where unknown.",
        "container_id": "Container id as Falco reports it, or null where unknown.",
        "host": "Node or instance host name, or null where unknown.",
    },
    "Evidence": {
        "source": "cloudtrail, gcp_audit or falco.",
        "event_id": (
            "The source's own id: CloudTrail eventID, GCP insertId, Falco uuid, or a stable hash "
            "where none."
        ),
        "time": "Event time of the record, RFC 3339 in UTC.",
        "summary": "One line describing the record.",
    },
}
"""Description of every field of the alert model, by struct name; the generator adds them."""

_DATE_TIME_FIELDS = {"Alert": ("first_seen", "last_seen"), "Evidence": ("time",)}
"""Fields that msgspec types as datetime; the model rejects naive datetimes."""


def alert_schema() -> dict[str, Any]:
    """Generate the JSON Schema (Draft 2020-12) of one alert-topic message.

    msgspec generates the structure. The generator then adds what msgspec cannot see:
    field descriptions, the range checks of ``Alert.__post_init__`` (score 0-100,
    revision 1 or more), ``date-time`` formats, and ``schema_version`` fixed to
    `SCHEMA_VERSION`.
    """
    generated = msgspec.json.schema(Alert)
    definitions: dict[str, Any] = generated["$defs"]

    _add_descriptions(definitions)
    _add_model_checks(definitions)
    _add_date_time_formats(definitions)

    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": ALERT_SCHEMA_ID,
        "title": "pivotwatch alert",
        "description": (
            f"One message of the pivotwatch alert topic, schema version {SCHEMA_VERSION}. "
            "The Kafka key is chain_id; a chain's later revisions carry the same chain_id."
        ),
        "$ref": generated["$ref"],
        "$defs": definitions,
    }


def _add_descriptions(definitions: dict[str, Any]) -> None:
    for struct, fields in FIELD_DESCRIPTIONS.items():
        properties = definitions[struct]["properties"]
        for name, description in fields.items():
            properties[name]["description"] = description


def _add_model_checks(definitions: dict[str, Any]) -> None:
    properties = definitions["Alert"]["properties"]
    properties["score"].update({"minimum": 0, "maximum": 100})
    properties["revision"]["minimum"] = 1
    properties["schema_version"]["const"] = SCHEMA_VERSION


def _add_date_time_formats(definitions: dict[str, Any]) -> None:
    for struct, names in _DATE_TIME_FIELDS.items():
        for name in names:
            definitions[struct]["properties"][name]["format"] = "date-time"


def render_alert_schema() -> str:
    """Return the schema as the shipped file's text: sorted keys, two-space indent."""
    return json.dumps(alert_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def alert_schema_path() -> Path:
    """Return the path of the shipped ``alert.schema.json`` in this package's folder."""
    return Path(__file__).resolve().parent / ALERT_SCHEMA_FILE


def write_alert_schema(path: Path | None = None) -> Path:
    """Regenerate the alert schema file, by default the shipped one, and return its path."""
    target = path or alert_schema_path()
    target.write_text(render_alert_schema(), encoding="utf-8")
    return target


def load_alert_schema() -> dict[str, Any]:
    """Read the shipped alert schema, as installed with the package."""
    text = resources.files(__name__).joinpath(ALERT_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
