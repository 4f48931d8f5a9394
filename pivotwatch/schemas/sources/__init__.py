"""Per-source mapping tables from source records to normalized events.

Each module contains one source's tables and a ``normalize(record, context)`` function
that walks them; `pivotwatch.schemas.normalize` picks the module by source.
"""

from pivotwatch.schemas.sources.context import UNKNOWN_KEY, NormalizeContext

__all__ = ["UNKNOWN_KEY", "NormalizeContext"]
