"""Sigma rule engine: single-record detection on CloudTrail, GCP audit and Falco records.

pySigma parses the rules; this package evaluates them. Each rule is compiled once, at
load time, into a test on records in the source's own field names (see `fields` for how
dotted names resolve), and a rule the engine cannot evaluate is rejected then with its
file, id and reason. Matches carry the rule's ATT&CK techniques and tactics.
"""

from pivotwatch.correlator.sigma.attack import TACTIC_ORDER, TECHNIQUE_TACTICS
from pivotwatch.correlator.sigma.loader import (
    CompiledRule,
    LoadReport,
    bundled_rules_dir,
    load_rule_files,
    load_rule_text,
)
from pivotwatch.correlator.sigma.ruleset import RuleMatch, RuleSet

__all__ = [
    "TACTIC_ORDER",
    "TECHNIQUE_TACTICS",
    "CompiledRule",
    "LoadReport",
    "RuleMatch",
    "RuleSet",
    "bundled_rules_dir",
    "load_rule_files",
    "load_rule_text",
]
