"""Options and helpers that several commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from pivotwatch.errors import ConfigurationError
from pivotwatch.settings import Settings, load_settings

__all__ = ["EXIT_USAGE", "bootstrap_option", "fail", "settings_with_bootstrap"]

EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


def bootstrap_option(help_text: str) -> Callable[[F], F]:
    """Return the ``--bootstrap HOST:PORT`` option with a command-specific help text."""
    return click.option("--bootstrap", metavar="HOST:PORT", default=None, help=help_text)


def check_bootstrap(bootstrap: str) -> None:
    """Raise click.BadParameter unless ``bootstrap`` is HOST:PORT[,HOST:PORT...]."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise click.BadParameter(
                f"{server!r} is not HOST:PORT with a port from 1 to 65535",
                param_hint="--bootstrap",
            )


def settings_with_bootstrap(bootstrap: str | None) -> Settings:
    """Load the settings, with the broker address replaced when ``bootstrap`` is given."""
    try:
        settings = load_settings()
    except ConfigurationError as error:
        fail(str(error), EXIT_USAGE)
    if bootstrap is None:
        return settings
    check_bootstrap(bootstrap)
    kafka = settings.kafka.model_copy(update={"bootstrap": bootstrap})
    return settings.model_copy(update={"kafka": kafka})


def fail(message: str, code: int) -> NoReturn:
    """Print ``Error: message`` on standard error and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(code)
