"""What a run cost the machine, measured the same way by every stage and benchmark."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """The process's resident-memory high-water mark in MiB (getrusage: peaks between samples included)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10     # bytes on macOS, KiB on Linux
