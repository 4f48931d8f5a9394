"""Regenerate the shipped JSON Schema files: ``python -m pivotwatch.schemas.jsonschema``."""

from pivotwatch.schemas.jsonschema import write_alert_schema

if __name__ == "__main__":
    print(f"wrote {write_alert_schema()}")
