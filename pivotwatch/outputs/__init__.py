"""Exporters that read the alert topic and deliver alerts elsewhere.

- `alert_stream`: reads alert revisions from the alert topic in a consumer group.
- `ocsf`: writes each revision as an OCSF Detection Finding to a topic or a stream.
- `securityhub`: imports each chain into AWS Security Hub as one ASFF finding.

Each exporter commits the alert topic's offsets only after its destination accepted the
batch, so delivery is at-least-once; a revision delivered twice replaces itself.
"""
