"""This process's resident set size (RSS), from ``/proc/self/status`` (Linux)."""

import resource
from pathlib import Path


def _status_kib(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} missing from /proc/self/status")


def current_rss_bytes():
    """RSS now (``VmRSS``); 0 where ``/proc`` cannot tell."""
    try:
        return _status_kib("VmRSS") * 1024
    except (OSError, KeyError):
        return 0


def peak_rss_bytes():
    """Peak RSS since the process started or :func:`reset_peak_rss` (``VmHWM``). ``VmHWM`` rather than
    ``ru_maxrss`` (the fallback without ``/proc``): Linux carries ``ru_maxrss`` over ``execve``, so a child would
    report its parent's peak."""
    try:
        return _status_kib("VmHWM") * 1024
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def reset_peak_rss():
    """Restart :func:`peak_rss_bytes` from the current RSS (``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")
