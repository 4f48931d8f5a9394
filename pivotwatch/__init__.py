"""pivotwatch: catch attackers who move from a container into the cloud account behind it."""

__version__ = "0.1.0"
