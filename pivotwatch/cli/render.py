"""Rendering alerts for a terminal: a tree per chain, coloured by severity."""

from __future__ import annotations

import re
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


# C0 and C1 control characters and the bidirectional overrides: a record's field could
# otherwise clear, retitle or reorder a responder's terminal.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(value: object) -> str:
    """Return ``value`` as text with terminal control characters shown as escapes."""
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", str(value))


def alert_tree(alert: dict[str, Any]) -> Tree:
    """Return a tree of the alert: title, entry workload, identities, evidence in time order."""
    severity = str(alert.get("severity", "info"))
    header = Text()
    header.append(f" {severity.upper()} ", style=SEVERITY_STYLES.get(severity, ""))
    header.append(f" {alert.get('score', 0):>3} ", style="bold")
    header.append(f"{alert.get('kind')}  ", style="dim")
    header.append(safe(alert.get("title", "")))
    header.append(
        f"  (chain {str(alert.get('chain_id', ''))[:12]}, revision {alert.get('revision')})",
        style="dim",
    )
    tree = Tree(header)

    entry = {key: value for key, value in (alert.get("entry") or {}).items() if value}
    if entry:
        tree.add(
            Text("entry: ", style="bold").append(
                ", ".join(f"{k}={safe(v)}" for k, v in entry.items()), style=""
            )
        )
    if alert.get("identities"):
        identities = tree.add(Text("identities", style="bold"))
        for identity in alert["identities"]:
            identities.add(Text(safe(identity)))
    if alert.get("stages"):
        tree.add(Text("stages: ", style="bold").append(" > ".join(alert["stages"])))
    if alert.get("techniques"):
        tree.add(Text("techniques: ", style="bold").append(", ".join(alert["techniques"])))
    evidence = tree.add(Text(f"evidence ({len(alert.get('evidence') or [])})", style="bold"))
    for item in alert.get("evidence") or []:
        line = Text(f"{item.get('time', '')}  ", style="dim")
        line.append(f"{item.get('source', ''):<11}", style="magenta")
        line.append(f"{safe(item.get('summary', ''))}  ")
        line.append(safe(item.get("event_id", "")), style="dim")
        evidence.add(line)
    return tree


def print_alert(console: Console, alert: dict[str, Any]) -> None:
    console.print(alert_tree(alert))
