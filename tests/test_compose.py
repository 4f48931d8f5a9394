"""docker-compose.yml and the Dockerfile: valid Compose, and everything they name exists.

There is no Docker engine in the test environment, so the file is checked against the
Compose Specification's JSON Schema (tests/compose/) and against the project itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from pivotwatch.cli.main import cli
from pivotwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).parent / "compose" / "compose_spec.json"
CORE_SERVICES = {"kafka", "worker", "prometheus", "grafana"}
_DEFAULT = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def with_defaults(value: str) -> str:
    """Replace each ``${NAME:-default}`` by its default, as Compose does when NAME is unset."""
    return _DEFAULT.sub(lambda match: match.group(2) or "", value)


def resolve_command(args: list[str]) -> click.Command | None:
    """Return the click command that ``pivotwatch ARGS`` runs, or None if a name is unknown."""
    command: click.Command = cli
    context = click.Context(cli)
    for arg in args:
        if arg.startswith("-") or not isinstance(command, click.Group):
            break
        found = command.get_command(context, arg)
        if found is None:
            return None
        command = found
    return None if isinstance(command, click.Group) else command


def settings_field_exists(name: str) -> bool:
    """Return whether PIVOTWATCH_A__B__C names a field of Settings (nested with ``__``)."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("PIVOTWATCH_").lower().split("__")
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if index < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_compose_matches_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator_class(schema).iter_errors(compose)
    ]
    assert errors == []


def test_compose_has_core_services(compose: dict[str, Any]) -> None:
    assert set(services(compose)) >= CORE_SERVICES


def test_core_services_have_no_profile(compose: dict[str, Any]) -> None:
    for name in CORE_SERVICES:
        assert "profiles" not in services(compose)[name], name


def test_optional_services_have_profiles(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        if name not in CORE_SERVICES:
            assert service.get("profiles"), f"{name} starts without a profile"


def test_commands_exist(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        command = service.get("command")
        if isinstance(command, list) and command[0] == "pivotwatch":
            assert resolve_command(command[1:]) is not None, (
                f"{name}: pivotwatch {' '.join(command[1:])} does not exist"
            )


def test_connector_services_cover_connect_commands(compose: dict[str, Any]) -> None:
    connect = cli.get_command(click.Context(cli), "connect")
    assert isinstance(connect, click.Group)
    named = {
        service["command"][2]
        for service in services(compose).values()
        if service.get("command", [])[:2] == ["pivotwatch", "connect"]
    }
    assert named == set(connect.list_commands(click.Context(connect)))


def test_pivotwatch_services_build_from_dockerfile(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        if service.get("image", "").startswith("pivotwatch"):
            assert service["build"] == ".", name
    assert (ROOT / "Dockerfile").is_file()


def test_kafka_is_single_node_kraft(compose: dict[str, Any]) -> None:
    kafka = services(compose)["kafka"]
    environment = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert environment[name] == "1", name


def test_images_have_fixed_tags(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = service.get("image", "")
        assert ":" in image, f"{name}: {image!r} has no tag"
        assert not image.endswith(":latest"), f"{name}: {image!r}"


def test_pivotwatch_variables_exist_in_settings(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for variable in service.get("environment", {}):
            if variable.startswith("PIVOTWATCH_"):
                assert settings_field_exists(variable), f"{name}: {variable} is not a setting"


def test_pivotwatch_values_load(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, service in services(compose).items():
        with monkeypatch.context() as patch:
            for variable, value in service.get("environment", {}).items():
                if variable.startswith("PIVOTWATCH_") and value is not None:
                    patch.setenv(variable, with_defaults(str(value)))
            settings = Settings()
        assert settings is not None, name


def test_worker_serves_metrics_for_prometheus(compose: dict[str, Any]) -> None:
    environment = services(compose)["worker"]["environment"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [
        target
        for job in scrape["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    ]
    assert f"worker:{environment['PIVOTWATCH_WORKER__METRICS_PORT']}" in targets
    assert environment["PIVOTWATCH_WORKER__METRICS_ADDRESS"] == "0.0.0.0"


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith(("./", "/", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_ports_bind_loopback(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_dockerfile_copies_existing_paths() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_dockerfile_command_exists() -> None:
    line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    )
    command = json.loads(line.removeprefix("CMD "))
    assert command[0] == "pivotwatch"
    assert resolve_command(command[1:]) is not None
