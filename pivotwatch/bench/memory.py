"""Resident set size of this process."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["resident_bytes", "rss_method"]

_STATUS = Path("/proc/self/status")


def rss_method() -> str:
    """Name what `resident_bytes` reads: psutil when installed, else /proc/self/status."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        return "/proc/self/status VmRSS"
    return "psutil"


def resident_bytes() -> int:
    """Return the resident set size of this process in bytes, or 0 where it cannot be read."""
    try:
        import psutil
    except ImportError:
        return _status_rss()
    return int(psutil.Process(os.getpid()).memory_info().rss)


def _status_rss() -> int:
    try:
        text = _STATUS.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
