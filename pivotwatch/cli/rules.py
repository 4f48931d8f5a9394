"""``pivotwatch rules``: check Sigma rule files before deploying them."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pivotwatch.correlator.sigma import LoadReport, bundled_rules_dir, load_rule_files

__all__ = ["rules"]


@click.group()
def rules() -> None:
    """Work with Sigma detection rules."""


@rules.command("check")
@click.argument(
    "paths", nargs=-1, type=click.Path(exists=True, file_okay=True, dir_okay=True, path_type=Path)
)
@click.option(
    "--bundled/--no-bundled",
    default=None,
    help="Also check the rule pack shipped with pivotwatch. Default: only when no PATH is given.",
)
def check(paths: tuple[Path, ...], bundled: bool | None) -> None:
    """Load Sigma rules from PATH files and folders (searched for .yml and .yaml) and report.

    Prints how many rules loaded per log source and every rejected rule with its file, id
    and reason. Exits with status 1 if any rule was rejected.
    """
    include_bundled = not paths if bundled is None else bundled
    sources = [bundled_rules_dir(), *paths] if include_bundled else list(paths)
    report = load_rule_files(sources)

    console = Console()
    print_report(console, report)
    if report.rejected:
        raise click.exceptions.Exit(1)


def print_report(console: Console, report: LoadReport) -> None:
    """Print the per-source counts and the rejected rules of a load report."""
    counts = Table(title="Loaded rules")
    counts.add_column("log source")
    counts.add_column("rules", justify="right")
    for source, count in sorted(report.count_by_source().items()):
        counts.add_row(source.value, str(count))
    counts.add_row("total", str(len(report.rules)), style="bold")
    console.print(counts)

    if not report.rejected:
        console.print("[green]No rule rejected.[/green]")
        return

    rejected = Table(title=f"Rejected rules: {len(report.rejected)}", show_lines=True)
    rejected.add_column("file", overflow="fold")
    rejected.add_column("rule id", overflow="fold")
    rejected.add_column("reason", overflow="fold")
    for error in report.rejected:
        rejected.add_row(error.path or "-", error.rule_id or "-", error.reason)
    console.print(rejected)
