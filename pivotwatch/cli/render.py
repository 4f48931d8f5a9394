"""Rendering alerts for a terminal: a tree per chain, coloured by severity."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

__all__ = ["SEVERITY_STYLES", "alert_tree", "print_alert"]

SEVERITY_STYLES = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def alert_tree(alert: dict[str, Any]) -> Tree:
    """Return a tree of the alert: title, entry workload, identities, evidence in time order."""
    severity = str(alert.get("severity", "info"))
    header = Text()
    header.append(f" {severity.upper()} ", style=SEVERITY_STYLES.get(severity, ""))
    header.append(f" {alert.get('score', 0):>3} ", style="bold")
    header.append(f"{alert.get('kind')}  ", style="dim")
    header.append(str(alert.get("title", "")))
    header.append(
        f"  (chain {str(alert.get('chain_id', ''))[:12]}, revision {alert.get('revision')})",
        style="dim",
    )
    tree = Tree(header)

    entry = {key: value for key, value in (alert.get("entry") or {}).items() if value}
    if entry:
        tree.add(
            Text("entry: ", style="bold").append(
                ", ".join(f"{k}={v}" for k, v in entry.items()), style=""
            )
        )
    if alert.get("identities"):
        identities = tree.add(Text("identities", style="bold"))
        for identity in alert["identities"]:
            identities.add(identity)
    if alert.get("stages"):
        tree.add(Text("stages: ", style="bold").append(" > ".join(alert["stages"])))
    if alert.get("techniques"):
        tree.add(Text("techniques: ", style="bold").append(", ".join(alert["techniques"])))
    evidence = tree.add(Text(f"evidence ({len(alert.get('evidence') or [])})", style="bold"))
    for item in alert.get("evidence") or []:
        line = Text(f"{item.get('time', '')}  ", style="dim")
        line.append(f"{item.get('source', ''):<11}", style="magenta")
        line.append(f"{item.get('summary', '')}  ")
        line.append(str(item.get("event_id", "")), style="dim")
        evidence.add(line)
    return tree


def print_alert(console: Console, alert: dict[str, Any]) -> None:
    console.print(alert_tree(alert))
